"""The RQ jobs. Thin: they read from the CRM, ask the domain what to do, write back and
record it. They take ids, never objects, and running one twice changes nothing more."""

from rq import get_current_job

from connector import defaults, metrics
from connector.consent import (ConsentRecord, ConsentWrite, Source, decide_defaults,
                               decide_preference_changes, decide_subscription_changes, fold_key,
                               resolve_subscription_choices)
from connector.crm import Person
from connector.exceptions import MailError
from connector.subscriptions.pending import clear_pending
from workers import runtime
from workers.mailer import render_confirmation
from workers.reconcile import ONBOARDED_KEY

ACTOR = "connector"
CONFIRMATION_MARKER = "connector:mail:confirmation:{}"
"""Redis key per person: "sending" while an attempt holds the claim, then "sent" for good."""
PERSON = "person"


class MailInProgressError(MailError):
    """Another attempt holds the claim on this person's confirmation mail; retry later."""


def onboard_person(person_id: int, event_id: str | None = None) -> dict:
    """Give a new person their default consents and one confirmation mail.

    1. Read the person from the CRM (one GET, consents included).
    2. Write each default consent the person has no row for, and record it in the ledger.
       Purposes that already have a row are left alone: a withdrawal or consent wins.
    3. Send the confirmation mail once, if the person has an email address and their
       source asks for confirmation by mail.

    Args:
        person_id: the CRM's person id.
        event_id: the webhook's EventId, kept in the ledger as the trigger.

    Returns:
        A summary with CRM keys only (no personal data), kept as the job's result.
    """
    rt = runtime.current()
    job = get_current_job()
    job_id = job.id if job else None

    person = rt.crm.get_person(person_id)
    source = rt.config.source_for(person.created_by_associate_id)
    writes = decide_defaults(rt.config, person.consents, source)
    for write in writes:
        rt.crm.set_consent(person_id, write.purpose.crm_key, write.source.crm_key,
                           write.legal_basis.crm_key, write.comment)
        rt.ledger.append(person_id, "consent.recorded", purpose=write.purpose.crm_key,
                         legal_basis=write.legal_basis.crm_key, source=write.source.crm_key,
                         comment=write.comment, actor=ACTOR, job_id=job_id, event_id=event_id)

    consents = person.consents + tuple(_as_record(write) for write in writes)
    mail = send_confirmation_once(person, consents, source, job_id)
    rt.redis.sadd(ONBOARDED_KEY, person_id)  # the reconciliation skips persons seen here
    return {"person_id": person_id, "written": [w.purpose.crm_key for w in writes],
            "mail": mail}


def apply_preferences(person_id: int, choices: dict[str, bool], proof: dict[str, str],
                      subscriptions: dict[str, bool] | None = None) -> dict:
    """Write what the person chose on their page (or through a one-click unsubscribe link) to
    the CRM, with its proof in the ledger.

    1. Read the person from the CRM: the choice is applied to the state as it is now
       (consents and shipment types).
    2. Complete the choices with what subscriptions imply (resolve_subscription_choices):
       subscribing gives the consent it needs, a purpose that is off unsubscribes from all.
    3. Decide the consent rows to write (only what differs; never a deletion: "off" is
       WITHDRAWN) and write each; consent goes in before any subscription is switched on.
    4. Change the shipment types' selection in one PATCH that touches nothing else.
    5. Record every change in the ledger with the proof, then forget this job's "being
       saved" marks.

    Args:
        person_id: the CRM's person id.
        choices: config purpose key → True (give consent / allow) or False (withdraw / object).
        proof: from the page: submitted_at, token_id, notice versions by purpose key
            (``notice:<key>``), user_agent and ip (protected, see subscriptions/proof.py);
            ``via`` says how the choice was made when not on the page (``one-click``).
        subscriptions: config subscription key → subscribe (True) / unsubscribe (False).

    Returns:
        A summary with CRM keys and ids only, kept as the job's result.
    """
    rt = runtime.current()
    job = get_current_job()
    job_id = job.id if job else None

    person = rt.crm.get_person(person_id)
    choices, wanted = resolve_subscription_choices(rt.config, person.consents,
                                                   person.shipment_types, choices,
                                                   subscriptions or {})
    before = {fold_key(record.purpose): record.legal_basis for record in person.consents}
    writes = decide_preference_changes(rt.config, person.consents, choices,
                                       proof=f"link {proof.get('token_id', '?')}")
    proof_fields = {"submitted_at": proof.get("submitted_at"), "token_id": proof.get("token_id"),
                    "user_agent": proof.get("user_agent"), "ip": proof.get("ip"),
                    "via": proof.get("via")}
    for write in writes:
        rt.crm.set_consent(person_id, write.purpose.crm_key, write.source.crm_key,
                           write.legal_basis.crm_key, write.comment)
        rt.ledger.append(
            person_id, "consent.changed", purpose=write.purpose.crm_key,
            previous_legal_basis=before.get(fold_key(write.purpose.crm_key), ""),
            legal_basis=write.legal_basis.crm_key, source=write.source.crm_key,
            comment=write.comment, actor=PERSON, job_id=job_id,
            notice_version=proof.get(f"notice:{write.purpose.key}"), **proof_fields)

    changes = decide_subscription_changes(rt.config, person.shipment_types, wanted)
    if changes:
        rt.crm.set_shipment_types(person_id, {c.shipment_type.id: c.selected for c in changes},
                                  person.shipment_types)
    for change in changes:
        purpose = rt.config.purposes.get(change.subscription.purpose)
        rt.ledger.append(
            person_id, "subscription.changed", subscription=change.subscription.key,
            shipment_type=f"{change.shipment_type.id} {change.shipment_type.name}".strip(),
            change=f"{change.previous} → {change.now}", actor=PERSON, job_id=job_id,
            notice_version=proof.get(f"notice:{purpose.key}") if purpose else None,
            **proof_fields)
    if job_id:
        clear_pending(rt.redis, person_id, job_id)
    return {"person_id": person_id, "written": [w.purpose.crm_key for w in writes],
            "shipment_types": {c.shipment_type.id: c.selected for c in changes}}


