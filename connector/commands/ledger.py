"""``consent-connector ledger``: check the consent ledger's chain; erase a person's
identifying proof; query it for the data protection officer; import the ledger older
versions kept in Redis."""

import os
import sys
from datetime import timedelta
from pathlib import Path

import click
import redis
import sqlalchemy.exc

from connector.commands import (config_or_exit, database_or_exit, services_or_exit,
                                table_output)
from connector.consent import ConsentConfig
from connector.evidence import facts
from connector.evidence.database import Database, unreachable_reason
from connector.evidence.entry import Entry
from connector.evidence.legacy import ImportSummary, import_from_redis
from connector.evidence.ledger import Ledger
from connector.evidence.schema import stored_time
from connector.exceptions import SchemaBehindError, SettingsError
from connector.exports.ledger_query import LEDGER_TABLE, query_rows
from connector.exports.tables import write_table
from connector.settings import erase_after_days_from_env
from connector.support.jobs import default_actor
from connector.times import iso, now, parse_iso


@click.group()
def ledger():
    """The consent ledger in the evidence database: verify, erase, query; import the one
    older versions kept in Redis."""


@ledger.command(short_help="Check that a person's ledger (or --all) is unaltered.")
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
        report = evidence.check(None if everyone else person_id)
    except sqlalchemy.exc.OperationalError as error:
        _fail(unreachable_reason(error))
    for broken in report.breaks:
        click.echo(f"BROKEN  {broken}")
    if everyone:
        click.echo(f"{report.persons} persons, {report.entries} entries checked: "
                   f"{len(report.breaks) or 'no'} broken ledger(s)")
    elif not report.breaks:
        click.echo(f"person {person_id}: {report.entries} entries, the chain holds")
    sys.exit(1 if report.breaks else 0)


@ledger.command(short_help="Erase the identifying proof in a person's ledger.")
@click.argument("person_id", type=int, required=False)
@click.option("--now", "at_once", is_flag=True,
              help="Erase at once instead of after LEDGER_ERASE_AFTER_DAYS.")
@click.option("--due", is_flag=True,
              help="Carry out every erasure whose grace period is over (the workers' "
                   "scheduler does this every hour).")
@click.option("--by", "actor", default=None,
              help="Who asked for the erasure, for the ledger (default: your login name).")
def erase(person_id: int | None, at_once: bool, due: bool, actor: str | None):
    """Erase the identifying proof (IP network and hash, browser) in a person's ledger, as a
    person.deleted webhook does: LEDGER_ERASE_AFTER_DAYS from now (default 30), or at once
    with --now. The consent facts stay and the chain still verifies; a ``ledger.erased``
    entry records the erasure.

    \b
      consent-connector ledger erase 123          # in LEDGER_ERASE_AFTER_DAYS days
      consent-connector ledger erase 123 --now
      consent-connector ledger erase --due        # every erasure that is due
    """
    if due == (person_id is not None) or (due and at_once):
        raise click.UsageError("give a PERSON_ID (with --now to erase at once) or --due")
    try:
        days = erase_after_days_from_env(os.environ)
    except SettingsError as error:
        _fail(str(error))
    evidence, actor = _ledger(), actor or default_actor()
    database = evidence.database
    try:
        if due:
            done = facts.erase_due(database, actor)
            click.echo(f"{len(done)} due erasure(s) carried out: identifying proof erased from "
                       f"{sum(done.values())} entries")
        elif at_once:
            erased = facts.erase_now(database, person_id, actor)
            click.echo(f"person {person_id}: identifying proof erased from {erased} entries"
                       if erased else f"person {person_id}: no identifying proof left to erase")
        else:
            when = now().replace(microsecond=0) + timedelta(days=days)
            entry = Entry("ledger.erasure_requested", {"actor": actor, "erase_after": iso(when)})
            if facts.request_erasure(database, person_id, entry, when, actor):
                click.echo(f"person {person_id}: identifying proof will be erased on "
                           f"{iso(when)} (LEDGER_ERASE_AFTER_DAYS={days}); --now erases it "
                           f"at once")
            else:
                click.echo(f"person {person_id}: an erasure was requested before; --now erases "
                           f"at once")
    except sqlalchemy.exc.OperationalError as error:
        _fail(unreachable_reason(error))


@ledger.command("import-redis", short_help="Copy an older version's ledger from Redis.")
def import_redis():
    """Copy the ledger, onboarded persons, sent confirmation mails and reconciliation
    watermark that versions before the evidence database kept in Redis into the database.
    Redis is only read. Running it again imports nothing and changes nothing.

    Run it once after `consent-connector db upgrade` and before starting the new workers, so
    each person's old entries come before the new ones. Imported entries keep their
    original times and carry their stream id (redis_id). Confirmation mails Redis holds as
    "sending" (cut off mid-send) are not imported: the person's onboarding, run again,
    sends them.
    """
    services = services_or_exit()
    try:
        summary = import_from_redis(services.redis, services.database)
    except redis.RedisError as error:
        _fail(f"Redis cannot be read (check REDIS_URL): {type(error).__name__}: {error}; "
              f"what was imported so far stays, run the command again")
    except sqlalchemy.exc.OperationalError as error:
        _fail(f"{unreachable_reason(error)}; what was imported so far stays, run the command "
              f"again")
    for line in _import_report(summary, services.database.where):
        click.echo(line)


