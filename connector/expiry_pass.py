"""The expiry pass: for each purpose with ``consent_valid_for``, read the purpose's ledger
entries and queue a check (workers/expiry.py ``check_consent``) of every consent due for a
re-permission mail or lapsed (connector.expiry.due_consents), on the bulk queue, once per
consent, term and step (the job id says which). Every worker's scheduler runs it each
EXPIRY_INTERVAL; ``consent-connector expiry run`` runs it at once.

A pass stands for a moment (now, unless a caller names one); its jobs decide as of that same
moment.
"""

import logging
from datetime import datetime
from typing import Any

from connector.expiry import ExpiryDecision, due_consents
from connector.queueing import enqueue_expiry_check
from connector.services import Services
from connector.times import iso, now

log = logging.getLogger(__name__)


def expiry_pass(services: Services, moment: datetime | None = None) -> dict[str, Any]:
    """Queue a check of every consent due for a re-permission mail or lapsed at ``moment``
    (now when None), as the ledger knows them; return how many of each, and how many were
    queued (a consent whose job a pass queued before is not queued again).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the evidence database cannot be read.
        redis.RedisError: Redis did not take the jobs (a pass run again queues the rest).
    """
    moment = moment or now()
    as_of = iso(moment)
    summary: dict[str, Any] = {"as_of": as_of, "remind": 0, "withdraw": 0, "report": 0,
                               "queued": 0}
    config, settings = services.config, services.settings
    for purpose in config.purposes.values():
        if purpose.expiry is None:
            continue
        for person_id, decision in due_consents(config, purpose,
                                                services.ledger.query(purpose.crm_key), moment):
            summary[decision.action] += 1
            if enqueue_expiry_check(services.redis, settings, person_id, purpose.key, as_of,
                                    check_job_id(person_id, purpose.key, decision)):
                summary["queued"] += 1
    log.info("expiry.pass as_of=%s remind=%d withdraw=%d report=%d queued=%d", as_of,
             summary["remind"], summary["withdraw"], summary["report"], summary["queued"])
    return summary


def check_job_id(person_id: int, purpose: str, decision: ExpiryDecision) -> str:
    """The id of the job for one step of one term of a person's consent, so passes queue it
    once: ``expiry-remind-<person>-<purpose>-<term's end, to the microsecond>``."""
    return f"expiry-{decision.action}-{person_id}-{purpose}-{decision.term.ends:%Y%m%dT%H%M%S%f}"
