"""Consents that lapse (a purpose's ``consent_valid_for`` in the purposes file): when a
consent was given, when the person is asked to renew it and when it ends, and what to do
about it now. Pure: no I/O; the pass and the job that act on it are workers/expiry.py.

The rules (``decide_expiry``):

1. A consent is dated by the ledger's last entry for the purpose when that entry records the
   legal basis the CRM's row has now (the proof of when it was given or renewed; for a row
   recorded from the CRM, the CRM's date in it), else by the row's own time (updated, else
   registered): a consent a CRM user gave without an event.
2. It ends ``consent_valid_for`` after that date; renewing it on the page dates it anew.
3. From ``remind_before`` its end, the person gets one re-permission mail for this term (the
   term is named by its end, so a renewed consent's next term gets its own mail).
4. Nobody loses a consent without that mail's notice: a reminder sent late (the connector
   was off, or the setting is new) moves the lapse to ``remind_before`` after the mail.
5. On the day it lapses: ``on_expiry: withdraw`` records it as withdrawn in the CRM;
   ``on_expiry: report`` records in the ledger that it lapsed, once per term, and leaves the
   row as it is (``consent-connector expiry report`` lists it).
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from connector.consent import REPORT, ConsentConfig, Purpose, fold_key, is_withdrawn
from connector.crm.types import ConsentRecord
from connector.times import iso, parse_iso

NOTHING, REMIND, WITHDRAW_CONSENT, REPORT_LAPSE = "nothing", "remind", "withdraw", "report"
"""What a consent needs now: nothing, a re-permission mail, a withdrawal, a report."""

REPERMISSION = "re-permission"
"""The ``mail`` of the ledger entry of a re-permission mail (with purpose and term)."""

LAPSED = "consent.lapsed"
"""The ledger action that records a lapsed consent left in the CRM (on_expiry: report)."""

EXPIRED = "consent.expired"
"""The ledger action that records a lapsed consent written as withdrawn (on_expiry:
withdraw)."""


@dataclass(frozen=True)
class ConsentTerm:
    """One term of a consent: when it was given or renewed, when the person is asked to
    renew it (None: never), when it ends."""

    given: datetime
    remind_from: datetime | None
    ends: datetime

    @property
    def name(self) -> str:
        """The term's name in the ledger (its end, ISO UTC to the second)."""
        return iso(self.ends)


@dataclass(frozen=True)
class ExpiryHistory:
    """What the ledger says was done about a purpose's terms: term name → when the consent
    lapses as the re-permission mail said, and the terms reported as lapsed."""

    reminded: Mapping[str, datetime] = field(default_factory=dict)
    reported: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ExpiryDecision:
    """What to do about one consent now, and why. ``lapses_on`` is the day the consent
    lapses (what the re-permission mail tells the person)."""

    action: str
    reason: str
    term: ConsentTerm | None = None
    lapses_on: datetime | None = None


def given_at(row: ConsentRecord, last_entry: Mapping[str, str] | None) -> datetime | None:
    """When the consent the row holds was given or last renewed: the ledger's entry when it
    records the row's legal basis (for a row the ledger recorded from the CRM, the CRM's own
    date in it), else the row's updated or registered time; None when neither dates it."""
    if last_entry and fold_key(last_entry.get("legal_basis", "")) == fold_key(row.legal_basis):
        return (parse_iso(last_entry.get("crm_updated"))
                or parse_iso(last_entry.get("crm_registered")) or parse_iso(last_entry["at"]))
    return row.updated or row.registered


def consent_term(purpose: Purpose, given: datetime) -> ConsentTerm:
    """The term of a consent to ``purpose`` (which has an expiry) given at ``given``."""
    expiry = purpose.expiry
    ends = expiry.valid_for.after(given)
    remind_from = expiry.remind_before.before(ends) if expiry.remind_before else None
    return ConsentTerm(given, remind_from, ends)


def expiry_history(entries: Iterable[Mapping[str, str]], purpose: Purpose) -> ExpiryHistory:
    """Read the re-permission mails and lapse reports about ``purpose`` in a person's ledger
    entries."""
    wanted = fold_key(purpose.crm_key)
    reminded, reported = {}, set()
    for entry in entries:
        if fold_key(entry.get("purpose", "")) != wanted or not entry.get("consent_ends"):
            continue
        if entry.get("mail") == REPERMISSION:
            reminded[entry["consent_ends"]] = parse_iso(entry.get("lapses_on")) or parse_iso(
                entry["consent_ends"])
        elif entry["action"] == LAPSED:
            reported.add(entry["consent_ends"])
    return ExpiryHistory(reminded, frozenset(reported))


