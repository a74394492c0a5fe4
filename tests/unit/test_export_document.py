"""The JSON export: its versioned shape, its conventions, and docs/export-schema.md describing
exactly the fields it has."""

import json
import re
from datetime import datetime, timezone

from connector.crm.types import ConsentRecord, Person
from connector.exports.document import iso_time, render_json, to_document
from connector.exports.report import build_report, own_report
from tests.conftest import ROOT
from tests.factories import shipped_config

CONFIG = shipped_config()
T0 = datetime(2026, 11, 29, 10, 15, tzinfo=timezone.utc)
SCHEMA_DOC = ROOT / "docs" / "export-schema.md"

PERSON = Person(id=5, first_name="Ada", last_name="Lovelace", email="ada@example.org",
                language=None, company_name=None, created_by_associate_id=7,
                consents=(ConsentRecord("STORE", "61F", "USER", "default", T0, 9, T0, 9),))
ENTRIES = [
    {"id": "1-0", "at": "2026-11-29T10:15:00.120+00:00", "action": "consent.recorded",
     "purpose": "STORE", "legal_basis": "61F", "source": "USER", "actor": "connector",
     "job_id": "job-1", "event_id": "event-1"},
    {"id": "2-0", "at": "2026-11-29T10:15:01.000+00:00", "action": "mail.sent",
     "mail": "confirmation", "token_id": "tok", "message_id": "<m@x>", "actor": "connector"},
    {"id": "3-0", "at": "2026-11-30T08:00:00.000+00:00", "action": "consent.changed",
     "purpose": "EMARKETING", "previous_legal_basis": "", "legal_basis": "61A",
     "source": "WEBFORM", "actor": "person", "notice_version": "2026-01", "token_id": "tok",
     "ip": "203.0.113.0/24 #1a2b3c4d5e6f7a8b", "user_agent": "Mozilla/5.0",
     "submitted_at": "2026-11-30T07:59:59.000+00:00"},
    {"id": "4-0", "at": "2026-12-01T08:00:00.000+00:00", "action": "consent.changed",
     "purpose": "EMARKETING", "previous_legal_basis": "61A", "legal_basis": "WITHDRAWN",
     "source": "WEBFORM", "actor": "person"},
]


def document():
    return json.loads(render_json(build_report(CONFIG, PERSON, ENTRIES, exported_by="support",
                                               connector_associate_id=9, now=T0)))


def paths(value, prefix=""):
    """Every field path in a document, lists written as ``[]``; ``other`` is free-form."""
    found = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            found.add(path)
            if key != "other":
                found |= paths(item, path)
    elif isinstance(value, list):
        for item in value:
            found |= paths(item, f"{prefix}[]")
    return found


def documented_paths() -> set[str]:
    """The field paths in the first column of docs/export-schema.md's tables; a field of type
    "named" stands for its ``.key`` and ``.name``."""
    found = set()
    for path, kind in re.findall(r"^\| `([\w.\[\]]+)` \| ([^|]*) \|", SCHEMA_DOC.read_text(),
                                 re.MULTILINE):
        found.add(path)
        if kind.strip().startswith("named"):
            found |= {f"{path}.key", f"{path}.name"}
        elif kind.strip().startswith("list of named"):
            found |= {f"{path}[].key", f"{path}[].name"}
    return found


def test_the_document_names_its_schema_and_version():
    doc = document()
    assert (doc["schema"], doc["version"]) == ("consent-connector/export", 1)
    assert list(doc)[:2] == ["schema", "version"]


def test_the_schema_document_describes_exactly_the_fields_of_version_1():
    produced = paths(document())
    documented = documented_paths()
    assert produced - documented == set(), "fields missing from docs/export-schema.md"
    assert documented - produced == set(), "documented fields the export does not have"


def test_the_documents_example_shows_every_documented_field():
    example = re.search(r"## Example\n\n```json\n(.*?)\n```", SCHEMA_DOC.read_text(), re.DOTALL)
    assert example, "docs/export-schema.md has no example"
    assert paths(json.loads(example.group(1))) == documented_paths()


