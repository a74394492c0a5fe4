"""A throwaway PostgreSQL server for the tests: a fresh cluster in a folder of their own, on
a free loopback port, tuned for speed over durability (it is deleted after the session).

It uses Debian's PostgreSQL binaries (``apt-get install postgresql``), which live in
/usr/lib/postgresql/<major>/bin and are not on PATH. initdb and postgres refuse to run as
root: as root (the tests and CI are), they run as Debian's ``postgres`` system user.
"""

import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

SERVER_USER = "postgres"  # the unprivileged system user Debian's postgresql package creates
DATABASE_USER = "connector"
DATABASE = "connector"
INSTALL_HINT = "install PostgreSQL's server binaries: apt-get install postgresql"
COMMAND_TIMEOUT = 120  # seconds, for each initdb / pg_ctl / createdb run
LOG_TAIL_LINES = 30

# Settings for a throwaway cluster: nothing survives a crash, so nothing needs to be synced.
SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",  # many worker processes, each with a pool of its own
}


def find_postgres_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed.

    ``pg_config --bindir`` when it names a folder with initdb in it, else the highest
    /usr/lib/postgresql/<major>/bin (Debian's place, not on PATH), else initdb's folder on PATH.
    """
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT)
        # libpq-dev's pg_config answers /usr/bin, which has no initdb: look further then.
        if result.returncode == 0 and (Path(result.stdout.strip()) / "initdb").is_file():
            return Path(result.stdout.strip())
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version)
    if installed:
        return installed[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    return None


def start_postgres(folder: Path) -> str:
    """Make a fresh cluster in ``folder``, start it and create the database; return its URL.

    The server listens on 127.0.0.1 only, on a free port, with its unix socket in ``folder``;
    local connections are trusted (no password). The URL has the form
    ``postgresql+psycopg://connector@127.0.0.1:<port>/connector``. Raises RuntimeError, saying
    what to do, when PostgreSQL is not installed or the server does not start.
    """
    bin_dir = _bin_dir()
    folder = folder.resolve()
    data_dir = folder / "data"
    if os.geteuid() == 0:
        _hand_folder_to_server_user(folder)
    _run(bin_dir, folder, "initdb", "--pgdata", str(data_dir), "--username", DATABASE_USER,
         "--auth", "trust", "--encoding", "UTF8", "--no-locale", "--no-sync")
    port = _free_port()
    _write_settings(data_dir, folder, port)
    try:
        _run(bin_dir, folder, "pg_ctl", "start", "--pgdata", str(data_dir),
             "--log", str(folder / "postgres.log"), "--wait")
        _run(bin_dir, folder, "createdb", "--host", str(folder), "--port", str(port),
             "--username", DATABASE_USER, DATABASE)
    except RuntimeError as error:
        stop_postgres(folder)
        raise RuntimeError(f"{error}\nserver log ({folder / 'postgres.log'}), last lines:\n"
                           f"{_log_tail(folder)}") from None
    return f"postgresql+psycopg://{DATABASE_USER}@127.0.0.1:{port}/{DATABASE}"


def stop_postgres(folder: Path) -> None:
    """Stop the server started by start_postgres in ``folder`` at once (no checkpoint: its data
    is thrown away). Does nothing, and never raises, if it is not running."""
    bin_dir = find_postgres_bin()
    data_dir = folder.resolve() / "data"
    if bin_dir is None or not (data_dir / "postmaster.pid").exists():
        return
    subprocess.run(_command(bin_dir, "pg_ctl", "stop", "--pgdata", str(data_dir),
                            "--mode", "immediate", "--wait"),
                   cwd=folder, capture_output=True, timeout=COMMAND_TIMEOUT)


def _version(initdb: Path) -> tuple[int, ...]:
    """(15,) for /usr/lib/postgresql/15/bin/initdb, (9, 6) for .../9.6/bin/initdb."""
    return tuple(int(part) for part in initdb.parent.parent.name.split(".") if part.isdigit())


def _bin_dir() -> Path:
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) found in "
                           f"/usr/lib/postgresql/*/bin or on PATH: {INSTALL_HINT}")
    return bin_dir


def _command(bin_dir: Path, program: str, *args: str) -> list[str]:
    """The command line running ``program``; as root, as the server user (runuser)."""
    command = [str(bin_dir / program), *args]
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVER_USER, "--", *command]
    return command


def _run(bin_dir: Path, folder: Path, program: str, *args: str) -> None:
    command = _command(bin_dir, program, *args)
    # cwd: a folder the server user can enter (root's own working folder may not be one).
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True,
                            timeout=COMMAND_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"{program} failed (exit status {result.returncode}): "
                           f"{' '.join(command)}\n{result.stdout}{result.stderr}")


def _hand_folder_to_server_user(folder: Path) -> None:
    """Running as root: give ``folder`` to the server user, and check that user can reach it."""
    try:
        user = pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise RuntimeError(f"running as root, and PostgreSQL refuses to: its programs run as the "
                           f"'{SERVER_USER}' system user, which does not exist; "
                           f"{INSTALL_HINT}") from None
    os.chown(folder, user.pw_uid, user.pw_gid)
    folder.chmod(0o700)
    reachable = subprocess.run(["runuser", "-u", SERVER_USER, "--", "test", "-w", str(folder)],
                               timeout=COMMAND_TIMEOUT)
    if reachable.returncode != 0:
        raise RuntimeError(f"the '{SERVER_USER}' user cannot reach {folder}: a parent folder is "
                           "not traversable by other users (o+x); use a folder under /tmp")


def _free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_settings(data_dir: Path, folder: Path, port: int) -> None:
    """Append the test settings to the cluster's postgresql.conf (later lines win)."""
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": "'" + str(folder).replace("'", "''") + "'",
        **SETTINGS,
    }
    lines = "".join(f"{name} = {value}\n" for name, value in settings.items())
    with open(data_dir / "postgresql.conf", "a") as conf:
        conf.write("\n# tests/postgres_server.py: a throwaway test cluster\n" + lines)


def _log_tail(folder: Path) -> str:
    try:
        lines = (folder / "postgres.log").read_text(errors="replace").splitlines()
    except OSError:
        return "(no log written)"
    return "\n".join(lines[-LOG_TAIL_LINES:])
