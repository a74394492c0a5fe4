"""One person's export as JSON (GDPR Art. 20: a structured, machine-readable copy).

The same content as the workbook, with the CRM's keys next to every name. The shape is
documented in docs/export-schema.md and versioned: ``{"schema": "consent-connector/export",
"version": 1, ...}``. Times are ISO 8601 in UTC with a ``Z``; a field without a value is null.
"""

import json
from datetime import datetime

from connector.exports.report import (SCHEMA, VERSION, ConsentLine, HistoryLine, Named,
                                      PersonReport)
from connector.times import utc

MIME_TYPE = "application/json"


def to_document(report: PersonReport) -> dict:
    """The report as a JSON-ready dict (docs/export-schema.md)."""
    person = report.person
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "exported_at": iso_time(report.exported_at),
        "exported_by": report.exported_by,
        "language": report.language,
        "connector_associate_id": report.connector_associate_id,
        "person": {
            "id": person.id,
            "name": report.name,
            "first_name": _text(person.first_name),
            "last_name": _text(person.last_name),
            "email": _text(person.email),
            "company": _text(person.company_name),
            "language": _text(person.language),
        },
        "sources": [_named(source) for source in report.sources],
        "legal_bases": [{"key": basis.key, "name": basis.name,
                         "description": _text(basis.description)}
                        for basis in report.legal_bases],
        "consents": [_consent(line) for line in report.consents],
        "history": [_history(line) for line in report.history],
    }


def render_json(report: PersonReport) -> bytes:
    """The report's JSON document as UTF-8 bytes."""
    return (json.dumps(to_document(report), ensure_ascii=False, indent=2) + "\n").encode()


def iso_time(value: datetime | None) -> str | None:
    """``2026-11-29T10:15:00Z``, with milliseconds when the time has them; None stays None."""
    if value is None:
        return None
    value = utc(value)
    spec = "milliseconds" if value.microsecond else "seconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _consent(line: ConsentLine) -> dict:
    return {
        "purpose": _named(line.purpose),
        "description": _text(line.description),
        "status": line.status,
        "legal_basis": _named(line.legal_basis),
        "source": _named(line.source),
        "registered": iso_time(line.registered),
        "registered_by_associate_id": line.registered_by,
        "updated": iso_time(line.updated),
        "updated_by_associate_id": line.updated_by,
        "comment": _text(line.comment),
    }


def _history(line: HistoryLine) -> dict:
    return {
        "id": line.id,
        "at": iso_time(line.at),
        "action": line.action,
        "actor": _text(line.actor),
        "associate_id": line.associate_id,
        "purpose": _named(line.purpose),
        "previous_legal_basis": _named(line.previous_legal_basis),
        "legal_basis": _named(line.legal_basis),
        "source": _named(line.source),
        "comment": _text(line.comment),
        "proof": {
            "notice_version": _text(line.notice_version),
            "token_id": _text(line.token_id),
            "ip": _text(line.ip),
            "user_agent": _text(line.user_agent),
            "submitted_at": iso_time(line.submitted_at),
        },
        "mail": ({"kind": _text(line.mail), "message_id": _text(line.message_id)}
                 if line.mail or line.message_id else None),
        "job_id": _text(line.job_id),
        "other": dict(line.other),
    }


def _named(item: Named | None) -> dict | None:
    return {"key": item.key, "name": item.name} if item is not None else None


def _text(value: str | None) -> str | None:
    return value or None
