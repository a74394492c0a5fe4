"""A worker busy with a job when Redis goes away (a restart, a failover) rides out the outage
and works on when Redis is back, instead of quitting with "found an unhandled exception";
jobs the outage left where nothing would run them are queued again."""

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus

from connector.queueing import enqueue_event
from connector.redis_connection import ensure_embedded_server, stop_embedded_server
from connector.settings import Settings
from tests.conftest import new_event_id, start_worker, stop_worker, wait_for
from workers.retry import requeue_lost

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of this test's own (append-only, like production should be), which the
    test stops and starts."""
    folder = tmp_path / "redis"
    url = ensure_embedded_server(folder)
    yield folder, url
    stop_embedded_server(folder)


def test_a_busy_worker_rides_out_a_redis_restart_and_works_on(sandbox, connector_env, own_redis,
                                                              tmp_path):
    folder, url = own_redis
    env = connector_env | {"REDIS_URL": url, "DATA_DIR": str(tmp_path), "RETRY_INTERVALS": "1"}
    connection = redis.Redis.from_url(url)
    settings = Settings.from_env(env)
    first = sandbox.create_person("During", "Outage", None)
    sandbox.fault(delay=3, times=1, match=f"Person/{first}", method="GET")  # busy for 3 s
    worker = start_worker(env)
    try:
        job = enqueue_event(connection, settings, "onboard", first, new_event_id())
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, what="the job")
        stop_embedded_server(folder)  # Redis goes away while the job waits on the CRM
        time.sleep(5)
        assert worker.poll() is None, Path(worker.log_path).read_text()[-2000:]
        ensure_embedded_server(folder)  # back, with its append-only file

        # The job in hand when Redis went away is retried at once (not after 90 s) and done.
        wait_for(lambda: Job.fetch(job.id, connection=redis.Redis.from_url(url)).get_status()
                 == JobStatus.FINISHED, timeout=30, what="the interrupted job to be done")
        reason = Job.fetch(job.id, connection=redis.Redis.from_url(url)).meta["reason"]
        assert reason == "the worker stopped in the middle of this job (killed or crashed)"
        assert "STORE" in sandbox.consents(first)

        second = sandbox.create_person("After", "Outage", None)
        later = enqueue_event(redis.Redis.from_url(url), settings, "onboard", second, new_event_id())
        wait_for(lambda: later.get_status(refresh=True) == JobStatus.FINISHED, timeout=60,
                 what="a job queued after the outage to be done")
        assert worker.poll() is None
    finally:
        stop_worker(worker)
    assert "STORE" in sandbox.consents(second)
    assert "worker.redis_back" in Path(worker.log_path).read_text()


def test_a_worker_started_while_redis_is_down_waits_for_it_and_then_works(
        sandbox, connector_env, own_redis, tmp_path):
    folder, url = own_redis
    env = connector_env | {"REDIS_URL": url, "DATA_DIR": str(tmp_path)}
    stop_embedded_server(folder)  # a restart, as the process manager starts the worker
    worker = start_worker(env)
    try:
        time.sleep(4)
        assert worker.poll() is None, Path(worker.log_path).read_text()[-2000:]
        ensure_embedded_server(folder)
        person = sandbox.create_person("Started", "During Outage", None)
        job = enqueue_event(redis.Redis.from_url(url), Settings.from_env(env), "onboard", person,
                            new_event_id())
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, timeout=60,
                 what="a job queued once Redis answered")
    finally:
        stop_worker(worker)
    log = Path(worker.log_path).read_text()
    assert "worker.redis_unavailable_at_start error=ConnectionError" in log
    assert "Traceback" not in log
    assert "STORE" in sandbox.consents(person)


def test_a_retry_lost_with_the_connection_is_queued_again_once_redis_is_back(own_redis, settings):
    _, url = own_redis
    connection = redis.Redis.from_url(url)
    lost = enqueue_event(connection, settings, "onboard", 41, new_event_id())
    waiting_its_turn = enqueue_event(connection, settings, "onboard", 42, new_event_id())
    queue = Queue(lost.origin, connection=connection)
    # RQ's Job.retry writes "scheduled" at once and schedules the job in the failure's
    # transaction; the connection broke before that transaction: the job is in no queue and
    # no registry. The other job was scheduled as it should be.
    connection.lrem(queue.key, 0, lost.id)
    lost.set_status(JobStatus.SCHEDULED)
    connection.lrem(queue.key, 0, waiting_its_turn.id)
    queue.schedule_job(waiting_its_turn, datetime.now(timezone.utc) + timedelta(minutes=5))

    assert requeue_lost(connection) == [lost.id]

    assert queue.get_job_ids() == [lost.id]
    assert lost.get_status(refresh=True) == JobStatus.QUEUED
    assert queue.scheduled_job_registry.get_job_ids() == [waiting_its_turn.id]
