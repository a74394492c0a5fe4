"""One person's export (GDPR Art. 15 and 20), gathered once and rendered twice: as a workbook
(workbook.py) and as JSON (document.py), so both always say the same.

What the CRM holds now (the person and their consent rows, read live) plus every entry of the
consent ledger, with purposes, legal bases and sources named in the person's language from the
purposes config. Pure code apart from ``gather_report``, which does the two reads.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from connector import i18n
from connector.consent import (ConsentConfig, choose_language, describe_purposes, fold_key,
                               pick_text)
from connector.crm.types import ConsentRecord, CRMClient, Person
from connector.evidence.ledger import Ledger
from connector.times import now as current_time
from connector.times import parse_iso, utc

SCHEMA = "consent-connector/export"
"""The JSON document's ``schema`` value (docs/export-schema.md)."""

VERSION = 1
"""The JSON document's ``version``: raised when a field changes meaning or goes away."""

HISTORY_FIELDS = ("purpose", "legal_basis", "previous_legal_basis", "source", "comment", "actor",
                  "associate_id", "job_id", "token_id", "notice_version", "user_agent", "ip",
                  "submitted_at", "mail", "message_id")
"""Ledger fields the export interprets; any other field is kept as stored in ``other``."""


@dataclass(frozen=True)
class Named:
    """A CRM list key with its name in the person's language (the key when not configured)."""

    key: str
    name: str


@dataclass(frozen=True)
class LegalBasisText:
    """A legal basis the person's data rests on, with what it means in plain words."""

    key: str
    name: str
    description: str


@dataclass(frozen=True)
class ConsentLine:
    """One purpose as the CRM holds it for the person now; ``status`` is one of
    consent.ACTIVE, WITHDRAWN, NOT_GIVEN (no row, the purpose needs consent), NOT_RECORDED."""

    purpose: Named
    description: str
    status: str
    legal_basis: Named | None = None
    source: Named | None = None
    registered: datetime | None = None
    registered_by: int | None = None
    updated: datetime | None = None
    updated_by: int | None = None
    comment: str = ""


@dataclass(frozen=True)
class HistoryLine:
    """One ledger entry, interpreted. Text fields are "" when the entry has none."""

    id: str
    at: datetime | None
    action: str
    actor: str = ""
    associate_id: int | None = None
    purpose: Named | None = None
    previous_legal_basis: Named | None = None
    legal_basis: Named | None = None
    source: Named | None = None
    comment: str = ""
    notice_version: str = ""
    token_id: str = ""
    ip: str = ""
    user_agent: str = ""
    submitted_at: datetime | None = None
    mail: str = ""
    message_id: str = ""
    job_id: str = ""
    other: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PersonReport:
    """Everything one person's export says."""

    person: Person
    language: str
    exported_at: datetime
    exported_by: str
    connector_associate_id: int | None
    consents: tuple[ConsentLine, ...]
    history: tuple[HistoryLine, ...]
    sources: tuple[Named, ...]
    legal_bases: tuple[LegalBasisText, ...]

    @property
    def name(self) -> str:
        """The person's full name, or "person <id>" when the CRM has none."""
        return person_name(self.person)

    @property
    def mails_sent(self) -> int:
        """How many mails the connector sent the person."""
        return sum(1 for line in self.history if line.action == "mail.sent")


def export_filename(person_id: int, fmt: str) -> str:
    """The file name the CLI and the admin page both use: ``consents-person-2.xlsx``."""
    return f"consents-person-{person_id}.{fmt}"


def person_name(person: Person) -> str:
    """The person's full name, or "person <id>" when the CRM has none."""
    return f"{person.first_name} {person.last_name}".strip() or f"person {person.id}"


def gather_report(crm: CRMClient, ledger: Ledger, config: ConsentConfig, person_id: int, *,
                  exported_by: str, connector_associate_id: int | None = None,
                  language: str | None = None, now: datetime | None = None) -> PersonReport:
    """Read the person from the CRM (one GET), then their ledger, and build the report.

    Raises:
        PersonNotFoundError: the CRM has no such person.
        CRMError: the CRM could not be read.
        sqlalchemy.exc.SQLAlchemyError: the ledger could not be read.
    """
    person = crm.get_person(person_id)
    entries = ledger.entries(person.id)
    return build_report(config, person, entries, exported_by=exported_by,
                        connector_associate_id=connector_associate_id, language=language,
                        now=now)


def build_report(config: ConsentConfig, person: Person, entries: Iterable[Mapping[str, str]], *,
                 exported_by: str, connector_associate_id: int | None = None,
                 language: str | None = None, now: datetime | None = None) -> PersonReport:
    """Build the report from the person as read from the CRM and their ledger entries.

    Args:
        config: the purposes config (names, descriptions, legal basis texts).
        person: the person with their consent rows.
        entries: the person's ledger entries, oldest first (``Ledger.entries``).
        exported_by: who made the export, shown in it.
        connector_associate_id: the CRM user id the connector writes as, so its rows say so.
        language: the language for names; default the person's own (else English).
        now: the export time (aware); default the current time.
    """
    language = language or choose_language(config, person.language)
    consents = tuple(consent_lines(config, person.consents, language))
    history = tuple(history_line(config, entry, language) for entry in entries)
    return PersonReport(
        person=person,
        language=language,
        exported_at=utc(now or current_time()),
        exported_by=exported_by,
        connector_associate_id=connector_associate_id,
        consents=consents,
        history=history,
        sources=_distinct([line.source for line in consents] + [line.source for line in history]),
        legal_bases=_legal_bases(config, consents, history, language),
    )


ROLES = ("connector", "person", "crm user", "crm_user", "crm", "")
"""The ledger's actors that name a role, not a person (the rest are support staff's names)."""

