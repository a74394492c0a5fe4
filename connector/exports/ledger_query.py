"""The data protection officer's query of the consent ledger (``consent-connector ledger
query``): the entries about one purpose (``Ledger.query``) as rows with their proof, written
as .xlsx (openpyxl write-only: memory stays flat however many rows) or .csv.

Each row's ``outcome`` says what the entry did to the purpose, read from its legal basis
(CRM keys, interpreted with the purposes config):

- ``given``: the legal basis is consent: the config's ``consent`` basis, the one the person's
  page records (``subscription_page.consent_legal_basis``), or 61A.
- ``withdrawn`` / ``objected``: the legal basis is the withdrawn one (``withdrawn: true``, or
  WITHDRAWN when the config does not know the key). ``withdrawn`` when what was withdrawn
  was consent; ``objected`` (GDPR Art. 21) when it was another basis. What was withdrawn is
  the entry's ``previous_legal_basis`` when it names one; otherwise the purpose decides:
  ``requires_consent`` → withdrawn, any other configured purpose → objected, a purpose the
  config does not know → withdrawn.
- ``other``: any other legal basis (legitimate interest, contract …), none (a row removed in
  the CRM), or an entry that records no legal basis.
"""

import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from connector.config import CONSENT_CRM_KEY
from connector.consent import ConsentConfig, fold_key
from connector.exports.workbook import (DATE_FORMAT, HEADER_ALIGNMENT, HEADER_FILL, HEADER_FONT,
                                        clean_text, excel_time, needs_text_type)
from connector.times import parse_iso

GIVEN, WITHDRAWN, OBJECTED, OTHER = "given", "withdrawn", "objected", "other"
"""The outcomes of an entry (the module docstring says how each is decided)."""

COLUMNS = ("person_id", "at", "action", "outcome", "legal_basis", "source", "actor",
           "notice_version", "submitted_at", "token_id", "ip", "user_agent", "via", "comment",
           "job_id", "event_id")
"""The columns of the query's rows, in order; also the header row of both file formats."""

TIME_COLUMNS = ("at", "submitted_at")
"""Columns holding ISO UTC times: date cells in the workbook, ISO text in the CSV."""

WIDTHS = {"person_id": 11, "at": 20, "action": 22, "outcome": 11, "legal_basis": 12,
          "source": 12, "actor": 16, "notice_version": 14, "submitted_at": 20,
          "token_id": 18, "ip": 30, "user_agent": 50, "via": 12, "comment": 60,
          "job_id": 38, "event_id": 38}
"""Column widths in the workbook, in characters."""

FORMATS = ("xlsx", "csv")
"""The file formats, named by the output file's extension."""

SHEET_TITLE = "Ledger entries"
ABOUT_TITLE = "About this query"
UTC_NOTE = "All times are UTC."


@dataclass(frozen=True)
class OutcomeRules:
    """Which CRM keys mean consent, withdrawal, and purposes that require consent, folded
    (``fold_key``), taken from the purposes config once for a whole query."""

    consent_bases: frozenset[str]
    withdrawn_bases: frozenset[str]
    consent_purposes: frozenset[str]
    known_purposes: frozenset[str]

    @classmethod
    def from_config(cls, config: ConsentConfig) -> "OutcomeRules":
        """The rules of the purposes config in force."""
        bases = config.legal_bases
        consent = {CONSENT_CRM_KEY} | {bases[key].crm_key for key in
                                       ("consent", config.page_consent_legal_basis)
                                       if key in bases}
        withdrawn = {basis.crm_key for basis in bases.values() if basis.withdrawn} or {
            "WITHDRAWN"}
        return cls(
            consent_bases=frozenset(fold_key(key) for key in consent),
            withdrawn_bases=frozenset(fold_key(key) for key in withdrawn),
            consent_purposes=frozenset(fold_key(purpose.crm_key)
                                       for purpose in config.purposes.values()
                                       if purpose.requires_consent),
            known_purposes=frozenset(fold_key(purpose.crm_key)
                                     for purpose in config.purposes.values()))

    def outcome(self, entry: Mapping[str, str]) -> str:
        """GIVEN, WITHDRAWN, OBJECTED or OTHER for one ledger entry (as ``Ledger.query``
        yields it)."""
        basis = fold_key(entry.get("legal_basis", ""))
        if basis in self.consent_bases:
            return GIVEN
        if basis not in self.withdrawn_bases:
            return OTHER
        previous = fold_key(entry.get("previous_legal_basis", ""))
        if previous and previous not in self.withdrawn_bases:
            return WITHDRAWN if previous in self.consent_bases else OBJECTED
        purpose = fold_key(entry.get("purpose", ""))
        if purpose in self.known_purposes and purpose not in self.consent_purposes:
            return OBJECTED
        return WITHDRAWN


