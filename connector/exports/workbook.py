"""One person's export as an Excel workbook (openpyxl): Summary, Consents, History.

Readable by a layperson and by Excel, LibreOffice and Google Sheets: headings in the person's
language (i18n.py), real date cells in UTC (Excel has no time zones: the cells hold naive UTC
and the headings say UTC), a frozen header row, filters, fixed column widths and wrapped text.

Text from outside (names, comments, user agents) is always written as text: a value such as
``=HYPERLINK(...)`` never becomes a formula, and control characters Excel refuses are dropped.
"""

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from openpyxl import Workbook
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from connector.exports.report import HistoryLine, PersonReport
from connector.i18n import text, text_or
from connector.times import utc

MIME_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"

HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="1F4E79")
HEADER_ALIGNMENT = Alignment(wrap_text=True, vertical="center")
WRAP = Alignment(wrap_text=True, vertical="top")
TOP = Alignment(vertical="top")
TITLE_FONT = Font(bold=True, size=14)
LABEL_FONT = Font(bold=True)


@dataclass(frozen=True)
class Column:
    """A table column: its heading's text key, width in characters, and kind of value
    (``text``, ``wrap`` for long text, ``date``, ``number``)."""

    key: str
    width: float
    kind: str = "text"


CONSENT_COLUMNS = (
    Column("col.purpose", 24, "wrap"),
    Column("col.description", 50, "wrap"),
    Column("col.legal_basis", 22, "wrap"),
    Column("col.source", 24, "wrap"),
    Column("col.status", 16),
    Column("col.registered", 20, "date"),
    Column("col.registered_by", 30, "wrap"),
    Column("col.updated", 20, "date"),
    Column("col.updated_by", 30, "wrap"),
    Column("col.comment", 60, "wrap"),
)

HISTORY_COLUMNS = (
    Column("col.when", 20, "date"),
    Column("col.what", 22, "wrap"),
    Column("col.purpose", 22, "wrap"),
    Column("col.change", 34, "wrap"),
    Column("col.source", 22, "wrap"),
    Column("col.who", 30, "wrap"),
    Column("col.comment", 50, "wrap"),
    Column("col.notice_version", 14),
    Column("col.token_id", 18),
    Column("col.ip", 30),
    Column("col.user_agent", 50, "wrap"),
    Column("col.submitted_at", 20, "date"),
    Column("col.mail", 30, "wrap"),
    Column("col.message_id", 40, "wrap"),
    Column("col.details", 40, "wrap"),
)


def write_workbook(report: PersonReport, target: str | BinaryIO) -> None:
    """Write the report's workbook to a path or a binary stream."""
    workbook = Workbook()
    language = report.language
    workbook.properties.creator = "consent-connector"
    workbook.properties.title = text("export", "summary.title", language, name=report.name)
    _summary(workbook.active, report)
    _table(workbook.create_sheet(text("export", "sheet.consents", language)), CONSENT_COLUMNS,
           [_consent_row(report, line) for line in report.consents], language, freeze="B2")
    _table(workbook.create_sheet(text("export", "sheet.history", language)), HISTORY_COLUMNS,
           [_history_row(report, line) for line in report.history], language, freeze="B2")
    workbook.save(target)


def render_workbook(report: PersonReport) -> bytes:
    """The report's workbook as bytes (for an HTTP answer)."""
    buffer = io.BytesIO()
    write_workbook(report, buffer)
    return buffer.getvalue()


# -- cell values ---------------------------------------------------------------------------


def excel_time(value: datetime | None) -> datetime | None:
    """An aware datetime as the naive UTC datetime Excel stores, to the millisecond."""
    if value is None:
        return None
    value = utc(value).replace(tzinfo=None)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def clean_text(value: str) -> str:
    """Drop the control characters a worksheet cannot hold."""
    return ILLEGAL_CHARACTERS_RE.sub("", value)


def needs_text_type(value: str) -> bool:
    """Whether openpyxl would take this string for a formula or an error code."""
    return (len(value) > 1 and value.startswith("=")) or value in ERROR_CODES


def put(sheet: Worksheet, row: int, column: int, value, kind: str = "text"):
    """Write one cell: text always as text, dates with a date format, long text wrapped."""
    if isinstance(value, str):
        value = clean_text(value)
    cell = sheet.cell(row=row, column=column, value=value if value != "" else None)
    if isinstance(value, str) and value:
        cell.data_type = "s"
    if kind == "date":
        cell.number_format = DATE_FORMAT
    cell.alignment = WRAP if kind == "wrap" else TOP
    return cell


def who(report: PersonReport, associate_id: int | None) -> str:
    """Name a CRM user id as the connector or as a CRM user, in the report's language."""
    if associate_id is None:
        return ""
    key = "by.connector" if associate_id == report.connector_associate_id else "by.associate"
    return text("export", key, report.language, id=associate_id)


def status_text(status: str, language: str) -> str:
    """A purpose's status in words."""
    return text_or("export", f"status.{status}", language, status)


