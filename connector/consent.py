"""The consent domain: purposes, legal bases, sources and the default decision.

Pure code: no I/O. Config keys (``legitimate_interest``) are the admin's names; ``crm_key``
(``61F``) is what the CRM stores. Texts are dicts keyed by language code (``en``, ``nb`` ...).
"""

import calendar
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connector.crm.types import COMMENT_MAX_LENGTH, ConsentRecord, ShipmentType

FALLBACK_LANGUAGE = "en"


def fold_key(crm_key: str) -> str:
    """Normalise a CRM list key: keys compare without regard to case or surrounding spaces,
    as the config's duplicate check does."""
    return crm_key.strip().casefold()


# Language codes a CRM may hand us for languages the config names otherwise.
LANGUAGE_ALIASES = {"no": "nb", "nn": "nb"}


def choose_language(config: "ConsentConfig", code: str | None) -> str:
    """Return the configured language closest to ``code`` (``nb-NO`` → ``nb``), else English."""
    if code:
        base = code.strip().lower().replace("_", "-").split("-")[0]
        base = LANGUAGE_ALIASES.get(base, base)
        if base in config.languages:
            return base
    return FALLBACK_LANGUAGE


def pick_text(texts: Mapping[str, str], language: str | None) -> str:
    """Return the text in ``language``, else English, else any text there is ("" if none)."""
    if language and language in texts:
        return texts[language]
    if FALLBACK_LANGUAGE in texts:
        return texts[FALLBACK_LANGUAGE]
    return next(iter(texts.values()), "")


@dataclass(frozen=True)
class LegalBasis:
    """A legal basis of GDPR Art. 6(1), or the CRM's WITHDRAWN marker."""

    key: str
    crm_key: str
    name: Mapping[str, str]
    description: Mapping[str, str] = field(default_factory=dict)
    withdrawn: bool = False


@dataclass(frozen=True)
class Source:
    """Where a person's data came from (user entry, web form, API ...)."""

    key: str
    crm_key: str
    name: Mapping[str, str]
    confirm_by_email: bool


@dataclass(frozen=True)
class Notice:
    """The consent text shown to a person, with the version that proves what they saw."""

    version: str
    text: Mapping[str, str]
    earlier: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Texts of earlier versions by version, kept so a person who agreed to one sees what
    changed."""


@dataclass(frozen=True)
class Purpose:
    """A purpose of processing.

    ``default_legal_basis`` is the legal basis key new persons get, or None when the purpose
    is never set by default. ``requires_consent`` purposes can only be granted by the person;
    ``allow_objection`` lets the person object on their page to a purpose that rests on
    another legal basis (GDPR Art. 21), recorded as withdrawn.
    """

    key: str
    crm_key: str
    name: Mapping[str, str]
    description: Mapping[str, str] = field(default_factory=dict)
    default_legal_basis: str | None = None
    requires_consent: bool = False
    allow_objection: bool = False
    notice: Notice | None = None
    privacy_statement_url: str | None = None
    retention: Mapping[str, str] = field(default_factory=dict)
    """How long the data is kept for this purpose, or by what rule (GDPR Art. 13(2)(a))."""
    recipients: Mapping[str, str] = field(default_factory=dict)
    """Who receives the data for this purpose, if anyone outside the controller
    (Art. 13(1)(e))."""
    expiry: "ConsentExpiry | None" = None
    """How long a consent to this purpose lasts; None: until the person withdraws it."""


@dataclass(frozen=True)
class Duration:
    """A span the admin writes as "24 months", "30 days", "2 years" or "6 weeks"."""

    count: int
    unit: str  # days, weeks, months or years

    def __str__(self) -> str:
        return f"{self.count} {self.unit[:-1] if self.count == 1 else self.unit}"

    def before(self, moment: datetime) -> datetime:
        """``moment`` minus this span, by the calendar (a month back from 31 March is the last
        day of February)."""
        return self._shift(moment, -1)

    def after(self, moment: datetime) -> datetime:
        """``moment`` plus this span, by the calendar (a month after 31 January is the last
        day of February)."""
        return self._shift(moment, 1)

    def _shift(self, moment: datetime, sign: int) -> datetime:
        if self.unit in ("days", "weeks"):
            return moment + sign * timedelta(days=self.count * (7 if self.unit == "weeks" else 1))
        months = sign * self.count * (12 if self.unit == "years" else 1)
        year, month = divmod(moment.year * 12 + moment.month - 1 + months, 12)
        month += 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)


WITHDRAW, REPORT = "withdraw", "report"
"""What happens to a consent on the day it lapses (``on_expiry``): record it as withdrawn in
the CRM, or only report it and leave the row as it is."""


@dataclass(frozen=True)
class ConsentExpiry:
    """How long a purpose's consent lasts (``consent_valid_for``), when the person is asked to
    renew it (``remind_before`` its end; None: not asked) and what happens when it lapses."""

    valid_for: Duration
    remind_before: Duration | None = None
    on_expiry: str = WITHDRAW


@dataclass(frozen=True)
class SupervisoryAuthority:
    """Where a person may complain (GDPR Art. 13(2)(d), 77)."""

    name: str
    url: str


@dataclass(frozen=True)
class DataProtectionOfficer:
    """The controller's data protection officer (GDPR Art. 13(1)(b), 37)."""

    email: str
    name: str | None = None


