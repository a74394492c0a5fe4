"""Lists of rows for the data protection officer (the ledger query, the retention report),
written as .xlsx (openpyxl write-only: memory stays flat however many rows) or .csv, to a
file that is only ever replaced by a complete one, or as CSV to standard output."""

import csv
import io
import itertools
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from connector.exports.workbook import (DATE_FORMAT, HEADER_ALIGNMENT, HEADER_FILL, HEADER_FONT,
                                        clean_text, excel_time, needs_text_type)
from connector.files import atomic_output
from connector.times import parse_iso

FORMATS = ("xlsx", "csv")
"""The file formats, named by the output file's extension."""

UTC_NOTE = "All times are UTC."


@dataclass(frozen=True)
class Table:
    """How one kind of list is written: its sheet's title, its columns in order (also the
    header row of both formats) and their widths in characters, the columns that hold ISO
    UTC times (date cells in the workbook) and whole numbers, and the title of the sheet that
    says what the list is."""

    title: str
    columns: tuple[str, ...]
    widths: Mapping[str, int]
    time_columns: tuple[str, ...] = ()
    number_columns: tuple[str, ...] = ()
    about_title: str = "About this list"


def output_format(filename: str) -> str | None:
    """"xlsx" or "csv" from a file name's extension (any case); None for any other."""
    suffix = filename.rpartition(".")[2].lower() if "." in filename else ""
    return suffix if suffix in FORMATS else None


def write_table(output: Path | None, rows: Iterable[Mapping[str, str]],
                about: Sequence[tuple[str, str]], table: Table) -> int:
    """Write the rows to ``output`` (.xlsx or .csv by its extension, replaced only by a
    complete file) or, when None, as CSV to standard output; return how many rows.

    Raises:
        OSError: the file cannot be written (nothing partial is left behind).
        ValueError: ``output``'s extension is neither .xlsx nor .csv.
    """
    if output is None:
        return write_csv(sys.stdout, rows, table)
    fmt = output_format(output.name)
    if fmt is None:
        raise ValueError(f"cannot tell the format of {output.name}: name the file "
                         f"{' or '.join('.' + name for name in FORMATS)}")
    with atomic_output(output) as stream:
        if fmt == "xlsx":
            return write_xlsx(stream, rows, about, table)
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        try:
            return write_csv(text, rows, table)
        finally:
            text.flush()
            text.detach()


def write_csv(stream: TextIO, rows: Iterable[Mapping[str, str]], table: Table) -> int:
    """Write a header row and the rows as CSV (the caller opens ``stream`` as UTF-8 with
    ``newline=""``); return how many rows. Values are written as they are, times as ISO UTC
    text: CSV is for programs (open the .xlsx in a spreadsheet)."""
    rows = _started(rows)  # a source that fails at once leaves no header behind
    writer = csv.writer(stream)
    writer.writerow(table.columns)
    count = 0
    for row in rows:
        writer.writerow([row[name] for name in table.columns])
        count += 1
    return count


def write_xlsx(stream: BinaryIO, rows: Iterable[Mapping[str, str]],
               about: Sequence[tuple[str, str]], table: Table) -> int:
    """Write the rows as a workbook to ``stream``, streaming; return how many rows.

    Sheets: the rows (header row, frozen, filter; times as date cells in UTC, numbers as
    numbers, other values always as text), then the about sheet: ``about`` (label, value)
    pairs, the row count and a note that times are UTC. Write through
    ``files.atomic_output``: an exception leaves nothing partial behind.
    """
    rows = _started(rows)  # before openpyxl's streaming writer opens (see _started)
    workbook = Workbook(write_only=True)
    workbook.properties.creator = "consent-connector"
    sheet = workbook.create_sheet(table.title)
    for index, name in enumerate(table.columns, 1):
        sheet.column_dimensions[get_column_letter(index)].width = table.widths[name]
    sheet.freeze_panes = "A2"  # before the first row: write-only sheets write views first
    sheet.print_title_rows = "1:1"
    sheet.append([_header(sheet, name) for name in table.columns])
    count = 0
    for row in rows:
        sheet.append([_cell(sheet, table, name, row[name]) for name in table.columns])
        count += 1
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(table.columns))}{count + 1}"

    sheet = workbook.create_sheet(table.about_title)
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


def _started(rows: Iterable[Mapping[str, str]]) -> Iterator[Mapping[str, str]]:
    """``rows`` with the first one read already: a source that fails at once (a database
    that cannot be reached) fails before anything is written, rather than after a CSV header
    or inside openpyxl's streaming writer (whose unfinished elements then make lxml complain
    on standard error)."""
    rows = iter(rows)
    first = next(rows, None)
    return rows if first is None else itertools.chain((first,), rows)


def _header(sheet, name: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=name)
    cell.font, cell.fill, cell.alignment = HEADER_FONT, HEADER_FILL, HEADER_ALIGNMENT
    return cell


def _cell(sheet, table: Table, name: str, value: str):
    """One value as a cell: times as date cells (text when unreadable), whole numbers as
    numbers, anything else as text."""
    if not value:
        return None
    if name in table.time_columns:
        moment = parse_iso(value)
        if moment is not None:
            cell = WriteOnlyCell(sheet, value=excel_time(moment))
            cell.number_format = DATE_FORMAT
            return cell
    if name in table.number_columns and value.isascii() and value.isdigit():
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
