"""The consent ledger: an append-only log per person of every consent change and mail,
with its proof. It lives in Redis as one stream per person (XADD only, never trimmed)."""

from collections.abc import Mapping
from dataclasses import dataclass, field

import redis

from connector import keys
from connector.times import iso, now


@dataclass(frozen=True)
class Entry:
    """One entry about to be appended: what happened and its proof (None values are left out)."""

    action: str
    details: Mapping[str, str | int | None] = field(default_factory=dict)


class Ledger:
    """Appends to and reads the per-person consent log."""

    def __init__(self, connection: redis.Redis):
        self.connection = connection

    def append(self, person_id: int, action: str, **details: str | int | None) -> str:
        """Append one entry and return its id.

        Args:
            person_id: the CRM person the entry is about.
            action: what happened, e.g. ``consent.recorded`` or ``mail.sent``.
            details: the proof: purpose, legal_basis, source, comment, actor, job_id ...
                (None values are left out).
        """
        fields = {"at": iso(now(), "milliseconds"), "action": action}
        fields.update({key: str(value) for key, value in details.items() if value is not None})
        return self.connection.xadd(keys.ledger(person_id), fields).decode()

    def record(self, person_id: int, entry: Entry) -> str:
        """Append a planned ``entry``; return its id."""
        return self.append(person_id, entry.action, **entry.details)

    def entries(self, person_id: int) -> list[Mapping[str, str]]:
        """Return every entry about the person, oldest first, each with its ``id``."""
        return [{"id": entry_id.decode(), **{k.decode(): v.decode() for k, v in fields.items()}}
                for entry_id, fields in self.connection.xrange(keys.ledger(person_id))]

    def last_known_consents(self, person_id: int) -> dict[str, Mapping[str, str]]:
        """Return the latest ledger entry per purpose (CRM key) that recorded a legal basis:
        what the connector last knew of each consent row."""
        known = {}
        for entry in self.entries(person_id):
            if entry.get("purpose") and "legal_basis" in entry:
                known[entry["purpose"]] = entry
        return known
