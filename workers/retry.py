"""The retry policy's worker half: when a job raises, ``apply_retry_policy`` (a worker
exception handler, run before RQ decides whether to retry) records the attempt and a readable
reason in ``job.meta``, stops retrying when the error is permanent (``exc.permanent``), and
otherwise stretches the next wait by up to 10 % jitter (whole seconds) and to the CRM's
Retry-After. The other half, one retry per RETRY_INTERVALS entry, is set when the job is
queued (connector.queueing.retry_policy).
"""

import math
import os
import random

from rq.exceptions import AbandonedJobError
from rq import Queue, Worker
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.utils import parse_composite_key
from rq.timeouts import JobTimeoutException
from sqlalchemy.exc import OperationalError

from connector import defaults
from connector.evidence.database import unreachable_reason
from connector.keys import QUEUE_NAMES
from connector.metrics import OTHER, count_job
from connector.times import iso, now

JITTER = 0.1
"""Largest share of an interval added at random, so retries of many jobs spread out."""


def describe_failure(error: BaseException) -> str:
    """Return one line a support person can read: the connector's own message for its
    errors, the exception's type and text for anything unexpected."""
    if isinstance(error, AbandonedJobError):
        return "the worker stopped in the middle of this job (killed or crashed)"
    if isinstance(error, JobTimeoutException):
        return f"the job took longer than {defaults.JOB_TIMEOUT} s and was stopped"
    if isinstance(error, OperationalError):  # retried: the database may be back by then
        return unreachable_reason(error)
    if getattr(error, "permanent", None) is not None and str(error):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"


def apply_retry_policy(job: Job, exc_type, error: BaseException, traceback) -> bool:
    """RQ exception handler: record the attempt, then retry transient errors with backoff
    and fail permanent ones at once. Returns True so RQ's own handling goes on."""
    reason = describe_failure(error)
    attempts = job.meta.setdefault("attempts", [])
    attempts.append({"at": iso(now()), "error": reason,
                     "permanent": bool(getattr(error, "permanent", False))})
    job.meta["reason"] = reason
    if getattr(error, "permanent", False):
        job.retries_left = 0
    elif job.retries_left and job.retry_intervals:
        index = max(len(job.retry_intervals) - job.retries_left, 0)
        base = job.retry_intervals[index]
        # RQ schedules in whole seconds: jitter is whole seconds too, never over JITTER.
        wait = base + random.randint(0, int(base * JITTER))
        retry_after = math.ceil(getattr(error, "retry_after", None) or 0)
        intervals = list(job.retry_intervals)
        intervals[index] = max(wait, retry_after)
        job.retry_intervals = intervals
    job.save_meta()
    count_job(job.connection, job.meta.get("step") or OTHER,
              "retried" if job.retries_left else "failed")
    return True


def retry_interrupted(job: Job) -> bool:
    """Queue again at once a job this process had in hand when Redis went away, instead of
    leaving it "started" until its heartbeat lapses (90 s and a maintenance round). The
    attempt is recorded as a dead worker's ("the worker stopped in the middle of this job");
    the retry is not counted against the job's retries, as the job itself did not fail.
    Return False when the job is no longer started: it finished, or another worker took it.
    """
    registry = StartedJobRegistry(job.origin, connection=job.connection)
    mine = [member for member in job.connection.zrange(registry.key, 0, -1)
            if parse_composite_key(member.decode())[0] == job.id]
    if not mine or job.get_status(refresh=True) != JobStatus.STARTED:
        return False
    apply_retry_policy(job, AbandonedJobError, AbandonedJobError(), None)
    job.connection.zrem(registry.key, *mine)
    Queue(job.origin, connection=job.connection).enqueue_job(job)
    return True


def retry_jobs_of_dead_workers_here(connection, hostname: str) -> list[str]:
    """Queue again at once the started jobs of workers on this machine whose process is gone
    (killed, crashed, out of memory). A worker runs its jobs in its own process, so its death
    ends the job; RQ's own clean-up would find it only once the job's heartbeat lapses
    (JOB_TIMEOUT + 60 s), which stays the way for a machine that is gone. Run by each worker
    when it starts and at each maintenance round; returns the ids queued again."""
    retried = []
    for name in QUEUE_NAMES:
        for job_id in StartedJobRegistry(name, connection=connection).get_job_ids():
            worker_name = connection.hget(Job.key_for(job_id), "worker_name")
            if not worker_name:
                continue
            host, pid = connection.hmget(f"{Worker.redis_worker_namespace_prefix}"
                                         f"{worker_name.decode()}", "hostname", "pid")
            if host is None or host.decode() != hostname or not pid or _alive(int(pid)):
                continue
            if retry_interrupted(Job.fetch(job_id, connection=connection)):
                retried.append(job_id)
    return retried


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def give_back_unstarted(job: Job) -> bool:
    """Put a job a stopping worker took from its queue, and never started, back at the front
    of its queue; False when it did start (then it ran, or is retried as interrupted)."""
    if job.get_status(refresh=True) != JobStatus.QUEUED:
        return False
    queue = Queue(job.origin, connection=job.connection)
    if job.id in queue.get_job_ids():
        return False
    queue.enqueue_job(job, at_front=True)
    return True


def requeue_lost(connection) -> list[str]:
    """Queue again the jobs an outage left where nothing will run them. Run once Redis is
    back after an outage; returns the ids queued again.

    - "queued" but in no queue: a worker listening on several queues takes a job with BLPOP
      (RQ's safer BLMOVE works on one queue only), so a job popped as the connection broke is
      gone from its queue without being started.
    - "scheduled" but not in its queue's scheduled registry: RQ's ``Job.retry`` (RQ 3.0,
      rq/job.py) writes the status at once and schedules the job in the failure's
      transaction; when the connection breaks before that transaction, the job says
      "scheduled" and no scheduler will ever queue it. It is queued now: its wait is over.

    A job another worker has just taken is harmless to queue twice: jobs are idempotent and a
    person's run one at a time.
    """
    queues = {name.encode(): Queue(name, connection=connection) for name in QUEUE_NAMES}
    waiting = {job_id for queue in queues.values() for job_id in queue.get_job_ids()}
    scheduled = {job_id for queue in queues.values()
                 for job_id in queue.scheduled_job_registry.get_job_ids()}
    lost_states = {JobStatus.QUEUED.value.encode(), JobStatus.SCHEDULED.value.encode()}
    requeued = []
    for key in connection.scan_iter(match=f"{Job.redis_job_namespace_prefix}*", count=500):
        job_id = key.decode().removeprefix(Job.redis_job_namespace_prefix)
        if job_id in waiting or job_id in scheduled or ":" in job_id:
            continue
        origin, status = connection.hmget(key, "origin", "status")
        if origin in queues and status in lost_states:
            queues[origin].enqueue_job(Job.fetch(job_id, connection=connection))
            requeued.append(job_id)
    return requeued
