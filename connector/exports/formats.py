"""The file formats of a person's export, and how each is made and served."""

from collections.abc import Callable
from typing import NamedTuple

from connector.exports import document, workbook
from connector.exports.report import PersonReport, export_filename


class ExportFormat(NamedTuple):
    """How one format is rendered and what it is served as."""

    render: Callable[[PersonReport], bytes]
    mime_type: str


FORMATS = {"xlsx": ExportFormat(workbook.render_workbook, workbook.MIME_TYPE),
           "json": ExportFormat(document.render_json, f"{document.MIME_TYPE}; charset=utf-8")}
"""The formats by name: xlsx (for people) and JSON (for machines, GDPR Art. 20)."""


def served(report: PersonReport, fmt: str) -> tuple[bytes, dict[str, str]]:
    """The person's export in ``fmt`` and the headers it is served with over HTTP: an
    attachment named as the command names it, never kept by a proxy or the browser."""
    export = FORMATS[fmt]
    return export.render(report), {
        "Content-Type": export.mime_type,
        "Content-Disposition":
            f'attachment; filename="{export_filename(report.person.id, fmt)}"',
        "Cache-Control": "no-store",  # personal data
    }