def actor_text(report: PersonReport, line: HistoryLine) -> str:
    """Who or what made a ledger entry, in words."""
    language = report.language
    actor = line.actor.strip().casefold().replace("_", " ")
    if actor in ("crm user", "crm") or (not actor and line.associate_id is not None):
        if line.associate_id is not None:
            return who(report, line.associate_id)
        return text("export", "actor.crm_user", language)
    if not actor:
        return ""
    return text_or("export", f"actor.{actor}", language, line.actor)


def change_text(line: HistoryLine, language: str) -> str:
    """"from → to" for an entry that set a legal basis, the entry's own "change" for others
    (a subscription: "subscribed → unsubscribed"); "" when there is neither."""
    if line.legal_basis is None:
        return line.other.get("change", "")
    before = line.previous_legal_basis.name if line.previous_legal_basis else text(
        "export", "change.none", language)
    return f"{before} → {line.legal_basis.name}"


def details_text(line: HistoryLine) -> str:
    """The entry's remaining fields, one "name: value" a line (job id first)."""
    other = [(name, value) for name, value in line.other.items()
             if not (name == "change" and line.legal_basis is None)]  # in the change column
    pairs = ([("job_id", line.job_id)] if line.job_id else []) + other
    return "\n".join(f"{name}: {value}" for name, value in pairs)


# -- sheets ----------------------------------------------------------------------------------


def _consent_row(report: PersonReport, line) -> list:
    language = report.language
    return [
        line.purpose.name,
        line.description,
        line.legal_basis.name if line.legal_basis else "",
        line.source.name if line.source else "",
        status_text(line.status, language),
        excel_time(line.registered),
        who(report, line.registered_by),
        excel_time(line.updated),
        who(report, line.updated_by),
        line.comment,
    ]


def _history_row(report: PersonReport, line: HistoryLine) -> list:
    language = report.language
    return [
        excel_time(line.at),
        text_or("export", f"action.{line.action}", language, line.action),
        line.purpose.name if line.purpose else "",
        change_text(line, language),
        line.source.name if line.source else "",
        actor_text(report, line),
        line.comment,
        line.notice_version,
        line.token_id,
        line.ip,
        line.user_agent,
        excel_time(line.submitted_at),
        text_or("export", f"mail.{line.mail}", language, line.mail) if line.mail else "",
        line.message_id,
        details_text(line),
    ]


def _table(sheet: Worksheet, columns: Sequence[Column], rows: Sequence[list], language: str,
           freeze: str = "A2") -> None:
    """A header row, the rows, widths, frozen header, filter over everything, print setup."""
    for index, column in enumerate(columns, 1):
        cell = sheet.cell(row=1, column=index, value=text("export", column.key, language))
        cell.font, cell.fill, cell.alignment = HEADER_FONT, HEADER_FILL, HEADER_ALIGNMENT
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    for row_index, values in enumerate(rows, 2):
        for index, (column, value) in enumerate(zip(columns, values), 1):
            put(sheet, row_index, index, value, column.kind)
    sheet.freeze_panes = freeze
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(len(rows) + 1, 2)}"
    _print_setup(sheet)
    sheet.print_title_rows = "1:1"


def _summary(sheet: Worksheet, report: PersonReport) -> None:
    language = report.language
    sheet.title = text("export", "sheet.summary", language)
    sheet.column_dimensions["A"].width = 34
    sheet.column_dimensions["B"].width = 90
    title = put(sheet, 1, 1, text("export", "summary.title", language, name=report.name))
    title.font = TITLE_FONT
    note = put(sheet, 2, 1, text("export", "summary.utc_note", language))
    note.font = Font(italic=True)

    person = report.person
    none = text("export", "summary.none", language)
    pairs = [
        ("summary.person_id", person.id, "number"),
        ("summary.name", report.name, "text"),
        ("summary.email", person.email or text("export", "summary.no_email", language), "text"),
        ("summary.company", person.company_name or none, "text"),
        ("summary.exported_at", excel_time(report.exported_at), "date"),
        ("summary.exported_by", report.exported_by, "text"),
        ("summary.sources", "\n".join(s.name for s in report.sources) or none, "wrap"),
        ("summary.history_entries", len(report.history), "number"),
        ("summary.mails_sent", report.mails_sent, "number"),
    ]
    row = 4
    for key, value, kind in pairs:
        put(sheet, row, 1, text("export", key, language)).font = LABEL_FONT
        cell = put(sheet, row, 2, value, kind)
        if kind in ("number", "date"):  # a list of facts, not a column of figures: align left
            cell.alignment = Alignment(horizontal="left", vertical="top")
        row += 1

    row += 1
    heading = put(sheet, row, 1, text("export", "summary.legal_bases", language))
    heading.font = Font(bold=True, size=12)
    row += 1
    for basis in report.legal_bases:
        put(sheet, row, 1, basis.name, "wrap").font = LABEL_FONT
        put(sheet, row, 2, basis.description, "wrap")
        row += 1
    sheet.freeze_panes = "A2"
    _print_setup(sheet)


def _print_setup(sheet: Worksheet) -> None:
    """Landscape, as wide as one page: a printout (or PDF) shows every column."""
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