@dataclass(frozen=True)
class Controller:
    """Who "we" are: the controller the mail and the page name (GDPR Art. 13(1)(a)-(b))."""

    name: str
    address: str
    email: str
    privacy_statement_url: str
    supervisory_authority: SupervisoryAuthority
    dpo: DataProtectionOfficer | None = None


@dataclass(frozen=True)
class Subscription:
    """A kind of mail the person can subscribe to under a consent purpose (E-marketing): one of
    the CRM's shipment types, named by its id (``shipment_type_id``) or its name
    (``shipment_type_name``), with texts of our own for the person's page."""

    key: str
    purpose: str
    name: Mapping[str, str]
    description: Mapping[str, str] = field(default_factory=dict)
    shipment_type_id: int | None = None
    shipment_type_name: str | None = None

    def matches(self, shipment_type: ShipmentType) -> bool:
        """Whether ``shipment_type`` (as the CRM holds it) is this subscription's."""
        if self.shipment_type_id is not None:
            return shipment_type.id == self.shipment_type_id
        return fold_key(shipment_type.name) == fold_key(self.shipment_type_name or "")


@dataclass(frozen=True)
class SourceRule:
    """Persons created by this CRM associate get this source (e.g. the web-form user → WEBFORM)."""

    created_by_associate_id: int
    source: str


@dataclass(frozen=True)
class ConsentConfig:
    """What the admin decided in config/purposes.yaml, validated.

    ``page_source`` and ``page_consent_legal_basis`` are the source and legal basis keys
    recorded when a person gives consent on their own page.
    """

    legal_bases: Mapping[str, LegalBasis]
    sources: Mapping[str, Source]
    purposes: Mapping[str, Purpose]
    default_source: str
    source_rules: tuple[SourceRule, ...] = ()
    languages: tuple[str, ...] = (FALLBACK_LANGUAGE,)
    page_source: str = "web_form"
    page_consent_legal_basis: str = "consent"
    subscriptions: Mapping[str, "Subscription"] = field(default_factory=dict)
    controller: Controller | None = None
    """None only for a config made in code (tests): the purposes file must name one."""
    delete_after: Duration | None = None
    """How long a person with no active purpose left is kept before the retention report
    (``consent-connector retention report``) lists them for deletion; None: not set."""

    def source_for(self, created_by_associate_id: int | None) -> Source:
        """Return the source of a new person's data, by who created the person."""
        for rule in self.source_rules:
            if rule.created_by_associate_id == created_by_associate_id:
                return self.sources[rule.source]
        return self.sources[self.default_source]

    def legal_basis_by_crm_key(self, crm_key: str) -> LegalBasis | None:
        """Return the legal basis the CRM stores as ``crm_key``, or None if not configured."""
        wanted = fold_key(crm_key)
        return next((b for b in self.legal_bases.values() if fold_key(b.crm_key) == wanted), None)

    def source_by_crm_key(self, crm_key: str) -> Source | None:
        """Return the source the CRM stores as ``crm_key``, or None if not configured."""
        wanted = fold_key(crm_key)
        return next((s for s in self.sources.values() if fold_key(s.crm_key) == wanted), None)

    def purpose_by_crm_key(self, crm_key: str) -> Purpose | None:
        """Return the purpose the CRM stores as ``crm_key``, or None if not configured."""
        wanted = fold_key(crm_key)
        return next((p for p in self.purposes.values() if fold_key(p.crm_key) == wanted), None)

    def purpose_named(self, name: str) -> Purpose | None:
        """The purpose a command line names: its key in the purposes file (e_marketing) or
        its CRM key in any case (EMARKETING); None if not configured."""
        return self.purposes.get(name) or self.purpose_by_crm_key(name)


