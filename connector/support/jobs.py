"""What support staff see of the connector's jobs, and what they can do about them.

Plain functions over RQ's registries of the connector's queues (failed, scheduled for a
retry, started); the ``consent-connector jobs`` command and the admin page are thin layers
over them. Every text that leaves this module is masked: no email address, and no personal
data from a job's arguments (a browser's User-Agent, an IP address).

1. ``list_jobs`` summarises jobs with a one-line reason in plain words.
2. ``job_details`` tells everything known about one job, the traceback last.
3. ``find_failed`` + ``requeue`` retry failed jobs and record who did it in the person's
   consent ledger (the dry run of a retry is connector.support.dry_run).
4. ``purge_failed`` deletes failed jobs older than a duration.
"""

import getpass
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq import Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from connector import defaults
from connector.emails import hide_emails
from connector.exceptions import JobNotFailedError, JobNotFoundError
from connector.keys import QUEUE_NAMES
from connector.evidence.ledger import Ledger
from connector.intake import LANES, Entry, entries
from connector.queueing import JOB_KINDS
from connector.times import iso, now, readable, utc

FAILED, SCHEDULED, STARTED = "failed", "scheduled", "started"
KINDS = (FAILED, SCHEDULED, STARTED)
"""The job states support staff look at: failed for good, waiting for a retry, running."""

REGISTRIES = {FAILED: FailedJobRegistry, SCHEDULED: ScheduledJobRegistry,
              STARTED: StartedJobRegistry}

RETRY_ACTION = "support.retry"
"""The ledger action recorded when support staff retry a job."""

REASON_MAX_LENGTH = 200
"""Longest reason shown in a list; ``job_details`` shows each error in full."""

MASKED = "(masked)"
EMAIL_HIDDEN = "[email hidden]"
PERSONAL_KEYS = frozenset({"user_agent", "ip", "email", "emails", "first_name", "last_name",
                           "firstname", "lastname", "name", "phone"})
"""Argument fields (at any depth) whose values are personal data and never shown."""


@dataclass(frozen=True)
class JobSummary:
    """One line about a job.

    Attributes:
        kind: FAILED, SCHEDULED or STARTED (or another RQ status for ``job_details``).
        when: when it failed (FAILED), runs next (SCHEDULED) or started (STARTED), UTC.
        reason: one line in plain words, masked.
    """

    id: str
    queue: str
    kind: str
    person_id: int | None
    step: str
    attempts: int
    when: datetime | None
    reason: str


@dataclass(frozen=True)
class Attempt:
    """One failed attempt of a job: when (``2026-11-29 05:50:33``, UTC) and the error, masked."""

    at: str
    error: str


@dataclass(frozen=True)
class JobDetails:
    """Everything known about a job, masked; ``traceback`` is the last attempt's, in full."""

    summary: JobSummary
    function: str
    arguments: tuple[tuple[str, str], ...]
    created_at: datetime | None
    enqueued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    attempts: tuple[Attempt, ...]
    support_retries: tuple[Mapping[str, Any], ...]
    result: str | None
    traceback: str | None


@dataclass(frozen=True)
class PurgedJob:
    """A failed job that ``purge_failed`` deleted."""

    id: str
    person_id: int | None
    step: str
    failed_at: datetime | None


# -- masking ---------------------------------------------------------------------------------


def mask(text: str | None) -> str:
    """Return ``text`` with every email address replaced by ``[email hidden]``."""
    return hide_emails(text, EMAIL_HIDDEN)


