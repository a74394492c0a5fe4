"""What each job will do, decided before it does anything: one planner per job.

A planner takes what the job read (the person as the CRM holds them now, what the ledger last
knew) and returns the CRM writes, the mail decision and the ledger entry of every write. It
does no I/O, so the job (workers/jobs.py) and the support dry run (connector.support.dry_run)
call the same planner and cannot drift apart, and it is tested without a worker or a CRM.
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from connector.consent import (ConsentConfig, ConsentWrite, Purpose, Source, SubscriptionChange,
                               decide_defaults, decide_preference_changes,
                               decide_subscription_changes, fold_key,
                               resolve_subscription_choices, withdrawn_basis)
from connector.crm.types import COMMENT_MAX_LENGTH, ConsentRecord, Person
from connector.emails import single_address
from connector.evidence.entry import Entry
from connector.evidence.ledger import last_known_consents
from connector.expiry import (EXPIRED, LAPSED, REPORT_LAPSE, WITHDRAW_CONSENT,
                              ExpiryDecision, decide_expiry, expiry_history)
from connector.times import iso

CONNECTOR, PERSON, CRM_USER = "connector", "person", "crm user"
"""Who the ledger says acted: the connector itself, the person (their page, a link in a
mail), a user of the CRM."""

PROOF_FIELDS = ("submitted_at", "token_id", "user_agent", "ip", "via")
"""What a choice's proof (connector.proof.choice_proof) carries into each ledger entry."""


@dataclass(frozen=True)
class ConsentStep:
    """A consent row to write to the CRM, and the ledger entry that records it."""

    write: ConsentWrite
    entry: Entry


@dataclass(frozen=True)
class SubscriptionStep:
    """A shipment type whose selection changes, and the ledger entry that records it."""

    change: SubscriptionChange
    entry: Entry


@dataclass(frozen=True)
class MailDecision:
    """Whether a mail goes to the person; ``reason`` says why not (``""`` when it does).
    ``unusable`` marks an address that is there but cannot be used: the job fails for support
    to see, rather than ending quietly without a mail."""

    send: bool
    reason: str = ""
    unusable: bool = False


@dataclass(frozen=True)
class OnboardingPlan:
    """What onboarding a new person does.

    Attributes:
        source: where the person's data came from.
        steps: the default consents the person has no row for, in config order.
        mail: whether the confirmation mail is due (sent once: connector.evidence.facts).
        consents: the person's rows once the steps are written (what the mail describes).
        found: the ledger entries of the rows the CRM had already that the ledger does not
            know (plan_crm_changes): a consent given on a web form or by a CRM user before
            the connector saw the person is kept as evidence, and lapses like any other.
    """

    source: Source
    steps: tuple[ConsentStep, ...]
    mail: MailDecision
    consents: tuple[ConsentRecord, ...]
    found: tuple[Entry, ...] = ()


@dataclass(frozen=True)
class PreferencesPlan:
    """What writing a person's choices does: consents first, then the shipment types."""

    steps: tuple[ConsentStep, ...]
    subscriptions: tuple[SubscriptionStep, ...]

    @property
    def selection(self) -> dict[int, bool]:
        """Shipment type id → selected, for the one PATCH that changes them."""
        return shipment_selection(self.subscriptions)


def shipment_selection(steps: tuple[SubscriptionStep, ...]) -> dict[int, bool]:
    """Shipment type id → selected: what ``steps`` change, in one PATCH."""
    return {step.change.shipment_type.id: step.change.selected for step in steps}


def decide_confirmation_mail(source: Source, person: Person) -> MailDecision:
    """The confirmation mail is due when the person's source asks for it and they have an
    address."""
    if not source.confirm_by_email:
        return MailDecision(False, f"source {source.crm_key} is not confirmed by mail")
    return decide_mail_to(person)


