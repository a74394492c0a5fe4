"""The consent ledger: per person, every consent change and mail with its proof, in the
evidence database. Append-only: nothing here updates or deletes an entry, except erasure,
which replaces identifying proof by a marker and keeps the chain verifiable
(connector.evidence.entry explains the chain)."""

from collections.abc import Iterable, Iterator, Mapping
from itertools import groupby
from operator import itemgetter
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, func, insert, select, update

from connector.evidence.database import Database
from connector.evidence.entry import (GENESIS, READABLE, Entry, digest_personal, entry_hash,
                                      erased_personal, readable, stored_form)
from connector.evidence.schema import ledger_entries, stored_time

_READABLE = tuple(ledger_entries.c[name] for name in READABLE)

# The statements of every append, built once: building one costs more than running it
# (SQLAlchemy coerces each value of ``.values(…)``), and the values go in as parameters.
_LAST_ENTRY = (select(ledger_entries.c.seq, ledger_entries.c.hash)
               .where(ledger_entries.c.person_id == bindparam("person_id"))
               .order_by(ledger_entries.c.seq.desc()).limit(1))
_INSERT_ENTRY = insert(ledger_entries)

ERASURE_ACTION = "ledger.erased"
"""The entry that records an erasure: how many entries lost their identifying proof."""


@dataclass(frozen=True)
class ChainBreak:
    """The first place a person's chain does not hold, and what is wrong there."""

    person_id: int
    seq: int
    entry_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"entry {self.entry_id}" if self.entry_id is not None else "an entry"
        return f"person {self.person_id}: {where} (#{self.seq} of the person): {self.problem}"


@dataclass(frozen=True)
class VerifyReport:
    """What ``check`` found: persons and entries checked, the first break of every
    broken person's chain."""

    persons: int
    entries: int
    breaks: tuple[ChainBreak, ...]


def append_entry(database: Database, connection: Connection, person_id: int, entry: Entry,
                 at: str | None = None) -> int:
    """Append ``entry`` to the person's chain inside the writing transaction ``connection``
    (so a fact can be written in the same transaction); return the entry's id.

    Args:
        at: the entry's time in the stored form (``stored_time``); now when None.
    """
    database.lock_person(connection, person_id)
    last = connection.execute(_LAST_ENTRY, {"person_id": person_id}).first()
    seq, prev_hash = (last.seq + 1, last.hash) if last else (1, GENESIS)
    row = stored_form(person_id, seq, at or stored_time(), entry, prev_hash)
    return connection.execute(_INSERT_ENTRY, row).inserted_primary_key[0]


class Ledger:
    """Appends to, reads and verifies the persons' consent ledgers."""

    def __init__(self, database: Database):
        self.database = database

    def record(self, person_id: int, entry: Entry) -> str:
        """Append a planned ``entry`` in a transaction of its own; return its id."""
        with self.database.writing() as connection:
            return str(append_entry(self.database, connection, person_id, entry))

    def append(self, person_id: int, action: str, **details: str | int | None) -> str:
        """Append one entry and return its id.

        Args:
            person_id: the CRM person the entry is about.
            action: what happened, e.g. ``consent.recorded`` or ``mail.sent``.
            details: the proof: purpose, legal_basis, source, comment, actor, job_id ...
                (None values are left out).
        """
        return self.record(person_id, Entry(action, details))

    def entries(self, person_id: int) -> list[Mapping[str, str]]:
        """Return every entry about the person, oldest first, each with its ``id`` and ``at``."""
        with self.database.reading() as connection:
            rows = connection.execute(select(*_READABLE)
                                      .where(ledger_entries.c.person_id == person_id)
                                      .order_by(ledger_entries.c.seq)).mappings().all()
        return [readable(row) for row in rows]

    def last_known_consents(self, person_id: int) -> dict[str, Mapping[str, str]]:
        """Return the latest ledger entry per purpose (CRM key) that recorded a legal basis:
        what the connector last knew of each consent row."""
        return last_known_consents(self.entries(person_id))

    def query(self, purpose: str, *, notice_version: str | None = None,
              since: str | None = None, until: str | None = None,
              actions: tuple[str, ...] | None = None) -> Iterator[dict[str, str]]:
        """Yield the entries about ``purpose`` (CRM key), oldest first, each with its
        ``person_id``: of one notice version, from ``since`` and before ``until`` (ISO UTC),
        of the given actions, when those are given. Served by an index on (purpose, notice
        version, time)."""
        columns = ledger_entries.c
        statement = select(columns.person_id, *_READABLE).where(columns.purpose == purpose)
        if notice_version is not None:
            statement = statement.where(columns.notice_version == notice_version)
        if since is not None:
            statement = statement.where(columns.at >= since)
        if until is not None:
            statement = statement.where(columns.at < until)
        if actions:
            statement = statement.where(columns.action.in_(actions))
        with self.database.reading() as connection:
            result = connection.execution_options(yield_per=1000).execute(
                statement.order_by(columns.at, columns.id)).mappings()
            for row in result:
                entry = readable(row)
                entry["person_id"] = str(row["person_id"])
                yield entry

    def verify(self, person_id: int) -> ChainBreak | None:
        """Check the person's chain; return its first break, or None when it holds."""
        breaks = self.check(person_id).breaks
        return breaks[0] if breaks else None

    def verify_all(self) -> VerifyReport:
        """Check every person's chain."""
        return self.check()

    def check(self, person_id: int | None = None) -> VerifyReport:
        """Check one person's chain, or every person's, streaming the entries in chain
        order."""
        columns = ledger_entries.c
        statement = select(ledger_entries).order_by(columns.person_id, columns.seq)
        if person_id is not None:
            statement = statement.where(columns.person_id == person_id)
        persons = entries = 0
        breaks = []
        with self.database.reading() as connection:
            result = connection.execution_options(yield_per=5000).execute(statement).mappings()
            for chain_of, rows in groupby(result, key=itemgetter("person_id")):
                chain = list(rows)
                persons, entries = persons + 1, entries + len(chain)
                broken = first_break(chain_of, chain)
                if broken:
                    breaks.append(broken)
        return VerifyReport(persons, entries, tuple(breaks))

    def persons(self) -> int:
        """How many persons have a ledger."""
        with self.database.reading() as connection:
            return connection.execute(
                select(func.count(func.distinct(ledger_entries.c.person_id)))).scalar_one()

    def count(self) -> int:
        """How many entries the ledger holds."""
        with self.database.reading() as connection:
            return connection.execute(select(func.count()).select_from(ledger_entries)
                                      ).scalar_one()



