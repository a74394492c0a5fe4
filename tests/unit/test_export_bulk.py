"""The bulk export: one streamed row per person and purpose, nothing left behind on failure, and
the CRM source that feeds it."""

import os
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from openpyxl import load_workbook

from connector.crm.types import ConsentRecord, Person
from connector.exceptions import CRMError, PersonNotFoundError
from connector.exports.bulk import BULK_COLUMNS, persons_with_consents, write_bulk
from connector.files import atomic_output
from connector.i18n import text
from tests.factories import shipped_config

CONFIG = shipped_config()
T0 = datetime(2026, 11, 29, 10, 15, tzinfo=timezone.utc)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def person(person_id: int, *consents: ConsentRecord, email=None, company=None) -> Person:
    return Person(id=person_id, first_name=f"First{person_id}", last_name=f"Last{person_id}",
                  email=email, language=None, company_name=company, created_by_associate_id=None,
                  consents=consents)


PERSONS = [
    person(1, ConsentRecord("STORE", "61F", "USER", "default", T0, 9, T0, 9),
           email="one@example.org", company="One AS"),
    person(2, ConsentRecord("STORE", "WITHDRAWN", "WEBFORM", "objection", T0, 9, T0, 9),
           ConsentRecord("EMARKETING", "61A", "WEBFORM", "=1+1", T0, 9, T0, 9)),
    person(3),
    person(4, ConsentRecord("NEWSLETTER", "61A", "IMPORT")),
]


def export(tmp_path, source, name="all.xlsx"):
    path = tmp_path / name
    with atomic_output(path) as stream:
        summary = write_bulk(stream, ((p, p.consents) for p in source), CONFIG,
                             exported_by="dpo", now=NOW)
    return path, summary


def test_one_row_per_person_and_purpose_with_keys_and_names(tmp_path):
    path, summary = export(tmp_path, PERSONS)
    assert (summary.persons, summary.rows) == (4, 9)  # 2 purposes each + person 4's NEWSLETTER
    book = load_workbook(path)
    assert book.sheetnames == ["Consents", "About this export"]
    rows = list(book["Consents"].iter_rows(values_only=True))
    assert list(rows[0]) == [text("export", column.key, "en") for column in BULK_COLUMNS]
    assert len(rows) == 1 + summary.rows
    assert list(rows[1]) == [1, "First1 Last1", "one@example.org", "One AS",
                             "Sales and service", "STORE", "Legitimate interest", "61F",
                             "Registered by our staff", "USER", "Active",
                             datetime(2026, 11, 29, 10, 15), 9, datetime(2026, 11, 29, 10, 15), 9,
                             "default", None, None, None, None]  # no ledger given
    assert list(rows[2])[:11] == [1, "First1 Last1", "one@example.org", "One AS", "E-marketing",
                                  "EMARKETING", None, None, None, None, "Not given"]
    assert [(r[0], r[5], r[7], r[10]) for r in rows[3:]] == [
        (2, "STORE", "WITHDRAWN", "Withdrawn"), (2, "EMARKETING", "61A", "Active"),
        (3, "STORE", None, "Not recorded"), (3, "EMARKETING", None, "Not given"),
        (4, "STORE", None, "Not recorded"), (4, "EMARKETING", None, "Not given"),
        (4, "NEWSLETTER", "61A", "Active")]


def test_each_row_carries_the_ledgers_proof_of_its_purpose(tmp_path):
    ledger = {2: {"EMARKETING": {"action": "consent.changed", "legal_basis": "61A",
                                 "at": "2026-11-29T10:20:00.250+00:00",
                                 "notice_version": "2026-01", "token_id": "tok-7"}}}
    path = tmp_path / "all.xlsx"
    with atomic_output(path) as stream:
        write_bulk(stream, ((p, p.consents) for p in PERSONS), CONFIG, exported_by="dpo",
                   now=NOW, evidence=lambda person_id: ledger.get(person_id, {}))

    rows = list(load_workbook(path)["Consents"].iter_rows(values_only=True))
    proof = {(row[0], row[5]): row[16:] for row in rows[1:]}
    assert proof[(2, "EMARKETING")] == (datetime(2026, 11, 29, 10, 20, 0, 250000),
                                        text("export", "action.consent.changed", "en"),
                                        "2026-01", "tok-7")
    assert proof[(2, "STORE")] == (None, None, None, None)


def test_the_sheet_is_filtered_frozen_and_formula_like_text_stays_text(tmp_path):
    path, summary = export(tmp_path, PERSONS)
    sheet = load_workbook(path)["Consents"]
    assert sheet.freeze_panes == "C2"
    assert sheet.auto_filter.ref == f"A1:T{summary.rows + 1}"
    assert sheet.column_dimensions["B"].width == BULK_COLUMNS[1].width
    assert sheet["A1"].font.bold
    comment = sheet["P5"]
    assert (comment.value, comment.data_type) == ("=1+1", "s")
    assert sheet["L2"].is_date