def test_times_are_utc_with_z_and_missing_values_are_null():
    doc = document()
    assert doc["exported_at"] == "2026-11-29T10:15:00Z"
    assert doc["person"]["company"] is None and doc["person"]["language"] is None
    store, emarketing = doc["consents"]
    assert store["registered"] == "2026-11-29T10:15:00Z"
    assert store["registered_by_associate_id"] == 9
    assert emarketing == {"purpose": {"key": "EMARKETING", "name": "E-marketing"},
                          "description": CONFIG.purposes["e_marketing"].description["en"],
                          "status": "not_given", "legal_basis": None, "source": None,
                          "registered": None, "registered_by_associate_id": None,
                          "updated": None, "updated_by_associate_id": None, "comment": None}
    recorded, mail, changed, withdrawn = doc["history"]
    assert recorded["at"] == "2026-11-29T10:15:00.120Z"
    assert recorded["previous_legal_basis"] is None
    assert recorded["other"] == {"event_id": "event-1"} and recorded["job_id"] == "job-1"
    assert mail["mail"] == {"kind": "confirmation", "message_id": "<m@x>"}
    assert mail["proof"]["token_id"] == "tok" and mail["purpose"] is None
    assert changed["previous_legal_basis"] is None  # "" in the ledger: there was no row
    assert changed["proof"] == {"notice_version": "2026-01", "token_id": "tok",
                                "ip": "203.0.113.0/24 #1a2b3c4d5e6f7a8b",
                                "user_agent": "Mozilla/5.0", "submitted_at": "2026-11-30T07:59:59Z"}
    assert changed["mail"] is None
    assert (withdrawn["previous_legal_basis"], withdrawn["legal_basis"]) == (
        {"key": "61A", "name": "Consent"}, {"key": "WITHDRAWN", "name": "Withdrawn"})


def test_named_values_carry_the_crm_key_and_the_configured_name():
    doc = document()
    assert doc["sources"] == [{"key": "USER", "name": "Registered by our staff"},
                              {"key": "WEBFORM", "name": "Web form"}]
    assert [basis["key"] for basis in doc["legal_bases"]] == ["61A", "61F", "WITHDRAWN"]
    assert doc["history"][2]["legal_basis"] == {"key": "61A", "name": "Consent"}


def test_the_json_is_utf8_and_keeps_non_ascii_letters():
    person = Person(id=6, first_name="Åse", last_name="Ødegård", email=None, language="nb",
                    company_name="Blåbær AS", created_by_associate_id=None, consents=())
    body = render_json(build_report(CONFIG, person, [], exported_by="støtte", now=T0))
    assert "Åse Ødegård".encode() in body and b"\\u" not in body
    assert json.loads(body.decode("utf-8"))["person"]["company"] == "Blåbær AS"


def test_iso_time_of_an_aware_time_in_another_zone():
    from datetime import timedelta
    assert iso_time(datetime(2026, 1, 1, 1, 0, 0, 5000, tzinfo=timezone(timedelta(hours=1)))) \
        == "2026-01-01T00:00:00.005Z"
    assert iso_time(None) is None
    assert to_document(build_report(CONFIG, PERSON, [], exported_by="x", now=T0))["history"] == []


def test_the_persons_own_copy_names_support_staff_by_their_role_only():
    config = shipped_config()
    person = Person(3, "Kari", "N", "kari@example.no", "nb", None, None, ())
    entries = [{"id": "1", "at": "2026-11-30T10:00:00+00:00", "action": "support.retry",
                "actor": "Sam Support (admin page)", "job_id": "j1"},
               {"id": "2", "at": "2026-11-30T10:01:00+00:00", "action": "consent.recorded",
                "purpose": "STORE", "legal_basis": "61F", "actor": "connector"},
               {"id": "3", "at": "2026-11-30T10:02:00+00:00", "action": "consent.changed",
                "purpose": "EMARKETING", "legal_basis": "61A", "actor": "person"}]

    own = own_report(config, person, entries, language="en")
    staff = build_report(config, person, entries, exported_by="Sam", language="en")

    assert [line.actor for line in own.history] == ["support", "connector", "person"]
    assert b"Sam Support" not in render_json(own)
    assert staff.history[0].actor == "Sam Support (admin page)"  # support's own export keeps it
    assert own.exported_by == "You, from your personal page"
