"""``consent-connector expiry``: consents that lapse (``consent_valid_for`` in the purposes
file): who is due for renewal or has lapsed, and the pass the workers run on a schedule."""

import sys
from datetime import datetime
from pathlib import Path

import click
import redis
import sqlalchemy.exc

from connector.commands import (as_of_option, config_or_exit, database_or_exit,
                                services_or_exit, table_output)
from connector.evidence.database import unreachable_reason
from connector.evidence.ledger import Ledger
from connector.expiry import consent_terms
from connector.expiry_pass import expiry_pass
from connector.exports.tables import Table, write_table
from connector.times import iso, now

COLUMNS = ("person_id", "purpose", "given", "valid_until", "state", "notice_version")
"""The report's columns: whose consent to what, when it was given or renewed, the day it
lapses, where it stands, and the consent text version it rests on."""

EXPIRY_TABLE = Table(
    "Consents that lapse", COLUMNS,
    {"person_id": 11, "purpose": 16, "given": 22, "valid_until": 22, "state": 36,
     "notice_version": 16},
    time_columns=("given", "valid_until"), number_columns=("person_id",),
    about_title="About this report")


@click.group()
def expiry():
    """Consents that lapse (consent_valid_for in the purposes file): the report, the pass."""


@expiry.command(short_help="Consents due for renewal or lapsed (changes nothing).")
@table_output
@as_of_option("Look from this date (midnight UTC) instead of now, e.g. what next month "
              "brings.")
def report(output: Path | None, as_of: datetime | None):
    """List the consents due for renewal or lapsed: each person and purpose with when the
    consent was given or renewed, the day it lapses and where it stands (due for a
    re-permission mail, mail sent, lapsed and to be recorded as withdrawn, or lapsed and
    left for you to decide with on_expiry: report). Changes nothing.

    \b
      consent-connector expiry report
      consent-connector expiry report --as-of 2027-01-01 -o expiry.xlsx

    Reads the consent ledger (DATABASE_URL or DATA_DIR) and CONSENT_CONFIG only; no CRM
    calls and no names or addresses (look a person up in the CRM by their id).
    """
    config = config_or_exit()
    lapsing = [purpose for purpose in config.purposes.values() if purpose.expiry]
    if not lapsing:
        raise click.UsageError("no purpose in the purposes file has consent_valid_for: "
                               "consents last until withdrawn, none lapse")
    ledger = Ledger(database_or_exit())
    moment = as_of or now()
    about = [("as of", iso(moment))] + [
        (purpose.crm_key, f"valid for {purpose.expiry.valid_for}, re-permission mail "
                          f"{purpose.expiry.remind_before or 'none'} before, on expiry "
                          f"{purpose.expiry.on_expiry}") for purpose in lapsing]
    where = output or "standard output"
    try:
        count = write_table(output, _rows(config, ledger, lapsing, moment), about, EXPIRY_TABLE)
    except sqlalchemy.exc.OperationalError as error:
        _fail("report", f"{unreachable_reason(error)}; nothing written")
    except OSError as error:
        _fail("report", f"cannot write {where}: {error.strerror or error}")
    click.echo(f"{where}: {count} consent(s) due for renewal or lapsed as of "
               f"{moment.date().isoformat()}", err=output is None)


def _rows(config, ledger: Ledger, purposes, moment: datetime):
    for purpose in purposes:
        for person_id, last, decision in consent_terms(config, purpose,
                                                       ledger.query(purpose.crm_key), moment):
            term = decision.term
            if moment < (term.remind_from or term.ends):
                continue  # not due yet
            yield {"person_id": str(person_id), "purpose": purpose.crm_key,
                   "given": iso(term.given), "valid_until": iso(decision.lapses_on or term.ends),
                   "state": decision.reason, "notice_version": last.get("notice_version", "")}


@expiry.command(short_help="Run the expiry pass now, as the workers do.")
def run():
    """Run the expiry pass now, as the workers do every EXPIRY_INTERVAL: queue a job for each
    consent due for a re-permission mail or lapsed (one per consent and step; a pass run
    again queues nothing twice). The workers mail, withdraw or record.

    \b
      consent-connector expiry run

    Uses every setting the worker uses (the jobs are queued in Redis).
    """
    services = services_or_exit()
    try:
        summary = expiry_pass(services)
    except sqlalchemy.exc.OperationalError as error:
        _fail("run", unreachable_reason(error))
    except redis.RedisError as error:
        _fail("run", f"Redis did not take the jobs ({type(error).__name__}); run it again: "
                     f"nothing is queued twice")
    due = summary["remind"] + summary["withdraw"] + summary["report"]
    earlier = (f" ({due - summary['queued']} queued by an earlier pass)"
               if due > summary["queued"] else "")
    click.echo(f"as of {summary['as_of']}: {summary['remind']} due for a re-permission mail, "
               f"{summary['withdraw']} lapsed (to withdraw), {summary['report']} lapsed (to "
               f"report); {summary['queued']} job(s) queued on the bulk queue{earlier}")


def _fail(command: str, message: str):
    click.echo(f"consent-connector expiry {command}: {message}", err=True)
    sys.exit(2)
