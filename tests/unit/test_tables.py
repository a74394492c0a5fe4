"""connector.exports.tables: the DPO's tables (ledger query, retention and expiry reports) as
.xlsx or CSV."""

import gc
import io
import sys

import pytest
from openpyxl import load_workbook

from connector.exports.tables import Table, write_csv, write_xlsx

TABLE = Table("Rows", ("person_id", "at"), {"person_id": 11, "at": 22}, time_columns=("at",),
              number_columns=("person_id",), about_title="About")


def test_a_workbook_has_the_rows_then_what_they_are_about():
    stream = io.BytesIO()
    count = write_xlsx(stream, [{"person_id": "7", "at": "2026-11-30T10:00:00+00:00"}],
                       [("as of", "2026-11-30")], TABLE)
    workbook = load_workbook(stream)
    assert count == 1 and workbook.sheetnames == ["Rows", "About"]
    assert [cell.value for cell in workbook["Rows"][2]][0] == 7
    assert workbook["About"]["B1"].value == "2026-11-30"


def test_a_source_that_fails_at_once_raises_its_error_and_nothing_else(monkeypatch):
    def unreachable():
        raise ConnectionError("the evidence database cannot be reached")
        yield {}  # a generator, as the ledger's query is
    complaints = []  # what Python prints as "Exception ignored in …"
    monkeypatch.setattr(sys, "unraisablehook", complaints.append)

    with pytest.raises(ConnectionError):
        write_xlsx(io.BytesIO(), unreachable(), [], TABLE)
    gc.collect()
    assert complaints == []


def test_csv_from_a_source_that_fails_at_once_writes_not_even_the_header():
    def unreachable():
        raise ConnectionError("the evidence database cannot be reached")
        yield {}
    stream = io.StringIO()
    with pytest.raises(ConnectionError):
        write_csv(stream, unreachable(), TABLE)
    assert stream.getvalue() == ""
    write_csv(stream, [{"person_id": "7", "at": "x"}], TABLE)
    assert stream.getvalue().splitlines() == ["person_id,at", "7,x"]
