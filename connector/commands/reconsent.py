"""``consent-connector reconsent``: after a purpose's consent text changed (a new notice
version), find the persons who agreed to an older one and ask them to read the new text."""

import sys

import click
import redis
import sqlalchemy.exc

from connector.commands import config_or_exit, database_or_exit, services_or_exit
from connector.evidence.database import unreachable_reason
from connector.evidence.ledger import Ledger
from connector.queueing import enqueue_new_notice
from connector.reconsent import older_consents


@click.command()
@click.option("--purpose", required=True, metavar="KEY",
              help="The purpose's CRM key (EMARKETING) or its name in the purposes file "
                   "(e_marketing).")
@click.option("--dry-run", is_flag=True,
              help="Only list who would be asked; nothing is queued or sent.")
def reconsent(purpose: str, dry_run: bool):
    """Ask the persons who agreed to an older text of a purpose's notice to read the new one.

    Finds, in the consent ledger, every person whose consent to the purpose rests on another
    version than the purposes file's now (or on none recorded: a CRM user's entry), and
    mails each the new text with a fresh link to their page, once per version (a job each,
    on the bulk queue). Their consent stays as it is until they change it.

    \b
      consent-connector reconsent --purpose EMARKETING --dry-run
      consent-connector reconsent --purpose EMARKETING

    With --dry-run it reads only DATABASE_URL (or DATA_DIR) and CONSENT_CONFIG; without it,
    every setting the worker uses (the jobs are queued in Redis).
    """
    config = config_or_exit()
    found = config.purpose_named(purpose)
    if found is None:
        known = ", ".join(f"{p.crm_key} ({p.key})" for p in config.purposes.values())
        raise click.UsageError(f"no purpose {purpose!r} in the purposes file; it has {known}")
    if found.notice is None:
        raise click.UsageError(f"purpose {found.crm_key} ({found.key}) has no notice: nobody "
                               f"agrees to a text for it")
    services = None if dry_run else services_or_exit()
    ledger = services.ledger if services else Ledger(database_or_exit())
    try:
        older = older_consents(ledger, config, found)
    except sqlalchemy.exc.OperationalError as error:
        click.echo(f"consent-connector reconsent: {unreachable_reason(error)}", err=True)
        sys.exit(2)
    version = found.notice.version
    unversioned = [consent for consent in older if consent.version is None]
    click.echo(f"{found.crm_key} ({found.key}): the consent text is at version {version}; "
               f"{len(older) - len(unversioned)} person(s) agreed to an older version, "
               f"{len(unversioned)} to a consent with no version recorded")
    for consent in older:
        agreed = (f"version {consent.version}" if consent.version is not None
                  else "no version recorded")
        click.echo(f"  person {consent.person_id:<8} {agreed:<22} agreed {consent.at}")
    if dry_run:
        click.echo("--dry-run: nothing queued. Without it, each is mailed the new text with a "
                   "link to their page, once per version.")
        return
    try:
        for consent in older:
            enqueue_new_notice(services.redis, services.settings, consent.person_id,
                               found.key, consent.version)
    except redis.RedisError as error:
        click.echo(f"consent-connector reconsent: Redis did not take the jobs "
                   f"({type(error).__name__}); run it again: a person asked before is not "
                   f"mailed twice", err=True)
        sys.exit(2)
    click.echo(f"{len(older)} mail(s) queued on the bulk queue; `consent-connector jobs list` "
               f"shows them")
