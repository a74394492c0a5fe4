"""``consent-connector retention report``: who is kept past ``delete_after`` with no active
purpose left, for the data protection officer."""

import sys
from datetime import datetime
from pathlib import Path

import click
import sqlalchemy.exc

from connector.commands import as_of_option, services_or_exit, table_output
from connector.crm.budget import Priority, crm_priority
from connector.evidence.database import unreachable_reason
from connector.exceptions import CRMError
from connector.exports.bulk import persons_with_consents
from connector.exports.retention_report import RETENTION_TABLE, report_rows
from connector.exports.tables import write_table
from connector.retention import inactive_persons
from connector.times import iso, now


@click.group()
def retention():
    """How long persons are kept: the data protection officer's report."""


@retention.command(short_help="Persons with no active purpose past delete_after.")
@table_output
@as_of_option("Count delete_after back from this date (midnight UTC) instead of now.")
def report(output: Path | None, as_of: datetime | None):
    """List the persons with no active purpose left (every consent row in the CRM withdrawn
    or objected to) for longer than delete_after in the purposes file, each with when, every
    withdrawal and the consent ledger's entry that recorded it. Nothing is deleted or changed:
    deleting a person stays your decision, in the CRM.

    \b
      consent-connector retention report -o retention.xlsx
      consent-connector retention report --as-of 2027-01-01

    Reads every person with consent rows from the CRM (one call each, at background
    priority within the CRM budget) and the consent ledger; every setting the worker uses.
    A person with no consent rows at all is not listed (nothing dates them).
    """
    services = services_or_exit()
    delete_after = services.config.delete_after
    if delete_after is None:
        raise click.UsageError("the purposes file sets no delete_after: add e.g. "
                               "`delete_after: 24 months` (how long you keep a person with "
                               "no active purpose left)")
    moment = as_of or now()
    cutoff = delete_after.before(moment)
    about = [("delete_after", str(delete_after)), ("as of", iso(moment)),
             ("no active purpose since before", iso(cutoff))]
    where = output or "standard output"
    try:
        with crm_priority(Priority.BACKGROUND):
            inactive = inactive_persons(persons_with_consents(services.crm), services.config,
                                        cutoff, services.ledger.last_known_consents)
            count = write_table(output, report_rows(inactive), about, RETENTION_TABLE)
    except CRMError as error:
        _fail(f"cannot read the persons from the CRM: {error}; nothing written")
    except sqlalchemy.exc.OperationalError as error:
        _fail(f"{unreachable_reason(error)}; nothing written")
    except OSError as error:
        _fail(f"cannot write {where}: {error.strerror or error}")
    click.echo(f"{where}: {count} person(s) with no active purpose since before "
               f"{cutoff.date().isoformat()} (delete_after {delete_after}); deleting them is "
               f"your decision, in the CRM", err=output is None)


def _fail(message: str):
    click.echo(f"consent-connector retention report: {message}", err=True)
    sys.exit(1)