@dataclass(frozen=True)
class ConsentWrite:
    """A consent the connector is about to write: purpose on a legal basis from a source."""

    purpose: Purpose
    legal_basis: LegalBasis
    source: Source
    comment: str


def default_comment(purpose: Purpose, legal_basis: LegalBasis, source: Source) -> str:
    """Say in the CRM's comment field why this consent row exists (max 255 characters)."""
    text = (f"Recorded by consent-connector for a new person: {pick_text(purpose.name, None)} "
            f"on {pick_text(legal_basis.name, None)}, data source {pick_text(source.name, None)}.")
    return text[:COMMENT_MAX_LENGTH]


def decide_defaults(config: ConsentConfig, existing: Iterable[ConsentRecord],
                    source: Source) -> list[ConsentWrite]:
    """Decide which default consents a person still needs.

    A purpose that already has a row in the CRM is never touched, whatever its legal basis:
    an explicit consent, a withdrawal or a CRM user's choice wins over our default.

    Args:
        config: the validated purposes config.
        existing: the person's consent rows as read from the CRM.
        source: where the person's data came from.

    Returns:
        The consents to write, in config order; empty when there is nothing to do.
    """
    present = {fold_key(record.purpose) for record in existing}
    writes = []
    for purpose in config.purposes.values():
        if purpose.default_legal_basis is None or fold_key(purpose.crm_key) in present:
            continue
        legal_basis = config.legal_bases[purpose.default_legal_basis]
        writes.append(ConsentWrite(purpose, legal_basis, source,
                                   default_comment(purpose, legal_basis, source)))
    return writes


PAGE_COMMENTS = {
    "consent_given": "Consent given by the person on their personal page",
    "consent_renewed": "Consent renewed by the person on their personal page",
    "consent_withdrawn": "Consent withdrawn by the person on their personal page",
    "objection": "Objection by the person on their personal page",
    "objection_withdrawn": "Objection withdrawn by the person on their personal page",
}
"""What the CRM's comment field says about a choice the person made on their page."""


def page_comment(what: str, notice: Notice | None = None, proof: str = "") -> str:
    """Say in the CRM's comment field who changed the consent, where and how, with the notice
    version the person saw and the proof (e.g. the link they used); cut to 255 characters,
    the proof first, ending in "…" when cut."""
    text = PAGE_COMMENTS[what]
    if notice is not None:
        text += f" (notice {notice.version})"
    proof = " ".join(proof.split())
    if proof:
        text += f"; {proof}"
    if len(text) > COMMENT_MAX_LENGTH:
        text = text[:COMMENT_MAX_LENGTH - 1].rstrip() + "…"
    return text


def withdrawn_basis(config: ConsentConfig) -> LegalBasis:
    basis = next((b for b in config.legal_bases.values() if b.withdrawn), None)
    if basis is None:  # the config check refuses such a file
        raise ValueError("the config has no legal basis with withdrawn=True")
    return basis


def is_withdrawn(config: ConsentConfig, record: ConsentRecord) -> bool:
    """Whether a row records a withdrawal or objection, read as the person's page reads it."""
    basis = config.legal_basis_by_crm_key(record.legal_basis)
    return basis.withdrawn if basis else fold_key(record.legal_basis) == "withdrawn"


