"""Benchmark of the connector's worker, in place and forking, on its jobs: which one drains
the queues fastest, per worker process, next to RQ's own no-op rate for the same kind of
worker (the anchor), measured in one run.

    .venv/bin/python bench/worker_bench.py                    # 300 no-ops, 200 onboardings
    .venv/bin/python bench/worker_bench.py --jobs 100         # 100 of each
    .venv/bin/python bench/worker_bench.py --only connector --only fork
    nice -n 10 .venv/bin/python bench/worker_bench.py         # on a shared machine

The classes: the connector's ``ConnectorWorker`` as shipped (an RQ ``SimpleWorker``: the job
runs in the worker process; as ``consent-connector worker`` runs it), the same worker forking
a work horse per job as RQ's ``Worker`` does (``bench.worker_jobs.ForkingConnectorWorker``),
and RQ's worker pool (``rq worker-pool``: ``rq.worker_pool.WorkerPool``, N processes, default
2) of the in-place class. The anchors: RQ's ``SimpleWorker`` for the in-place classes, RQ's
``Worker`` for the forking one.

Per class, each run in a fresh child process, one worker process (or one pool) in burst mode
(``work(burst=True, with_scheduler=True)``) draining jobs queued beforehand:

- the anchor: N jobs of ``bench.worker_jobs.noop`` through RQ's own class;
- the project: N onboardings (``workers.jobs.onboard_person``, queued by
  ``connector.queueing.enqueue_event``) of persons created just before in the sandbox CRM,
  served from this process on loopback; the confirmation mails go to an aiosmtpd sink in this
  process (accepted, counted, discarded); the evidence database is the embedded SQLite file
  and Redis the embedded server, both in a temporary folder (bench/harness.py).

The rate is jobs / the time of ``work()`` in each worker process (``bench.worker_jobs.
TimedWork``); for the pool, per process (jobs / the sum of its processes' times) and overall
(jobs / first start to last end). The steady rate leaves out each process's start and stop and
its first job (one-time loads): jobs after the first / end of the first job to end of the
last; it matters at small ``--jobs``. Every job must have finished: the failed, scheduled
(retrying) and left counts are printed with the first failure's reason, and the work horses
forked (one per job for a forking class, none in place). Per run it also prints RQ's
mean job duration (ended_at - started_at), the CPU time per job of the worker processes (with
their horses), of this process (the CRM and SMTP servers) and of redis-server, the CRM calls
and mails per onboarding.

Goal (figures, not asserts; see bench/README.md): with a fast CRM and SMTP, onboardings/s per
worker process >= 50 % of RQ's own no-op rate for the same worker class.
"""

import argparse
import collections
import cProfile
import importlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (Servers, call_kind, cpu, load_average,  # noqa: E402
                           print_machine)

GOAL_RATIO = 0.5
CHILD_TIMEOUT_PER_JOB = 2.0  # seconds; a child that takes longer is stopped (its whole group)

JOBS = "bench.worker_jobs"


class Config:
    """One worker class: the anchor's class, the connector's, whether it forks a work horse
    per job, and the pool size (0: one process, no pool)."""

    def __init__(self, key, label, anchor, project, forks, pool=0):
        self.key, self.label, self.anchor, self.project = key, label, anchor, project
        self.forks, self.pool = forks, pool


def configs(pool_size: int) -> dict[str, list[Config]]:
    """The configurations of each ``--only`` choice."""
    return {
        "connector": [
            Config("in place", "ConnectorWorker as shipped (jobs in place; anchor SimpleWorker)",
                   f"{JOBS}.TimedSimpleWorker", f"{JOBS}.TimedConnectorWorker", forks=False),
        ],
        "fork": [
            Config("fork per job", "ForkingConnectorWorker (a work horse per job; anchor "
                   "Worker)", f"{JOBS}.TimedWorker", f"{JOBS}.TimedForkingConnectorWorker",
                   forks=True),
        ],
        "pool": [
            Config(f"pool×{pool_size} in place", f"worker-pool, {pool_size} processes, "
                   f"ConnectorWorker (jobs in place; anchor SimpleWorker)",
                   f"{JOBS}.TimedSimpleWorker", f"{JOBS}.PoolConnectorWorker", forks=False,
                   pool=pool_size),
        ],
    }


