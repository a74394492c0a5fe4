"""A ledger entry as planned (``Entry``) and as stored: which facts get a column, which proof
identifies the person, and the hashes that chain a person's entries. Pure: no database here.

How the chain works (``consent-connector ledger verify`` checks it):

- ``personal_digest`` = SHA-256 of a random salt and the identifying proof (IP network and
  hash, browser). Erasure replaces that proof by a marker and drops the salt; the digest stays.
- ``hash`` = SHA-256 of the entry's canonical JSON: person, seq, time, action, every fact,
  ``personal_digest`` and ``prev_hash``.
- ``prev_hash`` = the ``hash`` of the person's entry before it (``GENESIS`` for the first).

Changing any stored fact, removing an entry or reordering entries breaks a link; erasing the
identifying proof does not, because the chain covers its digest, not the proof itself.
"""

import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

GENESIS = "0" * 64
"""The ``prev_hash`` of a person's first entry."""

COLUMNS = ("purpose", "legal_basis", "source", "actor", "job_id", "event_id", "notice_version")
"""Facts with a column of their own (what the DPO's queries filter by); the rest go to
``details``."""

PERSONAL = ("ip", "user_agent")
"""Proof that identifies the person; pseudonymised on erasure (connector.proof makes it)."""

ERASED = "erased"
"""What replaces each identifying proof field once the person's ledger is erased."""

HASHED = ("person_id", "seq", "at", "action", *COLUMNS, "details", "personal_digest",
          "prev_hash")
"""What an entry's hash covers, in this order (the JSON's keys are sorted anyway)."""


@dataclass(frozen=True)
class Entry:
    """One entry about to be appended: what happened and its proof (None values are left out)."""

    action: str
    details: Mapping[str, str | int | None] = field(default_factory=dict)


def stored_form(person_id: int, seq: int, at: str, entry: Entry, prev_hash: str) -> dict:
    """The row that stores ``entry`` as the person's ``seq``-th, chained to ``prev_hash``."""
    facts = {key: str(value) for key, value in entry.details.items() if value is not None}
    personal = {key: facts.pop(key) for key in PERSONAL if key in facts}
    row = {"person_id": person_id, "seq": seq, "at": at, "action": entry.action,
           **{name: facts.pop(name, None) for name in COLUMNS},
           "details": canonical(facts), "personal": None, "personal_salt": None,
           "personal_digest": None, "prev_hash": prev_hash}
    if personal:
        row["personal"] = canonical(personal)
        row["personal_salt"] = secrets.token_hex(16)
        row["personal_digest"] = digest_personal(row["personal_salt"], row["personal"])
    row["hash"] = entry_hash(row)
    return row


def entry_hash(row: Mapping) -> str:
    """The SHA-256 (hex) over what ``HASHED`` names in the stored row."""
    return hashlib.sha256(canonical({name: row[name] for name in HASHED}).encode()).hexdigest()


def digest_personal(salt: str, personal: str) -> str:
    """The SHA-256 (hex) of the salt and the identifying proof's canonical JSON."""
    return hashlib.sha256(f"{salt}{personal}".encode()).hexdigest()


def erased_personal(personal: str) -> str:
    """The marker that replaces identifying proof: the same fields, each ``ERASED``."""
    return canonical({key: ERASED for key in json.loads(personal)})


READABLE = ("id", "at", "action", *COLUMNS, "details", "personal")
"""The stored columns ``readable`` reads (the hashes and the salt are for ``verify`` only)."""


def readable(row: Mapping) -> dict[str, str]:
    """An entry as callers read it: ``id``, ``at``, ``action`` and every fact as text."""
    entry = {"id": str(row["id"]), "at": row["at"], "action": row["action"]}
    for name in COLUMNS:
        value = row[name]
        if value is not None:
            entry[name] = value
    details, personal = row["details"], row["personal"]
    if details != "{}":
        entry.update(_decode(details)[0])
    if personal:
        entry.update(_decode(personal)[0])
    return entry


_decode = json.JSONDecoder().raw_decode
"""Reads the canonical JSON the ledger stores (no surrounding whitespace to skip): a third
faster than ``json.loads`` on the DPO's query of hundreds of thousands of entries."""


def canonical(value) -> str:
    """Compact JSON with sorted keys: one text for one value, on every machine."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
