"""The no-op job and the worker classes bench/worker_bench.py runs (imported as
``bench.worker_jobs`` by the benchmark's child processes and by RQ's work horses).

- ``noop``: the anchor's job, RQ's own cost per job and nothing else.
- ``TimedWork``: a mixin that times ``work()`` (and the steady state: from the end of the
  first job to the end of the last, without the start and stop of the worker and the
  first job's one-time loads) and counts the jobs this process took (the
  work horses of a forking worker never call ``work``) and the CPU time it and its horses
  spent meanwhile, and leaves a JSON record in Redis
  (``bench:work``) for the benchmark to read. It changes nothing else.
- ``TimedWorker`` / ``TimedSimpleWorker``: RQ's ``Worker`` and ``SimpleWorker``, timed (the
  anchors).
- ``TimedConnectorWorker``: the connector's own ``workers.worker.ConnectorWorker`` (forks a
  work horse per job), timed.
- ``SimpleConnectorWorker``: ``ConnectorWorker`` without the fork: the job runs in the worker
  process, as in ``rq.SimpleWorker`` (same job timeout by SIGALRM, same heartbeat TTL, no
  horse to kill). Everything else is ConnectorWorker's: the services global, the retry
  policy's exception handler, the purposes file looked at before each job, ``job_in_hand``.
- ``PoolConnectorWorker`` / ``PoolSimpleConnectorWorker``: the two above with the constructor
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
from rq.worker import BaseWorker

from connector.services import build_services
from connector.settings import Settings
from workers.worker import ConnectorWorker

RECORDS_KEY = "bench:work"


def noop():
    return None


class TimedWork:
    """Times ``work()`` in this process and counts the jobs it took; the record goes to Redis."""

    bench_jobs = 0
    bench_first_end = bench_last_end = None

    def execute_job(self, job, queue):
        self.bench_jobs += 1
        try:
            return super().execute_job(job, queue)
        finally:
            self.bench_last_end = time.perf_counter()
            if self.bench_first_end is None:
                self.bench_first_end = self.bench_last_end

    def work(self, *args, **kwargs):
        started_at, started, cpu_before = time.time(), time.perf_counter(), _cpu()
        try:
            return super().work(*args, **kwargs)
        finally:
            seconds = time.perf_counter() - started
            self.connection.rpush(RECORDS_KEY, json.dumps({
                "pid": os.getpid(), "class": type(self).__name__, "jobs": self.bench_jobs,
                "seconds": seconds, "cpu": _cpu() - cpu_before,
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
    """The connector's worker as ``consent-connector worker`` runs it, timed."""


class SimpleConnectorWorker(TimedWork, ConnectorWorker):
    """ConnectorWorker, the job run in the worker process instead of a work horse.

    RQ's ``Worker.execute_job`` (under ConnectorWorker's) prepares the execution, forks, and
    monitors the horse; here "fork" performs the job in place, as the horse's
    ``main_work_horse`` would (without its signal setup and ``os._exit``), and there is no
    horse to monitor. The rest that RQ's Worker overrides is taken from SimpleWorker and
    BaseWorker, so nothing assumes a horse: ``get_heartbeat_ttl`` (the execution's TTL must
    last the whole job, as no monitor renews it meanwhile) and ``kill_horse``/
    ``wait_for_horse`` (no-ops: Worker's would signal process group 0, i.e. its own).
    """

    def fork_work_horse(self, job, queue):
        self.perform_job(job, queue, self.execution)

    def monitor_work_horse(self, job, queue, execution):
        return None

    get_heartbeat_ttl = SimpleWorker.get_heartbeat_ttl
    kill_horse = BaseWorker.kill_horse
    wait_for_horse = BaseWorker.wait_for_horse


class _FromPool:
    """The constructor ``rq.worker_pool.run_worker`` calls; the services are built here, in
    the pool's worker process (the pool's queues are the connector's anyway, its connection
    and its exception handlers, None, are replaced by the connector's)."""

    def __init__(self, queues=None, connection=None, exception_handlers=None, **kwargs):
        services = build_services(Settings.from_env(os.environ), redis_timeout=None)
        super().__init__(services, **kwargs)


class PoolConnectorWorker(_FromPool, TimedConnectorWorker):
    """TimedConnectorWorker (fork per job) as a worker pool process."""


class PoolSimpleConnectorWorker(_FromPool, SimpleConnectorWorker):
    """SimpleConnectorWorker (no fork) as a worker pool process."""
