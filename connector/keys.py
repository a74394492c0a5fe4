"""Every Redis key and queue name the connector uses, in one place (as rq keeps its own).

Keys are grouped by what they hold. Per-person keys are functions of the person id. Nothing
here talks to Redis.
"""

PREFIX = "connector:"

# -- queues ------------------------------------------------------------------------------------

ONBOARDING = "onboarding"
"""Queue of new persons' onboarding (default consents and the confirmation mail)."""

PREFERENCES = "preferences"
"""Queue of choices made on a person's page, one-click unsubscribes and fresh links."""

HISTORY = "history"
"""Queue of recording a CRM user's consent changes in the ledger."""

BACKFILL = "backfill"
"""Queue of onboarding persons a reconciliation found (``reconcile --all``): after the rest."""
QUEUE_NAMES = (PREFERENCES, ONBOARDING, HISTORY, BACKFILL)
"""Every queue, in the order workers take from them: a person waiting on their page first."""
# -- the intake (connector.intake) ---------------------------------------------------------------
INTAKE_PREFIX = PREFIX + "intake:"
INTAKE_HOLDERS = INTAKE_PREFIX + "holders"
"""Redis set of the promoters that may hold entries (workers' names)."""


def intake_lane(lane: str) -> str:
    """Redis list of the entries waiting in ``lane`` (events, backfill) to become jobs."""
    return f"{INTAKE_PREFIX}lane:{lane}"


def intake_taken(holder: str, lane: str) -> str:
    """Redis list of the entries of ``lane`` a promoter took and is queueing jobs for."""
    return f"{INTAKE_PREFIX}taken:{holder}:{lane}"


def intake_arrived(holder: str) -> str:
    """Redis list of the event a promoter's wait took (BLMOVE) and is queueing a job for; not
    counted in flight (the wait cannot count it in the same step)."""
    return f"{INTAKE_PREFIX}arrived:{holder}"


def intake_in_flight(lane: str) -> str:
    """Redis counter of the entries of ``lane`` promoters have taken and not yet made jobs of."""
    return f"{INTAKE_PREFIX}in-flight:{lane}"


def intake_holder(holder: str) -> str:
    """Redis string while the promoter ``holder`` is alive (PROMOTER_SILENCE)."""
    return f"{INTAKE_PREFIX}alive:{holder}"


def event_seen(event_id: str) -> str:
    """Redis string for EVENT_DEDUPE_TTL after an event was accepted: a redelivery is a
    duplicate."""
    return f"{PREFIX}event:{event_id}"

# -- locks -------------------------------------------------------------------------------------

PERSON_LOCK_PREFIX = PREFIX + "lock:person:"


def person_lock(person_id: int) -> str:
    """Redis lock per person, held while one of their jobs runs (workers.jobs.one_job_per_person)."""
    return f"{PERSON_LOCK_PREFIX}{person_id}"


# -- the person's page ---------------------------------------------------------------------------

PENDING_PREFIX = PREFIX + "pending:person:"
"""Redis hash per person: choices saved on the page that their job has not written yet."""

COPY_MAIL_PREFIX = PREFIX + "copy-mail:"
"""Redis string per person while a copy of their data may not be mailed again
(COPY_MAIL_INTERVAL)."""
FRESH_LINK_PREFIX = PREFIX + "fresh-link:"
"""Redis string per person while a fresh link may not be mailed again (FRESH_LINK_INTERVAL)."""

RATE_LIMIT_PREFIX = "connector-limits"
"""Prefix of Flask-Limiter's counters."""

# -- reconciliation ------------------------------------------------------------------------------

RECONCILE_LAST_RUN = PREFIX + "reconcile:last"
"""Redis string (JSON): the last pass's outcome, for ``consent-connector status``."""

RECONCILE_LOCK = PREFIX + "reconcile:lock"
"""Redis lock held while a pass runs, so two passes never list the CRM at the same time."""
BACKFILL_PROGRESS = PREFIX + "reconcile:backfill"
"""Redis hash: the backfill under way (``reconcile --all``): when it started, how many persons
it queued (connector.reconcile.backfill_progress)."""