# ---------------------------------------------------------------- the child: one worker run
def child(spec: dict) -> None:
    """Run one worker process (or one pool) in burst mode; the workers record their times in
    Redis (bench.worker_jobs.TimedWork); the pool's wall time goes to ``spec["out"]``."""
    import redis
    from rq.worker_pool import WorkerPool

    # The process image of ``consent-connector worker`` for every run, the anchor's too: a
    # fork copies the same address space.
    importlib.import_module("connector.commands.worker")
    from connector.commands import crm_or_exit, services_or_exit
    from connector.keys import QUEUE_NAMES
    from connector.logs import configure_logging

    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    module, name = spec["class"].rsplit(".", 1)
    worker_class = getattr(importlib.import_module(module), name)
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    services = None
    if spec["connector"]:
        services = services_or_exit()
        crm_or_exit(services)  # signs in, as the command does before its first job
    started = time.perf_counter()
    if spec["pool"]:
        if services is not None:  # each pool process builds its own
            services.database.dispose()
            services.redis.close()
        pool = WorkerPool(list(QUEUE_NAMES), connection=connection, num_workers=spec["pool"],
                          worker_class=worker_class)
        started = time.perf_counter()
        pool.start(burst=True, logging_level="INFO")
    else:
        if services is not None:
            worker = worker_class(services)
        else:
            worker = worker_class(list(QUEUE_NAMES), connection=connection)
        if spec.get("profile"):
            cProfile.runctx("worker.work(burst=True, with_scheduler=True)", globals(),
                            {"worker": worker}, spec["profile"])
        else:
            worker.work(burst=True, with_scheduler=True)
    Path(spec["out"]).write_text(json.dumps({"wall": time.perf_counter() - started}))


