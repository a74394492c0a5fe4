"""The data protection officer's query of the consent ledger (``consent-connector ledger
query``): the entries about one purpose (``Ledger.query``) as rows with their proof, written
as .xlsx or .csv (connector.exports.tables).

Each row's ``outcome`` says what the entry did to the purpose, read from its legal basis
(CRM keys, interpreted with the purposes config):

- ``given``: the legal basis is consent: the config's ``consent`` basis, the one the person's
  page records (``subscription_page.consent_legal_basis``), or 61A.
- ``withdrawn`` / ``objected``: the legal basis is the withdrawn one (``withdrawn: true``, or
  WITHDRAWN when the config does not know the key). ``withdrawn`` when what was withdrawn
  was consent; ``objected`` (GDPR Art. 21) when it was another basis. What was withdrawn is
  the entry's ``previous_legal_basis`` when it names one; otherwise the purpose decides:
  ``requires_consent`` → withdrawn, any other configured purpose → objected, a purpose the
  config does not know → withdrawn.
- ``other``: any other legal basis (legitimate interest, contract …), none (a row removed in
  the CRM), or an entry that records no legal basis.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from connector.config import CONSENT_CRM_KEY
from connector.consent import ConsentConfig, fold_key
from connector.exports.tables import Table

GIVEN, WITHDRAWN, OBJECTED, OTHER = "given", "withdrawn", "objected", "other"
"""The outcomes of an entry (the module docstring says how each is decided)."""

COLUMNS = ("person_id", "at", "action", "outcome", "legal_basis", "source", "actor",
           "notice_version", "submitted_at", "token_id", "ip", "user_agent", "via", "comment",
           "job_id", "event_id")
"""The columns of the query's rows, in order; also the header row of both file formats."""

TIME_COLUMNS = ("at", "submitted_at")
"""Columns holding ISO UTC times: date cells in the workbook, ISO text in the CSV."""

WIDTHS = {"person_id": 11, "at": 20, "action": 22, "outcome": 11, "legal_basis": 12,
          "source": 12, "actor": 16, "notice_version": 14, "submitted_at": 20,
          "token_id": 18, "ip": 30, "user_agent": 50, "via": 12, "comment": 60,
          "job_id": 38, "event_id": 38}
"""Column widths in the workbook, in characters."""

LEDGER_TABLE = Table("Ledger entries", COLUMNS, WIDTHS, time_columns=TIME_COLUMNS,
                     number_columns=("person_id",), about_title="About this query")
"""How the query's rows are written (connector.exports.tables)."""


@dataclass(frozen=True)
class OutcomeRules:
    """Which CRM keys mean consent, withdrawal, and purposes that require consent, folded
    (``fold_key``), taken from the purposes config once for a whole query."""

    consent_bases: frozenset[str]
    withdrawn_bases: frozenset[str]
    consent_purposes: frozenset[str]
    known_purposes: frozenset[str]

    @classmethod
    def from_config(cls, config: ConsentConfig) -> "OutcomeRules":
        """The rules of the purposes config in force."""
        bases = config.legal_bases
        consent = {CONSENT_CRM_KEY} | {bases[key].crm_key for key in
                                       ("consent", config.page_consent_legal_basis)
                                       if key in bases}
        withdrawn = {basis.crm_key for basis in bases.values() if basis.withdrawn} or {
            "WITHDRAWN"}
        return cls(
            consent_bases=frozenset(fold_key(key) for key in consent),
            withdrawn_bases=frozenset(fold_key(key) for key in withdrawn),
            consent_purposes=frozenset(fold_key(purpose.crm_key)
                                       for purpose in config.purposes.values()
                                       if purpose.requires_consent),
            known_purposes=frozenset(fold_key(purpose.crm_key)
                                     for purpose in config.purposes.values()))

    def outcome(self, entry: Mapping[str, str]) -> str:
        """GIVEN, WITHDRAWN, OBJECTED or OTHER for one ledger entry (as ``Ledger.query``
        yields it)."""
        basis = fold_key(entry.get("legal_basis", ""))
        if basis in self.consent_bases:
            return GIVEN
        if basis not in self.withdrawn_bases:
            return OTHER
        previous = fold_key(entry.get("previous_legal_basis", ""))
        if previous and previous not in self.withdrawn_bases:
            return WITHDRAWN if previous in self.consent_bases else OBJECTED
        purpose = fold_key(entry.get("purpose", ""))
        if purpose in self.known_purposes and purpose not in self.consent_purposes:
            return OBJECTED
        return WITHDRAWN


def query_rows(config: ConsentConfig, entries: Iterable[Mapping[str, str]]
               ) -> Iterator[dict[str, str]]:
    """Each ledger entry (as ``Ledger.query`` yields it) as a row: COLUMNS → text ("" when the
    entry has no such fact), with its ``outcome``."""
    rules = OutcomeRules.from_config(config)
    for entry in entries:
        row = {name: entry.get(name, "") for name in COLUMNS}
        row["outcome"] = rules.outcome(entry)
        yield row
