"""Benchmark of a backlog drained within the CRM's quota: N new persons waiting in the intake,
W ``consent-connector worker`` processes, a sandbox CRM that allows Q requests a second (429
with Retry-After over it) — how long the drain takes, how many calls the CRM refuses, and how
much of its quota the connector used. Measured in one run, next to the same drain with the
shared CRM budget effectively off (the anchor).

    .venv/bin/python bench/drain_bench.py                       # 200 persons, 4 workers, 20/s
    .venv/bin/python bench/drain_bench.py --persons 40 --quota 10
    .venv/bin/python bench/drain_bench.py --budget 18 --skip-anchor
    nice -n 10 .venv/bin/python bench/drain_bench.py            # on a shared machine

One drain: Redis emptied; N persons created in the sandbox (with an address,
``person{n}@example.org``, so the confirmation mail goes out as in production) while it has
no quota; one intake entry per person (``Intake.accept(Entry("onboard", …))``, what the
webhook receiver does); then the quota set (``PUT /__sandbox/quota``: a full bucket, its
counts at zero) and W worker processes started (``python -m connector worker``, as
``consent-connector worker``, with CRM_MAX_REQUESTS_PER_SECOND = the budget). The benchmark
then only asks Redis (``rq:job:onboard-<event id>``) until every job has finished — nothing
asks the CRM while the quota is on — stops the workers, and reads the quota's counts
(served, refused) and the sandbox's call log.

The servers (bench/harness.py): the embedded Redis (``appendfsync always``) and the SQLite
evidence database in a temporary folder; the sandbox CRM in a process of its own (``python -m
sandbox``, werkzeug's threaded server, on loopback), so it does not share this process's
interpreter lock; an aiosmtpd sink in this process that counts the mails and keeps nothing.

Two windows, since a worker takes ~2 s to start (imports, sign-in) before its first call:

- the calls window: from the first to the last API call in the CRM's call log;
- from worker start: from starting the workers to the last job's ``ended_at``.

"% of quota used" = calls served / (Q × the window's seconds). Goal (figures, not asserts; see
bench/README.md): at 4 workers, 0 calls answered 429 and >= 90 % of the quota used (in the
calls window).
"""

import argparse
import bisect
import collections
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from datetime import timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (Servers, call_kind, cpu, load_average, start_workers,  # noqa: E402
                           stop_workers, print_machine)

GOAL_SHARE = 0.90
ANCHOR_BUDGET = 100_000  # CRM_MAX_REQUESTS_PER_SECOND of the anchor: the budget never waits
POLL_INTERVAL = 0.1  # seconds between two looks at the jobs in Redis
STOP_TIMEOUT = 15.0  # seconds a worker gets for its warm shutdown before it is killed


