"""The RQ jobs. Each is thin: read what it needs, ask its planner (connector.plans) what to do,
do it, record it. They take ids and small dicts, never objects, and running one twice writes
nothing new and sends no second mail.

The entry points (``onboard_person`` …) are what connector.queueing names; they run the
``*_with`` functions with the services the worker built (workers.worker.current_services).
Tests call the ``*_with`` functions with services of their own. A person's jobs run one at a
time (``one_job_per_person``).
"""

from collections.abc import Callable
from email.message import EmailMessage
from functools import wraps
from datetime import timedelta
from typing import Any, TypeVar

import redis
from rq import get_current_job

from connector import defaults, keys, metrics
from connector.crm.types import ConsentRecord, Person
from connector.evidence.entry import Entry
from connector.evidence import facts
from connector.exceptions import MailError, PersonBusyError, UnusableAddressError
from connector.mail.confirmation import confirmation_message_id, render_confirmation
from connector.pending import clear_pending
from connector.plans import (CONNECTOR, ConsentStep, MailDecision, SubscriptionStep,
                             decide_mail_to, deletion_entry, mail_sent_entry, onboarded_entry,
                             plan_crm_changes, plan_onboarding, plan_preferences,
                             shipment_selection)
from connector.services import Services
from connector.superoffice.webhook import PERSON_DELETED
from connector.times import iso, now
from workers.worker import current_services


Job = TypeVar("Job", bound=Callable[..., Any])


def one_job_per_person(job: Job) -> Job:
    """Run ``job(services, person_id, …)`` holding the person's lock in Redis, shared by every
    worker: two events for one person (a redelivery, a person.created and a person.consented
    close together) must not both read the person, both find a consent missing and both write
    it. Waits up to PERSON_LOCK_WAIT for the person's other job; the lock is released on every
    path and lapses by itself (JOB_TIMEOUT and a margin) if its worker dies. The lock holds the
    job's id: the retry of a job whose worker died takes over the lock its dead attempt left.

    Raises:
        PersonBusyError: (transient) the other job did not finish in time; RQ retries this one.
    """
    @wraps(job)
    def holding_the_persons_lock(services: Services, person_id: int, *args, **kwargs):
        lock = services.redis.lock(keys.person_lock(person_id),
                                   timeout=defaults.JOB_TIMEOUT + 30,
                                   blocking_timeout=defaults.PERSON_LOCK_WAIT)
        token = current_job_id()
        lock.local.token = token.encode() if token else None
        if not lock.acquire(token=token, blocking=False):  # the usual case: one round trip
            if lock.owned():
                lock.reacquire()  # left by this job's own attempt, whose worker died
            elif not lock.acquire(token=token):
                raise PersonBusyError(person_id)
        try:
            return job(services, person_id, *args, **kwargs)
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                pass  # it lapsed while the job ran on: nothing of ours to release
    return holding_the_persons_lock  # type: ignore[return-value]

def onboard_person(person_id: int, event_id: str | None = None) -> dict:
    """Give a new person their default consents and one confirmation mail (onboard_with)."""
    return onboard_with(current_services(), person_id, event_id, current_job_id())


def apply_preferences(person_id: int, choices: dict[str, bool], proof: dict[str, str],
                      subscriptions: dict[str, bool] | None = None,
                      renewals: list[str] | None = None) -> dict:
    """Write what the person chose on their page or through a one-click unsubscribe link
    (apply_preferences_with)."""
    return apply_preferences_with(current_services(), person_id, choices, proof,
                                  subscriptions, current_job_id(), renewals)


def record_crm_changes(person_id: int, event_id: str | None = None) -> dict:
    """Record in the ledger what a CRM user changed in the person's consents
    (record_crm_changes_with)."""
    return record_crm_changes_with(current_services(), person_id, event_id)


def record_deletion(person_id: int, event_id: str | None = None) -> dict:
    """Schedule the erasure of a deleted person's identifying proof (record_deletion_with)."""
    return record_deletion_with(current_services(), person_id, event_id)


def send_fresh_link(person_id: int) -> str:
    """Mail the person a fresh link to their page (send_fresh_link_with)."""
    return send_fresh_link_with(current_services(), person_id, current_job_id())