def decide_expiry(config: ConsentConfig, purpose: Purpose, row: ConsentRecord | None,
                  last_entry: Mapping[str, str] | None, history: ExpiryHistory,
                  moment: datetime) -> ExpiryDecision:
    """Decide what the person's consent to ``purpose`` needs at ``moment`` (the rules in the
    module docstring).

    Args:
        config: the purposes config (which legal basis marks a withdrawal).
        purpose: a purpose from it; one without ``expiry`` never lapses.
        row: the person's row for the purpose as the CRM holds it (None: no row).
        last_entry: the ledger's last entry for the purpose that recorded a legal basis.
        history: what was done about its terms before (expiry_history).
        moment: now, or the time a pass stands for.
    """
    if purpose.expiry is None:
        return ExpiryDecision(NOTHING, "the purpose's consent does not lapse")
    if row is None or is_withdrawn(config, row):
        return ExpiryDecision(NOTHING, "no consent holds")
    given = given_at(row, last_entry)
    if given is None:
        return ExpiryDecision(NOTHING, "neither the ledger nor the CRM dates the consent")
    term = consent_term(purpose, given)
    reminded = history.reminded.get(term.name)
    if term.remind_from is not None and reminded is None:
        if moment < term.remind_from:
            return ExpiryDecision(NOTHING, "not due yet", term)
        lapses_on = max(term.ends, purpose.expiry.remind_before.after(moment))
        return ExpiryDecision(REMIND, "due for a re-permission mail", term, lapses_on)
    lapses_on = reminded or term.ends
    if moment < lapses_on:
        return ExpiryDecision(NOTHING, "re-permission mail sent, not lapsed yet" if reminded
                              else "not due yet", term, lapses_on)
    if purpose.expiry.on_expiry == REPORT:
        if term.name in history.reported:
            return ExpiryDecision(NOTHING, "lapsed and reported: left in the CRM for you to "
                                  "decide (on_expiry: report)", term, lapses_on)
        return ExpiryDecision(REPORT_LAPSE, "lapsed: to be reported (on_expiry: report)", term,
                              lapses_on)
    return ExpiryDecision(WITHDRAW_CONSENT, "lapsed: to be recorded as withdrawn", term,
                          lapses_on)


def due_consents(config: ConsentConfig, purpose: Purpose,
                 entries: Iterable[Mapping[str, str]],
                 moment: datetime) -> Iterator[tuple[int, ExpiryDecision]]:
    """The persons whose consent to ``purpose`` needs something at ``moment``, as the ledger
    knows it (consent_terms), by person id. The job checks each against the CRM's row
    before it acts."""
    for person_id, _, decision in consent_terms(config, purpose, entries, moment):
        if decision.action != NOTHING:
            yield person_id, decision


def consent_terms(config: ConsentConfig, purpose: Purpose, entries: Iterable[Mapping[str, str]],
                  moment: datetime) -> Iterator[tuple[int, Mapping[str, str], ExpiryDecision]]:
    """Every consent to ``purpose`` that holds as the ledger knows it, by person id: the
    person, the entry that last recorded it and the decision at ``moment``.

    ``entries`` are the purpose's entries, oldest first, each with its ``person_id``
    (``Ledger.query``); only each person's last legal basis and their expiry entries are kept
    while reading."""
    latest: dict[str, Mapping[str, str]] = {}
    history: dict[str, list[Mapping[str, str]]] = {}
    for entry in entries:
        if "legal_basis" in entry:
            latest[entry["person_id"]] = entry
        elif entry.get("consent_ends"):
            history.setdefault(entry["person_id"], []).append(entry)
    for person_id in sorted(latest, key=int):
        last = latest[person_id]
        if not last["legal_basis"]:  # the CRM's row was removed
            continue
        row = ConsentRecord(purpose=purpose.crm_key, legal_basis=last["legal_basis"],
                            source=last.get("source", ""))
        decision = decide_expiry(config, purpose, row, last,
                                 expiry_history(history.get(person_id, ()), purpose), moment)
        if decision.term is not None:
            yield int(person_id), last, decision
