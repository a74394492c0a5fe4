"""One person's workbook: every sheet, heading and value, read back with openpyxl; and the JSON
document saying the same."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from openpyxl import load_workbook

from connector.crm.types import ConsentRecord, Person
from connector.exports.document import render_json
from connector.exports.report import build_report
from connector.exports.workbook import CONSENT_COLUMNS, HISTORY_COLUMNS, write_workbook
from connector.i18n import text
from tests.factories import shipped_config

CONFIG = shipped_config()
CONNECTOR, CRM_USER = 9, 7
T0 = datetime(2026, 11, 29, 10, 15, 0, tzinfo=timezone.utc)
EXPORTED = datetime(2026, 12, 2, 12, 0, 0, 500000, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds")


ROWS = (
    ConsentRecord("STORE", "WITHDRAWN", "WEBFORM", "Objection by the person on their personal page",
                  registered=at(0), registered_by=CONNECTOR, updated=at(60), updated_by=CONNECTOR),
    ConsentRecord("EMARKETING", "61A", "USER", "set by a CRM user",
                  registered=at(120), registered_by=CRM_USER, updated=at(120), updated_by=CRM_USER),
    ConsentRecord("NEWSLETTER", "61A", "IMPORT", '=HYPERLINK("http://evil.example","x")',
                  registered=at(1), registered_by=CRM_USER),
)
ENTRIES = (
    {"id": "1-0", "at": iso(at(0) + timedelta(milliseconds=123)), "action": "consent.recorded",
     "purpose": "STORE", "legal_basis": "61F", "source": "USER", "actor": "connector",
     "comment": "Recorded by consent-connector for a new person", "job_id": "job-1",
     "event_id": "event-1"},
    {"id": "2-0", "at": iso(at(0.5)), "action": "mail.sent", "mail": "confirmation",
     "token_id": "tok-1", "message_id": "<m1@example.com>", "actor": "connector",
     "job_id": "job-1"},
    {"id": "3-0", "at": iso(at(60)), "action": "consent.changed", "purpose": "STORE",
     "previous_legal_basis": "61F", "legal_basis": "WITHDRAWN", "source": "WEBFORM",
     "actor": "person", "token_id": "tok-1", "notice_version": "2026-01",
     "user_agent": "=cmd|' /C calc'!A0", "ip": "203.0.113.0/24 #1a2b3c4d5e6f7a8b",
     "submitted_at": iso(at(59.9)), "job_id": "job-2"},
    {"id": "4-0", "at": iso(at(120)), "action": "crm.consent_changed", "purpose": "EMARKETING",
     "legal_basis": "61A", "source": "USER", "actor": "crm user", "associate_id": str(CRM_USER)},
    {"id": "5-0", "at": iso(at(130)), "action": "support.retry", "actor": "support",
     "job_id": "job-3", "by": "siri"},
)


def person(language="nb", consents=ROWS, email="kari@example.no", company="Nordmann AS"):
    return Person(id=2, first_name="Kari", last_name="Nordmann", email=email, language=language,
                  company_name=company, created_by_associate_id=CRM_USER, consents=consents)


def report(language="nb", entries=ENTRIES, **person_fields):
    return build_report(CONFIG, person(language, **person_fields), entries,
                        exported_by="Siri Support", connector_associate_id=CONNECTOR,
                        now=EXPORTED)


@pytest.fixture
def book(tmp_path):
    path = tmp_path / "kari.xlsx"
    write_workbook(report(), path)
    return load_workbook(path)


def table(sheet):
    rows = list(sheet.iter_rows(values_only=True))
    return list(rows[0]), [list(row) for row in rows[1:]]


@pytest.mark.parametrize("language, names", [
    ("nb", ["Sammendrag", "Samtykker", "Historikk"]),
    ("de", ["Übersicht", "Einwilligungen", "Verlauf"]),
    ("en", ["Summary", "Consents", "History"]),
    ("fi", ["Summary", "Consents", "History"]),  # no Finnish texts: English
    (None, ["Summary", "Consents", "History"]),
])
def test_three_sheets_in_the_persons_language(tmp_path, language, names):
    write_workbook(report(language), tmp_path / "out.xlsx")
    book = load_workbook(tmp_path / "out.xlsx")
    assert book.sheetnames == names
    expected = "en" if language in ("fi", None) else language
    assert table(book.worksheets[1])[0] == [text("export", c.key, expected)
                                            for c in CONSENT_COLUMNS]
    assert table(book.worksheets[2])[0] == [text("export", c.key, expected)
                                            for c in HISTORY_COLUMNS]


def test_summary_names_the_person_the_export_the_sources_and_each_legal_basis(book):
    sheet = book["Sammendrag"]
    assert sheet["A1"].value == "Samtykker og historikk: Kari Nordmann"
    assert "UTC" in sheet["A2"].value
    pairs = {row[0]: row[1] for row in sheet.iter_rows(min_row=4, values_only=True) if row[0]}
    assert pairs["Person-ID (CRM)"] == 2
    assert pairs["Navn"] == "Kari Nordmann"
    assert pairs["E-post"] == "kari@example.no"
    assert pairs["Firma"] == "Nordmann AS"
    assert pairs["Eksportert (UTC)"] == datetime(2026, 12, 2, 12, 0, 0, 500000)
    assert pairs["Eksportert av"] == "Siri Support"
    # the rows' sources first, then the history's
    assert pairs["Hvor opplysningene kom fra"].split("\n") == [
        "Nettskjema", "Registrert av våre ansatte", "IMPORT"]
    assert pairs["Registrerte endringer og e-poster"] == len(ENTRIES)
    assert pairs["E-poster sendt"] == 1
    # one plain-language paragraph per legal basis used, in config order, from the config
    bases = CONFIG.legal_bases
    assert pairs["Samtykke"] == bases["consent"].description["nb"]
    assert pairs["Berettiget interesse"] == bases["legitimate_interest"].description["nb"]
    assert pairs["Trukket tilbake"] == bases["withdrawn"].description["nb"]
    assert "Avtale" not in pairs  # contract is configured but not used
    labels = [row[0] for row in sheet.iter_rows(values_only=True)]
    assert labels.index("Hva behandlingsgrunnlagene betyr") < labels.index("Samtykke") < \
        labels.index("Berettiget interesse") < labels.index("Trukket tilbake")


def test_consents_sheet_has_one_row_per_purpose_with_the_crm_values(book):
    _, rows = table(book["Samtykker"])
    store, emarketing, newsletter = rows
    assert store == [
        "Salg og service", CONFIG.purposes["sales_and_service"].description["nb"],
        "Trukket tilbake", "Nettskjema", "Trukket tilbake",
        datetime(2026, 11, 29, 10, 15), "consent-connector, bruker-ID 9",
        datetime(2026, 11, 29, 11, 15), "consent-connector, bruker-ID 9",
        "Objection by the person on their personal page"]
    assert emarketing[:5] == ["E-markedsføring", CONFIG.purposes["e_marketing"].description["nb"],
                              "Samtykke", "Registrert av våre ansatte", "Aktiv"]
    assert emarketing[5:9] == [datetime(2026, 11, 29, 12, 15), "CRM-bruker, bruker-ID 7",
                               datetime(2026, 11, 29, 12, 15), "CRM-bruker, bruker-ID 7"]
    # a purpose the config does not know is shown by its CRM key, never dropped
    assert newsletter[:5] == ["NEWSLETTER", None, "Samtykke", "IMPORT", "Aktiv"]
    assert newsletter[7:9] == [None, None]


def test_a_purpose_without_a_row_says_not_given_or_not_recorded(tmp_path):
    write_workbook(report("en", consents=()), tmp_path / "out.xlsx")
    _, rows = table(load_workbook(tmp_path / "out.xlsx")["Consents"])
    assert [(row[0], row[2], row[4]) for row in rows] == [
        ("Sales and service", None, "Not recorded"), ("E-marketing", None, "Not given")]


def test_history_sheet_lists_every_ledger_entry_oldest_first_with_its_proof(book):
    _, rows = table(book["Historikk"])
    assert len(rows) == len(ENTRIES)
    recorded, mail, changed, crm, retry = rows
    assert recorded == [
        datetime(2026, 11, 29, 10, 15, 0, 123000), "Registrert", "Salg og service",
        "(ingen) → Berettiget interesse", "Registrert av våre ansatte",
        "consent-connector (automatisk)", "Recorded by consent-connector for a new person",
        None, None, None, None, None, None, None, "job_id: job-1\nevent_id: event-1"]
    assert mail[:2] == [datetime(2026, 11, 29, 10, 15, 30), "E-post sendt"]
    assert mail[5] == "consent-connector (automatisk)"
    assert mail[8] == "tok-1"
    assert mail[12:14] == ["Bekreftelse på hva vi registrerer", "<m1@example.com>"]
    assert changed == [
        datetime(2026, 11, 29, 11, 15), "Endret", "Salg og service",
        "Berettiget interesse → Trukket tilbake", "Nettskjema",
        "Personen selv, på sin egen side",
        None, "2026-01", "tok-1", "203.0.113.0/24 #1a2b3c4d5e6f7a8b", "=cmd|' /C calc'!A0",
        datetime(2026, 11, 29, 11, 14, 54), None, None, "job_id: job-2"]
    assert crm[1:6] == ["Endret i CRM", "E-markedsføring", "(ingen) → Samtykke",
                        "Registrert av våre ansatte", "CRM-bruker, bruker-ID 7"]
    assert retry[1] == "Forsøkt på nytt av kundestøtte"
    assert retry[5] == "Kundestøtte"
    assert retry[14] == "job_id: job-3\nby: siri"
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)


def test_unknown_actions_and_actors_are_shown_as_stored(tmp_path):
    entries = [{"id": "1-0", "at": iso(T0), "action": "consent.imported", "actor": "migration",
                "purpose": "STORE", "legal_basis": "61B"}]
    write_workbook(report("en", entries=entries), tmp_path / "out.xlsx")
    _, rows = table(load_workbook(tmp_path / "out.xlsx")["History"])
    assert rows[0][1:6] == ["consent.imported", "Sales and service", "(none) → Contract", None,
                            "migration"]


def test_dates_are_date_cells_holding_utc(book):
    for sheet, columns in ((book["Samtykker"], CONSENT_COLUMNS),
                           (book["Historikk"], HISTORY_COLUMNS)):
        date_columns = [i for i, column in enumerate(columns, 1) if column.kind == "date"]
        assert date_columns
        cells = [sheet.cell(row=r, column=c) for r in range(2, sheet.max_row + 1)
                 for c in date_columns if sheet.cell(row=r, column=c).value is not None]
        assert cells, sheet.title
        for cell in cells:
            assert isinstance(cell.value, datetime) and cell.value.tzinfo is None
            assert cell.is_date and "yyyy" in cell.number_format
    assert "UTC" in book["Historikk"]["A1"].value


def test_a_ledger_time_with_an_offset_is_converted_to_utc(tmp_path):
    entries = [{"id": "1-0", "at": "2026-11-29T11:15:00.000+01:00", "action": "mail.sent"}]
    write_workbook(report("en", entries=entries), tmp_path / "out.xlsx")
    cell = load_workbook(tmp_path / "out.xlsx")["History"]["A2"]
    assert cell.value == datetime(2026, 11, 29, 10, 15)


def test_tables_have_a_frozen_header_a_filter_widths_and_wrapped_text(book):
    for name, columns in (("Samtykker", CONSENT_COLUMNS), ("Historikk", HISTORY_COLUMNS)):
        sheet = book[name]
        assert sheet.freeze_panes == "B2"
        last = chr(ord("A") + len(columns) - 1)
        assert sheet.auto_filter.ref == f"A1:{last}{sheet.max_row}"
        assert sheet.print_title_rows == "$1:$1"
        for index, column in enumerate(columns):
            letter = chr(ord("A") + index)
            assert sheet.column_dimensions[letter].width == column.width
            assert sheet[f"{letter}1"].font.bold
            if column.kind == "wrap":
                assert all(sheet[f"{letter}{row}"].alignment.wrap_text
                           for row in range(2, sheet.max_row + 1))
    summary = book["Sammendrag"]
    assert summary.freeze_panes == "A2"
    assert summary.column_dimensions["B"].width >= 60
    description = next(row[1] for row in summary.iter_rows() if row[0].value == "Samtykke")
    assert description.alignment.wrap_text


def test_an_empty_history_still_has_its_header_and_filter(tmp_path):
    write_workbook(report("en", entries=(), consents=(), email=None, company=None),
                   tmp_path / "out.xlsx")
    book = load_workbook(tmp_path / "out.xlsx")
    header, rows = table(book["History"])
    assert header[0] == "When (UTC)" and rows == []
    assert book["History"].auto_filter.ref == "A1:O2"
    pairs = {row[0]: row[1] for row in book["Summary"].iter_rows(min_row=4, values_only=True)}
    assert pairs["Email"] == "(no email address)"
    assert pairs["Company"] == "(none)"
    assert pairs["Where the data came from"] == "(none)"


def test_text_that_looks_like_a_formula_or_an_error_stays_text(tmp_path):
    rows = ROWS + (ConsentRecord("OTHER", "#N/A", "USER", "#REF!"),)
    write_workbook(report("en", consents=rows), tmp_path / "out.xlsx")
    book = load_workbook(tmp_path / "out.xlsx")
    newsletter = book["Consents"]["J4"]
    assert newsletter.value == '=HYPERLINK("http://evil.example","x")'
    assert newsletter.data_type == "s"
    user_agent = book["History"]["K4"]
    assert user_agent.value == "=cmd|' /C calc'!A0" and user_agent.data_type == "s"
    other = [cell for cell in book["Consents"][5]]
    assert (other[2].value, other[2].data_type) == ("#N/A", "s")
    assert (other[9].value, other[9].data_type) == ("#REF!", "s")


def test_control_characters_a_sheet_cannot_hold_are_dropped(tmp_path):
    entries = [{"id": "1-0", "at": iso(T0), "action": "consent.changed",
                "user_agent": "Bad\x00Agent\x1b[0m", "comment": "line one\nline two"}]
    write_workbook(report("en", entries=entries), tmp_path / "out.xlsx")
    row = table(load_workbook(tmp_path / "out.xlsx")["History"])[1][0]
    assert row[10] == "BadAgent[0m"
    assert row[6] == "line one\nline two"


# -- the JSON says what the workbook says --------------------------------------------------


def utc(text_value: str | None):
    if text_value is None:
        return None
    return datetime.fromisoformat(text_value.replace("Z", "+00:00")).replace(tzinfo=None)


def test_json_says_what_the_workbook_says(tmp_path):
    the_report = report("nb")
    write_workbook(the_report, tmp_path / "out.xlsx")
    book = load_workbook(tmp_path / "out.xlsx")
    document = json.loads(render_json(the_report))

    assert document["schema"] == "consent-connector/export" and document["version"] == 1
    pairs = {row[0]: row[1] for row in book["Sammendrag"].iter_rows(min_row=4, values_only=True)}
    assert pairs["Person-ID (CRM)"] == document["person"]["id"]
    assert pairs["Navn"] == document["person"]["name"]
    assert pairs["E-post"] == document["person"]["email"]
    assert pairs["Firma"] == document["person"]["company"]
    assert pairs["Eksportert (UTC)"] == utc(document["exported_at"])
    assert pairs["Eksportert av"] == document["exported_by"]
    assert pairs["Hvor opplysningene kom fra"].split("\n") == [
        source["name"] for source in document["sources"]]
    for basis in document["legal_bases"]:
        assert pairs[basis["name"]] == basis["description"]

    _, consent_rows = table(book["Samtykker"])
    assert len(consent_rows) == len(document["consents"])
    for row, consent in zip(consent_rows, document["consents"]):
        assert row[0] == consent["purpose"]["name"]
        assert row[1] == consent["description"]
        assert row[2] == (consent["legal_basis"] or {}).get("name")
        assert row[3] == (consent["source"] or {}).get("name")
        assert row[4] == text("export", f"status.{consent['status']}", "nb")
        assert row[5] == utc(consent["registered"]) and row[7] == utc(consent["updated"])
        for cell, associate in ((row[6], consent["registered_by_associate_id"]),
                                (row[8], consent["updated_by_associate_id"])):
            assert (cell is None) == (associate is None)
            assert associate is None or cell.endswith(f" {associate}")
        assert row[9] == consent["comment"]

    _, history_rows = table(book["Historikk"])
    assert len(history_rows) == len(document["history"])
    for row, entry in zip(history_rows, document["history"]):
        assert row[0] == utc(entry["at"])
        assert row[1] == text("export", f"action.{entry['action']}", "nb")
        assert row[2] == (entry["purpose"] or {}).get("name")
        if entry["legal_basis"]:
            assert row[3].endswith(f"→ {entry['legal_basis']['name']}")
            if entry["previous_legal_basis"]:
                assert row[3].startswith(entry["previous_legal_basis"]["name"])
        assert row[4] == (entry["source"] or {}).get("name")
        assert row[6] == entry["comment"]
        proof = entry["proof"]
        assert row[7:11] == [proof["notice_version"], proof["token_id"], proof["ip"],
                             proof["user_agent"]]
        assert row[11] == utc(proof["submitted_at"])
        assert row[13] == (entry["mail"] or {}).get("message_id")
        for name, value in entry["other"].items():
            assert f"{name}: {value}" in row[14]