SUPPORT = "support"
"""What the person's own copy says instead of a staff member's name."""


def own_report(config: ConsentConfig, person: Person, entries: Iterable[Mapping[str, str]], *,
               language: str, connector_associate_id: int | None = None) -> PersonReport:
    """The person's own copy of their data (their page's download, the copy by mail): the
    report "exported by you", for_the_person."""
    return for_the_person(build_report(
        config, person, entries, exported_by=i18n.text("page", "exported_by_person", language),
        connector_associate_id=connector_associate_id, language=language))


def for_the_person(report: PersonReport) -> PersonReport:
    """The report as the person's own copy (their page, the copy by mail): the names of the
    support staff who acted on their data become "support". A copy must not adversely affect
    the rights of others (GDPR Art. 15(4)); who exactly retried a job is the controller's
    business, kept in the ledger and in staff's exports."""
    return replace(report, history=tuple(
        line if line.actor.strip().casefold() in ROLES else replace(line, actor=SUPPORT)
        for line in report.history))


def consent_lines(config: ConsentConfig, consents: Sequence[ConsentRecord],
                  language: str) -> list[ConsentLine]:
    """Every configured purpose in config order, then any purpose the CRM holds that the config
    does not know: the rows of ``describe_purposes`` (the mail's and the page's wording) joined
    with the CRM's raw rows (keys, dates, who)."""
    lines = []
    for view in describe_purposes(config, consents, language):
        purpose_key, record = view.crm_key, view.record
        if record is None:
            lines.append(ConsentLine(Named(purpose_key, view.name), view.description, view.status))
            continue
        lines.append(ConsentLine(
            purpose=Named(purpose_key, view.name),
            description=view.description,
            status=view.status,
            legal_basis=Named(record.legal_basis, view.legal_basis),
            source=Named(record.source, view.source) if record.source else None,
            registered=record.registered,
            registered_by=record.registered_by,
            updated=record.updated,
            updated_by=record.updated_by,
            comment=record.comment,
        ))
    return lines


def history_line(config: ConsentConfig, entry: Mapping[str, str], language: str) -> HistoryLine:
    """Interpret one ledger entry; fields the export does not know are kept in ``other``."""
    fields = dict(entry)
    entry_id = fields.pop("id", "")
    raw_at = fields.pop("at", "")
    at = parse_iso(raw_at)
    if at is None and raw_at:
        fields["at"] = raw_at
    action = fields.pop("action", "")
    known = {name: fields.pop(name, "") for name in HISTORY_FIELDS}
    associate = known["associate_id"]
    submitted_at = parse_iso(known["submitted_at"])
    if submitted_at is None and known["submitted_at"]:
        fields["submitted_at"] = known["submitted_at"]
    return HistoryLine(
        id=entry_id,
        at=at,
        action=action,
        actor=known["actor"],
        associate_id=int(associate) if associate.isascii() and associate.isdigit() else None,
        purpose=purpose_named(config, known["purpose"], language),
        previous_legal_basis=legal_basis_named(config, known["previous_legal_basis"], language),
        legal_basis=legal_basis_named(config, known["legal_basis"], language),
        source=source_named(config, known["source"], language),
        comment=known["comment"],
        notice_version=known["notice_version"],
        token_id=known["token_id"],
        ip=known["ip"],
        user_agent=known["user_agent"],
        submitted_at=submitted_at,
        mail=known["mail"],
        message_id=known["message_id"],
        job_id=known["job_id"],
        other=fields,
    )


def purpose_named(config: ConsentConfig, crm_key: str, language: str) -> Named | None:
    """The purpose with this CRM key, named in ``language``; None for ""."""
    if not crm_key:
        return None
    purpose = config.purpose_by_crm_key(crm_key)
    return Named(crm_key, pick_text(purpose.name, language) if purpose else crm_key)


def legal_basis_named(config: ConsentConfig, crm_key: str, language: str) -> Named | None:
    """The legal basis with this CRM key, named in ``language``; None for ""."""
    if not crm_key:
        return None
    basis = config.legal_basis_by_crm_key(crm_key)
    return Named(crm_key, pick_text(basis.name, language) if basis else crm_key)


def source_named(config: ConsentConfig, crm_key: str, language: str) -> Named | None:
    """The source with this CRM key, named in ``language``; None for ""."""
    if not crm_key:
        return None
    source = config.source_by_crm_key(crm_key)
    return Named(crm_key, pick_text(source.name, language) if source else crm_key)


def _distinct(items: Iterable[Named | None]) -> tuple[Named, ...]:
    seen, result = set(), []
    for item in items:
        if item is not None and fold_key(item.key) not in seen:
            seen.add(fold_key(item.key))
            result.append(item)
    return tuple(result)


def _legal_bases(config: ConsentConfig, consents: Sequence[ConsentLine],
                 history: Sequence[HistoryLine], language: str) -> tuple[LegalBasisText, ...]:
    """Every legal basis the person's rows rest on now or did in the history: configured ones
    in config order with their description, then unknown keys (no description)."""
    used = _distinct([line.legal_basis for line in consents]
                     + [basis for line in history
                        for basis in (line.previous_legal_basis, line.legal_basis)])
    folded = {fold_key(item.key) for item in used}
    known = [LegalBasisText(basis.crm_key, pick_text(basis.name, language),
                            pick_text(basis.description, language))
             for basis in config.legal_bases.values() if fold_key(basis.crm_key) in folded]
    configured = {fold_key(basis.crm_key) for basis in config.legal_bases.values()}
    unknown = [LegalBasisText(item.key, item.name, "") for item in used
               if fold_key(item.key) not in configured]
    return tuple(known + unknown)
