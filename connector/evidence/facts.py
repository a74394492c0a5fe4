"""What must happen once per person, decided by the evidence database's unique keys, each
written in the same transaction as its ledger entry: the person was onboarded; their
confirmation mail went out; their identifying proof is to be erased, and when. Also the
reconciliation's watermark.

The confirmation mail goes out once however often its job runs, whatever happens to Redis:
an attempt claims it (``claim_confirmation_mail``, a row in state "sending") before sending,
gives the claim back when delivery fails (so a retry sends it) and records "sent" with the
``mail.sent`` entry afterwards (``mark_onboarded``, with the onboarding). Attempts run under the person's lock
(workers.jobs.one_job_per_person), so a claim found in state "sending" was left by an attempt
whose worker died mid-send: the mail goes again (it may have gone out before) and the ledger
says so.
"""

import enum
import functools
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Select, Table, bindparam, delete, insert, select, update

from connector.evidence.database import Database
from connector.evidence.entry import Entry
from connector.evidence.ledger import append_entry, erase_personal_proof
from connector.evidence.schema import (checkpoints, confirmation_mails, erasures,
                                       onboarded_persons, stored_time)
from connector.times import iso, parse_iso

SENT, SENDING = "sent", "sending"
"""States of a person's confirmation mail; None when no attempt has claimed it."""

WATERMARK = "reconcile.watermark"
"""The checkpoint of the reconciliation: the latest registered/updated date a complete pass
saw (connector.reconcile)."""


# The statements of every onboarding, built once (see connector.evidence.ledger): the person
# is the parameter "person" (not "person_id": an UPDATE would take that for a column to set).
_MAIL_STATE = (select(confirmation_mails.c.state)
               .where(confirmation_mails.c.person_id == bindparam("person")))
_MAIL_SENT = (update(confirmation_mails)
              .where(confirmation_mails.c.person_id == bindparam("person"))
              .values(state=SENT))


class Claim(enum.Enum):
    """What claiming a person's confirmation mail found."""

    CLAIMED = "claimed"
    """Nobody had claimed it: this attempt sends it."""
    RESUMED = "resumed"
    """An attempt died between claiming and recording it: this one sends it again."""
    SENT = "sent"
    """It went out before: nothing to do."""


def mark_onboarded(database: Database, person_id: int, entry: Entry,
                   mail_sent: Entry | None = None) -> bool:
    """Record that onboarding finished for the person, with its ledger ``entry``; with
    ``mail_sent``, first that their confirmation mail went out, with its ``mail.sent`` entry
    (the claim becomes "sent"): all in one transaction. False when they were onboarded before
    (the mail is recorded all the same)."""
    with database.writing() as connection:
        if mail_sent is not None:
            connection.execute(_MAIL_SENT, {"person": person_id, "sent_at": stored_time(),
                                            "message_id": mail_sent.details.get("message_id")})
            append_entry(database, connection, person_id, mail_sent)
        return _insert_once(database, connection, onboarded_persons, person_id, entry, {
            "at": stored_time(), "job_id": entry.details.get("job_id"),
            "event_id": entry.details.get("event_id")})


def onboarded(database: Database, person_ids: Sequence[int]) -> list[bool]:
    """Whether each person was onboarded, in one query."""
    with database.reading() as connection:
        known = set(connection.execute(select(onboarded_persons.c.person_id)
                                       .where(onboarded_persons.c.person_id.in_(person_ids)))
                    .scalars())
    return [person_id in known for person_id in person_ids]


def confirmation_mail_state(database: Database, person_id: int) -> str | None:
    """SENT, SENDING (an attempt holds the claim) or None."""
    with database.reading() as connection:
        return connection.execute(select(confirmation_mails.c.state)
                                  .where(confirmation_mails.c.person_id == person_id)).scalar()


def claim_confirmation_mail(database: Database, person_id: int, job_id: str | None) -> Claim:
    """Claim sending the person's confirmation mail. Only for the holder of the person's lock:
    a claim in state "sending" is then one whose attempt died (``Claim.RESUMED``)."""
    columns = confirmation_mails.c
    with database.writing() as connection:
        state = connection.execute(_MAIL_STATE, {"person": person_id}).scalar()
        if state == SENT:
            return Claim.SENT
        if state == SENDING:
            connection.execute(update(confirmation_mails).where(columns.person_id == person_id)
                               .values(job_id=job_id, claimed_at=stored_time(),
                                       attempts=columns.attempts + 1))
            return Claim.RESUMED
        connection.execute(insert(confirmation_mails), {
            "person_id": person_id, "state": SENDING, "claimed_at": stored_time(),
            "job_id": job_id, "attempts": 1})
        return Claim.CLAIMED


