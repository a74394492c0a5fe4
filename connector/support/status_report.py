"""How the connector is doing, section by section: queues, workers, failures, config, tenant,
webhooks, signatures, reconciliation, evidence; and what needs someone's attention. The
``consent-connector status`` command prints it (with an exit status for monitoring), the
admin area shows it (/admin/status).

A section is a function
``section(services, attention) -> list[str]``: a heading line, then its lines indented by two
spaces; what needs someone's attention it also appends, in a few words, to ``attention``
(the command's last line sums them up, and they make its exit status 1). Add a section by writing such
a function and putting it in SECTIONS. A section that cannot reach the CRM or Redis says so
in its own lines; the others still print.
"""

from collections.abc import Callable
from datetime import datetime, timezone

import redis
import sqlalchemy.exc
from rq import Queue, Worker
from rq.cron import CronScheduler

from connector import defaults, metrics
from connector.evidence import facts
from connector.exceptions import CRMError
from connector.intake import BACKFILL, EVENTS, waiting
from connector.keys import CONFIG_IN_FORCE, QUEUE_NAMES
from connector.reconcile import WATERMARK_OVERLAP, backfill_progress, read_last_run
from connector.services import Services
from connector.times import readable

WEBHOOK_EVENT = "person.created"

_STATE_HINTS = {
    "TooManyErrors": "SuperOffice gave up on it after 9 failed deliveries in a row.",
    "Stopped": "Stopped: a user stopped it, or the connector answered 410 Gone.",
}


def webhooks_section(services: Services, attention: list[str]) -> list[str]:
    """The CRM's webhooks that send ``person.created``, with their State and, for one that is
    not Active, why and how to set it Active again."""
    lines = ["Webhooks (in SuperOffice)"]
    try:
        hooks = services.crm.list_webhooks()
    except redis.RedisError as error:  # the sign-in's shared ticket lives in Redis
        return lines + [f"  could not ask the CRM: Redis unavailable ({type(error).__name__})"]
    except CRMError as error:
        if error.status == 403:
            return lines + ["  CRM refused to list webhooks (403): the app needs access to the "
                            "Webhook API (SuperOffice Online grants it per app)"]
        attention.append("the CRM's webhooks cannot be read")
        return lines + [f"  could not read the webhooks: {error}"]
    relevant = [h for h in hooks if WEBHOOK_EVENT in h.events]
    if not relevant:
        lines.append(f"  none sends {WEBHOOK_EVENT}: new persons are found only by the "
                     f"reconciliation. Register the webhook (README, \"Registering the webhook\").")
    for hook in relevant:
        lines.append(f"  #{hook.id} {hook.name!r}: {hook.state} → {hook.target_url}")
        if hook.state != "Active":
            lines += [
                f"      {_STATE_HINTS.get(hook.state, 'It is not Active.')} It sends nothing now:",
                "      new persons are found only by the reconciliation, up to RECONCILE_INTERVAL "
                "minutes late.",
                "      Once the connector answers again, set it Active:",
                f"      PATCH {_api_address(services)}/Webhook/{hook.id} with "
                f"{{\"State\": \"Active\"}}",
                "      (Content-Type: application/json and the connector's credentials).",
            ]
    active = [h for h in relevant if h.state == "Active"]
    if relevant and not active:
        lines.append(f"  No webhook sending {WEBHOOK_EVENT} is Active.")
    if not active:
        attention.append(f"no Active webhook sends {WEBHOOK_EVENT}")
    others = len(hooks) - len(relevant)
    if others:
        lines.append(f"  ({others} other webhook(s) not sending {WEBHOOK_EVENT} not shown)")
    return lines


def signatures_section(services: Services, attention: list[str]) -> list[str]:
    """Webhook requests with a bad signature in the last hour: the CRM signs with a secret
    SUPEROFFICE_WEBHOOK_SECRET does not have (every event is then refused), or someone else
    calls the receiver."""
    lines = ["Webhook signatures"]
    try:
        count, latest = metrics.signature_rejections(services.redis)
    except redis.RedisError as error:
        return lines + [f"  Redis unavailable: {type(error).__name__}"]
    if not count:
        return lines + [f"  no request with a bad signature in the last "
                        f"{metrics.REJECTION_WINDOW_MINUTES} minutes"]
    attention.append(f"{count} webhook request(s) with a bad signature: check "
                     f"SUPEROFFICE_WEBHOOK_SECRET")
    return lines + [
        f"  {count} request(s) with a bad signature in the last "
        f"{metrics.REJECTION_WINDOW_MINUTES} minutes (the latest at "
        f"{readable(datetime.fromtimestamp(latest, timezone.utc))[:-3]} UTC), answered 401",
        "      If they come from your CRM, its webhook was registered with a secret that",
        "      SUPEROFFICE_WEBHOOK_SECRET does not have, and every event it sends is refused:",
        "      set SUPEROFFICE_WEBHOOK_SECRET to the webhook's secret (several, comma-separated,",
        "      while you change it), or register the webhook again with the connector's."]


