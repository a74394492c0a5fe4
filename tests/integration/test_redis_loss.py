"""Losing Redis may delay work, never repeat a mail or lose proof: what must happen once is
decided by the evidence database (here the session's PostgreSQL)."""

import shutil
import subprocess
import uuid

import pytest
import redis
from rq import Queue

from connector.evidence import facts
from connector.keys import ONBOARDING
from connector.queueing import enqueue_event
from connector.redis_connection import ensure_embedded_server, stop_embedded_server
from connector.settings import Settings
from tests.conftest import (empty_evidence, new_event_id, run_command, start_worker, stop_worker,
                            wait_for)

pytestmark = pytest.mark.integration

PERSONS = 20


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return run_command(env, *args)


def test_redis_restarted_empty_after_onboarding_repeats_no_mail_and_keeps_every_entry(
        sandbox, connector_env, evidence_database, ledger, smtp_server, tmp_path):
    empty_evidence(evidence_database)
    folder = tmp_path / "redis"
    url = ensure_embedded_server(folder)
    env = connector_env | {"REDIS_URL": url, "DATA_DIR": str(tmp_path), "RETRY_INTERVALS": "1"}
    settings = Settings.from_env(env)
    run = uuid.uuid4().hex[:8]
    people = {sandbox.create_person("Lost", f"Redis{n}", f"lost.{run}.{n}@example.org"): n
              for n in range(PERSONS)}
    worker = start_worker(env)
    try:
        # 1. Onboard 20 persons, as their webhooks would.
        for person_id in people:
            enqueue_event(redis.Redis.from_url(url), settings, "onboard", person_id, new_event_id())
        wait_for(lambda: all(facts.onboarded(evidence_database, list(people))), timeout=120,
                 what="20 onboardings")
        mails = {person_id: f"lost.{run}.{n}@example.org" for person_id, n in people.items()}
        assert all(len(smtp_server.sink.to(address)) == 1 for address in mails.values())

        # 2. Redis loses everything: FLUSHALL, then a restart with no data on disk.
        redis.Redis.from_url(url).flushall()
        stop_worker(worker)
        stop_embedded_server(folder)
        shutil.rmtree(folder)
        url = ensure_embedded_server(folder)
        connection = redis.Redis.from_url(url)
        assert connection.dbsize() == 0
        worker = start_worker(env)

        # 3. The reconciliation lists every person again and finds them all onboarded.
        result = cli(env, "reconcile", "--all")
        assert result.returncode == 0, result.stderr
        assert Queue(ONBOARDING, connection=connection).count == 0

        # 4. Every person's job runs again (a redelivery, a support retry after the loss).
        jobs = [enqueue_event(connection, settings, "onboard", person_id, new_event_id())
                for person_id in people]
        wait_for(lambda: all(job.get_status(refresh=True) == "finished" for job in jobs),
                 timeout=120, what="every job run again")
        outcomes = [job.return_value()["mail"] for job in jobs]
    finally:
        stop_worker(worker)
        stop_embedded_server(folder)

    assert outcomes == ["already sent"] * PERSONS
    assert all(len(smtp_server.sink.to(address)) == 1 for address in mails.values())
    for person_id in people:
        actions = [entry["action"] for entry in ledger.entries(person_id)]
        assert actions == ["consent.recorded", "mail.sent", "person.onboarded"]
    verify = cli(env, "ledger", "verify", "--all")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"{PERSONS} persons, {3 * PERSONS} entries checked: no broken" in verify.stdout