def decide_mail_to(person: Person) -> MailDecision:
    """A mail can go to the person only when the CRM has exactly one valid address for them
    (emails.single_address)."""
    if not person.email:
        return MailDecision(False, "the person has no email address")
    try:
        single_address(person.email)
    except ValueError as problem:
        return MailDecision(False, f"the person's email address in the CRM cannot be used: "
                                   f"{problem}; correct it in the CRM, then retry this job",
                            unusable=True)
    return MailDecision(True)


def plan_onboarding(config: ConsentConfig, person: Person, *,
                    known: Mapping[str, Mapping[str, str]] | None = None,
                    own_associate_id: int | None = None,
                    event_id: str | None = None, job_id: str | None = None) -> OnboardingPlan:
    """Plan onboarding: the rows the CRM has already, recorded in the ledger where it does not
    know them; the defaults the person lacks (a row the CRM has always wins); the
    confirmation mail.

    Args:
        config: the purposes config in force.
        person: the person as read from the CRM now.
        known: what the ledger last knew of each of the person's rows
            (Ledger.last_known_consents); None when not read (the person has no rows).
        own_associate_id: the connector's associate id (a row it wrote in an interrupted
            attempt is recorded as its own, plan_crm_changes).
        event_id: the webhook's EventId (the trigger), for the ledger.
        job_id: the job's id, for the ledger.
    """
    source = config.source_for(person.created_by_associate_id)
    writes = decide_defaults(config, person.consents, source)
    steps = tuple(ConsentStep(write, Entry("consent.recorded", {
        "purpose": write.purpose.crm_key, "legal_basis": write.legal_basis.crm_key,
        "source": write.source.crm_key, "comment": write.comment, "actor": CONNECTOR,
        "job_id": job_id, "event_id": event_id})) for write in writes)
    return OnboardingPlan(
        source=source, steps=steps, mail=decide_confirmation_mail(source, person),
        consents=person.consents + tuple(_as_record(write) for write in writes),
        found=plan_crm_changes(person, known, event_id=event_id,
                               own_associate_id=own_associate_id) if known is not None else ())


def plan_preferences(config: ConsentConfig, person: Person, choices: Mapping[str, bool],
                     proof: Mapping[str, str], subscriptions: Mapping[str, bool] | None = None,
                     *, renewals: Collection[str] = (),
                     job_id: str | None = None) -> PreferencesPlan:
    """Plan writing what the person chose, applied to the CRM's state now.

    1. Complete the choices with what subscriptions imply (resolve_subscription_choices):
       subscribing gives the consent it needs, a purpose that is off unsubscribes from all.
    2. Decide the consent rows to write (only what differs; never a deletion: "off" is
       WITHDRAWN), each with its ledger entry and the proof.
    3. Decide the shipment types whose selection changes, each with its ledger entry.

    Args:
        choices: config purpose key → True (give consent / allow) or False (withdraw / object).
        proof: from the page or the link: submitted_at, token_id, notice versions by purpose
            key (``notice:<key>``), user_agent, ip, and ``via`` when not on the page.
        subscriptions: config subscription key → subscribe (True) / unsubscribe (False).
        renewals: config purpose keys whose consent the person renews.

    Raises:
        TypeError: a choice is not True or False.
    """
    choices, wanted = resolve_subscription_choices(config, person.consents,
                                                   person.shipment_types, choices,
                                                   subscriptions or {})
    before = {fold_key(record.purpose): record.legal_basis for record in person.consents}
    writes = decide_preference_changes(config, person.consents, choices,
                                       proof=f"link {proof.get('token_id', '?')}",
                                       renewals=renewals)
    proven = {name: proof.get(name) for name in PROOF_FIELDS}
    steps = tuple(ConsentStep(write, Entry("consent.changed", {
        "purpose": write.purpose.crm_key,
        "previous_legal_basis": before.get(fold_key(write.purpose.crm_key), ""),
        "legal_basis": write.legal_basis.crm_key, "source": write.source.crm_key,
        "comment": write.comment, "actor": PERSON, "job_id": job_id,
        "notice_version": proof.get(f"notice:{write.purpose.key}"), **proven}))
        for write in writes)
    changes = decide_subscription_changes(config, person.shipment_types, wanted)
    return PreferencesPlan(steps=steps, subscriptions=tuple(
        _subscription_step(change, PERSON, job_id, notice_version=proof.get(
            f"notice:{change.subscription.purpose}"), **proven) for change in changes))


