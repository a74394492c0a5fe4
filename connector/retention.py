"""Who has been kept too long: persons with no active purpose left (every consent row in the
CRM withdrawn or objected to) for longer than ``delete_after`` in the purposes file, with the
evidence why, for the data protection officer. Deleting them stays a human decision, in the
CRM; nothing here deletes or changes anything.

``decide_inactive`` is pure (one person's rows and the cut-off); ``inactive_persons`` reads
every person with consent rows from the CRM (connector.exports.bulk.persons_with_consents)
and the ledger's last word on each purpose.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from connector.consent import ConsentConfig, fold_key
from connector.crm.types import ConsentRecord, Person


@dataclass(frozen=True)
class Withdrawal:
    """One withdrawn purpose of an inactive person: the CRM's row and the ledger's entry that
    last recorded it (None when the ledger has none: a CRM user's change before the
    connector)."""

    purpose: str
    since: datetime
    evidence: Mapping[str, str] | None


@dataclass(frozen=True)
class InactivePerson:
    """A person with no active purpose since ``since`` (their latest withdrawal)."""

    person: Person
    since: datetime
    withdrawals: tuple[Withdrawal, ...]


def decide_inactive(rows: Sequence[ConsentRecord], withdrawn_keys: Iterable[str],
                    cutoff: datetime) -> datetime | None:
    """When the person's last purpose was withdrawn, if every row is withdrawn and that was
    before ``cutoff``; else None (an active row, no rows at all, or not long enough).

    A row's time is when the CRM last changed it (updated, else registered); a withdrawn row
    without either is taken as withdrawn long ago."""
    if not rows:
        return None
    withdrawn = {fold_key(key) for key in withdrawn_keys}
    if any(fold_key(row.legal_basis) not in withdrawn for row in rows):
        return None
    since = max(_changed(row) for row in rows)
    return since if since < cutoff else None


def inactive_persons(source: Iterable[tuple[Person, Sequence[ConsentRecord]]],
                     config: ConsentConfig, cutoff: datetime,
                     evidence) -> Iterator[InactivePerson]:
    """The persons of ``source`` inactive since before ``cutoff``, each with the ledger's last
    entry per withdrawn purpose (``evidence``: person id → purpose → entry, as
    ``Ledger.last_known_consents`` gives it)."""
    withdrawn = [basis.crm_key for basis in config.legal_bases.values() if basis.withdrawn]
    for person, rows in source:
        since = decide_inactive(rows, withdrawn, cutoff)
        if since is None:
            continue
        known = evidence(person.id)
        yield InactivePerson(person, since, tuple(
            Withdrawal(row.purpose, _changed(row), known.get(row.purpose)) for row in rows))


def _changed(row: ConsentRecord) -> datetime:
    return row.updated or row.registered or LONG_AGO


LONG_AGO = datetime.min.replace(tzinfo=timezone.utc)
"""The time of a withdrawn row the CRM gives no date for."""