# ---------------------------------------------------------------- one drain
def drain(servers: Servers, label: str, persons: int, workers: int, quota: float,
          budget: int, timeout: float) -> dict:
    """Onboard ``persons`` new persons with ``workers`` worker processes against a CRM
    allowing ``quota`` calls a second, the workers' budget ``budget``; measure it."""
    from rq.job import Job

    from connector.intake import Entry, Intake

    servers.redis.flushdb()
    servers.control("PUT", "quota", {"per_second": None})
    tag = uuid.uuid4().hex[:6]
    person_ids = servers.create_persons(persons, f"Drain{tag}", "Person{n}",
                                        "person{n}@example.org")
    data_dir = servers.folder / f"data-{label}"
    data_dir.mkdir()
    env = servers.connector_env(data_dir, budget)
    intake = Intake(servers.redis)
    entries = [Entry("onboard", person_id, str(uuid.uuid4())) for person_id in person_ids]
    for entry in entries:
        if not intake.accept(entry):
            raise RuntimeError(f"the intake took {entry} for a duplicate")
    job_ids = [entry.job_id for entry in entries]
    calls_before = len(servers.control("GET", "calls"))
    mails_before = servers.sink.count

    servers.control("PUT", "quota", {"per_second": quota})
    # From here on only Redis is asked how far the drain is: a call to the CRM would count.
    processes, logs = [], []
    cpu_before = cpu_now(servers)
    started = time.time()
    try:
        processes, logs = start_workers(env, workers, data_dir, "drain")
        deadline = time.monotonic() + timeout
        statuses = job_statuses(servers.redis, job_ids)
        while not all(status in ("finished", "failed") for status in statuses):
            if time.monotonic() > deadline:
                break
            dead = [p for p in processes if p.poll() is not None]
            if dead:
                tail = logs[processes.index(dead[0])].read_text(errors="replace")[-2000:]
                raise RuntimeError(f"a worker exited with {dead[0].returncode}:\n{tail}")
            time.sleep(POLL_INTERVAL)
            statuses = job_statuses(servers.redis, job_ids)
        seen_done = time.time()
    finally:
        stop_workers(processes, STOP_TIMEOUT)
    cpu_after = cpu_now(servers)
    stopped = time.time()
    quota_counts = servers.control("GET", "quota")
    servers.control("PUT", "quota", {"per_second": None})
    calls = servers.control("GET", "calls")[calls_before:]

    counts = collections.Counter(status or "not yet a job" for status in statuses)
    jobs = [job for job in Job.fetch_many(job_ids, connection=servers.redis) if job is not None]
    ended = [job.ended_at.replace(tzinfo=timezone.utc).timestamp()
             for job in jobs if job.get_status(refresh=False) == "finished" and job.ended_at]
    reason = None
    failed = [job for job in jobs if job.get_status(refresh=False) != "finished"]
    if failed:
        latest = failed[0].latest_result()
        reason = failed[0].meta.get("reason") or (
            latest.exc_string.strip().splitlines()[-1] if latest and latest.exc_string else None)
    complete = counts["finished"] == persons
    end = max(ended) if complete and ended else seen_done
    log_text = "".join(path.read_text(errors="replace") for path in logs)
    return {
        "label": label, "persons": persons, "workers": workers, "quota": quota,
        "budget": budget, "started": started, "end": end, "complete": complete,
        "timed_out": not all(status in ("finished", "failed") for status in statuses),
        "statuses": counts, "reason": reason, "calls": calls,
        "served": quota_counts["served"], "refused": quota_counts["refused"],
        "mails": servers.sink.count - mails_before,
        "pauses": sum(1 for line in log_text.splitlines() if "crm.paused" in line),
        "stopped": stopped,
        "cpu": {key: cpu_after[key] - cpu_before[key] for key in cpu_before},
    }


def cpu_now(servers: Servers) -> dict[str, float]:
    """CPU seconds so far of: the worker processes this one has waited for, with their work
    horses (RUSAGE_CHILDREN); the sandbox CRM's process (/proc); redis-server (INFO cpu); this
    process (the SMTP sink, the polling)."""
    return {"workers": cpu(resource.getrusage(resource.RUSAGE_CHILDREN)),
            "crm": servers.sandbox_cpu(),
            "redis": servers.redis_cpu(),
            "bench": cpu(resource.getrusage(resource.RUSAGE_SELF))}


def job_statuses(connection, job_ids: list[str]) -> list[str | None]:
    """Each job's status straight from its RQ hash (None before a worker made the job)."""
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(f"rq:job:{job_id}", "status")
        return [value.decode() if value else None for value in pipe.execute()]


# ---------------------------------------------------------------- figures
def figures(run: dict) -> dict:
    """The derived figures of one drain."""
    calls = run["calls"]
    times = sorted(call["time"] for call in calls)
    served_times = sorted(call["time"] for call in calls if call["status"] != 429)
    span = (times[-1] - times[0]) if len(times) > 1 else float("nan")
    wall = run["end"] - run["started"]
    quota = run["quota"]
    # The busiest second at the CRM: most calls it served in any 1 s, at its own clock (the
    # log's time is when the answer left, a few ms after the quota was taken).
    busiest = max((bisect.bisect_right(served_times, t + 1.0) - i
                   for i, t in enumerate(served_times)), default=0)
    return {
        "wall": wall, "span": span,
        "first_call": (times[0] - run["started"]) if times else float("nan"),
        "rate_wall": run["persons"] / wall if wall > 0 else float("nan"),
        "rate_span": run["persons"] / span if span > 0 else float("nan"),
        "share_span": run["served"] / (quota * span) if span > 0 else float("nan"),
        "share_wall": run["served"] / (quota * wall) if wall > 0 else float("nan"),
        "per_onboarding": run["served"] / run["persons"],
        "logged_429": sum(1 for call in calls if call["status"] == 429),
        "other_errors": sum(1 for call in calls if call["status"] >= 400
                            and call["status"] != 429),
        "kinds": collections.Counter(call_kind(call) for call in calls
                                     if call["status"] != 429),
        "busiest": busiest,
    }


