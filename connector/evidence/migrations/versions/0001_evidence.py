"""The evidence: the hash-chained ledger, the "done once" facts, checkpoints and erasures.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TIME = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(64)),
        sa.Column("legal_basis", sa.String(64)),
        sa.Column("source", sa.String(64)),
        sa.Column("actor", sa.String(200)),
        sa.Column("job_id", sa.String(200)),
        sa.Column("event_id", sa.String(200)),
        sa.Column("notice_version", sa.String(64)),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("personal", sa.Text),
        sa.Column("personal_salt", sa.String(32)),
        sa.Column("personal_digest", sa.String(64)),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("person_id", "seq", name="uq_ledger_entries_person_seq"),
    )
    op.create_index("ix_ledger_entries_purpose_notice_at", "ledger_entries",
                    ["purpose", "notice_version", "at"])
    op.create_index("ix_ledger_entries_at", "ledger_entries", ["at"])
    op.create_table(
        "onboarded_persons",
        sa.Column("person_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("job_id", sa.String(200)),
        sa.Column("event_id", sa.String(200)),
    )
    op.create_table(
        "confirmation_mails",
        sa.Column("person_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_at", TIME, nullable=False),
        sa.Column("job_id", sa.String(200)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("sent_at", TIME),
        sa.Column("message_id", sa.String(300)),
    )
    op.create_table(
        "checkpoints",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_table(
        "erasures",
        sa.Column("person_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("requested_at", TIME, nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("due_at", TIME, nullable=False),
        sa.Column("done_at", TIME),
    )
    op.create_index("ix_erasures_due_at", "erasures", ["due_at"])


def downgrade() -> None:
    for table in ("erasures", "checkpoints", "confirmation_mails", "onboarded_persons",
                  "ledger_entries"):
        op.drop_table(table)