@one_job_per_person
def onboard_with(services: Services, person_id: int, event_id: str | None,
                 job_id: str | None) -> dict:
    """Give a new person their default consents and one confirmation mail.

    1. Read the person from the CRM (one GET, consents included), and the ledger when the
       person has consent rows already.
    2. Plan (plans.plan_onboarding): the rows the ledger does not know, recorded as the
       CRM's; the defaults the person has no row for (a withdrawal, a consent or a CRM
       user's choice always wins).
    3. Write each default and record it in the ledger.
    4. Send the confirmation mail once, if the person has an address and their source asks
       for confirmation by mail (the evidence database decides "once").
    5. Record the person as onboarded, once, with its ledger entry (the reconciliation skips
       them), and the mail as sent, in one transaction.
    6. Fail (permanently, for support) when the CRM's address cannot be used: several
       addresses or a line break in it must never reach a mail's envelope.

    Returns:
        A summary with CRM keys only (no personal data), kept as the job's result.
    """
    person = services.crm.get_person(person_id)
    known = services.ledger.last_known_consents(person_id) if person.consents else None
    plan = plan_onboarding(services.config, person, known=known, event_id=event_id,
                           own_associate_id=services.settings.associate_id, job_id=job_id)
    for entry in plan.found:
        services.ledger.record(person_id, entry)
    write_consents(services, person_id, plan.steps)
    mail_sent = None
    if plan.mail.send:
        mail_sent = _send_confirmation_once(services, person, plan.consents, job_id)
        mail = "sent" if mail_sent else "already sent"
    else:
        mail = f"not sent: {plan.mail.reason}"
    facts.mark_onboarded(services.database, person_id, onboarded_entry(event_id, job_id),
                         mail_sent=mail_sent)
    if plan.mail.unusable:  # the consents are written; the mail waits for a usable address
        raise UnusableAddressError(plan.mail.reason)
    return {"person_id": person_id, "written": [s.write.purpose.crm_key for s in plan.steps],
            "mail": mail}


@one_job_per_person
def apply_preferences_with(services: Services, person_id: int, choices: dict[str, bool],
                           proof: dict[str, str], subscriptions: dict[str, bool] | None,
                           job_id: str | None, renewals: list[str] | None = None) -> dict:
    """Write what the person chose to the CRM, with its proof in the ledger.

    1. Read the person from the CRM: the choice is applied to the state as it is now.
    2. Plan (plans.plan_preferences): the consent rows and shipment types that change.
    3. Write the consents, each recorded in the ledger; consent goes in before any
       subscription is switched on.
    4. Change the shipment types' selection in one PATCH that touches nothing else, and
       record each change.
    5. Forget this job's "being saved" marks.

    Returns:
        A summary with CRM keys and ids only, kept as the job's result.
    """
    person = services.crm.get_person(person_id)
    plan = plan_preferences(services.config, person, choices, proof, subscriptions,
                            renewals=renewals or (), job_id=job_id)
    write_consents(services, person_id, plan.steps)
    change_subscriptions(services, person, plan.subscriptions)
    if job_id:
        clear_pending(services.redis, person_id, job_id)
    return {"person_id": person_id, "written": [s.write.purpose.crm_key for s in plan.steps],
            "shipment_types": plan.selection}


@one_job_per_person
def record_crm_changes_with(services: Services, person_id: int, event_id: str | None) -> dict:
    """Record in the ledger what a CRM user changed in the person's consents, so the history
    is complete and not only the connector's own writes (plans.plan_crm_changes). Running it
    again finds nothing new."""
    person = services.crm.get_person(person_id)
    entries = plan_crm_changes(person, services.ledger.last_known_consents(person_id),
                               event_id=event_id)
    for entry in entries:
        services.ledger.record(person_id, entry)
    return {"person_id": person_id, "recorded": [entry.details["purpose"] for entry in entries]}


def record_deletion_with(services: Services, person_id: int, event_id: str | None) -> dict:
    """Record that the CRM deleted the person for good, and schedule the erasure of the
    identifying proof in their ledger (IP network and hash, browser) LEDGER_ERASE_AFTER_DAYS
    from now; with 0 days, erase it at once. The consent facts stay: they are the proof the
    controller keeps while it may have to show it. Running it again changes nothing.

    The CRM is not asked: the person is gone from it.
    """
    days = services.settings.ledger_erase_after_days
    due = now().replace(microsecond=0) + timedelta(days=days)
    scheduled = facts.request_erasure(services.database, person_id,
                                      deletion_entry(event_id, iso(due)), due,
                                      requested_by=f"{PERSON_DELETED} webhook")
    erased = facts.erase_now(services.database, person_id, CONNECTOR) if not days else 0
    return {"person_id": person_id,
            "erase_after": iso(due) if scheduled else "requested before",
            "erased_entries": erased}


