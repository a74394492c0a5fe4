"""The evidence: what the connector must be able to show for years (GDPR Art. 7(1)), in a
SQL database (SQLite by default, PostgreSQL in production), never only in Redis.

- ``ledger_entries``: one row per thing that happened to a person's consents or mails, with
  its proof; append-only and hash-chained per person (connector.evidence.ledger).
- ``onboarded_persons``, ``confirmation_mails``: what must happen once per person, decided by
  unique keys in the same transaction as its ledger entry (connector.evidence.facts).
- ``checkpoints``: the reconciliation's watermark.
- ``erasures``: persons whose identifying proof is to be pseudonymised, and when.

The schema is connector.evidence.schema; its migrations are Alembic's (``migrations/``), run by
``consent-connector db upgrade``.
"""
