"""The ``consent-connector`` subcommands, one module per command group; connector/cli.py
registers them. A command's docstring is its --help."""

import atexit
import logging
import os
import sys
from datetime import datetime, time as day_start, timezone
from pathlib import Path

import click
import redis
import sqlalchemy.exc

from connector.config import load_config
from connector.consent import ConsentConfig
from connector.evidence.database import Database, unreachable_reason
from connector.exceptions import ConfigError, CRMError, SchemaBehindError, SettingsError
from connector.exports.tables import FORMATS, output_format
from connector.redis_connection import (embedded_server_running, running_demo,
                                        stop_embedded_server)
from connector.services import Services, build_services
from connector.settings import READING, Settings, consent_config_path, database_url_from_env


log = logging.getLogger(__name__)


def services_or_exit(config_required: bool = True, keeps_redis: bool = False,
                     uses: frozenset[str] = READING) -> Services:
    """Build the services from the environment, or exit with status 2 and a message naming
    every bad setting, the purposes-file line or the database's problem. ``uses``: what the
    command does besides reading the CRM, Redis and the database (Settings.from_env); the
    settings of the rest are not asked for. ``config_required``: False builds them with an
    invalid purposes file too (see build_services).

    Without REDIS_URL, a command uses the embedded Redis in DATA_DIR. When none runs there,
    it starts one, and stops it again when it is done unless it ``keeps_redis`` (the worker):
    a command leaves no Redis behind. It refuses when a demo runs with its own Redis in
    DATA_DIR/demo (``make demo``'s place): the command was meant for the demo's."""
    try:
        settings = Settings.from_env(os.environ, uses)
        starts_redis = (settings.redis_url is None
                        and not embedded_server_running(settings.data_dir))
        if starts_redis:
            demo = settings.data_dir / "demo"  # make demo's DATA_DIR
            if running_demo(demo) is not None:
                click.echo(f"consent-connector: no Redis runs in DATA_DIR ({settings.data_dir}),"
                           f" but a demo runs in {demo}: `source {demo / 'env'}` to use its "
                           f"settings (with SERVE=1), or set DATA_DIR={demo}", err=True)
                sys.exit(2)
        services = build_services(settings, redis_timeout=None,
                                  config_required=config_required)
        if starts_redis and not keeps_redis:
            atexit.register(_stop_unless_used, services.redis, settings.data_dir)
        return services
    except (SettingsError, ConfigError, SchemaBehindError) as error:
        click.echo(f"consent-connector: cannot start:\n{error}", err=True)
        sys.exit(2)
    except sqlalchemy.exc.OperationalError as error:
        click.echo(f"consent-connector: cannot start:\n{unreachable_reason(error)}", err=True)
        sys.exit(2)


def _stop_unless_used(connection: redis.Redis, data_dir: Path) -> None:
    """Stop the embedded Redis this command started, unless another process (a worker that
    started meanwhile) is connected to it."""
    connection.connection_pool.disconnect()
    try:
        if connection.info("clients")["connected_clients"] <= 1:  # this question's own
            stop_embedded_server(data_dir)
    except redis.RedisError:
        pass  # gone already
    finally:
        connection.connection_pool.disconnect()


def database_or_exit() -> Database:
    """The evidence database named by the environment (only DATABASE_URL and DATA_DIR are
    read); or exit with status 2 naming the bad setting."""
    try:
        return Database(database_url_from_env(os.environ))
    except SettingsError as error:
        click.echo(f"consent-connector: {error}", err=True)
        sys.exit(2)


def config_or_exit() -> ConsentConfig:
    """The purposes config (settings.consent_config_path), or exit 2 with its
    problems."""
    path = consent_config_path(os.environ)
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


def table_output(command):
    """The ``-o/--output`` option of a command that writes a table: a .xlsx or .csv file
    (by its extension), standard output (CSV) when not given; checked before the command
    runs."""
    return click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
                        callback=_checked_output,
                        help="File to write, .xlsx or .csv. Default: CSV on standard "
                             "output.")(command)


def _checked_output(_context: click.Context, _option: click.Parameter,
                    output: Path | None) -> Path | None:
    if output is None:
        return None
    if output_format(output.name) is None:
        raise click.UsageError(f"cannot tell the format of {output.name}: name the file "
                               f"{' or '.join('.' + name for name in FORMATS)}")
    if not output.parent.is_dir():
        raise click.UsageError(f"cannot write {output}: the folder {output.parent} does not "
                               f"exist")
    return output


def as_of_option(help_text: str):
    """The ``--as-of DATE`` option: the moment a report stands for, midnight UTC of that date
    (now when not given)."""
    return click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]),
                        callback=_as_of_moment, help=help_text)


def _as_of_moment(_context: click.Context, _option: click.Parameter,
                  as_of: datetime | None) -> datetime | None:
    return datetime.combine(as_of.date(), day_start(), timezone.utc) if as_of else None
