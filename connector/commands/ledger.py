"""``consent-connector ledger``: check the consent ledger's chain; erase a person's
identifying proof."""

import sys

import click
import sqlalchemy.exc

from connector.commands import database_or_exit
from connector.evidence.database import Database, unreachable_reason
from connector.evidence.ledger import Ledger
from connector.exceptions import SchemaBehindError
from connector.support.jobs import default_actor


@click.group()
def ledger():
    """The consent ledger in the evidence database: verify, erase."""


@ledger.command()
@click.argument("person_id", type=int, required=False)
@click.option("--all", "everyone", is_flag=True, help="Every person's ledger.")
def verify(person_id: int | None, everyone: bool):
    """Check that a person's ledger (or --all) is as it was written: every entry's hash, and
    every link to the entry before. Prints the first broken link of each broken ledger and
    exits 1; exits 0 when every chain holds."""
    if (person_id is None) == (not everyone):
        raise click.UsageError("give a PERSON_ID or --all")
    evidence = _ledger()
    try:
        if everyone:
            report = evidence.verify_all()
            for broken in report.breaks:
                click.echo(f"BROKEN  {broken}")
            click.echo(f"{report.persons} persons, {report.entries} entries checked: "
                       f"{len(report.breaks) or 'no'} broken ledger(s)")
            sys.exit(1 if report.breaks else 0)
        broken = evidence.verify(person_id)
        entries = len(evidence.entries(person_id))
    except sqlalchemy.exc.OperationalError as error:
        _fail(unreachable_reason(error))
    if broken:
        click.echo(f"BROKEN  {broken}")
        sys.exit(1)
    click.echo(f"person {person_id}: {entries} entries, the chain holds")


@ledger.command()
@click.argument("person_id", type=int)
@click.option("--by", "actor", default=None,
              help="Who erased it, for the ledger (default: your login name).")
def erase(person_id: int, actor: str | None):
    """Erase the identifying proof (IP network and hash, browser) in a person's ledger now.
    The consent facts stay, and the chain still verifies; a ``ledger.erased`` entry records
    it. (A person.deleted webhook schedules the same after LEDGER_ERASE_AFTER_DAYS.)"""
    evidence = _ledger()
    try:
        erased = evidence.erase(person_id, actor or default_actor())
    except sqlalchemy.exc.OperationalError as error:
        _fail(unreachable_reason(error))
    click.echo(f"person {person_id}: identifying proof erased from {erased} entries"
               if erased else f"person {person_id}: no identifying proof left to erase")


def _ledger() -> Ledger:
    database: Database = database_or_exit()
    try:
        database.require_current_schema()
    except SchemaBehindError as error:
        _fail(str(error))
    except sqlalchemy.exc.OperationalError as error:
        _fail(unreachable_reason(error))
    return Ledger(database)


def _fail(message: str) -> None:
    click.echo(f"consent-connector: {message}", err=True)
    sys.exit(2)