def decide_preference_changes(config: ConsentConfig, existing: Iterable[ConsentRecord],
                              choices: Mapping[str, bool], proof: str = "",
                              renewals: Collection[str] = ()) -> list[ConsentWrite]:
    """Decide which consent rows the person's choices on their own page need.

    Withdrawing is as easy as giving (GDPR Art. 7(3)), and objecting as easy as both
    (Art. 21). Only what the person may change is changed, and only when it changes:

    1. A purpose that ``requires_consent``: on → the page's consent legal basis, unless the
       row already has it and the person did not renew it (``renewals``: the consent is given
       again, to the text shown now, which starts its term anew); off → the withdrawn basis,
       if there is a row that is not withdrawn (no row: nothing was ever given, so nothing is
       written).
    2. A purpose that ``allow_objection``: object (off) → the withdrawn basis unless the row
       is withdrawn already, also when there is no row, so that decide_defaults never sets the
       purpose later; allow (on) → the purpose's default legal basis again if the row is
       withdrawn (nothing when the purpose has no default).
    3. Any other purpose, and keys the config does not know, are ignored: the person cannot
       change them, and a CRM user's row on them stays as it is.

    Args:
        config: the validated purposes config.
        existing: the person's consent rows as read from the CRM.
        choices: config purpose key (``e_marketing``) → the person's choice: True to give
            consent or allow, False to withdraw or object.
        proof: what shows the person made the choice (e.g. ``link 9f3a…``), added to the
            comment; may be empty.
        renewals: config purpose keys whose consent the person renews (with choice True).

    Returns:
        The consents to write with the page's source, in config order; empty when the
        choices change nothing. Applying them and deciding again returns an empty list.

    Raises:
        TypeError: a choice for a purpose the person may change is not True or False.
    """
    rows = {fold_key(record.purpose): record for record in existing}
    source = config.sources[config.page_source]
    writes = []
    for purpose in config.purposes.values():
        if purpose.key not in choices or not (purpose.requires_consent or purpose.allow_objection):
            continue
        choice = choices[purpose.key]
        if not isinstance(choice, bool):
            raise TypeError(f"choice for purpose '{purpose.key}' must be True or False, "
                            f"not {choice!r}")
        row = rows.get(fold_key(purpose.crm_key))
        withdrawn = row is not None and is_withdrawn(config, row)
        if purpose.requires_consent:
            consent = config.legal_bases[config.page_consent_legal_basis]
            holds = row is not None and fold_key(row.legal_basis) == fold_key(consent.crm_key)
            if choice and (not holds or purpose.key in renewals):
                what = "consent_renewed" if holds else "consent_given"
                writes.append(ConsentWrite(purpose, consent, source,
                                           page_comment(what, purpose.notice, proof)))
            elif not choice and row is not None and not withdrawn:
                writes.append(ConsentWrite(purpose, withdrawn_basis(config), source,
                                           page_comment("consent_withdrawn", proof=proof)))
        elif not choice and not withdrawn:
            writes.append(ConsentWrite(purpose, withdrawn_basis(config), source,
                                       page_comment("objection", proof=proof)))
        elif choice and withdrawn and purpose.default_legal_basis is not None:
            writes.append(ConsentWrite(purpose, config.legal_bases[purpose.default_legal_basis],
                                       source, page_comment("objection_withdrawn", proof=proof)))
    return writes


ACTIVE, WITHDRAWN, NOT_GIVEN, NOT_RECORDED = "active", "withdrawn", "not_given", "not_recorded"
"""A purpose's status for the person: a row that holds, a withdrawn row, no row for a purpose
that needs consent, no row for any other purpose."""


@dataclass(frozen=True)
class PurposeView:
    """One purpose as the person reads it (mail, page, export): texts in their language.

    ``key`` is the config's purpose key ("" for a purpose the config does not know),
    ``crm_key`` the CRM's, ``record`` the CRM's row (None when there is none).
    """

    name: str
    description: str
    status: str
    legal_basis: str = ""
    legal_basis_description: str = ""
    source: str = ""
    registered: datetime | None = None
    key: str = ""
    crm_key: str = ""
    record: ConsentRecord | None = None
    retention: str = ""
    recipients: str = ""


def describe_purposes(config: ConsentConfig, consents: Iterable[ConsentRecord],
                      language: str) -> list[PurposeView]:
    """Describe every configured purpose for a person, in config order, then any purpose the
    CRM holds that the config does not know (named by its CRM key)."""
    rows = {fold_key(record.purpose): record for record in consents}
    views = []
    for key, purpose in config.purposes.items():
        record = rows.pop(fold_key(purpose.crm_key), None)
        name = pick_text(purpose.name, language)
        description = pick_text(purpose.description, language)
        kept = {"retention": pick_text(purpose.retention, language),
                "recipients": pick_text(purpose.recipients, language)}
        if record is None:
            views.append(PurposeView(name, description,
                                     NOT_GIVEN if purpose.requires_consent else NOT_RECORDED,
                                     key=key, crm_key=purpose.crm_key, **kept))
        else:
            views.append(_view_of_row(config, name, description, record, language,
                                      key=key, crm_key=purpose.crm_key, **kept))
    views += [_view_of_row(config, record.purpose, "", record, language, key="",
                           crm_key=record.purpose)
              for record in rows.values()]
    return views


def _view_of_row(config: ConsentConfig, name: str, description: str, record: ConsentRecord,
                 language: str, *, key: str, crm_key: str, retention: str = "",
                 recipients: str = "") -> PurposeView:
    basis = config.legal_basis_by_crm_key(record.legal_basis)
    source = config.source_by_crm_key(record.source)
    return PurposeView(
        name=name,
        description=description,
        status=WITHDRAWN if is_withdrawn(config, record) else ACTIVE,
        legal_basis=pick_text(basis.name, language) if basis else record.legal_basis,
        legal_basis_description=pick_text(basis.description, language) if basis else "",
        source=pick_text(source.name, language) if source else record.source,
        registered=record.registered,
        key=key,
        crm_key=crm_key,
        record=record,
        retention=retention,
        recipients=recipients,
    )