# ---------------------------------------------------------------- the servers
class Bench(Servers):
    """The servers of one benchmark run (bench/harness.py: Redis, the sandbox CRM in a thread
    of this process, the SMTP sink), the workers' environment, and the runs."""

    def __init__(self, folder: Path, crm_budget: int, appendfsync: str, profile: str | None):
        super().__init__(folder, crm_process=False, appendfsync=appendfsync)
        self.crm_budget, self.profile = crm_budget, profile

    def start(self) -> None:
        from connector.settings import Settings

        super().start()
        self.data_dir = self.folder / "data"
        self.data_dir.mkdir()
        # The shared CRM request budget (connector.crm.budget) paces every CRM call; at its
        # default (10 a second) it, not the worker class, sets the onboarding rate.
        self.env = self.connector_env(self.data_dir, self.crm_budget)
        self.settings = Settings.from_env(self.env)

    # ------------------------------------------------------------ one run
    def run(self, config: Config, kind: str, count: int) -> dict:
        """Queue ``count`` jobs of ``kind`` ("noop" or "onboarding"), drain them with the
        configuration's class in a child process, and check and measure the outcome."""
        from rq import Queue
        from bench.worker_jobs import RECORDS_KEY, noop
        from connector.keys import ONBOARDING

        self.redis.flushdb()
        queue = Queue(ONBOARDING, connection=self.redis)
        tag = uuid.uuid4().hex[:6]
        if kind == "noop":
            job_ids = [queue.enqueue(noop).id for _ in range(count)]
        else:
            persons = self.create_persons(count, "Bench", f"{tag}{{n}}",
                                          f"bench-{tag}-{{n}}@example.org")
            job_ids = [queue_onboarding(self.redis, self.settings, person_id,
                                        str(uuid.uuid4())).id for person_id in persons]
        calls_before = len(self.control("GET", "calls"))
        sign_ins_before = len(self.control("GET", "sign-ins"))
        mails_before = self.sink.count
        redis_cpu_before = self.redis_cpu()

        out = self.folder / f"child-{tag}.json"
        log_path = self.folder / f"child-{tag}.log"
        spec = {"class": config.project if kind == "onboarding" else config.anchor,
                "connector": kind == "onboarding", "pool": config.pool,
                "out": str(out),
                "profile": self.profile if kind == "onboarding" and not config.pool else None}
        own_before = resource.getrusage(resource.RUSAGE_SELF)
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, __file__, "--child", json.dumps(spec)],
                env={**os.environ, **self.env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # its own process group: its horses go with it
            try:
                process.wait(timeout=30 + CHILD_TIMEOUT_PER_JOB * count)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        own_after = resource.getrusage(resource.RUSAGE_SELF)
        if process.returncode != 0 or not out.exists():
            tail = log_path.read_text(errors="replace").splitlines()[-25:]
            raise RuntimeError(f"{config.key} {kind}: the child exited with "
                               f"{process.returncode}:\n" + "\n".join(tail))
        wall = json.loads(out.read_text())["wall"]

        records = [json.loads(item) for item in self.redis.lrange(RECORDS_KEY, 0, -1)]
        calls = self.control("GET", "calls")[calls_before:]
        result = {
            "config": config.key, "kind": kind, "count": count, "wall": wall,
            "forks": config.forks,
            "processes": len(records),
            "jobs_taken": sum(r["jobs"] for r in records),
            "horses": sum(r["horses"] for r in records),
            "process_seconds": sum(r["seconds"] for r in records),
            "steady_jobs": sum(r["steady_jobs"] for r in records),
            "steady_seconds": sum(r["steady_seconds"] for r in records),
            "span": (max(r["ended_at"] for r in records) - min(r["started_at"] for r in records))
            if records else float("nan"),
            "worker_cpu": sum(r["cpu"] for r in records),
            "servers_cpu": cpu(own_after) - cpu(own_before),
            "redis_cpu": self.redis_cpu() - redis_cpu_before,
            "mails": self.sink.count - mails_before,
            "calls": collections.Counter(call_kind(call) for call in calls),
            "calls_failed": sum(1 for call in calls if call["status"] >= 400),
            "sign_ins": len(self.control("GET", "sign-ins")) - sign_ins_before,
        }
        result.update(self.outcome(queue, job_ids))
        return result

    def outcome(self, queue, job_ids: list[str]) -> dict:
        """Finished / failed / retrying / left, the first failure's reason, and RQ's job
        durations (ended_at - started_at) of the finished jobs."""
        from rq.job import Job

        finished = set(queue.finished_job_registry.get_job_ids())
        failed = queue.failed_job_registry.get_job_ids()
        scheduled = queue.scheduled_job_registry.get_job_ids()
        reason = None
        if failed or scheduled:
            job = Job.fetch((failed or scheduled)[0], connection=self.redis)
            latest = job.latest_result()
            reason = job.meta.get("reason") or (latest.exc_string.strip().splitlines()[-1]
                                                if latest and latest.exc_string else None)
        durations = [(job.ended_at - job.started_at).total_seconds()
                     for job in Job.fetch_many([i for i in job_ids if i in finished],
                                               connection=self.redis)
                     if job is not None and job.started_at and job.ended_at]
        return {"finished": len(finished & set(job_ids)), "failed": len(failed),
                "scheduled": len(scheduled), "left": queue.count, "reason": reason,
                "job_ms_mean": statistics.mean(durations) * 1000 if durations else float("nan"),
                "job_ms_median": (statistics.median(durations) * 1000 if durations
                                  else float("nan"))}


def queue_onboarding(connection, settings, person_id: int, event_id: str):
    """Queue one onboarding job as the workers make it from the intake (``enqueue_event``)."""
    from connector.queueing import enqueue_event

    return enqueue_event(connection, settings, "onboard", person_id, event_id)


def per_process_rate(run: dict) -> float:
    """Jobs per second of one worker process: jobs / the sum of its processes' work() time."""
    return run["jobs_taken"] / run["process_seconds"] if run["process_seconds"] else 0.0


def steady_rate(run: dict) -> float:
    """The same without each process's start, stop and first job: jobs after the first / the
    time from the end of the first job to the end of the last."""
    return run["steady_jobs"] / run["steady_seconds"] if run["steady_seconds"] else 0.0


# ---------------------------------------------------------------- report
def header(bench: Bench) -> None:
    fs = subprocess.run(["df", "-T", str(bench.folder)], capture_output=True, text=True)
    fs_type = fs.stdout.splitlines()[-1].split()[1] if fs.returncode == 0 else "?"
    print_machine("worker class benchmark", bench, ["SQLAlchemy", "SQLite", "Flask", "aiosmtpd"])
    print(f"temp folder {bench.folder} on {fs_type} (Redis AOF and the SQLite evidence "
          f"database fsync there); CRM_MAX_REQUESTS_PER_SECOND={bench.crm_budget}")
    print()


def report(runs: dict, selected: list[Config]) -> None:
    print()
    print("Runs (rate = per worker process: jobs / its work() time; steady = the same from the "
          "end of its first job to the end of its last; overall = jobs / first start to last "
          "end; CPU ms per job):")
    print(f"{'class':<16} {'job':<10} {'jobs':>5} {'done':>5} {'fail':>4} {'retry':>5} "
          f"{'left':>4} {'procs':>5} {'horses':>6} {'rate/s':>7} {'steady':>6} {'overall':>8} {'wall s':>6} "
          f"{'RQ job ms':>9} {'per job':>7} {'worker':>6} {'servers':>7} {'redis':>5} "
          f"{'mails':>5}")
    for (key, kind), run in runs.items():
        rate = per_process_rate(run)
        overall = run["count"] / run["span"] if run["span"] else 0.0
        print(f"{key:<16} {kind:<10} {run['count']:>5} {run['finished']:>5} {run['failed']:>4} "
              f"{run['scheduled']:>5} {run['left']:>4} {run['processes']:>5} "
              f"{run['horses']:>6} {rate:>7.1f} "
              f"{steady_rate(run):>6.1f} "
              f"{overall:>8.1f} {run['wall']:>6.2f} {run['job_ms_mean']:>9.1f} "
              f"{1000 / rate if rate else float('nan'):>7.1f} "
              f"{1000 * run['worker_cpu'] / run['count']:>6.1f} "
              f"{1000 * run['servers_cpu'] / run['count']:>7.1f} "
              f"{1000 * run['redis_cpu'] / run['count']:>5.1f} {run['mails']:>5}")
        if run["failed"] or run["scheduled"] or run["left"] or run["finished"] != run["count"]:
            print(f"  !! not every job finished: first failure: {run['reason']}")
        if run["horses"] != (run["jobs_taken"] if run["forks"] else 0):
            print(f"  !! {run['horses']} work horses forked for {run['jobs_taken']} jobs: "
                  f"expected {'one per job' if run['forks'] else 'none'}")
    print("  horses: work horses the worker processes forked; RQ job ms: mean ended_at - "
          "started_at of the finished jobs (the job itself, in its horse or in place); per job: "
          "1000 / rate, the job plus the worker's own cost")

    onboardings = [run for (_, kind), run in runs.items() if kind == "onboarding"]
    if onboardings:
        print()
        print("CRM calls per onboarding (from the sandbox's call log, /__sandbox/calls):")
        for run in onboardings:
            parts = ", ".join(f"{kind} {n / run['count']:.2f}"
                              for kind, n in sorted(run["calls"].items()))
            print(f"  {run['config']:<16} {sum(run['calls'].values()) / run['count']:.2f}: "
                  f"{parts}; failed calls {run['calls_failed']}, sign-ins {run['sign_ins']}")

    print()
    print(f"Per worker class (goal: onboardings/s per process >= {GOAL_RATIO:.0%} of RQ's no-op "
          f"rate for the same class):")
    print(f"{'class':<16} {'no-op/s':>8} {'onboard/s':>9} {'ratio':>6} {'goal':>6} "
          f"{'steady ratio':>12} {'overall onboard/s':>17}  description")
    for config in selected:
        noop, onboarding = runs.get((config.key, "noop")), runs.get((config.key, "onboarding"))
        if not noop or not onboarding:
            continue
        noop_rate, onboard_rate = per_process_rate(noop), per_process_rate(onboarding)
        valid = all(run["finished"] == run["count"] and not run["failed"]
                    for run in (noop, onboarding))
        ratio = onboard_rate / noop_rate if noop_rate else 0.0
        verdict = ("meets" if ratio >= GOAL_RATIO else "MISSES") if valid else "INVALID"
        overall = onboarding["count"] / onboarding["span"] if onboarding["span"] else 0.0
        steady = (steady_rate(onboarding) / steady_rate(noop)) if steady_rate(noop) else 0.0
        print(f"{config.key:<16} {noop_rate:>8.1f} {onboard_rate:>9.1f} {ratio:>6.2f} "
              f"{verdict:>6} {steady:>12.2f} {overall:>17.1f}  {config.label}")
    print(f"load average now: {load_average()} "
          f"(other work on the 2 cores lowers every rate; compare within one run)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int,
                        help="jobs per run (no-ops and onboardings); default 300 no-ops and "
                             "200 onboardings")
    parser.add_argument("--only", action="append", choices=["connector", "fork", "pool"],
                        help="measure only this class (repeatable); default all")
    parser.add_argument("--pool-workers", type=int, default=2,
                        help="processes of the worker pool (default 2)")
    parser.add_argument("--crm-budget", type=int, default=100_000,
                        help="CRM_MAX_REQUESTS_PER_SECOND of the workers (default 100000: the "
                             "budget never waits; the connector's default is 10)")
    parser.add_argument("--appendfsync", choices=("always", "everysec"), default="always",
                        help="Redis's AOF fsync policy (always: as the embedded Redis runs, and "
                             "as the figures in bench/README.md were measured; everysec: as README "
                             "asks of a production Redis)")
    parser.add_argument("--profile", metavar="FILE",
                        help="write cProfile stats of the onboarding runs' worker process (not "
                             "the pool's) to FILE; read them with python -m pstats FILE (the "
                             "profiler slows the run: its rates are not figures)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    noops = args.jobs or 300
    onboardings = args.jobs or 200
    choices = configs(args.pool_workers)
    selected = [config for choice in (args.only or list(choices)) for config in choices[choice]]
    folder = Path(tempfile.mkdtemp(prefix="worker-bench-"))
    profile = str(Path(args.profile).resolve()) if args.profile else None
    bench = Bench(folder, args.crm_budget, args.appendfsync, profile)
    runs = {}
    try:
        bench.start()
        header(bench)
        for config in selected:
            for kind, count in (("noop", noops), ("onboarding", onboardings)):
                print(f"{config.key}: {count} {kind} jobs …", flush=True)
                runs[(config.key, kind)] = bench.run(config, kind, count)
        report(runs, selected)
    finally:
        bench.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
