"""Consents that lapse (connector.expiry has the rules, connector.expiry_pass the pass):
the scheduled pass and the job that acts on one consent.

- ``scheduled_expiry`` is the pass, queued by every worker's scheduler every
  EXPIRY_INTERVAL (workers/reconcile.py); the first to run it claims the interval.
- ``check_consent`` reads the person from the CRM and the ledger, plans
  (connector.plans.plan_expiry: the CRM's row now decides) and mails, withdraws or records.
  It decides as of its pass's moment (``as_of``), so a job retried later does what its pass
  found.
"""

from datetime import datetime
from typing import Any

from connector import defaults
from connector.consent import Purpose
from connector.crm.types import Person
from connector.exceptions import UnusableAddressError
from connector.expiry import REMIND, REPERMISSION, ExpiryDecision
from connector.expiry_pass import expiry_pass
from connector.keys import EXPIRY_PASS_CLAIM
from connector.mail.repermission import render_repermission
from connector.plans import decide_mail_to, mail_not_sent_entry, mail_sent_entry, plan_expiry
from connector.services import Services
from connector.times import iso, now, parse_iso
from workers.jobs import (change_subscriptions, current_job_id, deliver_counted,
                          one_job_per_person, write_consents)
from workers.worker import current_services


def scheduled_expiry(interval_seconds: int = defaults.EXPIRY_INTERVAL) -> dict[str, Any]:
    """The job every worker's scheduler queues each EXPIRY_INTERVAL: the pass, now, by the
    first worker to run it in half an interval (the others return at once)."""
    services = current_services()
    if not services.redis.set(EXPIRY_PASS_CLAIM, iso(now()), nx=True,
                              ex=max(1, interval_seconds // 2)):
        return {"skipped": "another worker ran the pass"}
    return expiry_pass(services)


def check_consent(person_id: int, purpose: str, as_of: str) -> str:
    """Check one person's consent to ``purpose`` as of ``as_of`` (check_consent_with); on
    the bulk queue, its CRM calls wait behind those of events and persons on their page."""
    return check_consent_with(current_services(), person_id, purpose, parse_iso(as_of),
                              current_job_id())


@one_job_per_person
def check_consent_with(services: Services, person_id: int, purpose: str, moment: datetime,
                       job_id: str | None) -> str:
    """Do what the person's consent to ``purpose`` (config key) needs at ``moment``, on the
    CRM's row now and the ledger (plans.plan_expiry):

    - due for renewal: mail the re-permission request with a fresh link, once per term, and
      record it with the term and the day the consent lapses; without an address, record that
      no mail could go (the consent then lapses at the end of its term);
    - lapsed, ``on_expiry: withdraw``: write WITHDRAWN with the comment "Consent expired …",
      unsubscribe from the purpose's subscriptions, each recorded in the ledger;
    - lapsed, ``on_expiry: report``: record in the ledger that it lapsed, once per term;
    - else (renewed, withdrawn meanwhile, the purpose's expiry removed): nothing.

    Returns:
        What it did, in words (the job's result; no personal data).

    Raises:
        UnusableAddressError: (permanent) several addresses or a line break: support must look.
    """
    found = services.config.purposes.get(purpose)
    if found is None or found.expiry is None:
        return f"nothing: purpose '{purpose}' does not lapse in the purposes file now"
    person = services.crm.get_person(person_id)
    plan = plan_expiry(services.config, person, found, services.ledger.entries(person_id),
                       moment, job_id=job_id)
    decision = plan.decision
    if decision.action == REMIND:
        return _remind(services, person, found, decision, job_id)
    write_consents(services, person_id, plan.steps)
    change_subscriptions(services, person, plan.subscriptions)
    if plan.lapse is not None:
        services.ledger.record(person_id, plan.lapse)
    if plan.steps:
        return f"withdrawn: the consent lapsed on {decision.lapses_on.date().isoformat()}"
    if plan.lapse is not None:
        return f"reported: the consent lapsed on {decision.lapses_on.date().isoformat()}"
    return f"nothing: {decision.reason}"


def _remind(services: Services, person: Person, purpose: Purpose, decision: ExpiryDecision,
            job_id: str | None) -> str:
    """Mail the re-permission request and record it (or that it could not go)."""
    term = decision.term
    about = {"consent_ends": term.name}
    mail = decide_mail_to(person)
    if mail.unusable:
        raise UnusableAddressError(mail.reason)
    if not mail.send:  # nobody to ask: the consent lapses at the end of its term
        services.ledger.record(person.id, mail_not_sent_entry(
            REPERMISSION, mail.reason, job_id, purpose=purpose.crm_key, lapses_on=term.name,
            **about))
        return f"not sent: {mail.reason}"
    settings = services.settings
    link = services.links.make_link(settings.public_base_url, person.id)
    message = render_repermission(services.config, person, purpose, term.given,
                                  decision.lapses_on, link.url, link.expires, settings.mail_from)
    deliver_counted(services, message)
    services.ledger.record(person.id, mail_sent_entry(
        REPERMISSION, link.token_id, message["Message-ID"], job_id, purpose=purpose.crm_key,
        notice_version=purpose.notice.version if purpose.notice else None,
        lapses_on=iso(decision.lapses_on), **about))
    return f"re-permission mail sent: the consent lapses on {decision.lapses_on.date()}"
