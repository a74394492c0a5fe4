"""The ``consent-connector`` subcommands beyond ``config`` and ``worker``, one module each;
connector/cli.py registers them."""

import os
import sys

import click

from connector.exceptions import ConfigError, SettingsError
from connector.settings import Settings


def runtime_or_exit():
    """Build the services (workers.runtime.Runtime) from the environment and install them,
    or exit with status 2 and a message naming the bad setting or purposes-file line."""
    from workers import runtime

    try:
        rt = runtime.build_runtime(Settings.from_env(os.environ))
    except (SettingsError, ConfigError) as error:
        click.echo(f"consent-connector: cannot start:\n{error}", err=True)
        sys.exit(2)
    runtime.install(rt)
    return rt
