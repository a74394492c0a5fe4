"""The ``consent-connector`` subcommands, one module per command group; connector/cli.py
registers them. A command's docstring is its --help."""

import logging
import os
import sys
from pathlib import Path

import click
import sqlalchemy.exc

from connector.config import load_config
from connector.consent import ConsentConfig
from connector.evidence.database import Database, unreachable_reason
from connector.exceptions import ConfigError, CRMError, SchemaBehindError, SettingsError
from connector.services import Services, build_services
from connector.settings import Settings, database_url_from_env


log = logging.getLogger(__name__)


def services_or_exit() -> Services:
    """Build the services from the environment, or exit with status 2 and a message naming
    the bad setting, the purposes-file line or the database's problem."""
    try:
        return build_services(Settings.from_env(os.environ), redis_timeout=None)
    except (SettingsError, ConfigError, SchemaBehindError) as error:
        click.echo(f"consent-connector: cannot start:\n{error}", err=True)
        sys.exit(2)
    except sqlalchemy.exc.OperationalError as error:
        click.echo(f"consent-connector: cannot start:\n{unreachable_reason(error)}", err=True)
        sys.exit(2)


def database_or_exit() -> Database:
    """The evidence database named by the environment (only DATABASE_URL and DATA_DIR are
    read); or exit with status 2 naming the bad setting."""
    try:
        return Database(database_url_from_env(os.environ))
    except SettingsError as error:
        click.echo(f"consent-connector: {error}", err=True)
        sys.exit(2)


def config_or_exit() -> ConsentConfig:
    """The purposes config (CONSENT_CONFIG, default config/purposes.yaml), or exit 2 with its
    problems."""
    path = Path(os.environ.get("CONSENT_CONFIG") or "config/purposes.yaml")
    try:
        return load_config(path)
    except ConfigError as error:
        click.echo(f"consent-connector: the purposes file cannot be used (CONSENT_CONFIG):\n"
                   f"{error}", err=True)
        sys.exit(2)


def crm_or_exit(services: Services) -> None:
    """Sign in and ask the CRM who the connector is. Exit with status 2 and the reason (which
    names the setting) when that fails for good: bad key, revoked token, wrong address, or an
    associate other than SUPEROFFICE_ASSOCIATE_ID. A passing failure (CRM or login down) is
    logged and the process starts: its jobs wait."""
    try:
        principal = services.crm.current_principal()
    except CRMError as error:
        if error.permanent:
            click.echo(f"consent-connector: cannot start: the CRM refused: {error}", err=True)
            sys.exit(2)
        log.warning("crm.unavailable_at_start reason=%s", error)
        return
    configured = services.settings.associate_id
    if configured is not None and configured != principal.associate_id:
        click.echo(f"consent-connector: cannot start: the CRM says the connector is associate "
                   f"{principal.associate_id}, but SUPEROFFICE_ASSOCIATE_ID is {configured}: "
                   f"its own consent writes would be taken for a CRM user's", err=True)
        sys.exit(2)
    log.info("crm.signed_in associate=%s", principal.associate_id)
