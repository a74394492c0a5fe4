"""The ``consent-connector`` command. Each command's docstring is its --help."""

import os
import sys
from pathlib import Path

import click

from connector import defaults
from connector.commands import runtime_or_exit
from connector.logs import configure_logging
from connector.commands.export import export
from connector.commands.jobs import jobs
from connector.commands.reconcile import reconcile
from connector.commands.status import status


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


@config.command("diff")
def config_diff():
    """Compare the purposes file with the CRM's lists of purposes, legal bases and sources:
    keys the CRM does not have or has deactivated (exit 1), and names that differ."""
    from connector.config_diff import diff_config
    from connector.exceptions import CRMError

    rt = runtime_or_exit()
    try:
        lists = rt.crm.consent_lists()
    except CRMError as error:
        click.echo(f"could not read the CRM's lists: {error}", err=True)
        sys.exit(2)
    differences = diff_config(rt.config, lists)
    for difference in differences:
        click.echo(f"{'PROBLEM' if difference.problem else 'note   '}  {difference.message}")
    problems = sum(d.problem for d in differences)
    click.echo(f"{rt.live_config.path}: {problems} problem(s), "
               f"{len(differences) - problems} note(s) against the CRM's lists.")
    sys.exit(1 if problems else 0)


@main.command()
@click.option("--burst", is_flag=True, help="Work until the queues are empty, then exit.")
def worker(burst: bool):
    """Run an RQ worker for the connector's queues (with RQ's scheduler, for retries)."""
    from workers.queues import QUEUE_NAMES, apply_retry_policy
    from workers.reconcile import start_reconcile_cron, stop_reconcile_cron
    from workers.worker import ConnectorWorker

    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    rt = runtime_or_exit()
    rq_worker = ConnectorWorker(list(QUEUE_NAMES), connection=rt.redis,
                                exception_handlers=[apply_retry_policy],
                                maintenance_interval=defaults.WORKER_MAINTENANCE_INTERVAL)
    # RQ's cron scheduler queues a reconciliation every RECONCILE_INTERVAL minutes.
    reconcile_every = 0 if burst else rt.settings.reconcile_interval
    cron = start_reconcile_cron(rt.settings, reconcile_every) if reconcile_every else None
    try:
        rq_worker.work(with_scheduler=True, burst=burst)
    finally:
        if cron is not None:
            stop_reconcile_cron(cron)



main.add_command(jobs)
main.add_command(reconcile)
main.add_command(status)
main.add_command(export)
