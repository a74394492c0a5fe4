"""What support staff see of the connector's jobs, and what they can do about them.

Plain functions over RQ's registries of the connector's queues (failed, scheduled for a
retry, started); the ``consent-connector jobs`` command and the admin page are thin layers
over them. Every text that leaves this module is masked: no email address, and no personal
data from a job's arguments (a browser's User-Agent, an IP address).

1. ``list_jobs`` summarises jobs with a one-line reason in plain words.
2. ``job_details`` tells everything known about one job, the traceback last.
3. ``find_failed`` + ``requeue`` retry failed jobs and record who did it in the person's
   consent ledger; ``plan`` is the dry run: it reads the CRM and says what the job would
   write and send now, changing nothing.
4. ``purge_failed`` deletes failed jobs older than a duration (``parse_duration("30d")``).
"""

import getpass
import inspect
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from connector.consent import (decide_defaults, decide_preference_changes,
                               resolve_subscription_choices)
from connector.exceptions import ConnectorError, CRMError
from connector.ledger import Ledger
from workers.jobs import CONFIRMATION_MARKER
from workers.queues import QUEUE_NAMES

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
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
PERSONAL_KEYS = frozenset({"user_agent", "ip", "email", "emails", "first_name", "last_name",
                           "firstname", "lastname", "name", "phone"})
"""Argument fields (at any depth) whose values are personal data and never shown."""

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}



class JobNotFoundError(ConnectorError):
    """No job has this id (never existed, purged, or expired)."""

    def __init__(self, job_id: str):
        super().__init__(f"no job with id {job_id!r} (purged, expired or mistyped?)")
        self.job_id = job_id


class JobNotFailedError(ConnectorError):
    """The job exists but is not in a failed registry, so it cannot be retried."""

    def __init__(self, job_id: str, status: str):
        super().__init__(f"job {job_id} is {status}, not failed: only failed jobs can be retried")
        self.job_id = job_id
        self.status = status


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
class PlannedWrite:
    """A consent row the job would write now (CRM keys)."""

    purpose: str
    legal_basis: str
    source: str
    comment: str


@dataclass(frozen=True)
class Plan:
    """What a job would do if it ran now (the dry run of a retry).

    Attributes:
        writes: the consent rows it would write.
        mail: what would happen about mail, in words; None for jobs that send none.
        problem: why the job would fail again, or why no plan can be made; None when fine.
    """

    job_id: str
    person_id: int | None
    step: str
    writes: tuple[PlannedWrite, ...] = ()
    mail: str | None = None
    problem: str | None = None


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
    return _EMAIL.sub(EMAIL_HIDDEN, text or "")


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
                      when=_utc(when), reason=plain_reason(job, kind))


