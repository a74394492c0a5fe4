"""The connector's RQ worker, and the services its jobs use.

``consent-connector worker`` builds the services once (connector.services.build_services) and
hands them to ``ConnectorWorker``, which runs every job in its own process: every job of the
process uses them through ``current_services()``, with their open connections.

Why in the process, not in a work horse forked per job (RQ's ``Worker``): the jobs wait on the
CRM, SMTP and the database, and a horse starts cold — it imports the jobs, reads the
translations, compiles the templates and opens every connection again. Measured with
bench/worker_bench.py, an onboarding cost a forked horse 7× the CPU it costs in place, and
four forking workers on two cores could not reach a CRM quota of 20 calls a second
(bench/drain_bench.py). What the fork gave is kept another way:

- a job that runs too long is stopped by RQ's SIGALRM death penalty (JOB_TIMEOUT);
- a job's exception never stops the worker (RQ records it; workers.retry decides);
- a worker that dies in the middle of a job (killed, out of memory, a crash in C code) is
  started again by the process manager (Procfile platforms, systemd, Docker), and the job is
  retried at once by the next worker on the machine that looks
  (``retry_jobs_of_dead_workers_here``) or, for a machine that is gone, once its heartbeat
  lapses (RQ's own clean-up).
"""

import logging
import os
import socket

import redis
from rq import SimpleWorker

from connector import defaults, metrics
from connector.crm.budget import Priority, crm_priority
from connector.keys import CONFIG_IN_FORCE, QUEUE_NAMES
from connector.queueing import QUEUE_PRIORITY
from connector.services import Services, build_services
from connector.settings import Settings
from connector.times import iso, now
from workers.retry import apply_retry_policy, requeue_lost, retry_jobs_of_dead_workers_here

log = logging.getLogger(__name__)

_services: Services | None = None


def current_services() -> Services:
    """The services of this worker process; built from the environment when a job runs in a
    process that did not build them (a plain ``rq worker``)."""
    global _services
    if _services is None:
        _services = build_services(Settings.from_env(os.environ), redis_timeout=None)
    return _services


class ConnectorWorker(SimpleWorker):
    """RQ's worker that runs jobs in its own process (see the module docstring), on the
    connector's queues, with its retry policy, that looks at the purposes file before each
    job, so an edited config/purposes.yaml is picked up without a restart (an invalid edit is
    refused and the last good config stays in force; see connector.config.LiveConfig).

    Args:
        services: what the jobs of this process use.
    """

    def __init__(self, services: Services, **kwargs):
        global _services
        _services = services
        super().__init__(list(QUEUE_NAMES), connection=services.redis,
                         exception_handlers=[apply_retry_policy],
                         maintenance_interval=services.settings.worker_maintenance_interval,
                         **kwargs)

    @property
    def dequeue_timeout(self) -> int:
        """How long one wait for a job blocks: RQ runs its maintenance (which retries the jobs
        of dead workers) only between two waits, and its own wait is 405 s, so an idle worker
        found such a job up to 7 minutes late. Waiting no longer than the maintenance interval
        keeps WORKER_MAINTENANCE_INTERVAL's promise on an idle system too, and a heartbeat
        goes out at least every WORKER_HEARTBEAT_INTERVAL (/readyz?workers=1 counts them)."""
        return min(self.maintenance_interval, defaults.WORKER_HEARTBEAT_INTERVAL)

    stopping = False
    """True once a stop was asked for (SIGTERM, SIGINT): ``work`` then returned on purpose."""

    redis_lost = False
    """True from a heartbeat that could not reach Redis until one that could: then jobs lost
    in the outage are queued again (workers.retry.requeue_lost)."""

    job_in_hand = None
    """The job taken from its queue, until its execution is over: what to retry when RQ's
    loop quits in the middle (workers.retry.retry_interrupted), or to give back when a stop
    came between taking it and starting it (workers.retry.give_back_unstarted)."""

    def request_stop(self, signum, frame):
        """Note the stop, then let RQ stop (warm shutdown: the job in hand finishes)."""
        self.stopping = True
        super().request_stop(signum, frame)

    def heartbeat(self, *args, **kwargs):
        """RQ's heartbeat (the first thing of each wait for a job), noticing a Redis outage:
        RQ's wait rides it out by itself, but a job it popped as the connection broke is lost
        from its queue, so the first heartbeat after the outage queues such jobs again."""
        try:
            outcome = super().heartbeat(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError):
            self.redis_lost = True
            raise
        if self.redis_lost:
            self.redis_lost = False
            for job_id in requeue_lost(self.connection):
                log.warning("worker.job_requeued job_id=%s reason=lost_in_a_redis_outage", job_id)
        self.report_config()
        return outcome

    def report_config(self) -> None:
        """Look at the purposes file, and tell ``status`` which version is in force and which
        one on disk was refused, and why (keys.CONFIG_IN_FORCE, lapsing when no worker runs)."""
        live = current_services().live_config
        live.refresh()
        problems = "\n".join(map(str, live.refused.problems)) if live.refused else ""
        with self.connection.pipeline(transaction=True) as pipe:
            pipe.delete(CONFIG_IN_FORCE)
            pipe.hset(CONFIG_IN_FORCE, mapping={
                "version": live.version or "", "refused_version": live.refused_version or "",
                "refused": problems, "at": iso(now()), "worker": self.name})
            pipe.expire(CONFIG_IN_FORCE, 3 * defaults.WORKER_HEARTBEAT_INTERVAL)
            pipe.execute()

    def run_maintenance_tasks(self):
        """RQ's maintenance, then the retry of jobs whose worker on this machine died."""
        super().run_maintenance_tasks()
        for job_id in retry_jobs_of_dead_workers_here(self.connection, socket.gethostname()):
            log.warning("worker.job_requeued job_id=%s reason=its_worker_died", job_id)

    def perform_job(self, job, queue, *args, **kwargs):
        """Run the job with its queue's priority for the CRM budget, its counts (metrics)
        sent in one round trip at its end."""
        with crm_priority(QUEUE_PRIORITY.get(queue.name, Priority.EVENTS)), \
                metrics.counted_together(self.connection):
            return super().perform_job(job, queue, *args, **kwargs)

    def dequeue_job_and_maintain_ttl(self, *args, **kwargs):
        """RQ's wait for a job, remembering the job taken: a SIGTERM that lands before it
        starts makes RQ's loop quit with the job out of its queue."""
        taken = super().dequeue_job_and_maintain_ttl(*args, **kwargs)
        if taken is not None:
            self.job_in_hand = taken[0]
        return taken

    def execute_job(self, job, queue):
        self.job_in_hand = job
        current_services().live_config.refresh()
        outcome = super().execute_job(job, queue)
        self.job_in_hand = None
        return outcome