def test_the_about_sheet_says_when_by_whom_and_how_many(tmp_path):
    path, _ = export(tmp_path, PERSONS)
    about = {row[0]: row[1] for row in load_workbook(path)["About this export"].iter_rows(
        values_only=True)}
    assert about["Exported at (UTC)"] == datetime(2026, 12, 1, 9, 0)
    assert about["Exported by"] == "dpo"
    assert about["Persons"] == 4
    assert about["Rows (person and purpose)"] == 9


def test_an_empty_crm_gives_a_header_and_nothing_else(tmp_path):
    path, summary = export(tmp_path, [])
    assert (summary.persons, summary.rows) == (0, 0)
    assert len(list(load_workbook(path)["Consents"].iter_rows())) == 1


def failing_source():
    yield PERSONS[0], PERSONS[0].consents
    raise CRMError("CRM failed (503) while reading person 2")


def test_a_failure_midway_leaves_no_file_and_no_temporary_file(tmp_path):
    with pytest.raises(CRMError):
        with atomic_output(tmp_path / "all.xlsx") as stream:
            write_bulk(stream, failing_source(), CONFIG, exported_by="dpo")
    assert list(tmp_path.iterdir()) == []


def test_a_failure_midway_deletes_the_rows_streamed_to_temporary_files(tmp_path):
    from openpyxl.worksheet import _writer  # where openpyxl keeps its write-only temp files

    before = set(_writer.ALL_TEMP_FILES)
    with pytest.raises(CRMError), tmp_path.joinpath("out.xlsx").open("wb") as stream:
        write_bulk(stream, failing_source(), CONFIG, exported_by="dpo")
    streamed = set(_writer.ALL_TEMP_FILES) - before
    assert not [path for path in streamed if os.path.exists(path)]


def test_a_failure_leaves_an_earlier_export_as_it_was(tmp_path):
    (tmp_path / "all.xlsx").write_bytes(b"the earlier export")
    with pytest.raises(CRMError):
        with atomic_output(tmp_path / "all.xlsx") as stream:
            write_bulk(stream, failing_source(), CONFIG, exported_by="dpo")
    assert (tmp_path / "all.xlsx").read_bytes() == b"the earlier export"
    assert [p.name for p in tmp_path.iterdir()] == ["all.xlsx"]


def test_ctrl_c_leaves_nothing_behind(tmp_path):
    def interrupted():
        yield PERSONS[0], PERSONS[0].consents
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(tmp_path / "all.xlsx") as stream:
            write_bulk(stream, interrupted(), CONFIG, exported_by="dpo")
    assert list(tmp_path.iterdir()) == []


def test_the_file_is_private_to_its_owner(tmp_path):
    path, _ = export(tmp_path, PERSONS[:1])
    assert path.stat().st_mode & 0o077 == 0


# -- the source: list the persons, read each ------------------------------------------------


@dataclass(frozen=True)
class Listed:
    person_id: int


class FakeCRM:
    """list_persons and get_person with scripted failures per person id."""

    def __init__(self, persons, failures=None):
        self.persons = {p.id: p for p in persons}
        self.failures = {key: list(value) for key, value in (failures or {}).items()}
        self.page_sizes = []
        self.reads = []

    def list_persons(self, changed_since, page_size=200):
        self.page_sizes.append(page_size)
        return (Listed(person_id) for person_id in sorted(self.persons))

    def get_person(self, person_id):
        self.reads.append(person_id)
        failures = self.failures.get(person_id)
        if failures:
            raise failures.pop(0)
        return self.persons[person_id]


def test_the_source_yields_every_listed_person_with_their_rows():
    crm = FakeCRM(PERSONS)
    assert [(p.id, rows) for p, rows in persons_with_consents(crm, page_size=50)] == [
        (p.id, p.consents) for p in PERSONS]
    assert crm.page_sizes == [50]


def test_a_person_deleted_since_listing_is_skipped():
    crm = FakeCRM(PERSONS, {2: [PersonNotFoundError(2)]})
    assert [p.id for p, _ in persons_with_consents(crm)] == [1, 3, 4]


def test_a_transient_failure_is_tried_again_after_retry_after():
    waits = []
    crm = FakeCRM(PERSONS, {2: [CRMError("503", status=503, retry_after=7),
                                CRMError("timeout")]})
    assert [p.id for p, _ in persons_with_consents(crm, sleep=waits.append)] == [1, 2, 3, 4]
    assert waits == [7, 2.0]
    assert crm.reads.count(2) == 3


def test_a_failure_that_persists_stops_the_export():
    crm = FakeCRM(PERSONS, {2: [CRMError("503", status=503)] * 3})
    with pytest.raises(CRMError):
        list(persons_with_consents(crm, sleep=lambda seconds: None))
    assert crm.reads.count(2) == 3


def test_a_permanent_failure_stops_at_once():
    crm = FakeCRM(PERSONS, {1: [CRMError("401", status=401, permanent=True)]})
    with pytest.raises(CRMError):
        list(persons_with_consents(crm, sleep=lambda seconds: pytest.fail("slept")))
    assert crm.reads == [1]
