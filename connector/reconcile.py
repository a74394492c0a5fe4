"""Reconciliation: onboard persons whose ``person.created`` webhook was lost.

SuperOffice drops an event after one failed delivery cycle and stops a webhook after nine
failed deliveries in a row (State ``TooManyErrors``). A pass lists the persons the CRM
registered or updated since the last pass and queues onboarding for every one the connector
has not onboarded yet. Onboarding is idempotent, so a person queued twice gets nothing twice.

1. Where to start: ``--all`` → every person; ``since`` given → from there; else the
   watermark kept in the evidence database (minus WATERMARK_OVERLAP); no watermark yet → FIRST_RUN_WINDOW.
2. List the persons (``CRMClient.list_persons``: bounded pages, one call at a time, a short
   Retry-After waited out between pages).
3. Skip those onboarded already (connector.evidence.facts: onboarding records every person it
   finished, in the evidence database: a Redis that lost its data does not onboard them again),
   and, in scheduled passes, those changed in the last SCHEDULED_SETTLE seconds (their
   webhook's job is most likely still running; the next pass sees them).
4. Hand the rest to the intake (connector.intake) with the synthetic event id
   ``reconcile-<id>``, remembered for the dedupe window, so two passes queue a person once;
   their jobs are ``onboard-reconcile-<id>``. A backfill (``--all``) uses the backfill lane
   and queue, which the workers take after everything else: a CRM that existed before the
   connector may hold many thousands of persons, and live events and persons on their page
   go first. Interrupted, a backfill is simply run again: what it queued stays queued, and
   persons queued or onboarded already are counted, not queued again.
5. Only after the whole listing went through, move the watermark to the latest
   registered/updated date seen (never backwards), and record the pass for ``status``.

Workers schedule a pass every RECONCILE_INTERVAL with RQ's cron (workers/reconcile.py); every
worker runs a scheduler, and ``scheduled_pass`` makes that harmless (a lock, and a pass that
finished less than half an interval ago makes the next ones return at once).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
from rq import Queue

from connector import defaults
from connector.evidence import facts
from connector.exceptions import CRMError, ReconciliationRunningError
from connector.intake import BACKFILL, EVENTS, Entry, waiting
from connector.keys import BACKFILL as BACKFILL_QUEUE
from connector.keys import BACKFILL_PROGRESS, RECONCILE_LAST_RUN, RECONCILE_LOCK
from connector.services import Services
from connector.times import iso, now, parse_iso, utc

log = logging.getLogger(__name__)

FIRST_RUN_WINDOW = timedelta(hours=24)
"""How far back the first pass looks when there is no watermark yet (``--all`` looks at all)."""

WATERMARK_OVERLAP = timedelta(minutes=5)
"""How far before the watermark a pass starts listing. The CRM stamps whole seconds and a
person saved in the same second as the watermark, or committed a little late, must not be
missed; persons listed twice cost one Redis lookup."""

SCHEDULED_SETTLE = 60
"""Seconds: a scheduled pass leaves persons changed this recently to the next pass, so it
does not queue a second job while the webhook's own job is still running."""

PAGE_SIZE = 200
"""Persons per page of the CRM listing."""

LOCK_TIMEOUT = 300
"""Seconds the pass lock lives without being renewed (it is renewed after every page), so a
crashed pass blocks the next one for at most this long."""

QUEUED_IDS_SHOWN = 50
"""How many queued person ids a pass's summary lists by id."""


