"""``consent-connector export``: everything known about a person's consents, to Excel or JSON;
with ``--all``, every person's consents in one workbook for the data protection officer."""

import getpass
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import sqlalchemy.exc

from connector.commands import services_or_exit
from connector.exceptions import CRMError, PersonNotFoundError
from connector.crm.budget import Priority, crm_priority
from connector.exports.bulk import persons_with_consents, write_bulk
from connector.exports.formats import FORMATS
from connector.exports.report import export_filename, gather_report
from connector.files import atomic_output
from connector.services import Services

BULK_FILENAME = "consents-all.xlsx"


@click.command()
@click.argument("person_id", required=False, type=click.IntRange(min=1))
@click.option("--all", "everyone", is_flag=True,
              help="Every person in the CRM: one row per person and purpose (.xlsx only).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help=f"File to write. Default: consents-person-PERSON_ID.xlsx (or .json); "
                   f"{BULK_FILENAME} with --all.")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)),
              help="xlsx or json. Default: from the extension of -o, else xlsx.")
@click.option("--by", metavar="NAME",
              help="Who is exporting, written into the file. Default: your login name.")
def export(person_id: int | None, everyone: bool, output: Path | None, fmt: str | None,
           by: str | None):
    """Export a person's consents and their history (GDPR Art. 15 and 20).

    \b
      consent-connector export 123                  -> consents-person-123.xlsx
      consent-connector export 123 --format json    -> consents-person-123.json
      consent-connector export --all -o consents.xlsx

    The workbook has a Summary (who, where the data came from, what each legal basis means),
    the Consents as the CRM holds them now, and the History from the consent ledger, headed in
    the person's language. The JSON has the same content (docs/export-schema.md).

    Exits 1 and writes nothing when the person does not exist or the CRM or Redis cannot be
    read; an existing file is only ever replaced by a complete one.
    """
    if everyone == (person_id is not None):
        raise click.UsageError("give either a PERSON_ID or --all")
    fmt = _format(fmt, output)
    if everyone and fmt != "xlsx":
        raise click.UsageError("--all writes .xlsx only")
    output = output or Path(BULK_FILENAME if everyone else export_filename(person_id, fmt))
    if not output.parent.is_dir():
        _fail(f"cannot write {output}: the folder {output.parent} does not exist")
    by = by or _login_name()
    services = services_or_exit()
    with crm_priority(Priority.BACKGROUND):  # webhooks and persons on their page go first
        if everyone:
            _export_everyone(services, output, by)
        else:
            _export_person(services, person_id, output, fmt, by)


def _export_person(services: Services, person_id: int, output: Path, fmt: str, by: str) -> None:
    try:
        report = gather_report(services.crm, services.ledger, services.config, person_id,
                               exported_by=by,
                               connector_associate_id=services.settings.associate_id)
    except PersonNotFoundError:
        _fail(f"person {person_id} does not exist in the CRM; nothing written")
    except CRMError as error:
        _fail(f"cannot read person {person_id} from the CRM: {error}; nothing written")
    except sqlalchemy.exc.SQLAlchemyError as error:
        _fail(f"cannot read the consent ledger from the evidence database "
              f"({type(error).__name__}); nothing written")
    body = FORMATS[fmt].render(report)
    _write(output, body)
    click.echo(f"{output}: person {person_id}, {len(report.consents)} purposes, "
               f"{len(report.history)} history entries")


def _export_everyone(services: Services, output: Path, by: str) -> None:
    try:
        with atomic_output(output) as stream, \
                _progress(persons_with_consents(services.crm)) as source:
            summary = write_bulk(stream, source, services.config, exported_by=by,
                                 evidence=services.ledger.last_known_consents)
    except CRMError as error:
        _fail(f"export stopped: {error}; nothing written")
    except OSError as error:
        _fail(f"cannot write {output}: {error.strerror or error}")
    click.echo(f"{output}: {summary.persons} persons, {summary.rows} rows")


@contextmanager
def _progress(items: Iterable) -> Iterator[Iterable]:
    """A progress bar on stderr when it is a terminal; the items unchanged otherwise."""
    if not sys.stderr.isatty():
        yield items
        return
    with click.progressbar(items, label="Exporting persons", file=sys.stderr, show_pos=True,
                           item_show_func=lambda item: f"person {item[0].id}" if item else None
                           ) as bar:
        yield bar


def _write(output: Path, body: bytes) -> None:
    try:
        with atomic_output(output) as stream:
            stream.write(body)
    except OSError as error:
        _fail(f"cannot write {output}: {error.strerror or error}")


def _format(fmt: str | None, output: Path | None) -> str:
    """The format asked for, else the one the output's extension names, else xlsx."""
    suffix = output.suffix.lower().lstrip(".") if output else ""
    if fmt and suffix in FORMATS and suffix != fmt:
        raise click.UsageError(f"--format {fmt} does not match the file name {output.name}")
    return fmt or (suffix if suffix in FORMATS else "xlsx")


def _login_name() -> str:
    try:
        return f"{getpass.getuser()} (command line)"
    except (KeyError, OSError):  # no user name in a bare container
        return "command line"


def _fail(message: str):
    click.echo(f"consent-connector export: {message}", err=True)
    sys.exit(1)
