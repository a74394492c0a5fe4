"""Copying what versions before the evidence database kept in Redis into it, once
(``consent-connector ledger import-redis``). Redis is only read: nothing there is changed.

What is copied (the keys are connector.keys' LEGACY_*):

1. Every person's ledger stream: each stream entry becomes a ledger entry of the person,
   appended through ``append_entry`` in stream order, at the entry's own time (its ``at``
   field; the stream id's time when that is missing or unreadable), with the stream id as the
   detail ``redis_id``. Entries whose ``redis_id`` the person's ledger holds already are
   skipped, so running the import again imports nothing new and changes nothing.
2. The onboarded set: a row in ``onboarded_persons`` for each person without one. Old
   versions wrote no ledger entry for it and kept no time, so the import appends a
   ``person.onboarded`` entry noting that it was imported (in the same transaction as the
   row, as onboarding itself does): the ledger then says that, and when, the fact came in.
   A person whose ledger has a ``person.onboarded`` entry already gets none: the row takes
   that entry's time, job and event.
3. Confirmation mails in state "sent": a ``confirmation_mails`` row in state "sent", with the
   time, job and Message-ID of the person's last ``mail.sent`` entry of a confirmation mail
   (the imported stream has it; no new entry is written). Keys in state "sending" are not
   copied: that attempt was cut off mid-send, before the person was marked onboarded, so
   their onboarding runs again (its job's retry, or the reconciliation) and sends the mail
   (it may have gone out once already), as the old version would have once the claim ran
   out.
4. The reconciliation's watermark, through ``facts.advance_watermark`` (never backwards).

The rule the operator follows: run it after ``consent-connector db upgrade`` and before the
new workers start, so that in every person's chain the old entries come before the new ones.
A person whose ledger already holds entries that were not imported gets the imported ones
appended after them (the chain stays valid, but out of time order);
``ImportSummary.persons_with_other_entries`` counts them and the command warns.
"""

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

import redis
from sqlalchemy import Connection, Row, Table, insert, select

from connector.evidence import facts
from connector.evidence.database import Database
from connector.evidence.entry import Entry
from connector.evidence.ledger import append_entry
from connector.evidence.schema import (confirmation_mails, ledger_entries, onboarded_persons,
                                       stored_time)
from connector.keys import (LEGACY_CONFIRMATION_MAIL_PREFIX, LEGACY_LEDGER_PREFIX,
                            LEGACY_ONBOARDED, LEGACY_RECONCILE_WATERMARK)
from connector.times import parse_iso

REDIS_ID = "redis_id"
"""The detail that carries an imported entry's stream id: how a second run knows it."""

REDIS_AT = "redis_at"
"""The detail that keeps a stream entry's ``at`` field when it was not a readable time."""

UNKNOWN_ACTION = "unknown"
"""The action of a stream entry that had none (old versions always wrote one)."""

ONBOARDED_ACTION = "person.onboarded"
MAIL_SENT_ACTION = "mail.sent"
CONFIRMATION_MAIL = "confirmation"

IMPORTED_NOTE = ("imported from Redis: onboarded by a version before the evidence database, "
                 "which kept no time")
"""The note of the ``person.onboarded`` entry the import appends."""

SCAN_COUNT = 1000
"""Keys (or set members) Redis looks at per SCAN step. (SCAN's TYPE filter is not used: it
needs Redis 6; the key names tell the kinds apart.)"""

XRANGE_COUNT = 1000
"""Stream entries read per XRANGE call."""

BATCH_SIZE = 500
"""Persons per writing transaction (and per IN list) for the onboarded set and the mails."""


@dataclass(frozen=True)
class ImportSummary:
    """What ``import_from_redis`` found and copied."""

    persons: int
    """Persons with a ledger stream in Redis."""
    entries_imported: int
    entries_already_there: int
    """Stream entries a run before had imported (skipped)."""
    persons_with_other_entries: int
    """Persons whose imported entries were appended after entries that did not come from
    Redis (the new version wrote to their ledger before the import)."""
    onboarded_imported: int
    mails_imported: int
    mails_in_flight: int
    """Confirmation mails in state "sending" in Redis: not imported."""
    watermark: str | None
    """The watermark as Redis held it; None when it held none."""
    watermark_moved: bool


