"""Putting work on the queues: the connector's jobs, named by their dotted path, and one
``enqueue_*`` per job. Used by the web, the reconciliation and support; the workers import the
job functions themselves, so nothing here imports ``workers``.

Every job is queued with the retry policy (``retry_policy``: one retry per RETRY_INTERVALS
entry; the worker's exception handler, workers.retry, stretches the waits and stops retrying
permanent errors) and the meta support reads: the person, the step, the attempts so far.
"""

import contextlib
import uuid
from dataclasses import dataclass

import redis
from rq import Callback, Queue, Retry
from rq.job import Job

from connector import defaults
from connector.crm.budget import Priority
from connector.keys import BACKFILL, HISTORY, ONBOARDING, PREFERENCES
from connector.metrics import job_succeeded
from connector.pending import clear_pending, mark_pending
from connector.settings import Settings


@dataclass(frozen=True)
class JobKind:
    """One of the connector's jobs, as the web, support and the workers name it.

    Attributes:
        function: the dotted path RQ imports in the worker (``workers.jobs.onboard_person``).
        queue: the queue it goes on.
        step: what it does in a word, shown to support staff and counted in /metrics.
        parameters: the job function's parameters in order, so that support reads a job's
            arguments by name (tests/unit/test_job_kinds.py checks them against the function).
    """

    function: str
    queue: str
    step: str
    parameters: tuple[str, ...]


ONBOARD = JobKind("workers.jobs.onboard_person", ONBOARDING, "onboarding",
                  ("person_id", "event_id"))
APPLY_PREFERENCES = JobKind("workers.jobs.apply_preferences", PREFERENCES, "preferences",
                            ("person_id", "choices", "proof", "subscriptions", "renewals"))
SEND_FRESH_LINK = JobKind("workers.jobs.send_fresh_link", PREFERENCES, "fresh link",
                          ("person_id",))
SEND_COPY = JobKind("workers.copies.send_copy", PREFERENCES, "copy of the data",
                    ("person_id", "language"))
SEND_NEW_NOTICE = JobKind("workers.notices.send_new_notice", BACKFILL, "new consent text",
                          ("person_id", "purpose", "agreed_version"))
CHECK_EXPIRY = JobKind("workers.expiry.check_consent", BACKFILL, "consent expiry",
                       ("person_id", "purpose", "as_of"))
RECORD_CRM_CHANGES = JobKind("workers.jobs.record_crm_changes", HISTORY, "CRM change",
                             ("person_id", "event_id"))
RECORD_DELETION = JobKind("workers.jobs.record_deletion", HISTORY, "deletion",
                          ("person_id", "event_id"))

JOB_KINDS = {kind.function: kind for kind in (ONBOARD, APPLY_PREFERENCES, SEND_FRESH_LINK,
                                              SEND_COPY, SEND_NEW_NOTICE, CHECK_EXPIRY,
                                              RECORD_CRM_CHANGES, RECORD_DELETION)}
"""The connector's jobs by dotted path."""

EVENT_JOBS = {"onboard": ONBOARD, "crm-change": RECORD_CRM_CHANGES, "deletion": RECORD_DELETION}
"""The jobs of CRM events by their kind, which is also their job id's prefix
(``onboard-<EventId>``)."""

QUEUE_PRIORITY = {PREFERENCES: Priority.INTERACTIVE, ONBOARDING: Priority.EVENTS,
                  HISTORY: Priority.EVENTS, BACKFILL: Priority.BACKGROUND}
"""The CRM budget's priority of the jobs on each queue (connector.crm.budget)."""


def retry_policy(settings: Settings) -> Retry:
    """Return the RQ Retry for a job: one retry per configured interval."""
    return Retry(max=len(settings.retry_intervals), interval=list(settings.retry_intervals))