def reconcile(services: Services, since: datetime | None = None, backfill: bool = False, *,
              dry_run: bool = False,
              settle: float = 0, trigger: str = "manual", page_size: int = PAGE_SIZE,
              progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run one reconciliation pass now (steps in the module docstring) and return its summary.

    Args:
        services: Redis, the CRM client and the settings to queue jobs with.
        since: list persons registered or updated after this time instead of after the
            watermark (aware, or naive UTC).
        backfill: list every person in the CRM (a CRM that existed before the connector).
        dry_run: list and count, but queue nothing and leave the watermark and the record of
            the last pass alone.
        settle: seconds; persons changed this recently are left to the next pass.
        trigger: who started the pass ("manual", "scheduled"), kept in the record.
        page_size: persons per CRM page.
        progress: told the summary so far after each page (the command's terminal line).

    Returns:
        A summary with counts, person ids and times only (no personal data): ``mode``,
        ``listed_after``, ``listed``, ``already_onboarded``, ``queued``, ``queued_ids``,
        ``already_queued``, ``deferred``, ``waited``, ``watermark_before``, ``watermark``,
        ``watermark_moved``, ``started_at``, ``finished_at``, ``dry_run``, ``trigger``.

    Raises:
        ReconciliationRunningError: another pass is running.
        CRMError: listing failed; the watermark stays where it was and the failure is
            recorded for ``status``.
    """
    connection = services.redis
    started = now()
    stored = facts.read_watermark(services.database)

    # 1. Where to start.
    if backfill:
        mode, listed_after = "all persons", None
    elif since is not None:
        mode, listed_after = "since", utc(since)
    elif stored is not None:
        mode, listed_after = "watermark", stored - WATERMARK_OVERLAP
    else:
        mode, listed_after = "first run", started - FIRST_RUN_WINDOW
    # A pass may move the watermark only when it covered everything after it.
    covers_watermark = stored is None or listed_after is None or listed_after <= stored

    lock = None
    if not dry_run:
        lock = connection.lock(RECONCILE_LOCK, timeout=LOCK_TIMEOUT, blocking=False)
        if not lock.acquire():
            raise ReconciliationRunningError(
                "another reconciliation pass is running; try again when it has finished")

    summary: dict[str, Any] = {
        "trigger": trigger, "mode": mode, "dry_run": dry_run,
        "listed_after": iso(listed_after), "started_at": iso(started),
        "listed": 0, "already_onboarded": 0, "queued": 0, "queued_ids": [],
        "already_queued": 0, "deferred": 0, "waited": 0.0,
        "watermark_before": iso(stored), "watermark": iso(stored), "watermark_moved": False,
    }

    waited_before = services.crm_budget.waited
    lane = BACKFILL if backfill else EVENTS
    cutoff = started - timedelta(seconds=settle) if settle else None
    latest: datetime | None = None
    try:
        # 2.-4. List, skip the known ones, queue the rest; page by page.
        page: list = []
        for listing in services.crm.list_persons(listed_after, page_size=page_size):
            page.append(listing)
            if len(page) >= page_size:
                latest = _handle_page(services, page, summary, cutoff, latest, dry_run, lane)
                page = []
                if progress is not None:
                    progress(summary)
                if lock is not None:
                    lock.reacquire()
        latest = _handle_page(services, page, summary, cutoff, latest, dry_run, lane)
        if backfill and not dry_run:
            record_backfill(connection, summary["queued"])
        summary["waited"] = round(services.crm_budget.waited - waited_before, 1)

        # 5. The whole listing went through: move the watermark (never backwards).
        target = latest if latest is not None else (listed_after if stored is None else None)
        if (not dry_run and covers_watermark and target is not None
                and facts.advance_watermark(services.database, target)):
            summary["watermark"], summary["watermark_moved"] = iso(target), True
        summary["finished_at"] = iso(now())
        if not dry_run:
            _record(connection, {**summary, "ok": True})
    except CRMError as error:
        if not dry_run:
            _record(connection, {**summary, "finished_at": iso(now()), "ok": False,
                                 "error": str(error)})
        raise
    finally:
        if lock is not None:
            _release(lock)
    log.info("reconcile.finished trigger=%s mode=%s listed=%d queued=%d already_onboarded=%d "
             "already_queued=%d deferred=%d", trigger, mode, summary["listed"], summary["queued"],
             summary["already_onboarded"], summary["already_queued"], summary["deferred"])
    return summary


def _handle_page(services: Services, page: list, summary: dict[str, Any], cutoff: datetime | None,
                 latest: datetime | None, dry_run: bool, lane: str) -> datetime | None:
    """Queue onboarding on ``lane`` for the persons of one page the connector has not
    onboarded; return the latest change date seen so far (persons left to the next pass do
    not count)."""
    if not page:
        return latest
    known = facts.onboarded(services.database, [listing.person_id for listing in page])
    for listing, onboarded in zip(page, known):
        summary["listed"] += 1
        changed = listing.changed
        if cutoff is not None and changed is not None and changed > cutoff:
            summary["deferred"] += 1
            continue
        if changed is not None and (latest is None or changed > latest):
            latest = changed
        if onboarded:
            summary["already_onboarded"] += 1
            continue
        entry = Entry("onboard", listing.person_id, f"reconcile-{listing.person_id}")
        if not dry_run and not services.intake.accept(entry, lane, webhook=False):
            summary["already_queued"] += 1  # a job of an earlier pass exists (queued or done)
        else:
            summary["queued"] += 1
            if len(summary["queued_ids"]) < QUEUED_IDS_SHOWN:
                summary["queued_ids"].append(listing.person_id)
    return latest


def scheduled_pass(services: Services,
                   interval_seconds: int = defaults.RECONCILE_INTERVAL * 60,
                   settle: float = SCHEDULED_SETTLE) -> dict[str, Any]:
    """What the scheduled job does every RECONCILE_INTERVAL: one pass from the watermark,
    unless a pass runs right now or finished less than half an interval ago (every worker
    runs a scheduler, so the job is queued once per worker and interval). Persons changed in
    the last ``settle`` seconds are left to the next pass."""
    last = read_last_run(services.redis)
    if last and last.get("ok") and last.get("finished_at"):
        age = (now() - parse_iso(last["finished_at"])).total_seconds()
        if 0 <= age < interval_seconds / 2:
            return {"skipped": f"a pass finished {age:.0f} s ago"}
    try:
        return reconcile(services, settle=settle, trigger="scheduled")
    except ReconciliationRunningError as error:
        return {"skipped": str(error)}


# -- the backfill's progress, in Redis (for status) -------------------------------------------


def record_backfill(connection: redis.Redis, queued: int) -> None:
    """Count ``queued`` more persons into the backfill under way (a new one starts when the
    last has no job left)."""
    progress = backfill_progress(connection)
    if progress is None or not progress["remaining"]:
        connection.delete(BACKFILL_PROGRESS)
        connection.hset(BACKFILL_PROGRESS, "started_at", iso(now()))
    connection.hincrby(BACKFILL_PROGRESS, "queued", queued)


def backfill_progress(connection: redis.Redis) -> dict[str, Any] | None:
    """Where the last backfill (``reconcile --all``) stands: ``queued`` (persons it handed to
    the workers), ``remaining`` (waiting, queued, running or retrying), ``failed``, ``done``,
    ``started_at``, and ``per_minute`` (the pace of its last RATE_SAMPLE onboardings) and
    ``eta_minutes`` (None before the first is done); None when there was none."""
    record = connection.hgetall(BACKFILL_PROGRESS)
    if not record:
        return None
    queue = Queue(BACKFILL_QUEUE, connection=connection)
    remaining = (waiting(connection)[BACKFILL] + queue.count + queue.started_job_registry.count
                 + queue.scheduled_job_registry.count)
    started = parse_iso(record[b"started_at"].decode())
    # A finished job's score in RQ's finished registry is when it ended + its result TTL.
    latest = connection.zrevrange(queue.finished_job_registry.key, 0, RATE_SAMPLE - 1,
                                  withscores=True)
    recent = [datetime.fromtimestamp(score - defaults.FINISHED_JOB_TTL, timezone.utc)
              for _, score in latest]
    return plan_progress(int(record.get(b"queued", 0)), remaining,
                         queue.failed_job_registry.count, started, now(), recent)


RATE_SAMPLE = 100
"""How many of a backfill's latest onboardings its rate is measured on: the pace now, not the
average since it started (which a stop of the workers would hide)."""


def plan_progress(queued: int, remaining: int, failed: int, started: datetime,
                  at: datetime, recent: Sequence[datetime] = ()) -> dict[str, Any]:
    """A backfill's progress from its counts: done, rate per minute and minutes left. The
    rate is that of the ``recent`` finishes of this backfill (at or after ``started``), from
    the oldest of them to ``at``, so workers that stopped show as a falling rate; with fewer
    than two, the average since ``started``."""
    done = max(queued - remaining - failed, 0)
    recent = [moment for moment in recent if moment >= started]
    if len(recent) >= 2:
        minutes = max((at - min(recent)).total_seconds() / 60, 1e-9)
        per_minute = len(recent) / minutes
    else:
        minutes = max((at - started).total_seconds() / 60, 1e-9)
        per_minute = done / minutes if done else None
    eta = remaining / per_minute if per_minute else None
    return {"queued": queued, "remaining": remaining, "failed": failed, "done": done,
            "started_at": iso(started), "per_minute": per_minute, "eta_minutes": eta}


# -- the last pass, in Redis (for status) ----------------------------------------------------


def read_last_run(connection: redis.Redis) -> dict[str, Any] | None:
    """Return the record of the last pass (``reconcile``'s summary plus ``ok`` and, when it
    failed, ``error``), or None when no pass has run."""
    value = connection.get(RECONCILE_LAST_RUN)
    return json.loads(value) if value else None


def _record(connection: redis.Redis, record: dict[str, Any]) -> None:
    connection.set(RECONCILE_LAST_RUN, json.dumps(record))


def _release(lock) -> None:
    try:
        lock.release()
    except redis.exceptions.LockError:  # it ran out meanwhile: another pass may have started
        log.warning("reconcile.lock_expired: the pass outlived its lock (%d s)", LOCK_TIMEOUT)