def release_confirmation_mail(database: Database, person_id: int) -> None:
    """Give the claim back after a failed delivery (nothing went out), so a retry sends it."""
    with database.writing() as connection:
        connection.execute(delete(confirmation_mails).where(
            confirmation_mails.c.person_id == person_id, confirmation_mails.c.state == SENDING))


def read_watermark(database: Database) -> datetime | None:
    """The reconciliation's watermark (aware UTC), or None before the first complete pass."""
    with database.reading() as connection:
        value = connection.execute(select(checkpoints.c.value)
                                   .where(checkpoints.c.name == WATERMARK)).scalar()
    return parse_iso(value) if value else None


def advance_watermark(database: Database, target: datetime) -> bool:
    """Move the watermark to ``target`` unless it is there or later already (never
    backwards); True when it moved."""
    with database.writing() as connection:
        value = connection.execute(select(checkpoints.c.value)
                                   .where(checkpoints.c.name == WATERMARK)).scalar()
        if value is not None and parse_iso(value) >= target:
            return False
        values = {"value": iso(target), "updated_at": stored_time()}
        if value is None:
            connection.execute(insert(checkpoints).values(name=WATERMARK, **values))
        else:
            connection.execute(update(checkpoints).where(checkpoints.c.name == WATERMARK)
                               .values(**values))
        return True


def request_erasure(database: Database, person_id: int, entry: Entry, due: datetime,
                    requested_by: str) -> bool:
    """Schedule the erasure of the identifying proof in the person's ledger at ``due``, with
    its ledger ``entry`` (which should say when), in one transaction; False when an erasure
    was requested before (nothing is written then)."""
    with database.writing() as connection:
        return _insert_once(database, connection, erasures, person_id, entry, {
            "requested_at": stored_time(), "requested_by": requested_by,
            "due_at": stored_time(due)})


def erase_due(database: Database, actor: str, moment: datetime | None = None) -> dict[int, int]:
    """Carry out every erasure due at ``moment`` (default now), each in its own transaction
    (``erase_now``); return person id → entries erased."""
    with database.reading() as connection:
        due = list(connection.execute(select(erasures.c.person_id)
                                      .where(erasures.c.done_at.is_(None),
                                             erasures.c.due_at <= stored_time(moment))
                                      .order_by(erasures.c.due_at)).scalars())
    return {person_id: erase_now(database, person_id, actor) for person_id in due}


def erase_now(database: Database, person_id: int, actor: str) -> int:
    """Erase the identifying proof in the person's ledger now, with its ``ledger.erased``
    entry, and record the erasure as done (requested before or not), in one transaction;
    return how many entries lost their proof."""
    with database.writing() as connection:
        erased = erase_personal_proof(database, connection, person_id, actor)
        done = stored_time()
        marked = connection.execute(update(erasures).where(erasures.c.person_id == person_id)
                                    .values(done_at=done))
        if not marked.rowcount:
            connection.execute(insert(erasures).values(
                person_id=person_id, requested_at=done, requested_by=actor, due_at=done,
                done_at=done))
    return erased


def _insert_once(database: Database, connection: Connection, table: Table, person_id: int,
                 entry: Entry, values: dict) -> bool:
    """Insert the person's row of ``table`` (keyed by person) with ``values``, and append its
    ledger ``entry``, inside the writing transaction ``connection``, unless the table has the
    person's row already: then write nothing and return False."""
    database.lock_person(connection, person_id)
    if connection.execute(_row_of(table), {"person": person_id}).first():
        return False
    connection.execute(insert(table), {"person_id": person_id, **values})
    append_entry(database, connection, person_id, entry)
    return True


@functools.cache
def _row_of(table: Table) -> Select:
    """The statement that finds the person's row of ``table`` (keyed by person), built once
    per table."""
    return select(table.c.person_id).where(table.c.person_id == bindparam("person"))
