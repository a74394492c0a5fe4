"""``consent-connector worker``: the process that runs the jobs."""

import os

import click

from connector.commands import crm_or_exit, services_or_exit
from connector.logs import configure_logging
from workers.reconcile import start_reconcile_cron, stop_reconcile_cron
from workers.worker import ConnectorWorker


@click.command()
@click.option("--burst", is_flag=True, help="Work until the queues are empty, then exit.")
def worker(burst: bool):
    """Run an RQ worker for the connector's queues (with RQ's scheduler, for retries). It signs
    in to the CRM first and refuses to start when the CRM refuses for good, naming the setting."""
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    services = services_or_exit()
    crm_or_exit(services)
    rq_worker = ConnectorWorker(services)
    # RQ's cron scheduler queues a reconciliation every RECONCILE_INTERVAL minutes.
    reconcile_every = 0 if burst else services.settings.reconcile_interval
    cron = start_reconcile_cron(services.settings, reconcile_every) if reconcile_every else None
    try:
        rq_worker.work(with_scheduler=True, burst=burst)
    finally:
        if cron is not None:
            stop_reconcile_cron(cron)
