"""The data protection officer's export: one row per person and purpose across the CRM, with
the consent ledger's proof of the row (when the connector last recorded that purpose's legal
basis, how, which consent text version, through which link).

``write_bulk`` streams rows into an openpyxl write-only workbook (each row goes to a temporary
file as it comes), so memory stays flat however many persons there are. It reads from any
iterable of ``(person, consent rows)``: ``persons_with_consents`` lists the persons and reads
each one (one GET per person); a source built on SuperOffice's ConsentPurpose archive (many
rows per request, see docs/export-schema.md) can replace it without touching the writer.
"""

import logging
import time
from contextlib import suppress
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from connector.consent import ConsentConfig
from connector.crm.types import ConsentRecord, CRMClient, Person
from connector.exceptions import CRMError, PersonNotFoundError
from connector.exports.report import consent_lines, person_name
from connector.i18n import text, text_or
from connector.exports.workbook import (DATE_FORMAT, HEADER_ALIGNMENT, HEADER_FILL, HEADER_FONT,
                                        Column, clean_text, excel_time, needs_text_type,
                                        status_text)
from connector.times import now as current_time
from connector.times import parse_iso, utc

log = logging.getLogger(__name__)

BulkSource = Iterable[tuple[Person, Sequence[ConsentRecord]]]
"""What the bulk writer reads: each person with their consent rows (CRM keys)."""

Evidence = Callable[[int], Mapping[str, Mapping[str, str]]]
"""Person id → purpose (CRM key) → the ledger entry that last recorded its legal basis
(``Ledger.last_known_consents``)."""

BULK_COLUMNS = (
    Column("col.person_id", 11, "number"),
    Column("col.name", 28),
    Column("col.email", 32),
    Column("col.company", 28),
    Column("col.purpose", 22),
    Column("col.purpose_key", 14),
    Column("col.legal_basis", 22),
    Column("col.legal_basis_key", 14),
    Column("col.source", 24),
    Column("col.source_key", 12),
    Column("col.status", 14),
    Column("col.registered", 20, "date"),
    Column("col.registered_by_id", 12, "number"),
    Column("col.updated", 20, "date"),
    Column("col.updated_by_id", 12, "number"),
    Column("col.comment", 60),
    Column("col.evidence_at", 20, "date"),
    Column("col.evidence_action", 24),
    Column("col.notice_version", 16),
    Column("col.token_id", 18),
)


@dataclass(frozen=True)
class BulkSummary:
    """What a bulk export wrote."""

    persons: int
    rows: int


def write_bulk(stream: BinaryIO, source: BulkSource, config: ConsentConfig, *,
               exported_by: str, language: str = "en", now: datetime | None = None,
               evidence: Evidence | None = None) -> BulkSummary:
    """Write one row per person and purpose (every configured purpose, then any other purpose
    the CRM holds for the person) to ``stream`` as .xlsx, streaming. ``evidence`` gives each
    row its proof from the ledger (those columns stay empty without it).

    Sheets: the rows (frozen header, filter, widths), then "About this export" (when, by whom,
    how many). An exception from ``source`` propagates: write to ``output.atomic_output`` so
    that nothing partial is left behind.
    """
    exported_at = utc(now or current_time())
    workbook = Workbook(write_only=True)
    try:
        return _write(workbook, stream, source, config, exported_by, language, exported_at,
                      evidence or _no_evidence)
    except BaseException:
        _discard(workbook)
        raise