def enqueue_event(connection: redis.Redis, settings: Settings, kind: str, person_id: int,
                  event_id: str, *, queue: str | None = None,
                  pipeline: redis.client.Pipeline | None = None) -> Job:
    """Queue the job of one CRM event (``kind``: a key of EVENT_JOBS) under the id support
    knows it by (``event_job_id``).

    The workers call it for what the intake accepted (connector.intake), inside their
    ``pipeline``; the intake has already dropped redelivered events, so a finished job is
    kept only for FINISHED_JOB_TTL.

    Args:
        queue: the queue when not the kind's own (the backfill queue).
        pipeline: a transaction to queue the job in (executed by the caller).

    Raises:
        redis.RedisError: Redis did not take the job (nothing was queued).
    """
    return _enqueue(connection, settings, EVENT_JOBS[kind], person_id, event_id,
                    job_id=event_job_id(kind, event_id), queue=queue, pipeline=pipeline,
                    result_ttl=defaults.FINISHED_JOB_TTL)


def event_job_id(kind: str, event_id: str) -> str:
    """The id of the job of a CRM event: ``onboard-<EventId>``, ``crm-change-<EventId>`` …"""
    return f"{kind}-{event_id}"


def enqueue_preferences(connection: redis.Redis, settings: Settings, person_id: int,
                        choices: dict[str, bool], proof: dict[str, str],
                        subscriptions: dict[str, bool] | None = None,
                        marks: dict[str, bool] | None = None,
                        renewals: list[str] | None = None) -> Job:
    """Queue writing what a person chose on their page (config purpose key → on/off, config
    subscription key → subscribed or not, and the config purpose keys whose consent they
    renew).

    ``marks`` (what the page shows as "being saved") are written before the job is queued,
    so the job always finds them to clear, however fast a worker takes it.

    Raises:
        redis.RedisError: Redis did not take the job (its marks are taken back if possible).
    """
    job_id = uuid.uuid4().hex
    if marks:
        mark_pending(connection, person_id, marks, job_id)
    if renewals:
        args = (choices, proof, subscriptions, renewals)
    elif subscriptions:
        args = (choices, proof, subscriptions)
    else:
        args = (choices, proof)
    try:
        return _enqueue(connection, settings, APPLY_PREFERENCES, person_id, *args, job_id=job_id)
    except redis.RedisError:
        with contextlib.suppress(redis.RedisError):  # else they expire with PENDING_CHOICE_TTL
            clear_pending(connection, person_id, job_id)
        raise


def enqueue_fresh_link(connection: redis.Redis, settings: Settings, person_id: int) -> Job:
    """Queue mailing a person a fresh link to their page."""
    return _enqueue(connection, settings, SEND_FRESH_LINK, person_id)


def enqueue_copy(connection: redis.Redis, settings: Settings, person_id: int,
                 language: str) -> Job:
    """Queue mailing a person a copy of their data, in ``language``."""
    return _enqueue(connection, settings, SEND_COPY, person_id, language)


def enqueue_new_notice(connection: redis.Redis, settings: Settings, person_id: int,
                       purpose: str, agreed_version: str | None) -> Job:
    """Queue mailing a person the new text of ``purpose``'s notice (its config key); the
    bulk queue, so events and persons on their page go first."""
    return _enqueue(connection, settings, SEND_NEW_NOTICE, person_id, purpose, agreed_version)


def enqueue_expiry_check(connection: redis.Redis, settings: Settings, person_id: int,
                         purpose: str, as_of: str, job_id: str) -> Job | None:
    """Queue checking a person's consent to ``purpose`` (its config key) as of ``as_of`` (ISO
    UTC) on the bulk queue, under ``job_id``; None when a job of that id exists already (a
    pass queued it before: queued, running, done or failed)."""
    if Job.exists(job_id, connection=connection):
        return None
    return _enqueue(connection, settings, CHECK_EXPIRY, person_id, purpose, as_of, job_id=job_id)


def _enqueue(connection: redis.Redis, settings: Settings, kind: JobKind, person_id: int,
             *args, queue: str | None = None, **options) -> Job:
    """Enqueue ``kind(person_id, *args)`` with the retry policy and the meta support reads."""
    return Queue(queue or kind.queue, connection=connection).enqueue(
        kind.function, person_id, *args,
        retry=retry_policy(settings),
        job_timeout=defaults.JOB_TIMEOUT,
        failure_ttl=defaults.FAILED_JOB_TTL,
        description=f"{kind.step} for person {person_id}",
        meta={"person_id": person_id, "step": kind.step, "attempts": []},
        on_success=Callback(job_succeeded),
        **options,
    )
