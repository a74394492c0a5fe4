"""Benchmark of a backfill at scale: ``consent-connector reconcile --all`` over a CRM of N
persons (a CRM that existed before the connector, or an import), then W ``consent-connector
worker`` processes working it off under the CRM's quota, stopped and started again (a restart)
— how long the listing takes and what it costs the CRM, how much Redis holds per waiting
person, the onboardings a minute and the share of the quota they use, the 429s, what
``consent-connector status`` says (done, left, rate, ETA), and whether the restart lost or
repeated anyone.

    .venv/bin/python bench/backfill_bench.py                    # 50,000 persons, 20/s, 4 workers
    nice -n 15 .venv/bin/python bench/backfill_bench.py --persons 1000 --first 15 --second 10
    .venv/bin/python bench/backfill_bench.py --persons 5000 --keep-going

One run:

1. The servers (bench/harness.py): the embedded Redis, the sandbox CRM in a process of its own
   (``python -m sandbox``), an SMTP sink in this process. N persons created in the sandbox
   through its API (``POST Person``, ``person{n}@example.org``; several threads, since the
   sandbox has no bulk import) while it has no quota.
2. The quota set (``PUT /__sandbox/quota``: Q a second, a full bucket, its counts at zero),
   then ``consent-connector reconcile --all`` run as a subprocess with the connector's
   environment (CRM_MAX_REQUESTS_PER_SECOND = Q): its wall time, its CRM calls (the listing
   pages), Redis's ``used_memory`` before and after (bytes per waiting person), and the
   intake's backfill lane (``connector.intake.waiting``).
3. Phase 1: W workers for T1 seconds, then a SIGTERM to each (warm shutdown: the job in hand
   is finished) — the restart —; ``consent-connector status``; phase 2: W workers again for
   T2 seconds, stopped the same way; ``status`` again. With ``--keep-going``, a third phase
   runs the backfill to its end.

Per phase it also samples, every POLL_INTERVAL, how many jobs wait on RQ's ``backfill`` queue
(the intake promotes at most PROMOTE_AHEAD per lane at a time: the most seen is printed).

While workers run, only Redis and the sandbox's controls are asked (``backfill_progress``,
the evidence file, the quota's counts): no API call of the benchmark's own counts against the
quota. The CRM's call log (``GET /__sandbox/calls``) is fetched once, at the end, and split
by the phases' times; if it cannot be fetched, the quota's counts (served, refused), read
at every phase boundary, are what is left.

The resume check: no person onboarded twice across the restart (``PUT Person/{id}/Consent/
STORE`` per person in the call log; the evidence database's ``onboarded_persons`` against
``backfill_progress``'s done), nothing lost (done + left + failed = queued, and no entry
stranded in a stopped promoter's list). Figures, not asserts; see bench/README.md.
"""

import argparse
import collections
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (TENANT, USER_TOKEN, Servers, call_kind, start_workers,  # noqa: E402
                           stop_workers, load_average, print_machine)

STOP_TIMEOUT = 30.0  # seconds a worker gets for its warm shutdown before its group is killed
POLL_INTERVAL = 0.5  # seconds between two looks at the workers during a phase
CREATE_THREADS = 4  # client threads creating the persons
CALLS_TIMEOUT = 600  # seconds the call log's one fetch may take