def _subscription_step(change: SubscriptionChange, actor: str, job_id: str | None,
                       **facts: str | None) -> SubscriptionStep:
    """A shipment type's change with the ledger entry that records it, who made it and
    ``facts`` (the proof, or why)."""
    return SubscriptionStep(change, Entry("subscription.changed", {
        "subscription": change.subscription.key,
        "shipment_type": f"{change.shipment_type.id} {change.shipment_type.name}".strip(),
        "change": f"{change.previous} → {change.now}", "actor": actor, "job_id": job_id,
        **facts}))


@dataclass(frozen=True)
class ExpiryPlan:
    """What checking a consent's term does (decision.action): nothing, a re-permission mail
    (the job makes it), the withdrawal of a lapsed consent with its subscriptions, or the
    ledger's record that it lapsed and was left as it is (``lapse``)."""

    decision: ExpiryDecision
    steps: tuple[ConsentStep, ...] = ()
    subscriptions: tuple[SubscriptionStep, ...] = ()
    lapse: Entry | None = None


def plan_expiry(config: ConsentConfig, person: Person, purpose: Purpose,
                entries: Sequence[Mapping[str, str]], moment: datetime, *,
                job_id: str | None = None) -> ExpiryPlan:
    """Plan what the person's consent to ``purpose`` needs at ``moment`` (expiry.decide_expiry,
    on the CRM's row now and the person's ledger ``entries``, oldest first).

    A lapsed consent (``on_expiry: withdraw``) is written as withdrawn, with the row's own
    source and a comment saying it expired, and the person is unsubscribed from the
    purpose's subscriptions, as when they withdraw it on their page; with ``on_expiry:
    report`` only the ledger records that it lapsed."""
    row = next((r for r in person.consents if fold_key(r.purpose) == fold_key(purpose.crm_key)),
               None)
    known = last_known_consents(entries)
    decision = decide_expiry(config, purpose, row, known.get(row.purpose) if row else None,
                             expiry_history(entries, purpose), moment)
    if decision.action not in (WITHDRAW_CONSENT, REPORT_LAPSE):
        return ExpiryPlan(decision)
    term = decision.term
    dates = {"given_at": iso(term.given), "consent_ends": term.name,
             "lapses_on": iso(decision.lapses_on), "actor": CONNECTOR, "job_id": job_id}
    if decision.action == REPORT_LAPSE:
        return ExpiryPlan(decision, lapse=Entry(LAPSED, {
            "purpose": purpose.crm_key, "on_expiry": purpose.expiry.on_expiry, **dates}))
    basis = withdrawn_basis(config)
    source = config.source_by_crm_key(row.source) or Source("", row.source, {}, False)
    comment = (f"Consent expired: given {term.given.date().isoformat()}, valid for "
               f"{purpose.expiry.valid_for}, not renewed; recorded by consent-connector"
               )[:COMMENT_MAX_LENGTH]
    step = ConsentStep(ConsentWrite(purpose, basis, source, comment), Entry(EXPIRED, {
        "purpose": purpose.crm_key, "previous_legal_basis": row.legal_basis,
        "legal_basis": basis.crm_key, "source": row.source, "comment": comment, **dates}))
    off = {key: False for key, subscription in config.subscriptions.items()
           if subscription.purpose == purpose.key}
    changes = decide_subscription_changes(config, person.shipment_types, off)
    return ExpiryPlan(decision, (step,), tuple(
        _subscription_step(change, CONNECTOR, job_id, reason="consent expired")
        for change in changes))