def _import_report(summary: ImportSummary, where: str) -> list[str]:
    """What ``ledger import-redis`` says about a run, a line each (warnings last)."""
    lines = [f"Imported from Redis into {where}:",
             f"  ledger: {summary.persons} persons, {summary.entries_imported} entries "
             f"imported, {summary.entries_already_there} already there",
             f"  onboarded persons: {summary.onboarded_imported} imported",
             f"  confirmation mails: {summary.mails_imported} imported as sent"]
    if summary.watermark is None:
        lines.append("  reconciliation watermark: none in Redis")
    elif parse_iso(summary.watermark) is None:
        lines.append(f"  reconciliation watermark: {summary.watermark!r} in Redis is not a "
                     f"time; not imported")
    elif summary.watermark_moved:
        lines.append(f"  reconciliation watermark: moved to {summary.watermark}")
    else:
        lines.append(f"  reconciliation watermark: already at {summary.watermark} or later")
    if summary.mails_in_flight:
        lines.append(f"NOTE  {summary.mails_in_flight} confirmation mail(s) were being sent "
                     f"(\"sending\") and are not imported: when the person's onboarding runs "
                     f"again (its job's retry or the reconciliation) the mail goes out (it "
                     f"may have gone out once already)")
    if summary.persons_with_other_entries:
        lines.append(f"WARNING  {summary.persons_with_other_entries} person(s) had entries in "
                     f"the evidence database that did not come from Redis (the new workers "
                     f"ran before the import): their imported entries come after those, out "
                     f"of time order; the chains still verify")
    return lines


def _time_option(_context: click.Context, option: click.Parameter,
                 value: str | None) -> str | None:
    """A --since/--until value as the ledger's stored time form, or a usage error."""
    if value is None:
        return None
    moment = parse_iso(value)
    if moment is None:
        raise click.BadParameter(f"{value!r} is not a date or time: use a date like "
                                 f"2026-01-01 or an ISO time like 2026-01-01T12:00:00+00:00",
                                 param=option)
    return stored_time(moment)


@ledger.command(short_help="The entries about a purpose, with their proof.")
@click.option("--purpose", required=True, metavar="KEY",
              help="The purpose's CRM key (EMARKETING) or its name in the purposes file "
                   "(e_marketing).")
@click.option("--notice", "notice_version", metavar="VERSION",
              help="Only entries that recorded this notice version (e.g. 2026-01).")
@click.option("--since", metavar="DATE|TIME", callback=_time_option,
              help="Only entries at or after this date (midnight UTC) or ISO time.")
@click.option("--until", metavar="DATE|TIME", callback=_time_option,
              help="Only entries before this date (midnight UTC) or ISO time.")
@click.option("--action", "actions", multiple=True, metavar="ACTION",
              help="Only entries of this action (e.g. consent.changed); repeat for several.")
@table_output
def query(purpose: str, notice_version: str | None, since: str | None, until: str | None,
          actions: tuple[str, ...], output: Path | None):
    """List the ledger entries about a purpose with their proof, oldest first: who, when,
    what (outcome: given, withdrawn, objected or other), on which legal basis, from which
    source, by whom, which notice version, and the proof of a choice made through a link
    (submitted at, token id, IP network and hash, browser).

    \b
      consent-connector ledger query --purpose EMARKETING --notice 2026-01 -o optins.xlsx
      consent-connector ledger query --purpose EMARKETING --since 2026-01-01 -o log.csv
      consent-connector ledger query --purpose STORE --action consent.changed

    Reads DATABASE_URL (or DATA_DIR) and CONSENT_CONFIG. Times are UTC. An existing file is
    only ever replaced by a complete one.
    """
    if since and until and since >= until:
        raise click.UsageError(f"--since ({since}) must be before --until ({until})")
    config = config_or_exit()
    crm_purpose = _crm_purpose(config, purpose)
    evidence = _ledger()
    entries = evidence.query(crm_purpose, notice_version=notice_version, since=since,
                             until=until, actions=actions or None)
    rows = query_rows(config, entries)
    about = _about(crm_purpose, notice_version, since, until, actions)
    where = output or "standard output"
    try:
        count = write_table(output, rows, about, LEDGER_TABLE)
    except sqlalchemy.exc.OperationalError as error:
        _fail(f"{unreachable_reason(error)}; nothing written")
    except OSError as error:
        _fail(f"cannot write {where}: {error.strerror or error}")
    filters = ", ".join(f"{label} {value}" for label, value in about)
    click.echo(f"{where}: {count} rows ({filters})", err=output is None)


def _crm_purpose(config: ConsentConfig, purpose: str) -> str:
    """The CRM key the ledger stores for ``purpose`` (a CRM key in any case, or a config
    name); a key the config does not know is taken as it is (a purpose removed since)."""
    known = config.purpose_named(purpose)
    return known.crm_key if known else purpose


def _about(purpose: str, notice_version: str | None, since: str | None, until: str | None,
           actions: tuple[str, ...]) -> list[tuple[str, str]]:
    """The query's filters as (label, value) pairs, the ones given only."""
    pairs = [("purpose", purpose), ("notice", notice_version), ("since", since),
             ("until", until), ("actions", ", ".join(actions))]
    return [(label, value) for label, value in pairs if value]


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
