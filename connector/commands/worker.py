"""``consent-connector worker``: the process that runs the jobs."""

import itertools
import logging
import os
import signal
import sys
import threading
import time

import click
import redis

from connector import defaults
from connector.commands import crm_or_exit, services_or_exit
from connector.intake import Promoter, waiting
from connector.logs import configure_logging
from connector.redis_connection import connect
from connector.services import Services
from connector.settings import LINKS, MAIL
from workers.reconcile import start_reconcile_cron, stop_reconcile_cron
from workers.retry import give_back_unstarted, retry_interrupted
from workers.worker import ConnectorWorker

log = logging.getLogger(__name__)


@click.command()
@click.option("--burst", is_flag=True, help="Work until the queues are empty, then exit.")
def worker(burst: bool):
    """Run an RQ worker for the connector's queues (with RQ's scheduler, for retries). It signs
    in to the CRM first and refuses to start when the CRM refuses for good, naming the setting."""
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    services = services_or_exit(keeps_redis=True, uses=frozenset({LINKS, MAIL}))
    rq_worker = _start(services)
    # Events wait in the intake until a worker makes jobs of them (connector.intake): a thread
    # with its own Redis connection does so as they come; a burst promotes before each round.
    promoter = Promoter(connect(services.settings, socket_timeout=None), services.settings,
                        holder=rq_worker.name)
    promoting = None
    if not burst:
        promoting = threading.Thread(target=promoter.run, name="intake-promoter", daemon=True)
        promoting.start()
    # RQ's cron scheduler queues a reconciliation every RECONCILE_INTERVAL minutes.
    reconcile_every = 0 if burst else services.settings.reconcile_interval
    cron = start_reconcile_cron(services.settings, reconcile_every) if reconcile_every else None
    try:
        # RQ's loop quits on any error outside a job, such as a Redis connection lost while it
        # records a job's outcome: ride out the outage and work on, unless asked to stop.
        while True:
            try:
                if burst:
                    while promoter.promote():
                        pass
                rq_worker.work(with_scheduler=True, burst=burst)
                if burst and any(waiting(services.redis).values()):
                    continue
            except redis.RedisError as error:  # RQ's own teardown needs Redis too
                log.error("worker.redis_lost error=%s", type(error).__name__)
            if burst or rq_worker.stopping:
                if rq_worker.job_in_hand is not None and give_back_unstarted(rq_worker.job_in_hand):
                    log.info("worker.job_given_back job_id=%s", rq_worker.job_in_hand.id)
                break
            log.error("worker.stopped_unexpectedly restarting once Redis answers")
            wait_for_redis(services.redis)
            if rq_worker.job_in_hand is not None and retry_interrupted(rq_worker.job_in_hand):
                log.info("worker.job_retried job_id=%s", rq_worker.job_in_hand.id)
            rq_worker = ConnectorWorker(services)
            rq_worker.redis_lost = True  # its first heartbeat looks for jobs lost meanwhile
    finally:
        promoter.stopping.set()
        if promoting is not None:
            promoting.join(defaults.PROMOTE_WAIT + 5)
        if cron is not None:
            stop_reconcile_cron(cron)
        services.mailer.close()  # QUIT on the SMTP session kept open between mails


RESTART_WAITS = (1, 2, 5, 10, 30)
"""Seconds between two looks at Redis while it does not answer, then 30 s each."""


def _start(services: Services) -> ConnectorWorker:
    """Check the CRM (crm_or_exit) and make the RQ worker. Both need Redis (the shared
    ticket and budget, the worker's registration): while it does not answer, as when the
    worker starts during a Redis restart, wait for it and start again."""
    while True:
        try:
            crm_or_exit(services)
            return ConnectorWorker(services)
        except redis.RedisError as error:
            log.error("worker.redis_unavailable_at_start error=%s", type(error).__name__)
            wait_for_redis(services.redis)


def wait_for_redis(connection: redis.Redis) -> None:
    """Return once Redis answers (at the earliest after RESTART_WAITS[0], so a loop that quits
    at once for another reason does not spin); a SIGTERM or SIGINT meanwhile ends the process."""
    for handled in (signal.SIGTERM, signal.SIGINT):
        signal.signal(handled, lambda signum, frame: sys.exit(0))
    for attempt in itertools.count():
        time.sleep(RESTART_WAITS[min(attempt, len(RESTART_WAITS) - 1)])
        try:
            connection.ping()
        except redis.RedisError as error:
            log.warning("worker.redis_unavailable error=%s", type(error).__name__)
            continue
        log.info("worker.redis_back")
        return
