"""Reconciliation: onboard persons whose ``person.created`` webhook was lost.

SuperOffice drops an event after one failed delivery cycle and stops a webhook after nine
failed deliveries in a row (State ``TooManyErrors``). A pass lists the persons the CRM
registered or updated since the last pass and queues onboarding for every one the connector
has not onboarded yet. Onboarding is idempotent, so a person queued twice gets nothing twice.

1. Where to start: ``--all`` → every person; ``since`` given → from there; else the
   watermark kept in Redis (minus WATERMARK_OVERLAP); no watermark yet → FIRST_RUN_WINDOW.
2. List the persons (``CRMClient.list_persons``: bounded pages, one call at a time, a short
   Retry-After waited out between pages).
3. Skip those in the ONBOARDED_KEY set (``onboard_person`` adds every person it finished),
   and, in scheduled passes, those changed in the last SCHEDULED_SETTLE seconds (their
   webhook's job is most likely still running; the next pass sees them).
4. Queue ``onboard_person`` for the rest with the synthetic event id ``reconcile-<id>``:
   its job id ``onboard-reconcile-<id>`` is unique, so two passes queue a person once.
5. Only after the whole listing went through, move the watermark to the latest
   registered/updated date seen (never backwards), and record the pass for ``status``.

Scheduling uses RQ's own cron support (``rq.cron.CronScheduler``): ``start_reconcile_cron``
forks one scheduler process next to a worker. Several workers mean several schedulers; the
scheduled job itself makes that harmless (a lock, and a pass that finished less than half an
interval ago makes the next ones return at once).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
from rq.cron import CronJob, CronScheduler
from rq.exceptions import StopRequested

from connector import defaults
from connector.exceptions import ConnectorError, CRMError
from connector.settings import Settings
from workers import runtime
from workers.queues import ONBOARDING, enqueue_onboarding

log = logging.getLogger(__name__)

ONBOARDED_KEY = "connector:onboarded"
"""Redis set of the person ids ``onboard_person`` finished: the persons the connector has seen."""

WATERMARK_KEY = "connector:reconcile:watermark"
"""Redis string: ISO UTC time of the latest registered/updated date a complete pass saw."""

LAST_RUN_KEY = "connector:reconcile:last"
"""Redis string (JSON): the last pass's outcome, for ``consent-connector status``."""

LOCK_KEY = "connector:reconcile:lock"
"""Redis lock held while a pass runs, so two passes never list the CRM at the same time."""

DEFAULT_INTERVAL_MINUTES = defaults.RECONCILE_INTERVAL
"""Minutes between scheduled passes (RECONCILE_INTERVAL)."""

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

PASS_TIMEOUT = 3600
"""Seconds RQ lets a scheduled pass run before stopping it (a big tenant has many pages)."""

SCHEDULED_RESULT_TTL = 24 * 3600
"""Seconds a scheduled pass's result (its summary) is kept in RQ."""

SCHEDULED_FAILURE_TTL = 7 * 24 * 3600
"""Seconds a failed scheduled pass stays in RQ's failed registry (the next pass retries anyway)."""

QUEUED_IDS_SHOWN = 50
"""How many queued person ids a pass's summary lists by id."""


class ReconciliationRunningError(ConnectorError):
    """Another reconciliation pass holds the lock; try again when it has finished."""


