"""Default values of the connector's tunables, one docstring each (the settings override them)."""

LINK_MAX_AGE_DAYS = 21
"""How long a personal link in a mail stays valid; SuperOffice's own privacy mails use 21 days."""

RETRY_INTERVALS = (10, 60, 300, 900, 3600)
"""Seconds to wait before each retry of a job after a transient failure (CRM down, 5xx, 429).
The number of intervals is the number of retries; each is stretched by up to 10 % jitter and
by the CRM's Retry-After when that is longer."""

WEBHOOK_MAX_BYTES = 64 * 1024
"""Largest webhook body accepted. SuperOffice's events are a few hundred bytes."""

WEBHOOK_MAX_AGE = 3600
"""Seconds after its Timestamp an event is still taken. An older one is a replay (a signed body
stays valid for ever) or a delivery so late that the reconciliation has it: it is answered
200 "ignored: stale", so SuperOffice counts no failure, and logged and counted as stale."""

EVENT_DEDUPE_TTL = 7 * 24 * 3600
"""Seconds an EventId is remembered, so a redelivered event is not queued twice."""

PROMOTE_AHEAD = 100
"""Most jobs the workers make from waiting events per lane before those are run
(connector.intake): the rest waits as entries of a few dozen bytes, not as job hashes."""

PROMOTE_WAIT = 1.0
"""Seconds a worker's promoter waits for the next event before looking at the lanes again."""

PROMOTER_SILENCE = 60
"""Seconds after which a promoter that stopped beating counts as gone and the entries it had
taken are put back (a worker killed in the middle of queueing them)."""

FINISHED_JOB_TTL = 24 * 3600
"""Seconds a finished job is kept for support to look at (the intake's dedupe window, not the
job, keeps a redelivered event from being queued twice)."""

REDIS_UNAVAILABLE_RETRY_AFTER = 30
"""Retry-After (seconds) sent with a 503 when Redis cannot take the event."""

REDIS_SOCKET_TIMEOUT = 2.0
"""Seconds the web process waits for Redis before answering 503."""

CRM_TIMEOUT = (3.05, 10.0)
"""(connect, read) timeout in seconds of every CRM call."""

CRM_MAX_REQUESTS_PER_SECOND = 10
"""Most calls to the CRM's API per second, from all processes together (connector.crm.budget).
SuperOffice publishes no rate limit (docs/superoffice-notes.md); 10 a second is a polite
default that leaves the tenant to its users and still onboards 5 persons a second (a GET and a
PUT each: 18,000 an hour). Raise it when the CRM's owner allows more; keep it a little below a
limit the CRM does have (calls are counted as they leave, the CRM counts them as they arrive)."""

CRM_WAIT_IN_PLACE = 30.0
"""Most seconds a call waits in place when the CRM asks everyone to pause (429 or 503 with
Retry-After); a longer pause sends the job back to the queue until the pause is over."""

CRM_WAIT_IN_A_REQUEST = 2.0
"""Most seconds a web request (a person's page, the admin area) waits in place for a pause the
CRM asked for; a longer pause is answered 503 with the CRM's Retry-After."""

CRM_BUDGET_MIN_WAIT = 0.005
"""Fewest seconds a call waits before asking the budget again (a window about to free a slot)."""

SMTP_TIMEOUT = 10.0
"""Seconds an SMTP conversation may stall before the mail counts as not sent (and is retried)."""

SMTP_KEEP_OPEN = 30.0
"""Seconds a worker keeps its SMTP session open after a mail for the next one (no new
connection, TLS handshake and login per mail); an older session is closed and a new one
opened. Mail servers close idle sessions after a minute or more (RFC 5321 4.5.3.2.7: at
least 5 minutes); a session they closed sooner is found by an RSET and replaced."""

JOB_TIMEOUT = 120
"""Seconds a job may run before RQ stops it."""

PERSON_LOCK_WAIT = 30.0
"""Seconds a job waits for another job of the same person to finish before it is retried
later: a person's jobs run one at a time, so none writes what the other just wrote."""

FAILED_JOB_TTL = 90 * 24 * 3600
"""Seconds a failed job stays in the failed registry for support staff to inspect and retry."""

WORKER_HEARTBEAT_INTERVAL = 30
"""Most seconds between two heartbeats of a worker, idle or busy (RQ beats while a job runs
every 30 s; an idle worker waits for a job no longer than this)."""

WORKER_SILENCE = 60
"""Seconds without a heartbeat after which a worker counts as gone (/readyz?workers=1,
doctor): two missed WORKER_HEARTBEAT_INTERVALs."""