def import_from_redis(connection: redis.Redis, database: Database) -> ImportSummary:
    """Copy the old Redis ledger streams, onboarded set, sent confirmation mails and
    reconciliation watermark into the evidence database (this module's docstring says how),
    idempotently: a second run imports nothing and changes nothing. Redis is only read.

    Run it after ``db upgrade`` and before the new workers start (see the module docstring).

    Raises:
        redis.RedisError: Redis cannot be read; what was imported so far stays (a run again
            goes on from there).
        sqlalchemy.exc.SQLAlchemyError: the evidence database cannot be written; likewise.
    """
    # 1. The ledger streams, a person (and a transaction) at a time.
    persons = imported = already = with_other = 0
    streams = connection.scan_iter(match=f"{LEGACY_LEDGER_PREFIX}*", count=SCAN_COUNT)
    for person_id in _person_ids(streams, LEGACY_LEDGER_PREFIX):
        persons += 1
        added, skipped, other = _import_stream(connection, database, person_id)
        imported += added
        already += skipped
        with_other += other
    # 2. and 3. The facts, after the entries they take their times from.
    onboarded = _import_onboarded(connection, database)
    mails, in_flight = _import_confirmation_mails(connection, database)
    # 4. The watermark (an unreadable one is reported, not imported).
    watermark = _text(connection.get(LEGACY_RECONCILE_WATERMARK))
    moment = parse_iso(watermark)
    moved = facts.advance_watermark(database, moment) if moment is not None else False
    return ImportSummary(persons=persons, entries_imported=imported,
                         entries_already_there=already, persons_with_other_entries=with_other,
                         onboarded_imported=onboarded, mails_imported=mails,
                         mails_in_flight=in_flight, watermark=watermark, watermark_moved=moved)


def legacy_entry(redis_id: str, fields: Mapping[str, str]) -> tuple[str, Entry]:
    """A stream entry as (its time in stored form, the ledger ``Entry``): every field but
    ``at`` and ``action`` becomes a detail, and so does ``redis_id``."""
    details = dict(fields)
    action = details.pop("action", "") or UNKNOWN_ACTION
    written = details.pop("at", "")
    moment = parse_iso(written)
    if moment is None:
        moment = stream_id_time(redis_id)
        if written:
            details[REDIS_AT] = written
    details[REDIS_ID] = redis_id
    return stored_time(moment), Entry(action, details)


def stream_id_time(redis_id: str) -> datetime:
    """When Redis added a stream entry: the milliseconds before the id's dash."""
    milliseconds = int(redis_id.partition("-")[0])
    return datetime.fromtimestamp(milliseconds / 1000, timezone.utc)


# -- 1. the ledger streams -----------------------------------------------------------------------


def _import_stream(connection: redis.Redis, database: Database,
                   person_id: int) -> tuple[int, int, bool]:
    """Append the person's stream entries not imported yet, in one transaction; return
    (imported, skipped as imported before, whether the person had entries from elsewhere)."""
    imported = skipped = 0
    with database.writing() as transaction:
        database.lock_person(transaction, person_id)
        known, other = _imported_ids(transaction, person_id)
        for redis_id, fields in _stream(connection, f"{LEGACY_LEDGER_PREFIX}{person_id}"):
            if redis_id in known:
                skipped += 1
                continue
            at, entry = legacy_entry(redis_id, fields)
            append_entry(database, transaction, person_id, entry, at=at)
            imported += 1
    return imported, skipped, bool(imported and other)


def _imported_ids(transaction: Connection, person_id: int) -> tuple[set[str], bool]:
    """The stream ids the person's ledger holds, in one query; and whether it holds entries
    that did not come from Redis."""
    known, other = set(), False
    for details in transaction.execute(select(ledger_entries.c.details)
                                       .where(ledger_entries.c.person_id == person_id)
                                       ).scalars():
        redis_id = json.loads(details).get(REDIS_ID)
        if redis_id is None:
            other = True
        else:
            known.add(redis_id)
    return known, other


def _stream(connection: redis.Redis, key: str) -> Iterator[tuple[str, dict[str, str]]]:
    """The stream's entries oldest first, XRANGE_COUNT per call. The next call starts just
    after the last id seen (``<ms>-<seq + 1>``: works on Redis before 6.2 too)."""
    start = "-"
    while True:
        chunk = connection.xrange(key, min=start, max="+", count=XRANGE_COUNT)
        for redis_id, fields in chunk:
            yield _text(redis_id), {_text(name): _text(value) for name, value in fields.items()}
        if len(chunk) < XRANGE_COUNT:
            return
        milliseconds, _, sequence = _text(chunk[-1][0]).partition("-")
        start = f"{milliseconds}-{int(sequence) + 1}"


# -- 2. the onboarded set ------------------------------------------------------------------------