def plan_crm_changes(person: Person, known: Mapping[str, Mapping[str, str]], *,
                     event_id: str | None = None,
                     own_associate_id: int | None = None) -> tuple[Entry, ...]:
    """The ledger entries that record what a CRM user changed in the person's consents.

    SuperOffice's person.consented / person.unconsented events do not say which purpose
    changed, so the person's rows are compared with what the ledger last knew of each
    (``known``, Ledger.last_known_consents). Recording them and planning again gives nothing.
    A row last written by ``own_associate_id`` (the connector's own write, whose entry an
    interrupted job did not record) is recorded with the connector as the actor.
    """
    entries = []
    for record in person.consents:
        before = known.get(record.purpose, {})
        if (before.get("legal_basis"), before.get("source")) == (record.legal_basis,
                                                                 record.source):
            continue
        associate = record.updated_by or record.registered_by
        own = own_associate_id is not None and associate == own_associate_id
        entries.append(Entry("crm.consent_changed", {
            "purpose": record.purpose, "previous_legal_basis": before.get("legal_basis", ""),
            "legal_basis": record.legal_basis, "source": record.source,
            "comment": record.comment, "actor": CONNECTOR if own else CRM_USER,
            "associate_id": associate, "event_id": event_id,
            "crm_registered": record.registered.isoformat() if record.registered else None,
            "crm_updated": record.updated.isoformat() if record.updated else None}))
    present = {record.purpose for record in person.consents}
    for purpose, before in known.items():
        if purpose not in present and before.get("action") != "crm.consent_removed":
            entries.append(Entry("crm.consent_removed", {
                "purpose": purpose, "previous_legal_basis": before.get("legal_basis", ""),
                "legal_basis": "", "actor": CRM_USER, "event_id": event_id}))
    return tuple(entries)


def mail_sent_entry(kind: str, token_id: str | None, message_id: str, job_id: str | None,
                    resent: bool = False, *, purpose: str | None = None,
                    notice_version: str | None = None, **about: str | None) -> Entry:
    """The ledger entry of a mail that went out: which mail, the link's token id (the proof
    of which link the person got; None for a mail without one) and the Message-ID;
    ``resent`` when an earlier attempt was interrupted and may have sent it already; the
    purpose (CRM key) and notice version a mail about one consent text was about, and
    ``about`` it (a consent's term)."""
    details = {"mail": kind, "token_id": token_id, "message_id": message_id,
               "actor": CONNECTOR, "job_id": job_id, **about}
    if purpose is not None:
        details |= {"purpose": purpose, "notice_version": notice_version}
    if resent:
        details["note"] = "sent again after an interrupted send"
    return Entry("mail.sent", details)


def mail_not_sent_entry(kind: str, reason: str, job_id: str | None,
                        **about: str | None) -> Entry:
    """The ledger entry of a mail that could not go (``reason``: no address), with what it
    was ``about`` (a consent's purpose and term)."""
    return Entry("mail.not_sent", {"mail": kind, "reason": reason, "actor": CONNECTOR,
                                   "job_id": job_id, **about})


def onboarded_entry(event_id: str | None, job_id: str | None) -> Entry:
    """The ledger entry written with the fact that the person was onboarded (once)."""
    return Entry("person.onboarded", {"actor": CONNECTOR, "job_id": job_id, "event_id": event_id})


def deletion_entry(event_id: str | None, erase_after: str) -> Entry:
    """The ledger entry written with the erasure request when the CRM deleted the person."""
    return Entry("person.deleted", {"actor": CRM_USER, "event_id": event_id,
                                    "erase_after": erase_after})


def _as_record(write: ConsentWrite) -> ConsentRecord:
    return ConsentRecord(purpose=write.purpose.crm_key, legal_basis=write.legal_basis.crm_key,
                         source=write.source.crm_key, comment=write.comment)
