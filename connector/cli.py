"""The ``consent-connector`` command. Each command's docstring is its --help."""

import logging
import os
import sys
from pathlib import Path

import click

from connector import defaults
from connector.commands import runtime_or_exit


@click.group()
def main():
    """GDPR consent management for SuperOffice: run the worker, check the config."""


@main.group()
def config():
    """Check the purposes file (config/purposes.yaml)."""


@config.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path))
def config_check(file: Path | None):
    """Validate FILE (default: $CONSENT_CONFIG or config/purposes.yaml) and list every error
    with its file, line and what is wrong. Exits 1 when the file is invalid."""
    from connector.config import check_config, load_config

    file = file or Path(os.environ.get("CONSENT_CONFIG") or "config/purposes.yaml")
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


@main.command()
@click.option("--burst", is_flag=True, help="Work until the queues are empty, then exit.")
def worker(burst: bool):
    """Run an RQ worker for the connector's queues (with RQ's scheduler, for retries)."""
    from workers.queues import QUEUE_NAMES, apply_retry_policy
    from workers.worker import ConnectorWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    rt = runtime_or_exit()
    rq_worker = ConnectorWorker(list(QUEUE_NAMES), connection=rt.redis,
                                exception_handlers=[apply_retry_policy],
                                maintenance_interval=defaults.WORKER_MAINTENANCE_INTERVAL)
    rq_worker.work(with_scheduler=True, burst=burst)

