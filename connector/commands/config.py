"""``consent-connector config``: check the purposes file, and compare it with the CRM."""

import os
import sys
from pathlib import Path

import click

from connector.commands import services_or_exit
from connector.config import check_config, load_config
from connector.config_diff import diff_config, diff_subscriptions
from connector.crm.types import CRMClient, ShipmentType
from connector.exceptions import CRMError
from connector.settings import consent_config_path


@click.group()
def config():
    """Check the purposes file (config/purposes.yaml)."""


@config.command("check", short_help="Check a purposes file; show each problem with its line.")
@click.argument("file", required=False, type=click.Path(path_type=Path))
def config_check(file: Path | None):
    """Validate FILE (default: $CONSENT_CONFIG, else config/purposes.yaml, else the one the
    package ships) and list every error with its file, line and what is wrong. Exits 1 when
    the file is invalid."""
    file = file or consent_config_path(os.environ)
    problems = check_config(file)
    if problems:
        for problem in problems:
            click.echo(str(problem), err=True)
        click.echo(f"{file}: {len(problems)} problem(s); the connector will not start with it.",
                   err=True)
        sys.exit(1)
    loaded = load_config(file)
    click.echo(f"{file}: valid — {len(loaded.purposes)} purposes, {len(loaded.legal_bases)} "
               f"legal bases, {len(loaded.sources)} sources.")


@config.command("diff", short_help="Compare the purposes file with the CRM's lists.")
def config_diff():
    """Compare the purposes file with the CRM's lists of purposes, legal bases and sources:
    keys the CRM does not have or has deactivated (exit 1), and names that differ. Check each
    subscription's shipment type against the CRM's (one that is not there, exit 1)."""
    services = services_or_exit()
    try:
        lists = services.crm.consent_lists()
        shipment_types = _shipment_types(services.crm)
    except CRMError as error:
        click.echo(f"could not read the CRM's lists: {error}", err=True)
        sys.exit(2)
    differences = diff_config(services.config, lists)
    differences += diff_subscriptions(services.config, shipment_types)
    for difference in differences:
        click.echo(f"{'PROBLEM' if difference.problem else 'note   '}  {difference.message}")
    problems = sum(d.problem for d in differences)
    click.echo(f"{services.live_config.path}: {problems} problem(s), "
               f"{len(differences) - problems} note(s) against the CRM's lists.")
    sys.exit(1 if problems else 0)


def _shipment_types(crm: CRMClient) -> tuple[ShipmentType, ...] | None:
    """The CRM's shipment types, as the first person listed has them: a person entity lists
    "the person's available and selected shipment types" (v1PersonEntity_GetPersonEntity.md),
    every one the tenant has. None when the CRM has no person."""
    listing = next(iter(crm.list_persons(None, page_size=1)), None)
    return crm.get_person(listing.person_id).shipment_types if listing else None
