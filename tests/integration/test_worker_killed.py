"""A worker killed with SIGKILL in the middle of a job: the job is found and retried, not
left "started" forever."""

import os
import signal
import subprocess
import time

import pytest
from rq import Queue
from rq.job import JobStatus
from rq.registry import StartedJobRegistry

from connector.defaults import JOB_TIMEOUT
from connector.settings import Settings
from tests.conftest import (new_event_id, own_database, start_worker, stop_worker,
                            wait_for)
from connector.keys import ONBOARDING
from connector.queueing import enqueue_event
from workers.retry import apply_retry_policy, give_back_unstarted

pytestmark = pytest.mark.integration
HEARTBEAT_TTL = JOB_TIMEOUT + 60  # RQ's SimpleWorker: a job's timeout + 60 s


def kill_hard(process: subprocess.Popen) -> None:
    """SIGKILL the worker and its work horse, as a crash or an OOM kill would."""
    subprocess.run(["pkill", "-KILL", "-P", str(process.pid)], check=False)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)


def a_job_whose_worker_was_killed(sandbox, env: dict, own_db) -> tuple[int, object]:
    """Start a worker on an onboarding that waits on a slow CRM, and kill it in the middle:
    return the person and the job left behind as "started"."""
    person_id = sandbox.create_person("Killed", "Worker", None)
    sandbox.fault(delay=30, times=1, match=f"Person/{person_id}", method="GET")  # a slow CRM
    job = enqueue_event(own_db, Settings.from_env(env), "onboard", person_id, new_event_id())
    doomed = start_worker(env)
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, what="the job to start")
    # Kill it while its GET waits on the slow CRM, not before the GET is sent: a GET not sent
    # yet would leave the delay for the next worker's attempt.
    wait_for(lambda: sandbox.faults() == [], what="the job's GET to reach the slow CRM")
    kill_hard(doomed)
    assert job.id in StartedJobRegistry(ONBOARDING, connection=own_db).get_job_ids()
    return person_id, job


def on_another_machine(own_db, job) -> None:
    """Make the job's dead worker look like one of another machine's (its death cannot be seen
    from here: only its heartbeat lapsing tells)."""
    job.refresh()
    own_db.hset(f"rq:worker:{job.worker_name}", "hostname", "another-machine")


def test_a_job_of_a_killed_worker_is_retried(sandbox, connector_env, tmp_path):
    # Retry at once: the dead worker's scheduler lock would hold scheduled retries for 60 s.
    env, own_db = own_database(connector_env, 11, DATA_DIR=str(tmp_path), RETRY_INTERVALS="0")
    person_id, job = a_job_whose_worker_was_killed(sandbox, env, own_db)
    registry = StartedJobRegistry(ONBOARDING, connection=own_db)

    # What the next worker's maintenance does once the dead worker's heartbeat is stale:
    registry.cleanup(timestamp=time.time() + HEARTBEAT_TTL + 1,
                     exception_handlers=[apply_retry_policy])
    job.refresh()
    assert job.get_status() in (JobStatus.SCHEDULED, JobStatus.QUEUED)
    assert "worker stopped in the middle" in job.meta["attempts"][-1]["error"]

    survivor = start_worker(env)
    try:
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, timeout=30,
                 what="the retried job to finish")
    finally:
        stop_worker(survivor)
    assert sandbox.consents(person_id)["STORE"]["LegalBaseKey"] == "61F"


def test_a_worker_started_after_one_killed_on_the_same_machine_retries_its_job_at_once(
        sandbox, connector_env, tmp_path):
    env, own_db = own_database(connector_env, 11, DATA_DIR=str(tmp_path), RETRY_INTERVALS="0")
    person_id, job = a_job_whose_worker_was_killed(sandbox, env, own_db)

    replacement = start_worker(env)  # as the process manager starts one
    try:
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, timeout=30,
                 what="the replacement to retry the job (not after its heartbeat's 3 min)")
    finally:
        stop_worker(replacement)
    job.refresh()
    assert "worker stopped in the middle" in job.meta["attempts"][0]["error"]
    assert sandbox.consents(person_id)["STORE"]["LegalBaseKey"] == "61F"


def test_an_idle_worker_retries_a_dead_workers_job_within_the_maintenance_interval(
        sandbox, connector_env, tmp_path):
    # RQ's own blocking wait for a job lasts 405 s, and its maintenance runs only between two
    # waits: an idle worker found a dead worker's job up to 7 minutes late.
    env, own_db = own_database(connector_env, 10, DATA_DIR=str(tmp_path), RETRY_INTERVALS="0",
                               WORKER_MAINTENANCE_INTERVAL="3")
    person_id, job = a_job_whose_worker_was_killed(sandbox, env, own_db)
    on_another_machine(own_db, job)

    survivor = start_worker(env)
    try:
        time.sleep(4)  # the survivor is up, has done its first maintenance and waits for jobs
        assert job.get_status(refresh=True) == JobStatus.STARTED  # not seen dead from here
        # The dead worker's heartbeat lapses now instead of in 3 min:
        registry = StartedJobRegistry(ONBOARDING, connection=own_db)
        for member in own_db.zrange(registry.key, 0, -1):
            own_db.zadd(registry.key, {member: time.time() - 1})
        lapsed = time.monotonic()
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, timeout=30,
                 what="the idle worker to retry the job")
        assert time.monotonic() - lapsed < 3 * 3 + 5  # within the interval, not 405 s
    finally:
        stop_worker(survivor)
    assert sandbox.consents(person_id)["STORE"]["LegalBaseKey"] == "61F"


def test_a_job_a_stopping_worker_took_and_never_started_goes_back_to_the_front_of_its_queue(
        connector_env):
    env, own_db = own_database(connector_env, 11)
    settings = Settings.from_env(env)
    first, second = (enqueue_event(own_db, settings, "onboard", person_id, new_event_id())
                     for person_id in (1, 2))
    queue = Queue(ONBOARDING, connection=own_db)
    own_db.lpop(queue.key)  # RQ's pop, then the SIGTERM before the job starts

    assert give_back_unstarted(first) is True
    assert queue.get_job_ids() == [first.id, second.id]
    assert give_back_unstarted(first) is False  # in its queue already: not twice
