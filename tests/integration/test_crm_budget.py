"""The CRM request budget every process shares (connector.crm.budget), against a real Redis,
and four real worker processes against the sandbox CRM enforcing a quota."""

import threading
import time

import pytest

from connector.crm.budget import CRMBudget, Priority, crm_priority
from connector.exceptions import CRMError
from connector.intake import Entry, Intake
from tests.conftest import new_event_id, own_database, start_worker, stop_worker, wait_for

pytestmark = pytest.mark.integration


class Waits:
    """A sleep that sleeps, and remembers how long each wait was."""

    def __init__(self):
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        time.sleep(seconds)


@pytest.fixture
def budget_redis(connector_env):
    _, connection = own_database(connector_env, 9)
    return connection


def test_the_allowed_calls_go_at_once_and_the_next_waits_for_the_oldest_to_leave_the_second(
        budget_redis):
    waits = Waits()
    budget = CRMBudget(budget_redis, 5, sleep=waits)

    started = time.monotonic()
    for _ in range(6):
        budget.take()

    assert waits.seconds and 0.5 < sum(waits.seconds) <= 1.1
    assert 0.9 <= time.monotonic() - started < 1.5


def test_two_processes_draw_from_one_budget(budget_redis):
    first, second = (CRMBudget(budget_redis, 3, sleep=Waits()) for _ in range(2))
    for _ in range(3):
        first.take()

    second_waits = Waits()
    CRMBudget(budget_redis, 3, sleep=second_waits).take()

    assert second_waits.seconds  # the first process's calls count for the second


def test_a_pause_the_crm_asked_of_one_process_holds_every_process(budget_redis):
    asked, other_waits = CRMBudget(budget_redis, 100), Waits()
    other = CRMBudget(budget_redis, 100, sleep=other_waits)

    asked.pause(1.0)
    other.take()

    assert 0.8 <= sum(other_waits.seconds) <= 1.1


def test_a_pause_longer_than_the_wait_in_place_sends_the_job_back_with_the_time_left(
        budget_redis):
    budget = CRMBudget(budget_redis, 100, longest_wait=5)
    budget.pause(60)

    with pytest.raises(CRMError) as caught:
        budget.take()

    assert not caught.value.permanent and 59 <= caught.value.retry_after <= 60


def test_a_shorter_pause_asked_later_does_not_end_a_longer_one(budget_redis):
    budget = CRMBudget(budget_redis, 100)
    budget.pause(30)
    budget.pause(1)

    assert 29 < budget.paused_for() <= 30


def test_a_person_waiting_on_their_page_gets_the_next_slot_before_background_work(budget_redis):
    budget = CRMBudget(budget_redis, 2, sleep=time.sleep)
    with crm_priority(Priority.BACKGROUND):
        budget.take()
        budget.take()  # the window is full for about a second
    finished = []

    def call(priority: Priority, name: str) -> None:
        with crm_priority(priority):
            budget.take()
        finished.append(name)

    interactive = threading.Thread(target=call, args=(Priority.INTERACTIVE, "page"))
    background = threading.Thread(target=call, args=(Priority.BACKGROUND, "backfill"))
    interactive.start()
    time.sleep(0.1)  # the page's call is already waiting when the backfill's comes
    background.start()
    interactive.join(5)
    background.join(5)

    assert finished == ["page", "backfill"]


def test_four_workers_sharing_a_quota_of_10_calls_a_second_never_get_a_429(
        sandbox, connector_env, tmp_path):
    env, db = own_database(connector_env, 9, DATA_DIR=str(tmp_path),
                           CRM_MAX_REQUESTS_PER_SECOND="10")
    person_ids = [sandbox.create_person(f"Quota{n}", "Person", None) for n in range(24)]
    intake = Intake(db)
    entries = [Entry("onboard", person_id, new_event_id()) for person_id in person_ids]
    for entry in entries:
        intake.accept(entry)
    sandbox.set_quota(10)  # from here on the test asks Redis, not the CRM, how far they are
    try:
        workers = [start_worker(env) for _ in range(4)]
        try:
            wait_for(lambda: all(status(db, entry.job_id) == "finished" for entry in entries),
                     timeout=60, interval=0.5, what="every onboarding to finish")
        finally:
            for process in workers:
                stop_worker(process)
        quota = sandbox.quota()
    finally:
        sandbox.set_quota(None)

    assert quota["refused"] == 0, quota
    # Each onboarding reads and writes (2 calls); each worker asks who it is when it starts.
    assert quota["served"] >= 2 * len(person_ids) + 4
    assert all(set(sandbox.consents(p)) == {"STORE"} for p in person_ids)


def status(connection, job_id: str) -> str | None:
    """A job's status straight from its RQ hash (None before a worker made the job)."""
    value = connection.hget(f"rq:job:{job_id}", "status")
    return value.decode() if value else None
