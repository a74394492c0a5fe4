"""``consent-connector db``: the evidence database's schema."""

import sys

import click
import sqlalchemy.exc

from connector.commands import database_or_exit
from connector.evidence.database import unreachable_reason


@click.group()
def db():
    """The evidence database (DATABASE_URL; default: consent.db in DATA_DIR)."""


@db.command(short_help="Create the schema, or bring it up to this version.")
def upgrade():
    """Bring the database's schema up to this version of the connector (the Procfile's release
    step runs it before web and workers start; running it again changes nothing)."""
    database = database_or_exit()
    try:
        before, after = database.upgrade()
    except sqlalchemy.exc.OperationalError as error:
        _fail(unreachable_reason(error))
    if before == after:
        click.echo(f"{database.where}: schema already at revision {after}")
    else:
        click.echo(f"{database.where}: schema upgraded from {before or 'empty'} to {after}")


@db.command(short_help="The schema's revision, and whether it is current.")
def current():
    """Print the schema's revision and whether it is the one this code needs (exit 1 if not)."""
    database = database_or_exit()
    try:
        revision, head = database.revisions()
    except sqlalchemy.exc.OperationalError as error:
        _fail(unreachable_reason(error))
    if revision == head:
        click.echo(f"{database.where}: revision {revision} (up to date)")
        return
    click.echo(f"{database.where}: revision {revision or 'none'}, this code needs {head}: run "
               f"`consent-connector db upgrade`")
    sys.exit(1)


def _fail(message: str) -> None:
    click.echo(f"consent-connector: {message}", err=True)
    sys.exit(2)