def tenant_section(services: Services, attention: list[str]) -> list[str]:
    """Where the CRM tenant is and whether its API is up (SuperOffice's state API)."""
    lines = ["CRM tenant"]
    try:
        state = services.crm.tenant_state()
    except redis.RedisError as error:  # the state is cached in Redis
        return lines + [f"  state unknown: Redis unavailable ({type(error).__name__})"]
    except CRMError as error:
        return lines + [f"  state unknown: {error}"]
    if state is None:
        return lines + [f"  address      {services.settings.superoffice_api_url} "
                        f"(SUPEROFFICE_API_URL, fixed)"]
    lines.append(f"  {state.context_identifier:<12} {state.state} at {state.api_url}")
    if not state.is_running:
        lines.append("               its API is not available: jobs wait until it runs again")
        attention.append(f"the CRM tenant is {state.state}")
    lines.append(f"  valid until  {_show(state.valid_until)} (SuperOffice's state API)")
    return lines


def reconciliation_section(services: Services, attention: list[str]) -> list[str]:
    """The last reconciliation pass, the watermark and the schedule."""
    lines = ["Reconciliation"]
    try:
        last = read_last_run(services.redis)
        schedule = _schedule(services.redis)
        backfill = backfill_progress(services.redis)
    except redis.RedisError as error:
        return lines + [f"  Redis unavailable: {type(error).__name__}: {error}"]
    try:
        watermark = facts.read_watermark(services.database)
    except sqlalchemy.exc.SQLAlchemyError as error:
        return lines + [f"  evidence database unavailable: {type(error).__name__}"]
    if last is None:
        lines.append("  last pass   none yet (a worker runs one when it starts, then every "
                     "RECONCILE_INTERVAL minutes)")
    else:
        when = f"{_show(last.get('finished_at'))} ({last.get('trigger', '?')})"
        if last.get("ok"):
            deferred = (f", {last['deferred']} left for the next pass (changed in the last minute)"
                        if last.get("deferred") else "")
            lines.append(f"  last pass   {when}: {last['listed']} listed, {last['queued']} queued "
                         f"for onboarding, {last['already_onboarded']} already onboarded{deferred}")
        else:
            lines.append(f"  last pass   {when} FAILED: {last.get('error')}")
            attention.append("the last reconciliation pass failed")
            lines.append("              the watermark did not move: the next pass looks at the "
                         "same persons again")
    if watermark is None:
        lines.append("  watermark   none yet (the first pass looks at the last 24 h)")
    else:
        lines.append(f"  watermark   {_show(watermark.isoformat())}: the next pass lists persons "
                     f"changed after {_show((watermark - WATERMARK_OVERLAP).isoformat())}")
    lines.append(f"  schedule    {schedule}")
    if backfill is not None:
        lines.append(f"  backfill    {backfill_line(backfill)}")
    return lines


def backfill_line(progress: dict) -> str:
    """The backfill under way (``reconcile --all``) in one line: done, left, rate, ETA."""
    line = (f"{progress['done']:,} of {progress['queued']:,} persons onboarded since "
            f"{_show(progress['started_at'])}, {progress['remaining']:,} left")
    if progress["failed"]:
        line += f", {progress['failed']:,} failed"
    if not progress["remaining"]:
        return line + " (finished)"
    if progress["per_minute"] is None:
        return line + " (none done yet)"
    return (line + f"; {progress['per_minute']:,.0f}/min, about "
            f"{_duration(progress['eta_minutes'])} to go")


def _duration(minutes: float) -> str:
    if minutes < 90:
        return f"{max(minutes, 1):.0f} min"
    return f"{minutes / 60:.1f} h"


def queues_section(services: Services, attention: list[str]) -> list[str]:
    """Jobs per queue and state, the failed ones with where to look, and the live workers."""
    lines = ["Queues and workers"]
    try:
        failed = 0
        for name in QUEUE_NAMES:
            queue = Queue(name, connection=services.redis)
            counts = {"queued": queue.count, "scheduled": queue.scheduled_job_registry.count,
                      "running": queue.started_job_registry.count,
                      "failed": queue.failed_job_registry.count}
            failed += counts["failed"]
            lines.append(f"  {name:<12} " + ", ".join(f"{n} {state}" for state, n in counts.items()))
        workers = Worker.all(connection=services.redis)
        lanes = waiting(services.redis)
        paused_for = services.crm_budget.paused_for()
    except redis.RedisError as error:
        attention.append(REDIS_UNREACHABLE)
        return lines + [f"  Redis unreachable ({type(error).__name__}): check REDIS_URL"]
    lines.append(f"  intake       {lanes[EVENTS]} event(s), {lanes[BACKFILL]} backfill person(s) "
                 f"waiting to become jobs (workers make up to {defaults.PROMOTE_AHEAD} per lane "
                 f"at a time)")
    budget = f"  CRM budget   {services.crm_budget.per_second} calls/s for all processes"
    if paused_for:
        budget += f"; paused {paused_for:.0f} s more (the CRM answered 429/503 Retry-After)"
    lines.append(budget + " (CRM_MAX_REQUESTS_PER_SECOND)")
    lines.append(f"  workers      {len(workers)} alive" + ("" if workers else
                 " — nothing is processing jobs: start `consent-connector worker`"))
    if not workers:
        attention.append("no worker is alive")
    if failed:
        lines.append(f"  {failed} failed job(s): `consent-connector jobs list --failed` says why")
        attention.append(f"{failed} failed job(s)")
    return lines


