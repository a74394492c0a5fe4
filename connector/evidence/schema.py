"""The evidence database's tables (SQLAlchemy Core). A change here needs a migration in
``migrations/versions`` (``consent-connector db upgrade`` runs them)."""

from datetime import datetime

from sqlalchemy import (BigInteger, Column, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint)

from connector.times import iso, now

SCHEMA_REVISION = "0001"
"""The migration (migrations/versions) that builds this schema: processes refuse a database at
another revision. Raise it with every new migration (a test checks it is Alembic's head)."""

metadata = MetaData()

ISO_TIME = String(32)
"""Times are stored as ISO 8601 UTC text with milliseconds ("2026-11-30T10:00:00.000+00:00"):
the same bytes on every database, so an entry's hash can be computed again years later,
and ordered and compared as text."""


def stored_time(moment: datetime | None = None) -> str:
    """``moment`` (default: now) in the stored form of ``ISO_TIME``."""
    return iso(moment or now(), "milliseconds")

ledger_entries = Table(
    "ledger_entries", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("person_id", BigInteger, nullable=False),
    Column("seq", Integer, nullable=False),  # 1, 2, 3 … per person: the chain's order
    Column("at", ISO_TIME, nullable=False),
    Column("action", String(64), nullable=False),
    Column("purpose", String(64)),
    Column("legal_basis", String(64)),
    Column("source", String(64)),
    Column("actor", String(200)),
    Column("job_id", String(200)),
    Column("event_id", String(200)),
    Column("notice_version", String(64)),
    Column("details", Text, nullable=False),  # the other facts, canonical JSON
    Column("personal", Text),  # identifying proof (IP, browser), JSON; a marker once erased
    Column("personal_salt", String(32)),  # random; removed on erasure
    Column("personal_digest", String(64)),  # SHA-256 of salt and identifying proof
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("person_id", "seq", name="uq_ledger_entries_person_seq"),
    Index("ix_ledger_entries_purpose_notice_at", "purpose", "notice_version", "at"),
    Index("ix_ledger_entries_at", "at"),
)

onboarded_persons = Table(
    "onboarded_persons", metadata,
    Column("person_id", BigInteger, primary_key=True, autoincrement=False),
    Column("at", ISO_TIME, nullable=False),
    Column("job_id", String(200)),
    Column("event_id", String(200)),
)

confirmation_mails = Table(
    "confirmation_mails", metadata,
    Column("person_id", BigInteger, primary_key=True, autoincrement=False),
    Column("state", String(16), nullable=False),  # sending | sent
    Column("claimed_at", ISO_TIME, nullable=False),
    Column("job_id", String(200)),
    Column("attempts", Integer, nullable=False),
    Column("sent_at", ISO_TIME),
    Column("message_id", String(300)),
)

checkpoints = Table(
    "checkpoints", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
    Column("updated_at", ISO_TIME, nullable=False),
)

erasures = Table(
    "erasures", metadata,
    Column("person_id", BigInteger, primary_key=True, autoincrement=False),
    Column("requested_at", ISO_TIME, nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("due_at", ISO_TIME, nullable=False),
    Column("done_at", ISO_TIME),
    Index("ix_erasures_due_at", "due_at"),
)