def _write(workbook: Workbook, stream: BinaryIO, source: BulkSource, config: ConsentConfig,
           exported_by: str, language: str, exported_at: datetime,
           evidence: Evidence) -> BulkSummary:
    workbook.properties.creator = "consent-connector"
    sheet = workbook.create_sheet(text("export", "sheet.consents", language))
    for index, column in enumerate(BULK_COLUMNS, 1):
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.freeze_panes = "C2"  # before the first row: write-only sheets write views first
    sheet.print_title_rows = "1:1"
    sheet.append([_header(sheet, column, language) for column in BULK_COLUMNS])

    persons = rows = 0
    for person, consents in source:
        persons += 1
        name = person_name(person)
        proofs = evidence(person.id)
        for line in consent_lines(config, consents, language):
            proof = proofs.get(line.purpose.key, {})
            action = proof.get("action")
            sheet.append(_row(sheet, [
                person.id, name, person.email or "", person.company_name or "",
                line.purpose.name, line.purpose.key,
                line.legal_basis.name if line.legal_basis else "",
                line.legal_basis.key if line.legal_basis else "",
                line.source.name if line.source else "",
                line.source.key if line.source else "",
                status_text(line.status, language),
                excel_time(line.registered), line.registered_by,
                excel_time(line.updated), line.updated_by,
                line.comment,
                excel_time(parse_iso(proof.get("at"))),
                text_or("export", f"action.{action}", language, action) if action else "",
                proof.get("notice_version", ""), proof.get("token_id", ""),
            ]))
            rows += 1
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(BULK_COLUMNS))}{rows + 1}"

    about = workbook.create_sheet(text("export", "sheet.about", language))
    about.column_dimensions["A"].width = 34
    about.column_dimensions["B"].width = 40
    bold = Font(bold=True)
    for key, value in (("summary.exported_at", excel_time(exported_at)),
                       ("summary.exported_by", exported_by),
                       ("summary.persons", persons),
                       ("summary.rows", rows)):
        label = WriteOnlyCell(about, value=text("export", key, language))
        label.font = bold
        about.append([label, _cell(about, value, left=True)])
    about.append([text("export", "summary.utc_note", language)])
    workbook.save(stream)
    return BulkSummary(persons=persons, rows=rows)


def _no_evidence(_person_id: int) -> Mapping[str, Mapping[str, str]]:
    return {}


def _discard(workbook: Workbook) -> None:
    """Close the sheets of an abandoned write-only workbook and delete the temporary file each
    one streams its rows to (openpyxl only deletes them when the process exits)."""
    for sheet in workbook.worksheets:
        with suppress(Exception):
            if not sheet.closed:
                sheet.close()
        writer = getattr(sheet, "_writer", None)  # openpyxl 3.1's WorksheetWriter
        if writer is not None:
            with suppress(Exception):
                writer.cleanup()


def persons_with_consents(crm: CRMClient, *, page_size: int = 200, attempts: int = 3,
                          sleep: Callable[[float], None] = time.sleep
                          ) -> Iterator[tuple[Person, Sequence[ConsentRecord]]]:
    """Every person in the CRM with their consent rows: ``crm.list_persons`` pages through
    the persons, then one ``get_person`` each (the PersonEntity carries its consents).

    A person deleted between listing and reading is skipped. A transient failure (timeout,
    5xx, 429) is tried again up to ``attempts`` times in all, after the CRM's Retry-After or
    1, 2, 4 ... seconds: one hiccup does not lose an hour-long export.

    Raises:
        CRMError: listing failed, or reading a person still failed after ``attempts``.
    """
    for listed in crm.list_persons(None, page_size=page_size):
        person = _read_person(crm, listed.person_id, attempts, sleep)
        if person is not None:
            yield person, person.consents


def _read_person(crm: CRMClient, person_id: int, attempts: int,
                 sleep: Callable[[float], None]) -> Person | None:
    for attempt in range(1, attempts + 1):
        try:
            return crm.get_person(person_id)
        except PersonNotFoundError:
            log.info("export.skipped person=%s reason=deleted since listed", person_id)
            return None
        except CRMError as error:
            if error.permanent or attempt == attempts:
                raise
            wait = error.retry_after if error.retry_after is not None else 2.0 ** (attempt - 1)
            log.warning("export.retry person=%s attempt=%s wait=%s reason=%s", person_id,
                        attempt, wait, error)
            sleep(min(wait, 60.0))
    return None  # attempts < 1


def _header(sheet, column: Column, language: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=text("export", column.key, language))
    cell.font, cell.fill, cell.alignment = HEADER_FONT, HEADER_FILL, HEADER_ALIGNMENT
    return cell


def _row(sheet, values: list) -> list:
    """Values as write-only cells where needed: text that looks like a formula stays text."""
    row = []
    for value in values:
        if isinstance(value, str):
            value = clean_text(value)
            if needs_text_type(value):
                cell = WriteOnlyCell(sheet, value=value)
                cell.data_type = "s"
                value = cell
            elif not value:
                value = None
        row.append(value)
    return row


def _cell(sheet, value, left: bool = False) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, datetime):
        cell.number_format = DATE_FORMAT
    if left:
        cell.alignment = Alignment(horizontal="left")
    return cell