def reconcile(since: datetime | None = None, backfill: bool = False, *, dry_run: bool = False,
              settle: float = 0, trigger: str = "manual", page_size: int = PAGE_SIZE,
              sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Run one reconciliation pass now (steps in the module docstring) and return its summary.

    Args:
        since: list persons registered or updated after this time instead of after the
            watermark (aware, or naive UTC).
        backfill: list every person in the CRM (a CRM that existed before the connector).
        dry_run: list and count, but queue nothing and leave the watermark and the record of
            the last pass alone.
        settle: seconds; persons changed this recently are left to the next pass.
        trigger: who started the pass ("manual", "scheduled"), kept in the record.
        page_size: persons per CRM page.
        sleep: how to wait out the CRM's Retry-After between pages.

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
    rt = runtime.current()
    connection = rt.redis
    started = _now()
    stored = read_watermark(connection)

    # 1. Where to start.
    if backfill:
        mode, listed_after = "all persons", None
    elif since is not None:
        mode, listed_after = "since", _aware(since)
    elif stored is not None:
        mode, listed_after = "watermark", stored - WATERMARK_OVERLAP
    else:
        mode, listed_after = "first run", started - FIRST_RUN_WINDOW
    # A pass may move the watermark only when it covered everything after it.
    covers_watermark = stored is None or listed_after is None or listed_after <= stored

    lock = None
    if not dry_run:
        lock = connection.lock(LOCK_KEY, timeout=LOCK_TIMEOUT, blocking=False)
        if not lock.acquire():
            raise ReconciliationRunningError(
                "another reconciliation pass is running; try again when it has finished")

    summary: dict[str, Any] = {
        "trigger": trigger, "mode": mode, "dry_run": dry_run,
        "listed_after": _iso(listed_after), "started_at": _iso(started),
        "listed": 0, "already_onboarded": 0, "queued": 0, "queued_ids": [],
        "already_queued": 0, "deferred": 0, "waited": 0.0,
        "watermark_before": _iso(stored), "watermark": _iso(stored), "watermark_moved": False,
    }

    def wait(seconds: float) -> None:
        summary["waited"] += seconds
        sleep(seconds)
        if lock is not None:
            lock.reacquire()

    cutoff = started - timedelta(seconds=settle) if settle else None
    latest: datetime | None = None
    try:
        # 2.-4. List, skip the known ones, queue the rest; page by page.
        page: list = []
        for listing in rt.crm.list_persons(listed_after, page_size=page_size, sleep=wait):
            page.append(listing)
            if len(page) >= page_size:
                latest = _handle_page(rt, page, summary, cutoff, latest, dry_run)
                page = []
                if lock is not None:
                    lock.reacquire()
        latest = _handle_page(rt, page, summary, cutoff, latest, dry_run)

        # 5. The whole listing went through: move the watermark (never backwards).
        target = latest if latest is not None else (listed_after if stored is None else None)
        if (not dry_run and covers_watermark and target is not None
                and (stored is None or target > stored)):
            connection.set(WATERMARK_KEY, _iso(target))
            summary["watermark"], summary["watermark_moved"] = _iso(target), True
        summary["finished_at"] = _iso(_now())
        if not dry_run:
            _record(connection, {**summary, "ok": True})
    except CRMError as error:
        if not dry_run:
            _record(connection, {**summary, "finished_at": _iso(_now()), "ok": False,
                                 "error": str(error)})
        raise
    finally:
        if lock is not None:
            _release(lock)
    log.info("reconcile.finished trigger=%s mode=%s listed=%d queued=%d already_onboarded=%d "
             "already_queued=%d deferred=%d", trigger, mode, summary["listed"], summary["queued"],
             summary["already_onboarded"], summary["already_queued"], summary["deferred"])
    return summary


def _handle_page(rt, page: list, summary: dict[str, Any], cutoff: datetime | None,
                 latest: datetime | None, dry_run: bool) -> datetime | None:
    """Queue onboarding for the persons of one page the connector has not onboarded; return
    the latest change date seen so far (persons left to the next pass do not count)."""
    if not page:
        return latest
    with rt.redis.pipeline(transaction=False) as pipeline:  # SMISMEMBER needs Redis 6.2
        for listing in page:
            pipeline.sismember(ONBOARDED_KEY, listing.person_id)
        known = pipeline.execute()
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
        if dry_run:
            job = True
        else:
            job = enqueue_onboarding(rt.redis, rt.settings, listing.person_id,
                                     f"reconcile-{listing.person_id}")
        if job is None:
            summary["already_queued"] += 1  # a job of an earlier pass exists (queued or done)
        else:
            summary["queued"] += 1
            if len(summary["queued_ids"]) < QUEUED_IDS_SHOWN:
                summary["queued_ids"].append(listing.person_id)
    return latest


def scheduled_reconcile(interval_seconds: int = DEFAULT_INTERVAL_MINUTES * 60,
                        settle: float = SCHEDULED_SETTLE) -> dict[str, Any]:
    """The job RQ's cron scheduler queues every RECONCILE_INTERVAL: one pass from the
    watermark, unless a pass runs right now or finished less than half an interval ago (every
    worker runs a scheduler, so the job is queued once per worker and interval). Persons
    changed in the last ``settle`` seconds are left to the next pass."""
    connection = runtime.current().redis
    last = read_last_run(connection)
    if last and last.get("ok") and last.get("finished_at"):
        age = (_now() - datetime.fromisoformat(last["finished_at"])).total_seconds()
        if 0 <= age < interval_seconds / 2:
            return {"skipped": f"a pass finished {age:.0f} s ago"}
    try:
        return reconcile(settle=settle, trigger="scheduled")
    except ReconciliationRunningError as error:
        return {"skipped": str(error)}


# -- state in Redis --------------------------------------------------------------------------


def read_watermark(connection: redis.Redis) -> datetime | None:
    """Return the watermark (aware UTC), or None before the first complete pass."""
    value = connection.get(WATERMARK_KEY)
    return datetime.fromisoformat(value.decode()) if value else None


def read_last_run(connection: redis.Redis) -> dict[str, Any] | None:
    """Return the record of the last pass (``reconcile``'s summary plus ``ok`` and, when it
    failed, ``error``), or None when no pass has run."""
    value = connection.get(LAST_RUN_KEY)
    return json.loads(value) if value else None


def _record(connection: redis.Redis, record: dict[str, Any]) -> None:
    connection.set(LAST_RUN_KEY, json.dumps(record))


def _release(lock) -> None:
    try:
        lock.release()
    except redis.exceptions.LockError:  # it ran out meanwhile: another pass may have started
        log.warning("reconcile.lock_expired: the pass outlived its lock (%d s)", LOCK_TIMEOUT)


# -- scheduling with RQ's cron ------------------------------------------------------------


def register_reconcile_cron(scheduler: CronScheduler, interval_minutes: int,
                            settle: float = SCHEDULED_SETTLE) -> CronJob:
    """Register the scheduled pass with an RQ ``CronScheduler``: ``scheduled_reconcile`` on
    the onboarding queue every ``interval_minutes`` (the first one as soon as the scheduler
    starts, so a restarted worker catches up at once)."""
    if interval_minutes < 1:
        raise ValueError("the reconciliation interval must be at least one minute")
    seconds = int(interval_minutes) * 60
    return scheduler.register(
        scheduled_reconcile, ONBOARDING, kwargs={"interval_seconds": seconds, "settle": settle},
        interval=seconds, job_timeout=PASS_TIMEOUT, result_ttl=SCHEDULED_RESULT_TTL,
        failure_ttl=SCHEDULED_FAILURE_TTL, name="reconcile",
        meta={"step": "reconciliation", "attempts": []})


def start_reconcile_cron(settings: Settings, interval_minutes: int = DEFAULT_INTERVAL_MINUTES,
                         settle: float = SCHEDULED_SETTLE) -> multiprocessing.process.BaseProcess:
    """Fork a process running RQ's ``CronScheduler`` with the scheduled pass registered, and
    return it (stop it with ``stop_reconcile_cron``). Call it before ``Worker.work``, like RQ
    forks its own scheduler. The process connects to Redis itself, and stops when it gets
    SIGTERM/SIGINT or notices that the process that started it is gone."""
    if interval_minutes < 1:
        raise ValueError("the reconciliation interval must be at least one minute")
    process = multiprocessing.get_context("fork").Process(
        target=_run_cron, args=(settings, int(interval_minutes), settle, os.getpid()),
        name="reconcile-cron", daemon=True)
    process.start()
    return process


def stop_reconcile_cron(process: multiprocessing.process.BaseProcess, timeout: float = 10) -> None:
    """Stop a process started by ``start_reconcile_cron`` (SIGTERM, then SIGKILL)."""
    if process.is_alive():
        process.terminate()
        process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join(timeout)


class _OrphanAwareCronScheduler(CronScheduler):
    """RQ's CronScheduler that stops when its parent (the worker) is gone, so a worker killed
    with SIGKILL does not leave a scheduler behind."""

    def __init__(self, *args, parent_pid: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.parent_pid = parent_pid

    def heartbeat(self) -> None:
        if os.getppid() != self.parent_pid:
            self.log.info("CronScheduler %s: the worker is gone, stopping", self.name)
            raise StopRequested()
        super().heartbeat()

    def calculate_sleep_interval(self) -> float:
        # wake up every 2 s at least, to notice a dead parent quickly
        return min(super().calculate_sleep_interval(), 2)


def _run_cron(settings: Settings, interval_minutes: int, settle: float, parent_pid: int) -> None:
    from connector.redis_connection import connect

    scheduler = _OrphanAwareCronScheduler(connection=connect(settings, socket_timeout=None),
                                          parent_pid=parent_pid)
    register_reconcile_cron(scheduler, interval_minutes, settle)
    scheduler.start()


# -- time ------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(when: datetime) -> datetime:
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat(timespec="seconds") if when is not None else None