def config_section(services: Services, attention: list[str]) -> list[str]:
    """The purposes file on disk (valid, or refused and why) and the version the workers have
    in force (they report it with each heartbeat: keys.CONFIG_IN_FORCE)."""
    live = services.live_config
    lines = ["Purposes config", f"  file         {live.path}"]
    if live.refused is None:
        lines.append(f"  on disk      version {live.version}: valid "
                     f"({len(services.config.purposes)} purposes)")
    else:
        lines.append(f"  on disk      version {live.refused_version}: REFUSED, "
                     f"{len(live.refused.problems)} problem(s):")
        lines += [f"      {problem}" for problem in live.refused.problems[:5]]
        lines.append("      `consent-connector config check` lists them all; the running "
                     "processes keep the last good version")
        attention.append("the purposes file on disk is refused")
    try:
        reported = {key.decode(): value.decode()
                    for key, value in services.redis.hgetall(CONFIG_IN_FORCE).items()}
    except redis.RedisError as error:
        return lines + [f"  in force     unknown: Redis unavailable ({type(error).__name__})"]
    if not reported:
        return lines + ["  in force     no worker has reported (none is running)"]
    in_force = reported.get("version") or "none (no valid file since the worker started)"
    lines.append(f"  in force     version {in_force} in the workers (reported "
                 f"{_show(reported.get('at'))})")
    disk = live.version or live.refused_version
    if reported.get("version") and disk != reported["version"] and live.refused is None:
        lines.append(f"               the file on disk (version {disk}) is taken at the next "
                     f"job or heartbeat")
    return lines


def evidence_section(services: Services, attention: list[str]) -> list[str]:
    """Where the evidence is kept, its schema, and how much of it there is."""
    database = services.database
    lines = ["Evidence (consent ledger)", f"  database    {database.where}"]
    try:  # the schema is this code's: status does not start otherwise (services_or_exit)
        current, _ = database.revisions()
        persons, entries = services.ledger.persons(), services.ledger.count()
    except sqlalchemy.exc.SQLAlchemyError as error:
        attention.append("the evidence database is unavailable")
        return lines + [f"  unavailable: {type(error).__name__}"]
    return lines + [f"  schema      revision {current} (up to date)",
                    f"  ledger      {entries} entries about {persons} persons "
                    f"(`consent-connector ledger verify --all` checks them)"]


SECTIONS: list[Callable] = [queues_section, config_section, tenant_section, webhooks_section,
                            signatures_section,
                            reconciliation_section, evidence_section]
"""The sections ``status`` prints, in order."""


REDIS_UNREACHABLE = "Redis is unreachable"
"""The attention line that makes ``status`` exit 2: it cannot look at anything."""


def report(services: Services) -> tuple[list[list[str]], list[str]]:
    """Every section's lines, and what needs attention."""
    attention: list[str] = []
    return [section(services, attention) for section in SECTIONS], attention


def _schedule(connection: redis.Redis) -> str:
    """Where the scheduled pass stands, from RQ's cron scheduler registry."""
    jobs = [job for scheduler in CronScheduler.all(connection) for job in scheduler.get_jobs()
            if job.name == "reconcile"]
    if not jobs:
        return "no worker is scheduling passes right now (is a worker running?)"
    minutes = (jobs[0].interval or 0) // 60
    upcoming = [job.next_enqueue_time for job in jobs
                if job.next_enqueue_time and job.next_enqueue_time.year < 9999]
    next_at = f", next {_show(min(upcoming).isoformat())}" if upcoming else ""
    return f"every {minutes} min by {len(jobs)} worker(s){next_at}"


def _api_address(services: Services) -> str:
    """The tenant's REST base as configured or last looked up, for commands to copy."""
    try:
        state = services.crm.tenant_state()
    except CRMError:
        state = None
    return (state.api_url if state and state.api_url else
            services.settings.superoffice_api_url or "<the tenant's API>")


def _show(iso: str | None) -> str:
    return f"{readable(iso)} UTC" if iso else "never"