def mask_value(value: Any, name: str = "") -> Any:
    """Return ``value`` (a job argument) with personal data masked, recursively: values under
    PERSONAL_KEYS become "(masked)", email addresses in any text ``[email hidden]``."""
    if name.lower() in PERSONAL_KEYS and value not in (None, ""):
        return MASKED
    if isinstance(value, Mapping):
        return {key: mask_value(item, str(key)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(item) for item in value]
    if isinstance(value, str):
        return mask(value)
    return value


def one_line(text: str, limit: int | None = None) -> str:
    """Collapse whitespace to single spaces and cut to ``limit`` characters with "…"."""
    text = " ".join(text.split())
    if limit and len(text) > limit:
        text = text[:limit - 1].rstrip() + "…"
    return text


# -- reading ---------------------------------------------------------------------------------


def list_jobs(connection: redis.Redis, kinds: Iterable[str] = KINDS,
              person_id: int | None = None) -> list[JobSummary]:
    """Summarise the jobs in the given registries of every connector queue.

    Args:
        connection: Redis.
        kinds: any of FAILED, SCHEDULED, STARTED.
        person_id: only jobs about this person.

    Returns:
        Failed jobs newest first, then scheduled ones by next run, then started ones by start.
    """
    summaries = []
    for kind in KINDS:
        if kind not in kinds:
            continue
        found = []
        for queue_name in QUEUE_NAMES:
            registry = REGISTRIES[kind](queue_name, connection=connection)
            # No cleanup of the started registry here: RQ's cleanup would fail abandoned jobs
            # without the connector's exception handler; the workers' maintenance does it.
            ids = registry.get_job_ids(cleanup=kind != STARTED)
            for job in Job.fetch_many(ids, connection=connection):
                if job is None:
                    continue
                summary = summarize(job, kind, registry)
                if person_id is None or summary.person_id == person_id:
                    found.append(summary)
        oldest = datetime.min.replace(tzinfo=timezone.utc)
        found.sort(key=lambda s: s.when or oldest, reverse=kind == FAILED)
        summaries.extend(found)
    return summaries


def intake_entries_of(connection: redis.Redis, person_id: int) -> list[tuple[str, Entry]]:
    """The person's events waiting in the intake's lanes, not made into jobs yet: (lane,
    entry) pairs, in lane order (the whole lanes are read)."""
    return [(lane, entry) for lane in LANES for entry in entries(connection, lane, limit=None)
            if entry.person_id == person_id]


def summarize(job: Job, kind: str, registry=None) -> JobSummary:
    """Summarise one job as it stands in the ``kind`` registry."""
    when = None
    if kind == FAILED:
        when = job.ended_at
    elif kind == SCHEDULED:
        registry = registry or ScheduledJobRegistry(job.origin, connection=job.connection)
        try:
            when = registry.get_scheduled_time(job)
        except NoSuchJobError:
            when = None
    elif kind == STARTED:
        when = job.started_at
    else:
        when = job.ended_at or job.enqueued_at
    return JobSummary(id=job.id, queue=job.origin, kind=kind, person_id=person_of(job),
                      step=step_of(job), attempts=len(job.meta.get("attempts") or []),
                      when=utc(when), reason=plain_reason(job, kind))


def person_of(job: Job) -> int | None:
    """The CRM person a job is about: from its meta, else its first argument."""
    person_id = job.meta.get("person_id")
    if person_id is None:
        person_id = job_arguments(job).get("person_id")
    try:
        return int(person_id) if person_id is not None else None
    except (TypeError, ValueError):
        return None


def step_of(job: Job) -> str:
    """What the job does in a word (onboarding, preferences, fresh link)."""
    if job.meta.get("step"):
        return str(job.meta["step"])
    return (job.func_name or "?").rsplit(".", 1)[-1]


def current_run_attempts(job: Job) -> list[Mapping[str, str]]:
    """The attempts since support staff last retried the job (all when never retried)."""
    attempts = list(job.meta.get("attempts") or [])
    retries = job.meta.get("support_retries") or []
    if retries:
        attempts = attempts[int(retries[-1].get("after_attempts", 0)):]
    return attempts


def plain_reason(job: Job, kind: str) -> str:
    """One line that says, in plain words, why the job is where it is. Masked."""
    attempts = current_run_attempts(job)
    reason = str(job.meta.get("reason") or "") or _reason_from_traceback(job)
    if kind == FAILED:
        reason = reason or "failed without a recorded reason"
        permanent = bool(attempts) and attempts[-1].get("permanent")
        if len(attempts) > 1 and not permanent:
            reason = f"gave up after {len(attempts)} attempts: {reason}"
    elif kind == SCHEDULED:
        if attempts:
            count = "once" if len(attempts) == 1 else f"{len(attempts)} times"
            reason = f"failed {count} so far, will try again: {reason}"
        else:
            reason = "waiting for its planned time"
    elif kind == STARTED:
        reason = f"running on worker {job.worker_name or '?'}"
        started = utc(job.started_at)
        limit = job.timeout
        if started and limit and limit > 0:
            age = (now() - started).total_seconds()
            if age > limit + 60:
                reason = (f"running for {int(age)} s, longer than its {int(limit)} s limit: its "
                          f"worker has probably died; RQ retries it when it notices")
        if attempts:
            reason += f" (attempt {len(attempts) + 1}; last error: {attempts[-1].get('error')})"
    elif kind == "finished":
        reason = "finished" + (f" after {len(attempts) + 1} attempts" if attempts else "")
    elif kind == "queued":
        reason = "waiting in its queue for a worker"
    else:
        reason = kind + (f"; last error: {reason}" if reason else "")
    return one_line(mask(reason), REASON_MAX_LENGTH)


def _reason_from_traceback(job: Job) -> str:
    """The exception line at the end of the traceback, for jobs without a recorded reason."""
    text = traceback_of(job) or ""
    if "AbandonedJobError" in text:
        return "the worker stopped in the middle of this job (killed or crashed)"
    if "JobTimeoutException" in text:
        return "the job took longer than its time limit and was stopped"
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def traceback_of(job: Job) -> str | None:
    """The full traceback of the job's last failed attempt, or None."""
    try:
        result = job.latest_result()
    except Exception:  # noqa: BLE001 -- an unreadable result must not hide the rest
        result = None
    text = getattr(result, "exc_string", None) if result is not None else None
    return text or job.exc_info or None


def fetch(connection: redis.Redis, job_id: str) -> Job:
    """Return the job with this id.

    Raises:
        JobNotFoundError: there is none.
    """
    try:
        return Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        raise JobNotFoundError(job_id) from None


def status_of(job: Job) -> str:
    """The job's RQ status as a word (failed, scheduled, started, queued, finished…)."""
    status = job.get_status(refresh=False)
    return getattr(status, "value", None) or str(status or "unknown")


def job_details(connection: redis.Redis, job_id: str) -> JobDetails:
    """Tell everything known about one job, personal data masked, the traceback last.

    Raises:
        JobNotFoundError: there is no job with this id.
    """
    job = fetch(connection, job_id)
    status = status_of(job)
    summary = summarize(job, status)
    attempts = tuple(Attempt(at=readable(a.get("at")),
                             error=one_line(mask(str(a.get("error")))))
                     for a in job.meta.get("attempts") or [])
    result = None
    if status == "finished":
        result = one_line(mask(repr(mask_value(job.return_value()))))
    traceback = traceback_of(job)
    return JobDetails(
        summary=summary,
        function=job.func_name or "?",
        arguments=_named_arguments(job),
        created_at=utc(job.created_at), enqueued_at=utc(job.enqueued_at),
        started_at=utc(job.started_at), ended_at=utc(job.ended_at),
        attempts=attempts,
        support_retries=tuple({**r, "at": readable(r.get("at"))}
                              for r in job.meta.get("support_retries") or []),
        result=result,
        traceback=mask(traceback) if traceback else None,
    )


def job_arguments(job: Job) -> dict[str, Any]:
    """The job's arguments by parameter name (connector.queueing.JOB_KINDS); positional ones
    of a job the connector does not know are named ``argument 1``, ``argument 2`` …"""
    kind = JOB_KINDS.get(job.func_name or "")
    names = kind.parameters if kind else ()
    arguments = {names[index] if index < len(names) else f"argument {index + 1}": value
                 for index, value in enumerate(job.args or ())}
    arguments.update(job.kwargs or {})
    return arguments


def _named_arguments(job: Job) -> tuple[tuple[str, str], ...]:
    """The job's arguments by parameter name, masked and shown as Python literals."""
    return tuple((name, repr(mask_value(value, name)))
                 for name, value in job_arguments(job).items())


# -- retrying --------------------------------------------------------------------------------


def default_actor() -> str:
    """Who is retrying, when not given: the operating-system user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers) and no LOGNAME/USER
        return os.environ.get("USER") or "unknown"


def find_failed(connection: redis.Redis, job_ids: Iterable[str] = (), *,
                person_id: int | None = None) -> list[Job]:
    """Return failed jobs: the given ids (all must be failed), or with no ids every failed
    job of every queue; with ``person_id``, only that person's.

    Raises:
        JobNotFoundError: an id names no job.
        JobNotFailedError: an id names a job that is not failed.
    """
    job_ids = list(job_ids)
    if job_ids:
        jobs = []
        for job_id in job_ids:
            job = fetch(connection, job_id)
            if job.id not in FailedJobRegistry(job.origin, connection=connection):
                raise JobNotFailedError(job.id, status_of(job))
            jobs.append(job)
    else:
        jobs = []
        for queue_name in QUEUE_NAMES:
            registry = FailedJobRegistry(queue_name, connection=connection)
            jobs.extend(j for j in Job.fetch_many(registry.get_job_ids(), connection=connection)
                        if j is not None)
    if person_id is not None:
        jobs = [job for job in jobs if person_of(job) == person_id]
    return jobs


def requeue(connection: redis.Redis, ledger: Ledger, job: Job, actor: str) -> Job:
    """Put a failed job back on its queue and record the retry in the person's ledger.

    1. Check that the job is still failed.
    2. Append ``support.retry`` (job_id, step, actor; the ledger adds ``at``) to the ledger
       of the person the job is about, before the job can run: the ledger then shows the
       retry before whatever the job writes.
    3. Note the retry in ``job.meta["support_retries"]`` (at, by, after how many attempts),
       so reasons count only the attempts since, and give the job its retries again: a job
       that fails once more is retried with the usual backoff, not failed at once.
    4. Requeue it through RQ's FailedJobRegistry.

    Raises:
        JobNotFailedError: the job is no longer failed (someone retried or purged it).
    """
    registry = FailedJobRegistry(job.origin, connection=connection)
    if job.id not in registry:
        raise JobNotFailedError(job.id, status_of(job))
    person_id = person_of(job)
    if person_id is not None:
        ledger.append(person_id, RETRY_ACTION, job_id=job.id, step=step_of(job), actor=actor)
    attempts = job.meta.get("attempts") or []
    job.meta.setdefault("support_retries", []).append(
        {"at": iso(now()), "by": actor, "after_attempts": len(attempts)})
    if job.retry_intervals:
        job.retries_left = len(job.retry_intervals)
    try:
        registry.requeue(job)
    except InvalidJobOperation:  # retried by someone else between the check and now
        raise JobNotFailedError(job.id, status_of(job)) from None
    return job


# -- purging ---------------------------------------------------------------------------------


def purge_failed(connection: redis.Redis, older_than: timedelta,
                 at: datetime | None = None) -> list[PurgedJob]:
    """Delete the failed jobs that failed more than ``older_than`` ago, in every queue.

    Returns:
        The deleted jobs. Registry entries whose job data is already gone are removed too
        (and not returned).
    """
    cutoff = (at or now()) - older_than
    purged = []
    for queue_name in QUEUE_NAMES:
        registry = FailedJobRegistry(queue_name, connection=connection)
        ids = registry.get_job_ids()
        for job_id, job in zip(ids, Job.fetch_many(ids, connection=connection)):
            if job is None:
                registry.remove(job_id)
                continue
            failed_at = utc(job.ended_at or job.enqueued_at or job.created_at)
            if failed_at is not None and failed_at < cutoff:
                registry.remove(job, delete_job=True)
                purged.append(PurgedJob(job.id, person_of(job), step_of(job), failed_at))
    return purged


def decide_workers_alive(heartbeats: Iterable[datetime | None], at: datetime,
                         max_silence: float) -> int:
    """How many workers sent a heartbeat in the ``max_silence`` seconds before ``at``: a worker
    that stopped (or died) without saying so is not alive, whatever RQ's list says."""
    return sum(1 for beat in heartbeats
               if beat is not None and (at - utc(beat)).total_seconds() <= max_silence)


def workers_alive(connection: redis.Redis,
                  max_silence: float = defaults.WORKER_SILENCE) -> int:
    """How many of the connector's workers are alive now (decide_workers_alive).

    Raises:
        redis.RedisError: Redis cannot be read.
    """
    return decide_workers_alive((w.last_heartbeat for w in Worker.all(connection=connection)),
                                now(), max_silence)
