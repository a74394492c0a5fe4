"""Two events for one person, taken by two of four workers at the same moment, write the
person's consent once: a person's jobs run one at a time."""

import pytest
from rq import Queue

from connector import defaults
from connector.exceptions import PersonBusyError
from connector.keys import ONBOARDING, person_lock
from connector.settings import Settings
from connector.queueing import enqueue_event
from tests.conftest import new_event_id, own_database, start_worker, stop_worker, wait_for
from workers.jobs import one_job_per_person

pytestmark = pytest.mark.integration


def test_two_events_for_one_person_on_four_workers_write_each_consent_once(
        sandbox, connector_env, tmp_path):
    env, db = own_database(connector_env, 14, DATA_DIR=str(tmp_path))
    settings = Settings.from_env(env)
    person_ids = [sandbox.create_person(f"Twice{n}", "Person", None) for n in range(30)]
    # A CRM a little slow to answer widens the gap between a job's read and its write.
    sandbox.fault(delay=0.15, times=60, match="/Person/", method="GET")
    for person_id in person_ids:  # the same person twice in a row: two workers take both
        enqueue_event(db, settings, "onboard", person_id, new_event_id())
        enqueue_event(db, settings, "onboard", person_id, new_event_id())

    workers = [start_worker(env) for _ in range(4)]
    try:
        wait_for(lambda: all("STORE" in sandbox.consents(p) for p in person_ids), timeout=90,
                 interval=0.5, what="every person to be onboarded")
        queue = Queue(ONBOARDING, connection=db)
        wait_for(lambda: queue.count == 0 and queue.started_job_registry.count == 0,
                 timeout=60, what="the second job of each person to finish too")
    finally:
        for process in workers:
            stop_worker(process)

    puts = [call["path"] for call in sandbox.calls()
            if call["method"] == "PUT" and call["path"].endswith("/Consent/STORE")]
    written_twice = {path for path in puts if puts.count(path) > 1}
    assert len(puts) == len(person_ids) and not written_twice, sorted(written_twice)


class Services:
    """Just the Redis a job's lock needs."""

    def __init__(self, connection):
        self.redis = connection


def test_the_lock_is_released_when_the_job_fails_and_a_busy_person_makes_the_job_wait(
        redis_conn, monkeypatch):
    services = Services(redis_conn)

    @one_job_per_person
    def failing(services, person_id):
        raise RuntimeError("the CRM fell over")

    with pytest.raises(RuntimeError):
        failing(services, 12)
    assert not redis_conn.exists(person_lock(12))  # released on the failing path too

    monkeypatch.setattr(defaults, "PERSON_LOCK_WAIT", 0.2)
    held = redis_conn.lock(person_lock(12), timeout=30)
    assert held.acquire()
    with pytest.raises(PersonBusyError) as caught:
        one_job_per_person(lambda services, person_id: "ran")(services, 12)
    assert not caught.value.permanent and caught.value.retry_after == 5
    held.release()
    assert one_job_per_person(lambda services, person_id: "ran")(services, 12) == "ran"
