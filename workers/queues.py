"""Queue names, the retry policy and the helpers that put work on the queues.

Retry policy, in one place:
1. Every job is enqueued with ``Retry(max=len(intervals), interval=intervals)`` from
   RETRY_INTERVALS.
2. When a job raises, ``apply_retry_policy`` (a worker exception handler, run before RQ
   decides whether to retry) records the attempt and a readable reason in ``job.meta``,
   stops retrying when the error is permanent (``exc.permanent``), and otherwise stretches
   the next wait by up to 10 % jitter (whole seconds) and to the CRM's Retry-After.
"""

import contextlib
import math
import random
import uuid
from datetime import datetime, timezone

import redis
from rq import Callback, Queue, Retry
from rq.exceptions import AbandonedJobError, DuplicateJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from connector import defaults
from connector.metrics import OTHER, count_job, job_succeeded
from connector.subscriptions.pending import clear_pending, mark_pending
from connector.settings import Settings

ONBOARDING = "onboarding"
PREFERENCES = "preferences"
HISTORY = "history"
QUEUE_NAMES = (PREFERENCES, ONBOARDING, HISTORY)  # a person waiting on their page goes first
JITTER = 0.1


def retry_policy(settings: Settings) -> Retry:
    """Return the RQ Retry for a job: one retry per configured interval."""
    return Retry(max=len(settings.retry_intervals), interval=list(settings.retry_intervals))


def enqueue_onboarding(connection: redis.Redis, settings: Settings, person_id: int,
                       event_id: str) -> Job | None:
    """Queue the onboarding of a new person, once per CRM event.

    The job id is derived from the EventId and created atomically, so a redelivered event
    finds its job and is not queued again; finished jobs are kept for the dedupe window.

    Returns:
        The new job, or None when this event was already queued.

    Raises:
        redis.RedisError: Redis did not take the job (nothing was queued).
    """
    from workers.jobs import onboard_person  # the web process imports jobs only to enqueue

    try:
        return _enqueue(connection, settings, ONBOARDING, onboard_person, person_id, event_id,
                        step="onboarding", job_id=f"onboard-{event_id}", unique=True,
                        result_ttl=defaults.EVENT_DEDUPE_TTL)
    except DuplicateJobError:
        return None


def enqueue_crm_changes(connection: redis.Redis, settings: Settings, person_id: int,
                        event_id: str) -> Job | None:
    """Queue recording, in the ledger, consent changes a CRM user made (once per event).

    Returns:
        The new job, or None when this event was already queued.
    """
    from workers.jobs import record_crm_changes

    try:
        return _enqueue(connection, settings, HISTORY, record_crm_changes, person_id, event_id,
                        step="CRM change", job_id=f"crm-change-{event_id}", unique=True,
                        result_ttl=defaults.EVENT_DEDUPE_TTL)
    except DuplicateJobError:
        return None


def enqueue_preferences(connection: redis.Redis, settings: Settings, person_id: int,
                        choices: dict[str, bool], proof: dict[str, str],
                        subscriptions: dict[str, bool] | None = None,
                        marks: dict[str, bool] | None = None) -> Job:
    """Queue writing what a person chose on their page (config purpose key → on/off, config
    subscription key → subscribed or not).

    ``marks`` (what the page shows as "being saved") are written before the job is queued,
    so the job always finds them to clear, however fast a worker takes it.

    Raises:
        redis.RedisError: Redis did not take the job (its marks are taken back if possible).
    """
    from workers.jobs import apply_preferences

    job_id = uuid.uuid4().hex
    if marks:
        mark_pending(connection, person_id, marks, job_id)
    args = (choices, proof, subscriptions) if subscriptions else (choices, proof)
    try:
        return _enqueue(connection, settings, PREFERENCES, apply_preferences, person_id, *args,
                        step="preferences", job_id=job_id)
    except redis.RedisError:
        with contextlib.suppress(redis.RedisError):  # else they expire with PENDING_CHOICE_TTL
            clear_pending(connection, person_id, job_id)
        raise


def enqueue_fresh_link(connection: redis.Redis, settings: Settings, person_id: int) -> Job:
    """Queue mailing a person a fresh link to their page."""
    from workers.jobs import send_fresh_link

    return _enqueue(connection, settings, PREFERENCES, send_fresh_link, person_id,
                    step="fresh link")


def _enqueue(connection: redis.Redis, settings: Settings, queue_name: str, job, person_id: int,
             *args, step: str, **options) -> Job:
    """Enqueue ``job(person_id, *args)`` with the retry policy and the meta support reads."""
    return Queue(queue_name, connection=connection).enqueue(
        job, person_id, *args,
        retry=retry_policy(settings),
        job_timeout=defaults.JOB_TIMEOUT,
        failure_ttl=defaults.FAILED_JOB_TTL,
        description=f"{step} for person {person_id}",
        meta={"person_id": person_id, "step": step, "attempts": []},
        on_success=Callback(job_succeeded),
        **options,
    )


def describe_failure(error: BaseException) -> str:
    """Return one line a support person can read: the connector's own message for its
    errors, the exception's type and text for anything unexpected."""
    if isinstance(error, AbandonedJobError):
        return "the worker stopped in the middle of this job (killed or crashed)"
    if isinstance(error, JobTimeoutException):
        return f"the job took longer than {defaults.JOB_TIMEOUT} s and was stopped"
    if getattr(error, "permanent", None) is not None and str(error):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"


def apply_retry_policy(job: Job, exc_type, error: BaseException, traceback) -> bool:
    """RQ exception handler: record the attempt, then retry transient errors with backoff
    and fail permanent ones at once. Returns True so RQ's own handling goes on."""
    reason = describe_failure(error)
    attempts = job.meta.setdefault("attempts", [])
    attempts.append({"at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "error": reason, "permanent": bool(getattr(error, "permanent", False))})
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