CONFIG_IN_FORCE = PREFIX + "config:in-force"
"""Redis hash the workers refresh with each heartbeat: the purposes file version in force,
and the version on disk they refused and why (``status`` shows it); it lapses when no
worker runs."""

EXPIRY_PASS_CLAIM = PREFIX + "expiry:claimed"
"""Set by the first worker whose scheduler runs the expiry pass; the others skip it while
it lives (half of EXPIRY_INTERVAL)."""

# -- the CRM request budget (connector.crm.budget) ---------------------------------------------
CRM_BUDGET_PREFIX = PREFIX + "crm-budget"
"""Prefix of the ``limits`` library's moving window of CRM calls."""

CRM_BUDGET_WINDOW = "calls"
"""The moving window's name under CRM_BUDGET_PREFIX: one for the whole installation."""

CRM_BUDGET_PAUSE = CRM_BUDGET_PREFIX + ":paused-until"
"""Redis string: until when (epoch seconds) no process calls the CRM (its 429/503 Retry-After)."""


def crm_budget_waiting(priority: int) -> str:
    """Redis string while a call of ``priority`` waits for the next slot: until when (epoch
    seconds); calls of a lower priority leave that slot to it."""
    return f"{CRM_BUDGET_PREFIX}:waiting:{priority}"


# -- SuperOffice sign-in and tenant ------------------------------------------------------------
# Per system user (a fingerprint of tenant, app and key): a changed setting starts afresh.

SIGN_IN_PREFIX = PREFIX + "superoffice:"


def system_user_ticket(fingerprint: str) -> str:
    """Redis string (JSON): the system user's ticket every process uses, until it lapses."""
    return f"{SIGN_IN_PREFIX}ticket:{fingerprint}"


def sign_in_lock(fingerprint: str) -> str:
    """Redis lock held while one process signs in, so ten workers sign in once, not ten times."""
    return f"{SIGN_IN_PREFIX}sign-in-lock:{fingerprint}"


def sign_in_attempts(fingerprint: str) -> str:
    """Redis counter of sign-in attempts in the current minute (SIGN_INS_PER_MINUTE)."""
    return f"{SIGN_IN_PREFIX}sign-ins:{fingerprint}"


def sign_in_refused(fingerprint: str) -> str:
    """Redis string: why SuperOffice refused the last sign-in; no process tries again while it
    lives (SIGN_IN_REFUSED_PAUSE)."""
    return f"{SIGN_IN_PREFIX}sign-in-refused:{fingerprint}"


def tenant_state(context_identifier: str) -> str:
    """Redis string (JSON): the tenant's state and API address from the state API, cached
    until its ValidUntil."""
    return f"{SIGN_IN_PREFIX}tenant:{context_identifier}"


# -- metrics -------------------------------------------------------------------------------------

METRICS_PREFIX = PREFIX + "metrics:"
"""Redis hashes of the Prometheus counters, one per metric (see connector.metrics)."""


def pending(person_id: int) -> str:
    """The person's choices still being saved."""
    return f"{PENDING_PREFIX}{person_id}"


def copy_mail(person_id: int) -> str:
    """Set while the person may not be mailed another copy of their data."""
    return f"{COPY_MAIL_PREFIX}{person_id}"


def fresh_link(person_id: int) -> str:
    """Set while the person may not be mailed another fresh link."""
    return f"{FRESH_LINK_PREFIX}{person_id}"


# -- before the evidence database --------------------------------------------------------------
# Versions before the evidence database kept these in Redis; ``consent-connector ledger
# import-redis`` copies them into the database once. Nothing else reads or writes them.

LEGACY_LEDGER_PREFIX = PREFIX + "ledger:person:"
"""Redis stream per person: the consent ledger."""

LEGACY_ONBOARDED = PREFIX + "onboarded"
"""Redis set of the person ids onboarding finished."""

LEGACY_CONFIRMATION_MAIL_PREFIX = PREFIX + "mail:confirmation:"
"""Redis string per person: "sent" once the confirmation mail went out."""

LEGACY_RECONCILE_WATERMARK = PREFIX + "reconcile:watermark"
"""Redis string: the reconciliation's watermark (ISO UTC)."""