def query_rows(config: ConsentConfig, entries: Iterable[Mapping[str, str]]
               ) -> Iterator[dict[str, str]]:
    """Each ledger entry (as ``Ledger.query`` yields it) as a row: COLUMNS → text ("" when the
    entry has no such fact), with its ``outcome``."""
    rules = OutcomeRules.from_config(config)
    for entry in entries:
        row = {name: entry.get(name, "") for name in COLUMNS}
        row["outcome"] = rules.outcome(entry)
        yield row


def output_format(filename: str) -> str | None:
    """"xlsx" or "csv" from a file name's extension (any case); None for any other."""
    suffix = filename.rpartition(".")[2].lower() if "." in filename else ""
    return suffix if suffix in FORMATS else None


def write_csv(stream: TextIO, rows: Iterable[Mapping[str, str]]) -> int:
    """Write a header row and the rows as CSV (the caller opens ``stream`` as UTF-8 with
    ``newline=""``); return how many rows. Values are written as they are in the ledger,
    times as ISO UTC text: CSV is for programs (open the .xlsx in a spreadsheet)."""
    writer = csv.writer(stream)
    writer.writerow(COLUMNS)
    count = 0
    for row in rows:
        writer.writerow([row[name] for name in COLUMNS])
        count += 1
    return count


def write_xlsx(stream: BinaryIO, rows: Iterable[Mapping[str, str]],
               about: Sequence[tuple[str, str]]) -> int:
    """Write the rows as a workbook to ``stream``, streaming; return how many rows.

    Sheets: the rows (header row of COLUMNS, frozen, filter; times as date cells in UTC,
    person ids as numbers, other values always as text), then "About this query": ``about``
    (label, value) pairs, the row count and a note that times are UTC. Write through
    ``files.atomic_output``: an exception leaves nothing partial behind.
    """
    workbook = Workbook(write_only=True)
    workbook.properties.creator = "consent-connector"
    sheet = workbook.create_sheet(SHEET_TITLE)
    for index, name in enumerate(COLUMNS, 1):
        sheet.column_dimensions[get_column_letter(index)].width = WIDTHS[name]
    sheet.freeze_panes = "A2"  # before the first row: write-only sheets write views first
    sheet.print_title_rows = "1:1"
    sheet.append([_header(sheet, name) for name in COLUMNS])
    count = 0
    for row in rows:
        sheet.append([_cell(sheet, name, row[name]) for name in COLUMNS])
        count += 1
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{count + 1}"

    sheet = workbook.create_sheet(ABOUT_TITLE)
    sheet.column_dimensions["A"].width = 20
    sheet.column_dimensions["B"].width = 40
    bold = Font(bold=True)
    for label, value in (*about, ("rows", str(count))):
        label_cell = WriteOnlyCell(sheet, value=label)
        label_cell.font = bold
        sheet.append([label_cell, _text_cell(sheet, value)])
    sheet.append([UTC_NOTE])
    workbook.save(stream)
    return count


def _header(sheet, name: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=name)
    cell.font, cell.fill, cell.alignment = HEADER_FONT, HEADER_FILL, HEADER_ALIGNMENT
    return cell


def _cell(sheet, name: str, value: str):
    """One value as a cell: times as date cells (text when unreadable), the person id as a
    number, anything else as text."""
    if not value:
        return None
    if name in TIME_COLUMNS:
        moment = parse_iso(value)
        if moment is not None:
            cell = WriteOnlyCell(sheet, value=excel_time(moment))
            cell.number_format = DATE_FORMAT
            return cell
    if name == "person_id" and value.isascii() and value.isdigit():
        return int(value)
    return _text_cell(sheet, value)


def _text_cell(sheet, value: str):
    """Text that stays text: a value such as ``=HYPERLINK(…)`` never becomes a formula."""
    value = clean_text(value)
    if not needs_text_type(value):
        return value
    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"
    return cell