# ---------------------------------------------------------------- creating persons
def create_persons(servers: Servers, count: int, threads: int = CREATE_THREADS) -> list[int]:
    """Create ``count`` persons (``Backfill Person{n}``, ``person{n}@example.org``) through the
    tenant's API as a user, from ``threads`` threads with a session each; their ids."""
    import requests

    url = f"{servers.crm_url}/{TENANT}/api/v1/Person"
    headers = {"Authorization": f"Bearer {USER_TOKEN}", "Accept": "application/json"}
    ids: list[int | None] = [None] * count
    errors: list[BaseException] = []

    def create(first: int) -> None:
        with requests.Session() as session:
            for number in range(first, count, threads):
                if errors:
                    return
                try:
                    response = session.post(url, headers=headers, timeout=30, json={
                        "Firstname": "Backfill", "Lastname": f"Person{number}",
                        "Emails": [{"Value": f"person{number}@example.org"}]})
                    response.raise_for_status()
                    ids[number] = response.json()["PersonId"]
                except BaseException as error:  # noqa: BLE001 -- reported by the caller
                    errors.append(error)
                    return

    pool = [threading.Thread(target=create, args=(first,), daemon=True)
            for first in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise RuntimeError(f"creating persons failed: {type(errors[0]).__name__}: {errors[0]}")
    return [person_id for person_id in ids if person_id is not None]


# ---------------------------------------------------------------- snapshots
def onboarded_count(database: Path) -> int:
    """Rows in the evidence database's ``onboarded_persons`` (read-only; 0 before the file
    exists)."""
    if not database.exists():
        return 0
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        return connection.execute("SELECT count(*) FROM onboarded_persons").fetchone()[0]


def stranded_entries(connection) -> int:
    """Entries left in promoters' own lists (taken from a lane, not yet jobs): not counted in
    ``backfill_progress``'s ``remaining``."""
    from connector import keys

    return sum(connection.llen(key)
               for key in connection.scan_iter(match=keys.intake_taken("*", "*")))


def snapshot(servers: Servers, database: Path) -> dict:
    """Where the backfill stands now: ``backfill_progress``, the quota's counts, the evidence
    database's onboarded persons, the mails received; Redis and the sandbox's controls only."""
    from connector.intake import BACKFILL, waiting
    from connector.reconcile import backfill_progress

    quota = servers.control("GET", "quota")
    return {"time": time.time(), "progress": backfill_progress(servers.redis),
            "served": quota["served"], "refused": quota["refused"],
            "onboarded": onboarded_count(database), "mails": servers.sink.count,
            "lane": waiting(servers.redis)[BACKFILL], "stranded": stranded_entries(servers.redis)}


def done(shot: dict) -> int:
    return shot["progress"]["done"] if shot["progress"] else 0


# ---------------------------------------------------------------- commands and workers
def connector_command(env: dict, *args: str, timeout: float | None = None):
    """``python -m connector ARGS`` (as ``consent-connector ARGS``) with the connector's
    environment; its CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "connector", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout)


def run_status(env: dict) -> tuple[list[str], str]:
    """``consent-connector status``: the lines that mention the backfill (verbatim), and its
    whole output."""
    result = connector_command(env, "status", timeout=120)
    output = result.stdout + (f"\n[stderr] {result.stderr.strip()}" if result.stderr.strip()
                              else "") + (f"\n[exit {result.returncode}]"
                                          if result.returncode else "")
    lines = [line for line in result.stdout.splitlines()
             if line.strip().startswith("backfill") or "backfill person" in line]
    return lines, output


def run_phase(servers: Servers, env: dict, label: str, workers: int, seconds: float | None,
              folder: Path, database: Path) -> dict:
    """W workers for ``seconds`` (None: until the backfill has nothing left), then a warm
    shutdown; the snapshots before and after and what the workers' logs say."""
    from connector.reconcile import backfill_progress

    from rq import Queue

    from connector.keys import BACKFILL as BACKFILL_QUEUE

    queue_key = Queue(BACKFILL_QUEUE, connection=servers.redis).key
    before = snapshot(servers, database)
    processes, logs = start_workers(env, workers, folder, label)
    died = None
    most_queued = servers.redis.llen(queue_key)  # jobs waiting on the RQ queue "backfill"
    last_note = time.monotonic()
    try:
        end = None if seconds is None else time.monotonic() + seconds
        while end is None or time.monotonic() < end:
            dead = [p for p in processes if p.poll() is not None]
            if dead:
                tail = logs[processes.index(dead[0])].read_text(errors="replace")[-1500:]
                died = f"a worker exited with {dead[0].returncode} during {label}:\n{tail}"
                break
            most_queued = max(most_queued, servers.redis.llen(queue_key))
            if end is None:
                progress = backfill_progress(servers.redis)
                if progress is None or not progress["remaining"]:
                    break
                if time.monotonic() - last_note >= 60:
                    print(f"    … {progress['done']:,} done, {progress['remaining']:,} left",
                          flush=True)
                    last_note = time.monotonic()
            time.sleep(POLL_INTERVAL)
        term_sent = time.time()
    finally:
        killed = stop_workers(processes, STOP_TIMEOUT)
    after = snapshot(servers, database)
    text = "".join(path.read_text(errors="replace") for path in logs)
    return {"label": label, "before": before, "after": after, "started": before["time"],
            "term_sent": term_sent, "stopped": after["time"], "killed": killed, "died": died,
            "codes": [p.returncode for p in processes], "most_queued": most_queued,
            "pauses": text.count("crm.paused"), "tracebacks": text.count("Traceback"),
            "errors": sum(1 for line in text.splitlines() if '"level": "ERROR"' in line)}


# ---------------------------------------------------------------- the call log
def fetch_calls(servers: Servers) -> tuple[list[dict] | None, str]:
    """The sandbox's whole call log, once; (None, why) when it cannot be fetched."""
    try:
        response = servers.http.get(f"{servers.crm_url}/__sandbox/calls",
                                    timeout=CALLS_TIMEOUT)
        response.raise_for_status()
        return response.json(), f"{len(response.content) / 1e6:.1f} MB"
    except Exception as error:  # noqa: BLE001 -- the quota's counts are used instead
        return None, f"{type(error).__name__}: {error}"


def window(calls: list[dict], start: float, end: float) -> list[dict]:
    return [call for call in calls if start <= call["time"] <= end]


def kinds(calls: list[dict]) -> str:
    counts = collections.Counter(call_kind(call) for call in calls)
    return ", ".join(f"{kind} {n}" for kind, n in counts.most_common())


def span(calls: list[dict]) -> float:
    times = [call["time"] for call in calls]
    return max(times) - min(times) if len(times) > 1 else float("nan")


def person_of(call: dict) -> int | None:
    """The person id of ``…/Person/{id}…``."""
    parts = call["path"].split("/Person/", 1)
    if len(parts) < 2:
        return None
    head = parts[1].split("/", 1)[0]
    return int(head) if head.isdigit() else None


# ---------------------------------------------------------------- report
def minutes(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def print_phase(phase: dict, quota: float, calls: list[dict] | None) -> dict:
    """One phase's lines; its figures."""
    from connector.defaults import PROMOTE_AHEAD

    before, after = phase["before"], phase["after"]
    seconds = phase["stopped"] - phase["started"]
    finished = done(after) - done(before)
    onboarded = after["onboarded"] - before["onboarded"]
    served = after["served"] - before["served"]
    refused = after["refused"] - before["refused"]
    fig = {"seconds": seconds, "done": finished, "onboarded": onboarded, "served": served,
           "refused": refused, "rate": finished / seconds * 60 if seconds > 0 else float("nan"),
           "share": served / (quota * seconds) if seconds > 0 else float("nan")}
    killed = (f", {phase['killed']} KILLED after {STOP_TIMEOUT:.0f} s of warm shutdown"
              if phase["killed"] else "")
    print(f"  {phase['label']}: workers started → all exited {seconds:.1f} s (SIGTERM at "
          f"{phase['term_sent'] - phase['started']:.1f} s; exit codes {phase['codes']}{killed})")
    if phase["died"]:
        print(f"  !! {phase['died']}")
    print(f"    onboarded: {finished:,} (backfill_progress done {done(before):,} → "
          f"{done(after):,}); evidence database onboarded_persons +{onboarded:,} "
          f"({before['onboarded']:,} → {after['onboarded']:,}); mails {after['mails'] - before['mails']:,}")
    print(f"    rate: {fig['rate']:,.1f}/min over the phase ({finished / seconds:.2f}/s)")
    print(f"    CRM: {served:,} calls served, {refused} answered 429 (quota counts); "
          f"% of quota used {fig['share']:.1%} = {served:,} / ({quota:g}/s × {seconds:.1f} s)")
    if calls is not None:
        inside = window(calls, phase["started"], phase["stopped"])
        api = [call for call in inside if call["status"] != 429]
        fig["window"] = span(api)
        print(f"    call log: {len(inside):,} calls ({kinds(inside) or 'none'}); "
              f"first → last call {fig['window']:.1f} s"
              + (f", % of quota in that window {len(api) / (quota * fig['window']):.1%}"
                 if fig["window"] > 0 else ""))
    print(f"    workers' logs: {phase['pauses']} crm.paused, {phase['errors']} ERROR lines, "
          f"{phase['tracebacks']} tracebacks; left after the stop: lane {after['lane']:,}, "
          f"stranded in promoters' lists {after['stranded']}")
    print(f"    most jobs waiting on RQ's backfill queue at once (every {POLL_INTERVAL:g} s): "
          f"{phase['most_queued']} (PROMOTE_AHEAD {PROMOTE_AHEAD})"
          + ("  <-- over PROMOTE_AHEAD" if phase["most_queued"] > PROMOTE_AHEAD else ""))
    return fig


def report(args, created: dict, listing: dict, phases: list[dict],
           statuses: list[tuple[str, list[str], str]], calls: list[dict] | None,
           calls_note: str) -> None:
    quota = args.quota
    print()
    print("== the listing: consent-connector reconcile --all ==")
    print(f"  {listing['seconds']:.1f} s wall (the subprocess: start-up, sign-in, listing, "
          f"queueing), exit {listing['code']}")
    for line in listing["stdout"].splitlines():
        print(f"    | {line}")
    if listing["stderr"].strip():
        print(f"    stderr: {listing['stderr'].strip()[-1500:]}")
    print(f"  CRM: {listing['served']:,} calls served, {listing['refused']} answered 429 "
          f"(quota counts)")
    if calls is not None:
        inside = window(calls, listing["started"], listing["ended"])
        pages = [call for call in inside if call_kind(call) == "GET Person"]
        print(f"  call log: {len(inside)} calls ({kinds(inside)}); {len(pages)} listing pages "
              f"in {span(pages):.1f} s (first → last page)")
    queued = listing["progress"]["queued"] if listing["progress"] else 0
    print(f"  queued {queued:,} of {args.persons:,}; backfill lane {listing['lane']:,} entries")
    delta = listing["memory_after"] - listing["memory_before"]
    print(f"  Redis used_memory {listing['memory_before'] / 1e6:.2f} → "
          f"{listing['memory_after'] / 1e6:.2f} MB: +{delta / 1e6:.2f} MB = "
          f"{delta / max(listing['lane'], 1):.0f} bytes per waiting person (the lane entry and "
          f"its event id remembered for the dedupe window)")
    print(f"    of which the lane itself (MEMORY USAGE): {listing['lane_bytes'] / 1e6:.2f} MB = "
          f"{listing['lane_bytes'] / max(listing['lane'], 1):.0f} bytes per entry; one dedupe "
          f"key: {listing['seen_bytes']} bytes")

    print()
    print("== the workers: phase 1, restart, phase 2 ==")
    figs = []
    for index, phase in enumerate(phases):
        figs.append(print_phase(phase, quota, calls))
        if index < len(statuses):
            label, lines, output = statuses[index]
            print(f"  consent-connector status {label} (its backfill lines, verbatim):")
            for line in lines or ["(no line mentions the backfill)"]:
                print(f"    | {line}")
            if "[exit" in output or "[stderr]" in output:
                print(f"    !! status: {output.strip()[-800:]}")

    print()
    print("== summary ==")
    total_done = sum(f["done"] for f in figs)
    total_seconds = sum(f["seconds"] for f in figs)
    total_served = sum(f["served"] for f in figs)
    total_refused = listing["refused"] + sum(f["refused"] for f in figs)
    print(f"N {args.persons:,} persons (created in {created['seconds']:.1f} s, "
          f"{args.persons / created['seconds']:.0f}/s, {CREATE_THREADS} threads, no quota); "
          f"quota Q {quota:g}/s; W {args.workers} workers; T1 {args.first:g} s, T2 "
          f"{args.second:g} s{'; then to the end (--keep-going)' if args.keep_going else ''}")
    print(f"listing: {listing['seconds']:.1f} s, {listing['served']} CRM calls")
    print(f"Redis per waiting person: {(listing['memory_after'] - listing['memory_before']) / max(listing['lane'], 1):.0f} bytes "
          f"(used_memory), {listing['lane_bytes'] / max(listing['lane'], 1):.0f} in the lane")
    print(f"{'phase':<12} {'seconds':>8} {'done':>7} {'/min':>8} {'served':>7} {'429':>4} "
          f"{'quota %':>8}")
    for phase, fig in zip(phases, figs):
        print(f"{phase['label']:<12} {fig['seconds']:>8.1f} {fig['done']:>7,} {fig['rate']:>8.1f} "
              f"{fig['served']:>7,} {fig['refused']:>4} {fig['share']:>8.1%}")
    rate = total_done / total_seconds if total_seconds else 0.0
    per_person = total_served / total_done if total_done else float("nan")
    print(f"429s answered by the CRM: {total_refused} in the listing and the phases"
          f"{'' if total_refused == 0 else '  <-- NOT 0'}; the quota's count since it was set "
          f"(status runs included): {phases[-1]['after']['refused']}")
    print(f"CRM calls per onboarding (served in the phases / done): {per_person:.3f}")
    windows = [f["window"] for f in figs if f.get("window", 0) > 0]
    if len(windows) == len(figs):
        print(f"onboardings in the calls windows (first → last CRM call of each phase, the "
              f"workers' start-up left out): {total_done / sum(windows) * 60:,.1f}/min")
    if rate:
        at_rate = args.persons / rate
        print(f"projection for N = {args.persons:,}: at the measured rate ({rate * 60:,.1f}/min "
              f"over {total_seconds:.0f} s of workers) {minutes(at_rate)} + the listing "
              f"{minutes(listing['seconds'])}")
    if per_person == per_person:
        ceiling = args.persons * per_person / quota
        print(f"  at the quota's ceiling (N × {per_person:.2f} calls / {quota:g}/s): "
              f"{minutes(ceiling)} + the listing; the workers reach "
              f"{(total_served / total_seconds) / quota:.0%} of that ceiling here")

    # The resume check.
    print()
    print("== resume check (across the restart) ==")
    last = phases[-1]["after"]
    progress = last["progress"] or {"queued": 0, "done": 0, "remaining": 0, "failed": 0}
    balance = progress["done"] + progress["remaining"] + progress["failed"]
    print(f"  nothing lost: done {progress['done']:,} + left {progress['remaining']:,} + failed "
          f"{progress['failed']:,} = {balance:,} vs queued {progress['queued']:,}: "
          f"{'OK' if balance == progress['queued'] else 'MISMATCH'}; entries stranded in "
          f"stopped promoters' lists: {last['stranded']}")
    print(f"  evidence database onboarded_persons {last['onboarded']:,} vs backfill_progress "
          f"done {progress['done']:,}: "
          f"{'OK' if last['onboarded'] == progress['done'] else 'DIFFERENT'}")
    if calls is None:
        print(f"  call log not fetched ({calls_note}): no per-person count of consent writes")
        return
    work = [call for phase in phases
            for call in window(calls, phase["started"], phase["stopped"])]
    stores = collections.Counter(person_of(call) for call in work
                                 if call["method"] == "PUT" and call["status"] < 400
                                 and call["path"].endswith("/Consent/STORE"))
    reads = collections.Counter(person_of(call) for call in work
                                if call["method"] == "GET" and call["status"] < 400
                                and call_kind(call) == "GET Person/{id}")
    twice = {person: n for person, n in stores.items() if n > 1}
    read_twice = {person: n for person, n in reads.items() if n > 1}
    print(f"  call log ({calls_note}, {len(calls):,} calls in all): PUT Person/{{id}}/Consent/"
          f"STORE for {len(stores):,} persons, {sum(stores.values()):,} PUTs; persons written "
          f"more than once: {len(twice)}" + (f" (e.g. {sorted(twice.items())[:5]})" if twice
                                             else " — none onboarded twice"))
    print(f"  GET Person/{{id}} for {len(reads):,} persons; read more than once: "
          f"{len(read_twice)}" + (f" (e.g. {sorted(read_twice.items())[:5]})" if read_twice
                                  else ""))
    written = [{person_of(call) for call in window(calls, phase["started"], phase["stopped"])
                if call["method"] == "PUT" and call["path"].endswith("/Consent/STORE")}
               for phase in phases]
    for index in range(len(phases) - 1):
        print(f"  restart {index + 1}: persons written in both {phases[index]['label']} and "
              f"{phases[index + 1]['label']}: {len(written[index] & written[index + 1])}")
    print(f"  persons written (call log) {len(stores):,} vs done in the phases {total_done:,} "
          f"vs onboarded_persons {last['onboarded']:,}")


# ---------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=50_000,
                        help="persons in the CRM (default 50,000)")
    parser.add_argument("--quota", type=float, default=20.0,
                        help="requests a second the sandbox CRM allows; also the connector's "
                             "CRM_MAX_REQUESTS_PER_SECOND (default 20)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    parser.add_argument("--first", type=float, default=60.0,
                        help="seconds of phase 1, before the restart (default 60)")
    parser.add_argument("--second", type=float, default=30.0,
                        help="seconds of phase 2, after the restart (default 30)")
    parser.add_argument("--keep-going", action="store_true",
                        help="after phase 2, run the workers until the backfill is done")
    args = parser.parse_args()
    budget = max(int(args.quota), 1)

    folder = Path(tempfile.mkdtemp(prefix="bf-bench-"))
    servers = Servers(folder, crm_process=True)
    try:
        servers.start()
        servers.redis.flushdb()
        print_machine("backfill benchmark", servers,
                      ["limits", "requests", "Flask", "Werkzeug", "SQLAlchemy", "SQLite",
                       "aiosmtpd"], nice=True)
        print(f"sandbox CRM: python -m sandbox (its own process) at {servers.crm_url}; "
              f"temp folder {folder}")
        print(f"N {args.persons:,} persons, quota {args.quota:g}/s "
              f"(CRM_MAX_REQUESTS_PER_SECOND={budget}), {args.workers} workers, phases "
              f"{args.first:g} s + {args.second:g} s"
              f"{' + to the end' if args.keep_going else ''}")
        print(flush=True)
        run(args, servers, folder, budget)
    finally:
        servers.stop()
        shutil.rmtree(folder, ignore_errors=True)


def run(args, servers: Servers, folder: Path, budget: int) -> None:
    from connector import keys
    from connector.intake import BACKFILL, waiting
    from connector.reconcile import backfill_progress

    data_dir = folder / "data"
    data_dir.mkdir()
    database = data_dir / "consent.db"
    env = servers.connector_env(data_dir, budget)

    # 1. The CRM's persons, before any quota.
    servers.control("PUT", "quota", {"per_second": None})
    print(f"creating {args.persons:,} persons ({CREATE_THREADS} threads) …", flush=True)
    started = time.monotonic()
    ids = create_persons(servers, args.persons)
    created = {"seconds": time.monotonic() - started, "count": len(ids)}
    print(f"  {len(ids):,} created in {created['seconds']:.1f} s", flush=True)

    # 2. The quota, then the listing.
    servers.control("PUT", "quota", {"per_second": args.quota})
    memory_before = servers.redis.info("memory")["used_memory"]
    quota_before = servers.control("GET", "quota")
    print("consent-connector reconcile --all …", flush=True)
    listing_started = time.time()
    result = connector_command(env, "reconcile", "--all")
    listing_ended = time.time()
    quota_after = servers.control("GET", "quota")
    memory_after = servers.redis.info("memory")["used_memory"]
    lane = waiting(servers.redis)[BACKFILL]
    sample = ids[0] if ids else 0
    listing = {
        "seconds": listing_ended - listing_started, "started": listing_started,
        "ended": listing_ended, "code": result.returncode, "stdout": result.stdout,
        "stderr": result.stderr, "served": quota_after["served"] - quota_before["served"],
        "refused": quota_after["refused"] - quota_before["refused"],
        "memory_before": memory_before, "memory_after": memory_after, "lane": lane,
        "lane_bytes": servers.redis.memory_usage(keys.intake_lane(BACKFILL), samples=0) or 0,
        "seen_bytes": servers.redis.memory_usage(keys.event_seen(f"reconcile-{sample}")),
        "progress": backfill_progress(servers.redis),
    }
    print(f"  {listing['seconds']:.1f} s, exit {result.returncode}, lane {lane:,}", flush=True)
    if result.returncode:
        print(result.stdout + result.stderr)
        raise SystemExit("reconcile --all failed: nothing to measure")

    # 3. Phase 1, the restart, phase 2 (and the rest).
    plan = [("phase 1", args.first), ("phase 2", args.second)]
    if args.keep_going:
        plan.append(("to the end", None))
    phases, statuses = [], []
    for label, seconds in plan:
        print(f"{label}: {args.workers} workers"
              + (f" for {seconds:g} s" if seconds is not None else " until the backfill is done")
              + " …", flush=True)
        phase = run_phase(servers, env, label, args.workers, seconds, folder, database)
        phases.append(phase)
        print(f"  {done(phase['after']) - done(phase['before']):,} onboarded; "
              f"status …", flush=True)
        lines, output = run_status(env)
        statuses.append((f"after {label}", lines, output))
        if phase["died"]:
            print(f"  !! {phase['died']}")
            break

    print("fetching the CRM's call log …", flush=True)
    calls, note = fetch_calls(servers)
    report(args, created, listing, phases, statuses, calls, note)
    print(f"load average now: {load_average()} (the CRM, Redis, SMTP and the workers share "
          f"this machine's cores)")


if __name__ == "__main__":
    main()
