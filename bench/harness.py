"""What the benchmarks that run the connector's workers share (bench/worker_bench.py and
bench/drain_bench.py): the servers — the embedded Redis, the sandbox CRM and an SMTP sink —,
the sandbox's controls, the workers' environment, and the machine and version lines of their
reports.

``Servers(folder, crm_process=…)`` starts, in a temporary folder the caller owns:

- the embedded Redis (``connector.redis_connection.ensure_embedded_server``; ``appendfsync
  always`` as it runs, or ``Servers(…, appendfsync="everysec")`` as README asks of a
  production Redis), emptied by each benchmark as it needs;
- the sandbox CRM, either served from a thread of this process (``create_sandbox_app`` +
  ``run_in_thread``: quick to start, but it shares this process's interpreter lock) or in a
  process of its own (``python -m sandbox``: what a CRM under load needs);
- an aiosmtpd sink on loopback that accepts every mail, counts it and keeps nothing.

``stop()`` stops them in reverse order. Every import of a project or third-party module is
made where it is used, so that importing this module (as the benchmarks' child processes do)
costs nothing.
"""

import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TENANT = "Cust12345"
CONNECTOR_ASSOCIATE, USER_TOKEN, USER_ASSOCIATE = 9, "bench-user-token", 7
SYSTEM_USER_TOKEN = "consent-connector-Bench01"
CLIENT_SECRET = "bench-client-secret"


class DiscardingSink:
    """aiosmtpd handler: accept every message, count it, keep nothing."""

    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
        return "250 OK"


