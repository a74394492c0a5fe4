"""Work on a schedule: RQ's cron (``rq.cron.CronScheduler``) queues ``scheduled_reconcile``
every RECONCILE_INTERVAL minutes, ``scheduled_erasures`` every ERASURE_INTERVAL and the
expiry pass (workers.expiry.scheduled_expiry) every EXPIRY_INTERVAL;
``start_reconcile_cron`` forks one scheduler process next to a worker, as RQ forks its own
scheduler. The pass itself is connector.reconcile; the erasures are
connector.evidence.facts.erase_due.
"""

import multiprocessing
import os
from typing import Any

from rq.cron import CronJob, CronScheduler
from rq.exceptions import StopRequested

from connector import defaults
from connector.crm.budget import Priority, crm_priority
from connector.evidence import facts
from connector.keys import BACKFILL, HISTORY, ONBOARDING
from connector.reconcile import SCHEDULED_SETTLE, scheduled_pass
from connector.redis_connection import connect
from connector.settings import Settings
from workers.expiry import scheduled_expiry
from workers.worker import current_services

PASS_TIMEOUT = 3600
"""Seconds RQ lets a scheduled pass run before stopping it (a big tenant has many pages)."""

SCHEDULED_RESULT_TTL = 24 * 3600
"""Seconds a scheduled pass's result (its summary) is kept in RQ."""

SCHEDULED_FAILURE_TTL = 7 * 24 * 3600
"""Seconds a failed scheduled pass stays in RQ's failed registry (the next pass retries anyway)."""


def scheduled_reconcile(interval_seconds: int = defaults.RECONCILE_INTERVAL * 60,
                        settle: float = SCHEDULED_SETTLE) -> dict[str, Any]:
    """The job the cron queues: connector.reconcile.scheduled_pass with this worker's services,
    its CRM calls after those of events and persons on their page."""
    with crm_priority(Priority.BACKGROUND):
        return scheduled_pass(current_services(), interval_seconds, settle)


def scheduled_erasures() -> dict[str, Any]:
    """The job the cron queues every ERASURE_INTERVAL: erase the identifying proof of every
    deleted person whose grace period (LEDGER_ERASE_AFTER_DAYS) is over."""
    erased = facts.erase_due(current_services().database, "connector")
    return {"persons": len(erased), "entries": sum(erased.values())}


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


def start_reconcile_cron(settings: Settings, interval_minutes: int = defaults.RECONCILE_INTERVAL,
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
    scheduler = _OrphanAwareCronScheduler(connection=connect(settings, socket_timeout=None),
                                          parent_pid=parent_pid)
    register_reconcile_cron(scheduler, interval_minutes, settle)
    scheduler.register(scheduled_erasures, HISTORY, interval=defaults.ERASURE_INTERVAL,
                       result_ttl=SCHEDULED_RESULT_TTL, failure_ttl=SCHEDULED_FAILURE_TTL,
                       name="erasures", meta={"step": "erasure", "attempts": []})
    scheduler.register(scheduled_expiry, BACKFILL, interval=defaults.EXPIRY_INTERVAL,
                       job_timeout=PASS_TIMEOUT, result_ttl=SCHEDULED_RESULT_TTL,
                       failure_ttl=SCHEDULED_FAILURE_TTL, name="expiry",
                       meta={"step": "consent expiry pass", "attempts": []})
    scheduler.start()
