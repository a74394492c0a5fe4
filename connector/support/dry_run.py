"""The dry run of a retry: read the CRM and say what a job would write and send if it ran now,
changing nothing (nothing written, sent, claimed or recorded).

It calls the job's own planner (connector.plans), chosen in ``DRY_RUNS`` by the job's
function and given the job's arguments by name, so it cannot decide otherwise than the job.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rq.job import Job

from connector.evidence import facts
from connector.crm.types import Person
from connector.exceptions import CRMError
from connector.expiry import NOTHING, REMIND
from connector.plans import (MailDecision, decide_mail_to, plan_crm_changes, plan_expiry,
                             plan_onboarding, plan_preferences)
from connector.queueing import (APPLY_PREFERENCES, CHECK_EXPIRY, ONBOARD, RECORD_CRM_CHANGES,
                                RECORD_DELETION, SEND_COPY, SEND_FRESH_LINK, SEND_NEW_NOTICE)
from connector.times import parse_iso
from connector.services import Services
from connector.support.jobs import job_arguments, mask, person_of, step_of


@dataclass(frozen=True)
class PlannedWrite:
    """A consent row the job would write now (CRM keys; the comment masked)."""

    purpose: str
    legal_basis: str
    source: str
    comment: str


@dataclass(frozen=True)
class Plan:
    """What a job would do if it ran now.

    Attributes:
        writes: the consent rows it would write.
        changes: anything else it would change or record, in words.
        mail: what would happen about mail, in words; None for jobs that send none.
        problem: why the job would fail again, or why no plan can be made; None when fine.
    """

    job_id: str
    person_id: int | None
    step: str
    writes: tuple[PlannedWrite, ...] = ()
    changes: tuple[str, ...] = ()
    mail: str | None = None
    problem: str | None = None


def plan(services: Services, job: Job) -> Plan:
    """Read the CRM and say what ``job`` would write and send now.

    Args:
        services: the settings, the config, Redis and the CRM client.
        job: the job to plan (any of the connector's jobs, see DRY_RUNS).
    """
    person_id = person_of(job)
    base = {"job_id": job.id, "person_id": person_id, "step": step_of(job)}
    dry_run = DRY_RUNS.get(job.func_name or "")
    if dry_run is None:
        return Plan(**base, problem=f"no dry run for {job.func_name}: it is not a connector job")
    if person_id is None:
        return Plan(**base, problem="the job names no person")
    if job.func_name == RECORD_DELETION.function:  # the person is gone from the CRM
        return Plan(**base, **dry_run(services, None, job_arguments(job)))
    try:
        person = services.crm.get_person(person_id)
        return Plan(**base, **dry_run(services, person, job_arguments(job)))
    except (CRMError, TypeError) as error:
        return Plan(**base, problem=f"the job would fail again: {mask(str(error))}")


def _onboarding(services: Services, person: Person, arguments: Mapping[str, Any]) -> dict:
    known = services.ledger.last_known_consents(person.id) if person.consents else None
    onboarding = plan_onboarding(services.config, person, known=known,
                                 own_associate_id=services.settings.associate_id)
    return {"writes": _writes(onboarding.steps),
            "changes": _recorded(onboarding.found),
            "mail": _confirmation_mail(services, person, onboarding.mail)}


def _preferences(services: Services, person: Person, arguments: Mapping[str, Any]) -> dict:
    preferences = plan_preferences(services.config, person, arguments.get("choices") or {},
                                   arguments.get("proof") or {}, arguments.get("subscriptions"),
                                   renewals=arguments.get("renewals") or ())
    return {"writes": _writes(preferences.steps),
            "changes": _shipment_changes(preferences.subscriptions)}


def _fresh_link(services: Services, person: Person, arguments: Mapping[str, Any]) -> dict:
    return _mail_if_possible(person, "would mail a fresh link to the person's address on record")


def _copy(services: Services, person: Person, arguments: Mapping[str, Any]) -> dict:
    return _mail_if_possible(person, "would mail a copy of the person's data (their export) "
                                     "to their address on record")


def _new_notice(services: Services, person: Person, arguments: Mapping[str, Any]) -> dict:
    return _mail_if_possible(person, f"would mail the new text of {arguments.get('purpose')}'s "
                                     f"notice (once per version) to their address on record")


def _expiry(services: Services, person: Person, arguments: Mapping[str, Any]) -> dict:
    purpose = services.config.purposes.get(arguments.get("purpose"))
    if purpose is None or purpose.expiry is None:
        return {"changes": (f"nothing: purpose '{arguments.get('purpose')}' does not lapse in "
                            f"the purposes file now",)}
    expiry = plan_expiry(services.config, person, purpose, services.ledger.entries(person.id),
                         parse_iso(arguments.get("as_of")))
    decision = expiry.decision
    if decision.action == REMIND:
        return _mail_if_possible(person, f"would mail a request to renew the consent to "
                                         f"{purpose.crm_key} (it lapses on "
                                         f"{decision.lapses_on.date()}) to their address on "
                                         f"record")
    return {"writes": _writes(expiry.steps),
            "changes": _shipment_changes(expiry.subscriptions)
            + ((f"would record in the ledger that the consent to {purpose.crm_key} lapsed",)
               if expiry.lapse else ())
            + ((f"nothing: {decision.reason}",) if decision.action == NOTHING else ())}


def _mail_if_possible(person: Person, would: str) -> dict:
    decision = decide_mail_to(person)
    return {"mail": would if decision.send else _no_mail(decision)}


def _crm_changes(services: Services, person: Person, arguments: Mapping[str, Any]) -> dict:
    return {"changes": _recorded(plan_crm_changes(
        person, services.ledger.last_known_consents(person.id)))}


def _recorded(entries) -> tuple[str, ...]:
    return tuple(f"would record {entry.action} of {entry.details['purpose']} in the ledger"
                 for entry in entries)


def _deletion(services: Services, person: None, arguments: Mapping[str, Any]) -> dict:
    days = services.settings.ledger_erase_after_days
    return {"changes": (f"would schedule the erasure of the identifying proof in the person's "
                        f"ledger in {days} days (LEDGER_ERASE_AFTER_DAYS), unless requested "
                        f"before",)}


DRY_RUNS: dict[str, Callable[[Services, Person | None, Mapping[str, Any]], dict]] = {
    ONBOARD.function: _onboarding,
    APPLY_PREFERENCES.function: _preferences,
    SEND_FRESH_LINK.function: _fresh_link,
    SEND_COPY.function: _copy,
    SEND_NEW_NOTICE.function: _new_notice,
    CHECK_EXPIRY.function: _expiry,
    RECORD_CRM_CHANGES.function: _crm_changes,
    RECORD_DELETION.function: _deletion,
}
"""The dry run of each connector job, by the job's function (connector.queueing)."""


def _writes(steps) -> tuple[PlannedWrite, ...]:
    return tuple(PlannedWrite(step.write.purpose.crm_key, step.write.legal_basis.crm_key,
                              step.write.source.crm_key, mask(step.write.comment))
                 for step in steps)


def _shipment_changes(steps) -> tuple[str, ...]:
    return tuple(f"would set shipment type {step.entry.details['shipment_type']}: "
                 f"{step.entry.details['change']}" for step in steps)


def _confirmation_mail(services: Services, person: Person, decision: MailDecision) -> str:
    """What sending the confirmation mail once would do now, without taking its claim."""
    if not decision.send:
        return _no_mail(decision)
    state = facts.confirmation_mail_state(services.database, person.id)
    if state == facts.SENT:
        return "no mail: the confirmation mail was sent before"
    if state is not None:
        return ("would send the confirmation mail again: an earlier attempt stopped while "
                "sending it (it may have gone out)")
    return "would send the confirmation mail to the person's address on record"


def _no_mail(decision: MailDecision) -> str:
    """Why no mail would go out; an unusable address fails the job again."""
    return (f"no mail, and the job would fail again: {decision.reason}" if decision.unusable
            else f"no mail: {decision.reason}")