class Servers:
    """Redis, the sandbox CRM and the SMTP sink of one benchmark run.

    Args:
        folder: a temporary folder for Redis's files and the sandbox's keys.
        crm_process: True: the sandbox CRM in a process of its own (``python -m sandbox``);
            False: served from a thread of this process.

    After ``start()``: ``redis_url``, ``redis`` (a client), ``crm_url`` (the sandbox's root),
    ``crm_settings`` (the SUPEROFFICE_* settings that make the connector sign in to it as its
    system user), ``http`` (a requests session), ``sink`` (its ``count`` of mails received)
    and ``smtp_port``; with ``crm_process``, ``sandbox`` (the Popen) and ``sandbox_log``.
    """

    def __init__(self, folder: Path, crm_process: bool, appendfsync: str = "always"):
        self.folder = folder
        self.crm_process = crm_process
        self.appendfsync = appendfsync
        self.stack = []  # what to stop, in reverse order

    def start(self) -> None:
        """Start Redis, the sandbox CRM and the SMTP sink."""
        import redis
        import requests
        from aiosmtpd.controller import Controller

        from connector.redis_connection import ensure_embedded_server, stop_embedded_server

        redis_dir = self.folder / "redis"
        self.redis_url = ensure_embedded_server(redis_dir)
        self.stack.append(lambda: stop_embedded_server(redis_dir))
        self.redis = redis.Redis.from_url(self.redis_url)
        self.redis.config_set("appendfsync", self.appendfsync)

        if self.crm_process:
            self.start_sandbox_process()
        else:
            self.start_sandbox_thread()
        self.http = requests.Session()
        self.stack.append(self.http.close)

        self.sink = DiscardingSink()
        smtp = Controller(self.sink, hostname="127.0.0.1", port=free_port())
        smtp.start()
        self.stack.append(smtp.stop)
        self.smtp_port = smtp.port

    def start_sandbox_thread(self) -> None:
        """The sandbox CRM served from a thread of this process, on a free port."""
        import logging

        from sandbox.server import (connector_settings, create_sandbox_app, run_in_thread,
                                    stop_server)

        app = create_sandbox_app(TENANT, {USER_TOKEN: USER_ASSOCIATE},
                                 associates={CONNECTOR_ASSOCIATE: "consent-connector",
                                             USER_ASSOCIATE: "Sally Sales"},
                                 data_dir=self.folder / "sandbox-data",
                                 system_users={SYSTEM_USER_TOKEN: CONNECTOR_ASSOCIATE},
                                 client_secret=CLIENT_SECRET)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        server, self.crm_url = run_in_thread(app)
        self.stack.append(lambda: stop_server(server))
        self.crm_settings = connector_settings(app, self.crm_url)

    def start_sandbox_process(self) -> None:
        """``python -m sandbox`` on a free port, in its own process group; its settings for
        the connector are read from what it prints when it listens."""
        port = free_port()
        out = self.folder / "sandbox.out"
        self.sandbox_log = self.folder / "sandbox.log"  # werkzeug's line per request
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("SANDBOX_")}
        env["PYTHONPATH"] = str(ROOT)
        with open(out, "w") as stdout, open(self.sandbox_log, "w") as stderr:
            self.sandbox = subprocess.Popen(
                [sys.executable, "-m", "sandbox", "--port", str(port), "--tenant", TENANT,
                 "--data-dir", str(self.folder / "sandbox-data"),
                 "--token", f"{USER_TOKEN}={USER_ASSOCIATE}",
                 "--system-user", f"{SYSTEM_USER_TOKEN}={CONNECTOR_ASSOCIATE}",
                 "--client-secret", CLIENT_SECRET],
                cwd=ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
        self.stack.append(self.stop_sandbox_process)
        deadline = time.monotonic() + 30
        settings = {}
        while "SUPEROFFICE_TOKEN_CERTIFICATE_FILE" not in settings:
            if self.sandbox.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the sandbox CRM did not start:\n"
                                   + self.sandbox_log.read_text(errors="replace")[-2000:])
            time.sleep(0.05)
            settings = dict(line.split("=", 1) for line in out.read_text().splitlines()
                            if "=" in line and line.split("=", 1)[0].isupper())
        self.crm_settings = settings
        self.crm_url = settings["SUPEROFFICE_LOGIN_URL"]

    def stop_sandbox_process(self) -> None:
        """SIGTERM to the sandbox's process; a kill of its group if it is not gone in 10 s."""
        if self.sandbox.poll() is None:
            self.sandbox.terminate()
            try:
                self.sandbox.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.sandbox.pid, signal.SIGKILL)
                self.sandbox.wait()

    def stop(self) -> None:
        """Stop what ``start`` started, in reverse order, each even if another fails."""
        while self.stack:
            try:
                self.stack.pop()()
            except Exception as error:  # noqa: BLE001 -- stop the rest anyway
                print(f"(stopping: {type(error).__name__}: {error})", file=sys.stderr)

    def connector_env(self, data_dir: Path, budget: int) -> dict[str, str]:
        """The environment of the connector's worker processes: these servers, the evidence
        database as the embedded SQLite file in ``data_dir`` (no DATABASE_URL), no scheduled
        reconciliation, and ``budget`` as CRM_MAX_REQUESTS_PER_SECOND (the shared CRM request
        budget, connector.crm.budget, that paces every CRM call)."""
        return {
            "REDIS_URL": self.redis_url,
            **self.crm_settings,
            "SUPEROFFICE_WEBHOOK_SECRET": "bench-webhook-secret",
            "SUPEROFFICE_ASSOCIATE_ID": str(CONNECTOR_ASSOCIATE),
            "SMTP_URL": f"smtp://127.0.0.1:{self.smtp_port}",
            "MAIL_FROM": "privacy@example.com",
            "PUBLIC_BASE_URL": "https://consent.example.com",
            "SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "CONSENT_CONFIG": str(ROOT / "config" / "purposes.yaml"),
            "DATA_DIR": str(data_dir),
            "RECONCILE_INTERVAL": "0",
            "CRM_MAX_REQUESTS_PER_SECOND": str(budget),
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
        }

    # ------------------------------------------------------------ sandbox controls
    def control(self, method: str, path: str, body=None):
        """A sandbox control (``/__sandbox/…``: not the tenant's API, never under the quota),
        its JSON answer; e.g. ``control("GET", "calls")``, ``control("PUT", "quota", {…})``."""
        response = self.http.request(method, f"{self.crm_url}/__sandbox/{path}", json=body,
                                     timeout=30)
        response.raise_for_status()
        return response.json()

    def create_persons(self, count: int, firstname: str, lastname: str,
                       email: str) -> list[int]:
        """Create ``count`` persons through the tenant's API as a user; their ids.
        ``firstname``, ``lastname`` and ``email`` are format strings of ``n``, the person's
        number from 0 (e.g. ``"person{n}@example.org"``)."""
        ids = []
        for number in range(count):
            response = self.http.post(
                f"{self.crm_url}/{TENANT}/api/v1/Person", timeout=10,
                headers={"Authorization": f"Bearer {USER_TOKEN}", "Accept": "application/json"},
                json={"Firstname": firstname.format(n=number),
                      "Lastname": lastname.format(n=number),
                      "Emails": [{"Value": email.format(n=number)}]})
            response.raise_for_status()
            ids.append(response.json()["PersonId"])
        return ids

    # ------------------------------------------------------------ CPU
    def redis_cpu(self) -> float:
        """CPU seconds redis-server has used so far (``INFO cpu``, user + system)."""
        info = self.redis.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def sandbox_cpu(self) -> float:
        """CPU seconds the sandbox CRM's own process has used so far (/proc; only with
        ``crm_process``)."""
        fields = Path(f"/proc/{self.sandbox.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu(usage) -> float:
    """User + system CPU seconds of a ``resource.getrusage`` result."""
    return usage.ru_utime + usage.ru_stime


def call_kind(call: dict) -> str:
    """``GET Person/{id}/Consent`` from a logged call (the tenant prefix and ids dropped)."""
    path = re.sub(r"/\d+", "/{id}", re.sub(r"^.*?/api/v1/", "", call["path"]))
    return f"{call['method']} {path}"


# ---------------------------------------------------------------- report
def load_average() -> str:
    """The load average (1, 5, 15 minutes), as ``"0.52, 0.61, 0.70"``."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" if it has none)."""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def print_machine(title: str, servers: Servers, packages: list[str],
                  nice: bool = False) -> None:
    """The first lines of a benchmark's report: ``title`` with the date and host; the CPU,
    its cores and the load average (and this process's nice value with ``nice``); Python,
    RQ, redis-py, the redis-server of ``servers``, and the versions of ``packages``
    (distribution names as printed, e.g. "Flask"; "SQLite" is the sqlite3 library's)."""
    from importlib.metadata import version

    import redis
    import rq
    import sqlite3

    print(f"{title} — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; load average {load_average()}"
          + (f"; nice {os.nice(0)}" if nice else ""))
    versions = [f"{name} {sqlite3.sqlite_version if name == 'SQLite' else version(name)}"
                for name in packages]
    print(f"Python {platform.python_version()}, RQ {rq.__version__}, redis-py "
          f"{redis.__version__}, redis-server {servers.redis.info('server')['redis_version']} "
          f"(embedded, appendfsync {servers.redis.config_get('appendfsync')['appendfsync']}), "
          + ", ".join(versions))


def start_workers(env: dict, count: int, folder: Path, label: str):
    """``count`` ``consent-connector worker`` processes, each in its own process group, their
    logs in ``folder``; (processes, log paths)."""
    processes, logs = [], []
    for number in range(count):
        log_path = folder / f"worker-{label}-{number}.log"
        logs.append(log_path)
        with open(log_path, "w") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "connector", "worker"], cwd=ROOT,
                env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))
    return processes, logs


def stop_workers(processes: list[subprocess.Popen], timeout: float) -> int:
    """Warm shutdown (SIGTERM) of every worker at once; a kill of the group of any that is not
    gone in ``timeout`` seconds. Returns how many had to be killed."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    killed = 0
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            killed += 1
    return killed