def person_of(job: Job) -> int | None:
    """The CRM person a job is about: from its meta, else its first argument."""
    person_id = job.meta.get("person_id")
    if person_id is None and job.args and isinstance(job.args[0], int):
        person_id = job.args[0]
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
        started = _utc(job.started_at)
        limit = job.timeout
        if started and limit and limit > 0:
            age = (datetime.now(timezone.utc) - started).total_seconds()
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
    attempts = tuple(Attempt(at=_readable_time(a.get("at")),
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
        created_at=_utc(job.created_at), enqueued_at=_utc(job.enqueued_at),
        started_at=_utc(job.started_at), ended_at=_utc(job.ended_at),
        attempts=attempts,
        support_retries=tuple({**r, "at": _readable_time(r.get("at"))}
                              for r in job.meta.get("support_retries") or []),
        result=result,
        traceback=mask(traceback) if traceback else None,
    )


def _named_arguments(job: Job) -> tuple[tuple[str, str], ...]:
    """The job's arguments by parameter name, masked and shown as Python literals."""
    args, kwargs = list(job.args or ()), dict(job.kwargs or {})
    try:
        names = list(inspect.signature(job.func).parameters)
    except (ImportError, AttributeError, TypeError, ValueError):
        names = []
    named = []
    for index, value in enumerate(args):
        name = names[index] if index < len(names) else f"argument {index + 1}"
        named.append((name, repr(mask_value(value, name))))
    named.extend((name, repr(mask_value(value, name))) for name, value in kwargs.items())
    return tuple(named)


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


def requeue(connection: redis.Redis, job: Job, actor: str) -> Job:
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
        Ledger(connection).append(person_id, RETRY_ACTION, job_id=job.id, step=step_of(job),
                                  actor=actor)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    attempts = job.meta.get("attempts") or []
    job.meta.setdefault("support_retries", []).append(
        {"at": now, "by": actor, "after_attempts": len(attempts)})
    if job.retry_intervals:
        job.retries_left = len(job.retry_intervals)
    try:
        registry.requeue(job)
    except InvalidJobOperation:  # retried by someone else between the check and now
        raise JobNotFailedError(job.id, status_of(job)) from None
    return job


def plan(runtime, job: Job) -> Plan:
    """The dry run of a retry: read the CRM and say what ``job`` would write and send now.

    Nothing is written, sent, claimed or recorded. Knows the connector's three jobs.

    Args:
        runtime: a workers.runtime.Runtime (settings, config, Redis, CRM client).
        job: the job to plan.
    """
    person_id, step = person_of(job), step_of(job)
    function = (job.func_name or "").rsplit(".", 1)[-1]
    base = {"job_id": job.id, "person_id": person_id, "step": step}
    if function not in ("onboard_person", "apply_preferences", "send_fresh_link"):
        return Plan(**base, problem=f"no dry run for {job.func_name}: it is not a connector job")
    if person_id is None:
        return Plan(**base, problem="the job names no person")
    try:
        person = runtime.crm.get_person(person_id)
    except CRMError as error:
        return Plan(**base, problem=f"the job would fail again: {mask(str(error))}")

    if function == "onboard_person":
        source = runtime.config.source_for(person.created_by_associate_id)
        writes = decide_defaults(runtime.config, person.consents, source)
        mail = _confirmation_plan(runtime, person, source)
    elif function == "apply_preferences":
        choices, proof, subscriptions = (list(job.args) + [{}, {}, {}])[1:4]
        try:
            # As apply_preferences does: subscribing implies the consent it needs.
            choices, _ = resolve_subscription_choices(runtime.config, person.consents,
                                                      person.shipment_types, choices or {},
                                                      subscriptions or {})
            writes = decide_preference_changes(runtime.config, person.consents, choices,
                                               proof=f"link {(proof or {}).get('token_id', '?')}")
        except TypeError as error:
            return Plan(**base, problem=f"the job would fail again: {error}")
        mail = None
    else:
        writes = []
        mail = ("would mail a fresh link to the person's address on record" if person.email
                else "no mail: the person has no email address")
    return Plan(**base, mail=mail, writes=tuple(
        PlannedWrite(w.purpose.crm_key, w.legal_basis.crm_key, w.source.crm_key, mask(w.comment))
        for w in writes))


def _confirmation_plan(runtime, person, source) -> str:
    """What send_confirmation_once would do now, without taking its claim."""
    if not source.confirm_by_email:
        return f"no mail: source {source.crm_key} is not confirmed by mail"
    if not person.email:
        return "no mail: the person has no email address"
    marker = runtime.redis.get(CONFIRMATION_MARKER.format(person.id))
    if marker == b"sent":
        return "no mail: the confirmation mail was sent before"
    if marker is not None:
        return "no mail now: another attempt is sending the confirmation mail"
    return "would send the confirmation mail to the person's address on record"


# -- purging ---------------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """Parse ``30d``, ``12h``, ``45m``, ``90s`` or ``2w`` into a timedelta.

    Raises:
        ValueError: anything else, with an example of what works.
    """
    match = _DURATION.match(text or "")
    if not match:
        raise ValueError(f"{text!r} is not a duration: use a number and a unit "
                         f"(s, m, h, d, w), e.g. 30d or 12h")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def purge_failed(connection: redis.Redis, older_than: timedelta,
                 now: datetime | None = None) -> list[PurgedJob]:
    """Delete the failed jobs that failed more than ``older_than`` ago, in every queue.

    Returns:
        The deleted jobs. Registry entries whose job data is already gone are removed too
        (and not returned).
    """
    cutoff = (now or datetime.now(timezone.utc)) - older_than
    purged = []
    for queue_name in QUEUE_NAMES:
        registry = FailedJobRegistry(queue_name, connection=connection)
        ids = registry.get_job_ids()
        for job_id, job in zip(ids, Job.fetch_many(ids, connection=connection)):
            if job is None:
                registry.remove(job_id)
                continue
            failed_at = _utc(job.ended_at or job.enqueued_at or job.created_at)
            if failed_at is not None and failed_at < cutoff:
                registry.remove(job, delete_job=True)
                purged.append(PurgedJob(job.id, person_of(job), step_of(job), failed_at))
    return purged


def _readable_time(iso: Any) -> str:
    """``2026-11-29 05:50:33`` (UTC) from an ISO 8601 time; the text as it is otherwise."""
    try:
        moment = _utc(datetime.fromisoformat(str(iso))).astimezone(timezone.utc)
    except ValueError:
        return str(iso)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _utc(moment: datetime | None) -> datetime | None:
    """RQ keeps naive datetimes in UTC: make them aware."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
