"""The retention report's rows (``consent-connector retention report``): one per person kept
past ``delete_after`` with no active purpose (connector.retention), with the evidence why."""

from collections.abc import Iterable, Iterator

from connector.exports.report import person_name
from connector.exports.tables import Table
from connector.retention import LONG_AGO, InactivePerson, Withdrawal
from connector.times import iso

COLUMNS = ("person_id", "name", "email", "no_active_purpose_since", "withdrawn", "evidence")
"""The report's columns: who, since when nothing is active, each purpose's withdrawal as the
CRM holds it, and the consent ledger's entry that recorded it."""

RETENTION_TABLE = Table(
    "Past delete_after", COLUMNS,
    {"person_id": 11, "name": 28, "email": 32, "no_active_purpose_since": 22,
     "withdrawn": 50, "evidence": 90},
    time_columns=("no_active_purpose_since",), number_columns=("person_id",),
    about_title="About this report")


def report_rows(inactive: Iterable[InactivePerson]) -> Iterator[dict[str, str]]:
    """Each inactive person as a row of COLUMNS (text)."""
    for found in inactive:
        person = found.person
        yield {
            "person_id": str(person.id),
            "name": person_name(person),
            "email": person.email or "",
            "no_active_purpose_since": _when(found.since),
            "withdrawn": "; ".join(f"{w.purpose} {_when(w.since) or 'date unknown'}"
                                   for w in found.withdrawals),
            "evidence": "; ".join(_evidence(w) for w in found.withdrawals),
        }


def _when(moment) -> str:
    return "" if moment == LONG_AGO else iso(moment)


def _evidence(withdrawal: Withdrawal) -> str:
    entry = withdrawal.evidence
    if entry is None:
        return f"{withdrawal.purpose}: no ledger entry (changed in the CRM before the connector)"
    facts = [entry["action"], entry["at"], f"by {entry.get('actor', 'unknown')}",
             f"legal basis {entry.get('legal_basis', '')}"]
    facts += [f"{name} {entry[name]}" for name in ("comment", "notice_version", "token_id")
              if entry.get(name)]
    return f"{withdrawal.purpose}: entry {entry['id']}, " + ", ".join(facts)
