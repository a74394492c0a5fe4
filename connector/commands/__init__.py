"""The ``consent-connector`` subcommands, one module per command group; connector/cli.py
registers them. A command's docstring is its --help."""

import os
import sys

import click

from connector.exceptions import ConfigError, SettingsError
from connector.services import Services, build_services
from connector.settings import Settings


def services_or_exit() -> Services:
    """Build the services from the environment, or exit with status 2 and a message naming
    the bad setting or purposes-file line."""
    try:
        return build_services(Settings.from_env(os.environ), redis_timeout=None)
    except (SettingsError, ConfigError) as error:
        click.echo(f"consent-connector: cannot start:\n{error}", err=True)
        sys.exit(2)