def print_drain(run: dict, fig: dict) -> None:
    s = run["statuses"]
    others = {k: v for k, v in s.items() if k not in ("finished", "failed")}
    print(f"  jobs: {s['finished']} finished, {s['failed']} failed"
          + (f", {', '.join(f'{v} {k}' for k, v in others.items())}" if others else "")
          + f" (of {run['persons']}){' — TIMED OUT' if run['timed_out'] else ''}; "
          f"mails received {run['mails']}")
    if run["reason"]:
        print(f"  !! first job not finished: {run['reason']}")
    end = "last job's ended_at" if run["complete"] else "the last look at the jobs"
    print(f"  wall time (worker start → {end}): {fig['wall']:.2f} s; the first CRM call "
          f"{fig['first_call']:.2f} s after worker start")
    print(f"  calls window (first → last API call in the CRM's log): {fig['span']:.2f} s")
    print(f"  onboardings/s: {fig['rate_wall']:.2f} from worker start, {fig['rate_span']:.2f} "
          f"in the calls window")
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(fig["kinds"].items()))
    print(f"  CRM calls served {run['served']} ({kinds}); answered 429: {run['refused']} "
          f"(in the call log: {fig['logged_429']}); other errors {fig['other_errors']}")
    print(f"  calls per onboarding: {fig['per_onboarding']:.3f} served, "
          f"{(run['served'] + run['refused']) / run['persons']:.3f} made")
    print(f"  % of quota used: {fig['share_span']:.1%} in the calls window "
          f"({run['served']} / ({run['quota']:g}/s × {fig['span']:.2f} s)), "
          f"{fig['share_wall']:.1%} from worker start "
          f"({run['served']} / ({run['quota']:g}/s × {fig['wall']:.2f} s))")
    print(f"  busiest second at the CRM (most calls served in any 1 s of its log): "
          f"{fig['busiest']}; pauses the workers took on a 429 (crm.paused in their logs): "
          f"{run['pauses']}")
    cpu = run["cpu"]
    total = sum(cpu.values())
    seconds = run["stopped"] - run["started"]
    print(f"  CPU seconds from worker start to their exit: workers with their work horses "
          f"{cpu['workers']:.1f} ({1000 * cpu['workers'] / run['persons']:.0f} ms an "
          f"onboarding), CRM {cpu['crm']:.1f}, Redis {cpu['redis']:.1f}, this process (SMTP "
          f"sink, polling) {cpu['bench']:.1f}; {total:.1f} in all = {total / seconds:.2f} "
          f"of {os.cpu_count()} cores busy on average over those {seconds:.1f} s")


def print_429s(run: dict, limit: int = 8) -> None:
    """Where each of the first 429s fell: the calls served just before it at the CRM."""
    calls = sorted(run["calls"], key=lambda call: call["time"])
    if not calls:
        return
    first = calls[0]["time"]
    refused = [i for i, call in enumerate(calls) if call["status"] == 429]
    if not refused:
        return
    quota = run["quota"]
    print(f"  the first {min(limit, len(refused))} of {len(refused)} calls answered 429 "
          f"(times at the CRM, from the first call of the drain):")
    for index in refused[:limit]:
        call = calls[index]
        before = [c["time"] for c in calls[:index] if c["status"] != 429]
        in_second = sum(1 for t in before if t > call["time"] - 1.0)
        nth = (call["time"] - before[-int(quota)]) if len(before) >= quota else float("nan")
        print(f"    +{call['time'] - first:7.3f} s {call_kind(call)}: {in_second} calls served "
              f"in the second before it; the {int(quota)}th served call before it was "
              f"{nth * 1000:.0f} ms earlier")