def last_known_consents(entries: Iterable[Mapping[str, str]]) -> dict[str, Mapping[str, str]]:
    """The latest of a person's ``entries`` (oldest first) per purpose (CRM key) that recorded
    a legal basis."""
    return {entry["purpose"]: entry for entry in entries
            if entry.get("purpose") and "legal_basis" in entry}


def erase_personal_proof(database: Database, connection: Connection, person_id: int,
                         actor: str) -> int:
    """Pseudonymise the identifying proof in the person's ledger (GDPR Art. 17) inside the
    writing transaction ``connection``: each such field is replaced by a marker and its salt
    dropped, so nobody can tell the IP network or browser again, while the consent facts and
    the chain stay verifiable. Append a ``ledger.erased`` entry; return how many entries lost
    their proof (0 when none had any left: nothing is appended then)."""
    columns = ledger_entries.c
    database.lock_person(connection, person_id)
    rows = connection.execute(
        select(columns.id, columns.personal)
        .where(columns.person_id == person_id, columns.personal_salt.is_not(None))).all()
    for row in rows:
        connection.execute(update(ledger_entries).where(columns.id == row.id)
                           .values(personal=erased_personal(row.personal), personal_salt=None))
    if rows:
        append_entry(database, connection, person_id,
                     Entry(ERASURE_ACTION, {"erased_entries": len(rows), "actor": actor}))
    return len(rows)


def first_break(person_id: int, rows) -> ChainBreak | None:
    """The first entry of one person's chain (rows in seq order) that does not hold."""
    prev_hash, expected_seq, erased_awaiting = GENESIS, 1, None
    for row in rows:
        where = (person_id, row["seq"], row["id"])
        if row["seq"] != expected_seq:
            return ChainBreak(person_id, expected_seq, None,
                              f"entry #{expected_seq} is missing (the next one is "
                              f"#{row['seq']}): an entry was deleted")
        if row["prev_hash"] != prev_hash:
            return ChainBreak(*where, "its link to the entry before does not match: an entry "
                                      "before it was changed, removed or put in its place")
        if entry_hash(row) != row["hash"]:
            return ChainBreak(*where, "its content does not match its hash: the entry was "
                                      "changed after it was written")
        personal_problem = _personal_problem(row)
        if personal_problem:
            return ChainBreak(*where, personal_problem)
        if row["personal"] and row["personal_salt"] is None and erased_awaiting is None:
            erased_awaiting = where
        if row["action"] == ERASURE_ACTION:
            erased_awaiting = None
        prev_hash, expected_seq = row["hash"], expected_seq + 1
    if erased_awaiting is not None:
        return ChainBreak(*erased_awaiting, "its proof was erased but no ledger.erased entry "
                                            "records an erasure after it")
    return None


def _personal_problem(row: Mapping) -> str | None:
    personal, salt, digest = row["personal"], row["personal_salt"], row["personal_digest"]
    if personal is None and salt is None and digest is None:
        return None
    if personal is None or digest is None:
        return "its identifying proof was removed, not erased"
    if salt is not None:
        if digest_personal(salt, personal) != digest:
            return "its identifying proof (IP, browser) does not match its digest: changed"
        return None
    if personal != erased_personal(personal):
        return "its identifying proof lost its salt but was not erased"
    return None