PENDING_CHOICE_TTL = 2 * 3600
"""Seconds a choice saved on the page is shown as "being saved" while its job runs (longer
than the default retry schedule, about 80 minutes)."""

PAGE_SAVE_WAIT = 2
"""Seconds (whole) a save on the person's page waits for its job before showing the page
again: a job done by then shows its result, a slower one "… being saved" in the purpose's
Status line."""

FRESH_LINK_INTERVAL = 15 * 60
"""Seconds between two fresh links mailed to the same person on request."""

COPY_MAIL_INTERVAL = 60 * 60
"""Seconds between two copies of their data mailed to the same person on request (the
download on their page has no such wait)."""

PAGE_RATE_LIMITS = {
    "view": "60 per minute",
    "save_per_address": "30 per minute",
    "save_per_link": "10 per minute",
    "renew_per_address": "10 per hour",
    "export_per_address": "30 per hour",
    "export_per_link": "10 per hour",
}
"""Rate limits of the person's page (Flask-Limiter notation), per client address or link."""

RECONCILE_INTERVAL = 15
"""Minutes between two reconciliation passes, which onboard persons whose webhook was lost
(0 switches the schedule off; `consent-connector reconcile` still works)."""

WORKER_MAINTENANCE_INTERVAL = 60
"""Seconds between a worker's maintenance rounds, in which jobs of workers that died
(killed, crashed, machine lost) are found and retried. RQ notices such a job once its
heartbeat is 90 s old, so it is retried within about 90 s plus this interval. An idle
worker waits for a job no longer than this, so the promise holds on an idle system too.
WORKER_MAINTENANCE_INTERVAL overrides it."""

SYSTEM_USER_TICKET_LIFETIME = 6 * 3600
"""Seconds a system user ticket is kept: SuperOffice's tickets are "valid for 6 hours, with a
sliding expiration" (docs/en/api/authentication/online/auth-application/index.md). A 401
renews one sooner; each sign-in creates a credentials record in the tenant, so the ticket is
shared by every process and never fetched per call."""

SYSTEM_USER_TICKET_MARGIN = 600
"""Seconds before SYSTEM_USER_TICKET_LIFETIME runs out at which the ticket is renewed anyway,
so no call goes out with a ticket about to lapse."""

SIGN_INS_PER_MINUTE = 10
"""Most sign-ins to SuperOffice's login per minute for the whole installation; beyond it jobs
wait. A ticket lapsing every few seconds would need fewer; only a broken setup needs more."""

SIGN_IN_REFUSED_PAUSE = 300
"""Seconds no process signs in again after SuperOffice refused a sign-in (bad key, revoked
system user token, wrong client secret): jobs fail at once with the reason instead of
hammering the login. Changing any of those settings starts afresh."""

SIGN_IN_LOCK_WAIT = 30.0
"""Seconds a process waits for another one's sign-in to finish before its job is retried."""

TENANT_STATE_MIN_AGE = 5
"""Fewest seconds a tenant state answer is kept, whatever its ValidUntil says: one look-up
serves every process, so this only bounds a ValidUntil already past."""

TENANT_STATE_MAX_AGE = 3600
"""Most seconds a tenant state answer is kept, whatever its ValidUntil says (a moved tenant
is also noticed at once by the 421 its old address answers)."""

TENANT_UNAVAILABLE_RETRY_AFTER = 60
"""Most seconds a job waits before trying again a tenant that is offline for maintenance or
upgrading (sooner when the state API's ValidUntil says to look again sooner)."""

ERASURE_INTERVAL = 3600
"""Seconds between two runs of the scheduled erasures (persons deleted in the CRM whose
LEDGER_ERASE_AFTER_DAYS are over); a day's grace is counted to the hour."""

EXPIRY_INTERVAL = 6 * 3600
"""Seconds between two scheduled expiry passes (consents of purposes with
``consent_valid_for`` due for a re-permission mail or lapsed: connector.expiry). A lapse is
recorded within this long of its day; a pass costs one read of those purposes' ledger
entries and one job per consent due."""

DATABASE_BUSY_TIMEOUT = 30.0
"""Seconds a SQLite writer waits for another process's transaction to end (they last
milliseconds; only a stuck process makes one wait this long)."""

DATABASE_POOL_SIZE = 5
"""PostgreSQL connections each process keeps open (web threads share them)."""

LEDGER_ERASE_AFTER_DAYS = 30
"""Days between a person's deletion in the CRM (or ``ledger erase``) and the pseudonymisation
of the identifying proof in their ledger (IP network and hash, browser): long enough to undo a
deletion made by mistake, short enough for Art. 17's "without undue delay"."""