# ---------------------------------------------------------------------------------------------
# Subscriptions (the person's shipment types, under a consent purpose)
# ---------------------------------------------------------------------------------------------

SUBSCRIBED, UNSUBSCRIBED = "subscribed", "unsubscribed"


@dataclass(frozen=True)
class SubscriptionChange:
    """One shipment type whose selection the connector is about to change."""

    subscription: Subscription
    shipment_type: ShipmentType
    selected: bool

    @property
    def previous(self) -> str:
        return SUBSCRIBED if self.shipment_type.selected else UNSUBSCRIBED

    @property
    def now(self) -> str:
        return SUBSCRIBED if self.selected else UNSUBSCRIBED


def find_shipment_type(subscription: Subscription,
                       shipment_types: Iterable[ShipmentType]) -> ShipmentType | None:
    """The person's shipment type of ``subscription``, or None when the CRM has none (deleted
    ones are ignored: nobody can subscribe to them)."""
    return next((t for t in shipment_types if not t.deleted and subscription.matches(t)), None)


def consent_holds(config: ConsentConfig, existing: Iterable[ConsentRecord], purpose_key: str) -> bool:
    """Whether the person's row for the purpose holds (exists and is not withdrawn)."""
    purpose = config.purposes.get(purpose_key)
    if purpose is None:
        return False
    row = next((r for r in existing if fold_key(r.purpose) == fold_key(purpose.crm_key)), None)
    return row is not None and not is_withdrawn(config, row)


def resolve_subscription_choices(config: ConsentConfig, existing: Iterable[ConsentRecord],
                                 shipment_types: Iterable[ShipmentType],
                                 choices: Mapping[str, bool],
                                 subscriptions: Mapping[str, bool]
                                 ) -> tuple[dict[str, bool], dict[str, bool]]:
    """Complete the person's choices with what subscriptions imply, on the CRM's state now.

    1. Subscribing to something while its purpose's consent does not hold, and without turning
       the purpose off in the same save, gives the consent in that save: the person ticks
       "Newsletter" and agrees to the notice shown above it (its version is in the proof).
    2. Turning the purpose off unsubscribes the person from all of its subscriptions:
       withdrawing is as easy as giving (GDPR Art. 7(3)), and the CRM's mailings need both
       anyway. When the person turns the purpose off and ticks a subscription in the same save,
       the withdrawal wins (least permissive). Shipment types a CRM user ticked while there is
       no consent are left alone by other saves (the CRM's mailings skip them anyway).

    Args:
        choices: config purpose key → on/off, as for decide_preference_changes.
        subscriptions: config subscription key → subscribe (True) / unsubscribe (False);
            unknown keys are ignored.

    Returns:
        (purpose choices, subscription choices), both complete; the latter lists every
        configured subscription whose shipment type should change or be confirmed.
    """
    existing = tuple(existing)
    shipment_types = tuple(shipment_types)
    choices = dict(choices)
    wanted = {key: bool(value) for key, value in subscriptions.items()
              if key in config.subscriptions}
    for key, on in wanted.items():
        purpose = config.subscriptions[key].purpose
        if (on and choices.get(purpose) is None
                and not consent_holds(config, existing, purpose)):
            choices[purpose] = True
    for key, subscription in config.subscriptions.items():
        if choices.get(subscription.purpose) is False:
            current = find_shipment_type(subscription, shipment_types)
            if key in wanted or (current is not None and current.selected):
                wanted[key] = False
    return choices, wanted


def decide_subscription_changes(config: ConsentConfig, shipment_types: Iterable[ShipmentType],
                                subscriptions: Mapping[str, bool]) -> list[SubscriptionChange]:
    """Decide which shipment types to change: only those whose selection differs, in config
    order; subscriptions whose shipment type the person does not have are skipped."""
    shipment_types = tuple(shipment_types)
    changes = []
    for key, subscription in config.subscriptions.items():
        if key not in subscriptions:
            continue
        current = find_shipment_type(subscription, shipment_types)
        if current is not None and current.selected != subscriptions[key]:
            changes.append(SubscriptionChange(subscription, current, subscriptions[key]))
    return changes