def record_crm_changes(person_id: int, event_id: str | None = None) -> dict:
    """Record in the ledger what a CRM user changed in the person's consents, so the history
    is complete and not only the connector's own writes.

    SuperOffice's person.consented / person.unconsented events do not say which purpose
    changed, so the person's rows are compared with what the ledger last knew of each.
    Running it again finds nothing new.
    """
    rt = runtime.current()
    person = rt.crm.get_person(person_id)
    known = rt.ledger.last_known_consents(person_id)
    changed = []
    for record in person.consents:
        before = known.get(record.purpose, {})
        if (before.get("legal_basis"), before.get("source")) == (record.legal_basis, record.source):
            continue
        rt.ledger.append(
            person_id, "crm.consent_changed", purpose=record.purpose,
            previous_legal_basis=before.get("legal_basis", ""), legal_basis=record.legal_basis,
            source=record.source, comment=record.comment, actor="crm user",
            associate_id=record.updated_by or record.registered_by, event_id=event_id,
            crm_updated=record.updated.isoformat() if record.updated else None)
        changed.append(record.purpose)
    present = {record.purpose for record in person.consents}
    for purpose, before in known.items():
        if purpose not in present and before.get("action") != "crm.consent_removed":
            rt.ledger.append(person_id, "crm.consent_removed", purpose=purpose,
                             previous_legal_basis=before.get("legal_basis", ""), legal_basis="",
                             actor="crm user", event_id=event_id)
            changed.append(purpose)
    return {"person_id": person_id, "recorded": changed}


def send_fresh_link(person_id: int) -> str:
    """Mail the person a fresh link to their page (they asked, from an expired one).

    The mail is the confirmation mail again: what we record, why, and the new link.
    """
    rt = runtime.current()
    job = get_current_job()
    person = rt.crm.get_person(person_id)
    if not person.email:
        return "not sent: the person has no email address"
    _deliver_confirmation(person, person.consents, "fresh-link", job.id if job else None)
    return "sent"


def send_confirmation_once(person: Person, consents: tuple[ConsentRecord, ...], source: Source,
                           job_id: str | None) -> str:
    """Send the person's confirmation mail unless it was sent before; say what happened.

    A claim in Redis makes the mail go out at most once, however often the job runs: the
    claim is taken before sending, released when delivery fails (so a retry sends it) and
    turned into a permanent "sent" marker afterwards.
    """
    rt = runtime.current()
    if not source.confirm_by_email:
        return f"not sent: source {source.crm_key} is not confirmed by mail"
    if not person.email:
        return "not sent: the person has no email address"

    key = CONFIRMATION_MARKER.format(person.id)
    if not rt.redis.set(key, "sending", nx=True, ex=defaults.MAIL_CLAIM_TTL):
        if rt.redis.get(key) == b"sent":
            return "already sent"
        raise MailInProgressError("confirmation mail is being sent by another attempt")

    try:
        _deliver_confirmation(person, consents, "confirmation", job_id)
    except MailError:
        rt.redis.delete(key)
        raise
    rt.redis.set(key, "sent")
    return "sent"


def _deliver_confirmation(person: Person, consents: tuple[ConsentRecord, ...], kind: str,
                          job_id: str | None) -> None:
    """Make a fresh personal link, mail it with what we record, and note it in the ledger."""
    rt = runtime.current()
    link = rt.links.make_link(rt.settings.public_base_url, person.id)
    message = render_confirmation(rt.config, person, consents, link.url, link.expires,
                                  rt.settings.mail_from)
    try:
        rt.mailer.deliver(message)
    except MailError:
        metrics.count_mail(rt.redis, "failed")
        raise
    metrics.count_mail(rt.redis, "sent")
    rt.ledger.append(person.id, "mail.sent", mail=kind, token_id=link.token_id,
                     message_id=message["Message-ID"], actor=ACTOR, job_id=job_id)


def _as_record(write: ConsentWrite) -> ConsentRecord:
    return ConsentRecord(purpose=write.purpose.crm_key, legal_basis=write.legal_basis.crm_key,
                         source=write.source.crm_key, comment=write.comment)