def _import_onboarded(connection: redis.Redis, database: Database) -> int:
    """Insert the onboarded persons the database does not know, with their ledger entry
    (unless the ledger has one); return how many."""
    members = (_text(member) for member in connection.sscan_iter(LEGACY_ONBOARDED,
                                                                 count=SCAN_COUNT))
    imported = 0
    for batch in _batches(_unique_ids(members)):
        with database.writing() as transaction:
            missing = _without_row(transaction, onboarded_persons, batch)
            if not missing:
                continue
            entries = _first_onboarded_entries(transaction, missing)
            for person_id in missing:
                entry = entries.get(person_id)
                if entry is None:
                    at = stored_time()
                    append_entry(database, transaction, person_id,
                                 Entry(ONBOARDED_ACTION, {"note": IMPORTED_NOTE}), at=at)
                    values = {"at": at, "job_id": None, "event_id": None}
                else:
                    values = {"at": entry.at, "job_id": entry.job_id,
                              "event_id": entry.event_id}
                transaction.execute(insert(onboarded_persons).values(person_id=person_id,
                                                                     **values))
            imported += len(missing)
    return imported


def _without_row(transaction: Connection, table: Table, person_ids: list[int]) -> list[int]:
    """The persons of ``person_ids`` that ``table`` (keyed by person) has no row for."""
    present = set(transaction.execute(select(table.c.person_id)
                                      .where(table.c.person_id.in_(person_ids))).scalars())
    return [person_id for person_id in person_ids if person_id not in present]


def _first_onboarded_entries(transaction: Connection, person_ids: list[int]) -> dict[int, Row]:
    """Each person's first ``person.onboarded`` ledger entry (at, job_id, event_id)."""
    columns = ledger_entries.c
    first = {}
    for row in transaction.execute(
            select(columns.person_id, columns.at, columns.job_id, columns.event_id)
            .where(columns.person_id.in_(person_ids), columns.action == ONBOARDED_ACTION)
            .order_by(columns.person_id, columns.seq)):
        first.setdefault(row.person_id, row)
    return first


# -- 3. the confirmation mails -------------------------------------------------------------------


def _import_confirmation_mails(connection: redis.Redis, database: Database) -> tuple[int, int]:
    """Insert the "sent" confirmation mails the database does not know; return (imported,
    left out as "sending")."""
    keys = connection.scan_iter(match=f"{LEGACY_CONFIRMATION_MAIL_PREFIX}*", count=SCAN_COUNT)
    imported = in_flight = 0
    for batch in _batches(_person_ids(keys, LEGACY_CONFIRMATION_MAIL_PREFIX)):
        states = connection.mget([f"{LEGACY_CONFIRMATION_MAIL_PREFIX}{person_id}"
                                  for person_id in batch])
        sent = [person_id for person_id, state in zip(batch, states)
                if _text(state) == facts.SENT]
        in_flight += sum(_text(state) == facts.SENDING for state in states)
        if not sent:
            continue
        with database.writing() as transaction:
            missing = _without_row(transaction, confirmation_mails, sent)
            if not missing:
                continue
            mails = _last_confirmation_mails(transaction, missing)
            imported_at = stored_time()
            rows = []
            for person_id in missing:
                at, job_id, message_id = mails.get(person_id, (None, None, None))
                rows.append({"person_id": person_id, "state": facts.SENT,
                             "claimed_at": at or imported_at, "job_id": job_id, "attempts": 1,
                             "sent_at": at, "message_id": message_id})
            transaction.execute(insert(confirmation_mails), rows)
            imported += len(rows)
    return imported, in_flight


def _last_confirmation_mails(transaction: Connection,
                             person_ids: list[int]) -> dict[int, tuple[str, str | None, str]]:
    """Each person's last ``mail.sent`` entry of a confirmation mail: (at, job_id,
    Message-ID)."""
    columns = ledger_entries.c
    last = {}
    for row in transaction.execute(
            select(columns.person_id, columns.at, columns.job_id, columns.details)
            .where(columns.person_id.in_(person_ids), columns.action == MAIL_SENT_ACTION)
            .order_by(columns.person_id, columns.seq)):
        details = json.loads(row.details)
        if details.get("mail") == CONFIRMATION_MAIL:
            last[row.person_id] = (row.at, row.job_id, details.get("message_id"))
    return last


# -- helpers -------------------------------------------------------------------------------------


def _person_ids(keys: Iterable, prefix: str) -> Iterator[int]:
    """The person ids in keys named ``<prefix><id>``, each once (SCAN may return a key twice);
    other keys with the prefix (``…:<id>:attempt``) are passed over."""
    suffixes = (_text(key)[len(prefix):] for key in keys)
    return _unique_ids(suffixes)


def _unique_ids(texts: Iterable[str]) -> Iterator[int]:
    """The texts that are whole numbers, as ints, each once."""
    seen = set()
    for text in texts:
        if text.isascii() and text.isdigit() and int(text) not in seen:
            seen.add(int(text))
            yield int(text)


def _batches(person_ids: Iterable[int]) -> Iterator[list[int]]:
    batch = []
    for person_id in person_ids:
        batch.append(person_id)
        if len(batch) == BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch


def _text(value: bytes | str | None) -> str | None:
    """A Redis reply as text (clients without decode_responses answer bytes)."""
    return value.decode() if isinstance(value, bytes) else value
