"""The no-op job and the worker classes bench/worker_bench.py runs (imported as
``bench.worker_jobs`` by the benchmark's child processes and by RQ's work horses).

- ``noop``: the anchor's job, RQ's own cost per job and nothing else.
- ``TimedWork``: a mixin that times ``work()`` (and the steady state: from the end of the
  first job to the end of the last, without the start and stop of the worker and the
  first job's one-time loads) and counts the jobs this process took (the
  work horses of a forking worker never call ``work``), the work horses it forked, and the
  CPU time it and its horses spent meanwhile, and leaves a JSON record in Redis
  (``bench:work``) for the benchmark to read. It changes nothing else.
- ``TimedWorker`` / ``TimedSimpleWorker``: RQ's ``Worker`` (a work horse forked per job) and
  ``SimpleWorker`` (the job in the worker process), timed (the anchors).
- ``TimedConnectorWorker``: the connector's own ``workers.worker.ConnectorWorker`` as
  ``consent-connector worker`` runs it (an RQ ``SimpleWorker``: jobs in place), timed.
- ``ForkingConnectorWorker``: ConnectorWorker forking a work horse per job, as RQ's
  ``Worker`` does (what ConnectorWorker was before it ran jobs in place);
  ``TimedForkingConnectorWorker``, the same timed.
- ``PoolConnectorWorker``: TimedConnectorWorker with the constructor
  ``rq.worker_pool.run_worker`` calls (``worker_class(queues, name=…, connection=…,
  exception_handlers=…)``), which ``ConnectorWorker(services)`` does not take: each pool
  process builds its own services from the environment.

Nothing here imports ``workers.jobs``: where the job module gets imported (once per process or
once per work horse) is part of what is measured.
"""

import json
import os
import resource
import time

from rq import SimpleWorker, Worker

from connector.services import build_services
from connector.settings import Settings
from workers.worker import ConnectorWorker

RECORDS_KEY = "bench:work"


def noop():
    return None


class TimedWork:
    """Times ``work()`` in this process and counts the jobs it took and the work horses it
    forked; the record goes to Redis."""

    bench_jobs = bench_horses = 0
    bench_first_end = bench_last_end = None

    def execute_job(self, job, queue):
        self.bench_jobs += 1
        try:
            return super().execute_job(job, queue)
        finally:
            self.bench_last_end = time.perf_counter()
            if self.bench_first_end is None:
                self.bench_first_end = self.bench_last_end

    def fork_work_horse(self, job, queue):
        """RQ's fork (only forking workers call it); only the worker returns from it: the horse
        runs the job and leaves by ``os._exit``."""
        super().fork_work_horse(job, queue)
        if self.horse_pid and self.horse_pid != os.getpid():
            self.bench_horses += 1

    def work(self, *args, **kwargs):
        started_at, started, cpu_before = time.time(), time.perf_counter(), _cpu()
        try:
            return super().work(*args, **kwargs)
        finally:
            seconds = time.perf_counter() - started
            self.connection.rpush(RECORDS_KEY, json.dumps({
                "pid": os.getpid(), "class": type(self).__name__, "jobs": self.bench_jobs,
                "horses": self.bench_horses, "seconds": seconds, "cpu": _cpu() - cpu_before,
                # steady state: from the end of the first job to the end of the last
                "steady_jobs": max(self.bench_jobs - 1, 0),
                "steady_seconds": (self.bench_last_end - self.bench_first_end
                                   if self.bench_first_end is not None else 0.0),
                "started_at": started_at, "ended_at": time.time()}))


def _cpu() -> float:
    """CPU seconds of this process and of its children it waited for (the work horses)."""
    return sum(usage.ru_utime + usage.ru_stime
               for usage in (resource.getrusage(resource.RUSAGE_SELF),
                             resource.getrusage(resource.RUSAGE_CHILDREN)))


class TimedWorker(TimedWork, Worker):
    """RQ's forking worker (a work horse per job), timed."""


class TimedSimpleWorker(TimedWork, SimpleWorker):
    """RQ's SimpleWorker (the job runs in the worker process), timed."""


class TimedConnectorWorker(TimedWork, ConnectorWorker):
    """The connector's worker as ``consent-connector worker`` runs it (jobs in place), timed."""


class _HorsePerJob(SimpleWorker, Worker):
    """RQ's ``Worker`` under a ``SimpleWorker`` subclass: SimpleWorker's two overrides of
    ``BaseWorker`` handed back to ``Worker`` — ``execute_job`` (prepare the execution, fork a
    horse that performs the job, monitor it) and ``get_heartbeat_ttl`` (a TTL the horse's
    monitor renews while the job runs). The rest of what makes a horse (``fork_work_horse``,
    ``monitor_work_horse``, ``kill_horse``, ``wait_for_horse``) SimpleWorker does not define,
    so it is ``Worker``'s already."""

    execute_job = Worker.execute_job
    get_heartbeat_ttl = Worker.get_heartbeat_ttl


class ForkingConnectorWorker(ConnectorWorker, _HorsePerJob):
    """ConnectorWorker with a work horse forked per job.

    The method order is ForkingConnectorWorker, ConnectorWorker, _HorsePerJob, SimpleWorker,
    Worker, BaseWorker: everything ConnectorWorker adds is kept — the services global (the
    horse inherits it with the fork), the retry policy's exception handler, the purposes file
    looked at and ``job_in_hand`` set before each job (in the worker, around the horse), the
    CRM priority of the job's queue (``perform_job``, in the horse), the heartbeat's Redis
    outage check, the maintenance's retry of dead workers' jobs — and its ``super()
    .execute_job`` is Worker's, which forks.
    """


class TimedForkingConnectorWorker(TimedWork, ForkingConnectorWorker):
    """ForkingConnectorWorker, timed."""


class _FromPool:
    """The constructor ``rq.worker_pool.run_worker`` calls; the services are built here, in
    the pool's worker process (the pool's queues are the connector's anyway, its connection
    and its exception handlers, None, are replaced by the connector's)."""

    def __init__(self, queues=None, connection=None, exception_handlers=None, **kwargs):
        services = build_services(Settings.from_env(os.environ), redis_timeout=None)
        super().__init__(services, **kwargs)


class PoolConnectorWorker(_FromPool, TimedConnectorWorker):
    """TimedConnectorWorker (jobs in place) as a worker pool process."""