def header(servers: Servers, args) -> None:
    print_machine("drain benchmark", servers,
                  ["limits", "requests", "Flask", "Werkzeug", "SQLAlchemy", "SQLite", "aiosmtpd"],
                  nice=True)
    print(f"sandbox CRM: python -m sandbox (its own process, werkzeug threaded) at "
          f"{servers.crm_url}; quota {args.quota:g}/s (token bucket, 1 s burst, 429 + "
          f"Retry-After)")
    print(f"{args.persons} persons with an address, {args.workers} `consent-connector worker` "
          f"processes; temp folder {servers.folder}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=200,
                        help="new persons to onboard (default 200)")
    parser.add_argument("--workers", type=int, default=4,
                        help="worker processes (default 4)")
    parser.add_argument("--quota", type=float, default=20.0,
                        help="requests a second the sandbox CRM allows (default 20)")
    parser.add_argument("--budget", type=int,
                        help="the workers' CRM_MAX_REQUESTS_PER_SECOND (default: the quota, "
                             "rounded down)")
    parser.add_argument("--skip-anchor", action="store_true",
                        help="no drain with the budget off")
    parser.add_argument("--timeout", type=float,
                        help="seconds a drain may take before it is stopped (default "
                             "60 + 10 × the calls it needs / the quota)")
    args = parser.parse_args()
    budget = args.budget or max(int(args.quota), 1)
    timeout = args.timeout or 60 + 10 * (2 * args.persons + args.workers) / args.quota

    folder = Path(tempfile.mkdtemp(prefix="drain-bench-"))
    servers = Servers(folder, crm_process=True)
    runs = []
    try:
        servers.start()
        header(servers, args)
        plan = [("budget", budget)] + ([] if args.skip_anchor else [("anchor", ANCHOR_BUDGET)])
        for label, run_budget in plan:
            title = ("the drain" if label == "budget" else
                     "the anchor: the same drain with the budget effectively off")
            print(f"{title}: {args.persons} persons, {args.workers} workers, quota "
                  f"{args.quota:g}/s, CRM_MAX_REQUESTS_PER_SECOND={run_budget}", flush=True)
            run = drain(servers, label, args.persons, args.workers, args.quota, run_budget,
                        timeout)
            fig = figures(run)
            print_drain(run, fig)
            print_429s(run)
            print(flush=True)
            runs.append((run, fig))
        report(runs)
    finally:
        servers.stop()
        shutil.rmtree(folder, ignore_errors=True)


def report(runs: list[tuple[dict, dict]]) -> None:
    print(f"{'drain':<8} {'budget':>7} {'done':>9} {'wall s':>7} {'window s':>8} {'onb/s':>6} "
          f"{'served':>6} {'429':>4} {'calls/onb':>9} {'quota % window':>14} "
          f"{'quota % wall':>12} {'busiest 1 s':>11} {'mails':>5}")
    for run, fig in runs:
        print(f"{run['label']:<8} {run['budget']:>7} "
              f"{run['statuses']['finished']:>4}/{run['persons']:<4} {fig['wall']:>7.2f} "
              f"{fig['span']:>8.2f} {fig['rate_wall']:>6.2f} {run['served']:>6} "
              f"{run['refused']:>4} {fig['per_onboarding']:>9.3f} {fig['share_span']:>14.1%} "
              f"{fig['share_wall']:>12.1%} {fig['busiest']:>11} {run['mails']:>5}")
    run, fig = runs[0]
    valid = run["complete"]
    print()
    print(f"Goal at {run['workers']} workers, quota {run['quota']:g}/s, budget {run['budget']}/s"
          + ("" if valid else " — INVALID: not every onboarding finished") + ":")
    print(f"  0 × 429: {'met' if run['refused'] == 0 else 'MISSED'} ({run['refused']})")
    print(f"  >= {GOAL_SHARE:.0%} of the quota: "
          f"{'met' if fig['share_span'] >= GOAL_SHARE else 'MISSED'} in the calls window "
          f"({fig['share_span']:.1%}); from worker start {fig['share_wall']:.1%} "
          f"({'≥' if fig['share_wall'] >= GOAL_SHARE else '<'} {GOAL_SHARE:.0%}, the workers' "
          f"start-up of {fig['first_call']:.1f} s included)")
    anchors = [(a, f) for a, f in runs[1:] if a["label"] == "anchor" and a["complete"]]
    if anchors:
        anchor, anchor_fig = anchors[0]
        if anchor["refused"] == 0 and anchor_fig["share_span"] < GOAL_SHARE:
            print(f"  the anchor, with no budget to wait for, used {anchor_fig['share_span']:.1%} "
                  f"of the quota and got no 429: the workers themselves do not reach the "
                  f"quota on this machine ({anchor_fig['rate_span']:.2f} onboardings/s = "
                  f"{anchor['served'] / anchor_fig['span']:.1f} calls/s), so the share is set "
                  f"by the workers, not by the budget")
        elif anchor["refused"]:
            print(f"  the anchor, with no budget, got {anchor['refused']} × 429 of "
                  f"{anchor['served'] + anchor['refused']} calls and took "
                  f"{anchor_fig['wall']:.1f} s (the drain {fig['wall']:.1f} s)")
    print(f"load average now: {load_average()} "
          f"(the CRM, Redis, SMTP and the workers share this machine's cores)")


if __name__ == "__main__":
    main()