@one_job_per_person
def send_fresh_link_with(services: Services, person_id: int, job_id: str | None) -> str:
    """Mail the person a fresh link to their page (they asked, from an expired one).

    The mail is the confirmation mail again: what we record, why, and the new link.
    """
    person, decision = person_to_mail(services, person_id)
    if not decision.send:
        return f"not sent: {decision.reason}"
    entry = _deliver_confirmation(services, person, person.consents, "fresh-link", job_id)
    services.ledger.record(person.id, entry)
    return "sent"


def write_consents(services: Services, person_id: int, steps: tuple[ConsentStep, ...]) -> None:
    """Write each consent to the CRM, then record it in the ledger, one after the other."""
    for step in steps:
        write = step.write
        services.crm.set_consent(person_id, write.purpose.crm_key, write.source.crm_key,
                                 write.legal_basis.crm_key, write.comment)
        services.ledger.record(person_id, step.entry)


def change_subscriptions(services: Services, person: Person,
                         steps: tuple[SubscriptionStep, ...]) -> None:
    """Change the shipment types' selection in one PATCH that touches nothing else, then
    record each change in the ledger."""
    if not steps:
        return
    services.crm.set_shipment_types(person.id, shipment_selection(steps), person.shipment_types)
    for step in steps:
        services.ledger.record(person.id, step.entry)


def _send_confirmation_once(services: Services, person: Person,
                            consents: tuple[ConsentRecord, ...],
                            job_id: str | None) -> Entry | None:
    """Send the person's confirmation mail unless it was sent before; return the ``mail.sent``
    entry for the caller to record (facts.mark_onboarded), None when it went out before.

    The claim (connector.evidence.facts) makes the mail go out once, however often the job
    runs; only a worker that dies between taking the claim and recording "sent" makes the next
    attempt send it again (it may have gone out): with the same Message-ID, and the ledger
    says so.
    """
    claim = facts.claim_confirmation_mail(services.database, person.id, job_id)
    if claim is facts.Claim.SENT:
        return None
    try:
        return _deliver_confirmation(services, person, consents, "confirmation", job_id,
                                     resent=claim is facts.Claim.RESUMED)
    except MailError:
        facts.release_confirmation_mail(services.database, person.id)
        raise


def _deliver_confirmation(services: Services, person: Person,
                          consents: tuple[ConsentRecord, ...], kind: str,
                          job_id: str | None, resent: bool = False) -> Entry:
    """Make a fresh personal link and mail it with what we record; return the ledger entry
    that records the mail. The one confirmation mail has a Message-ID of its own that every
    attempt repeats."""
    settings = services.settings
    link = services.links.make_link(settings.public_base_url, person.id)
    message_id = (confirmation_message_id(person.id, settings.mail_from, settings.public_base_url)
                  if kind == "confirmation" else None)
    message = render_confirmation(services.config, person, consents, link.url, link.expires,
                                  settings.mail_from, message_id=message_id,
                                  export_link=link.export_url)
    deliver_counted(services, message)
    return mail_sent_entry(kind, link.token_id, message["Message-ID"], job_id, resent)


def person_to_mail(services: Services, person_id: int) -> tuple[Person, MailDecision]:
    """Read the person from the CRM and decide whether a mail the person asked for may go to
    their address on record (plans.decide_mail_to).

    Raises:
        UnusableAddressError: (permanent) several addresses or a line break: support must look.
    """
    person = services.crm.get_person(person_id)
    decision = decide_mail_to(person)
    if decision.unusable:
        raise UnusableAddressError(decision.reason)
    return person, decision


def deliver_counted(services: Services, message: EmailMessage) -> None:
    """Send ``message`` (connector.mail.delivery) and count it sent or failed (metrics)."""
    try:
        services.mailer.deliver(message)
    except MailError:
        metrics.count_mail(services.redis, "failed")
        raise
    metrics.count_mail(services.redis, "sent")


def current_job_id() -> str | None:
    """The id of the RQ job running now; None outside a job (tests call the bodies)."""
    job = get_current_job()
    return job.id if job else None
