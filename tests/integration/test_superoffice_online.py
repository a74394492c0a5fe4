"""The connector against the sandbox's SuperOffice Online flows, with real worker processes:
system user tickets that lapse, a tenant that moves, a system user token that is revoked.

Each test runs a sandbox of its own (its ticket lifetime differs) and workers on a Redis
database of their own; the connector signs in exactly as it would to SuperOffice Online.
"""

import subprocess
import sys
import threading
from contextlib import contextmanager

import pytest
from rq.job import Job
from rq.registry import FailedJobRegistry
from werkzeug.serving import make_server

from connector.keys import ONBOARDING
from connector.queueing import enqueue_event
from connector.settings import Settings
from connector.support.jobs import workers_alive
from connector.web.app import create_app
from sandbox.server import connector_settings, create_sandbox_app, run_in_thread, stop_server
from tests.conftest import (CONNECTOR_ASSOCIATE, ROOT, TENANT, USER_ASSOCIATE, USER_TOKEN,
                            SandboxClient, free_port, new_event_id, own_database,
                            start_worker, stop_worker, wait_for)

SYSTEM_USER_TOKEN = "consent-connector-Ab12Cd34"


@pytest.fixture
def online(tmp_path_factory):
    """Start a sandbox with a system user; returns ``start(**options) -> (app, client)``."""
    servers = []
    keys = tmp_path_factory.mktemp("online-keys")

    def start(**options):
        app = create_sandbox_app(TENANT, {USER_TOKEN: USER_ASSOCIATE}, data_dir=keys,
                                 system_users={SYSTEM_USER_TOKEN: CONNECTOR_ASSOCIATE},
                                 client_secret="sandbox-client-secret",
                                 associates={CONNECTOR_ASSOCIATE: "consent-connector",
                                             USER_ASSOCIATE: "Sally Sales"}, **options)
        server, base_url = run_in_thread(app)
        servers.append(server)
        return app, SandboxClient(base_url)

    yield start
    for server in servers:
        stop_server(server)


def online_env(connector_env, app, client, db, tmp_path, **settings):
    """The connector's environment signing in to ``app`` (not the session's sandbox) as its
    system user, on Redis database ``db``."""
    return own_database(connector_env, db, DATA_DIR=str(tmp_path),
                        **connector_settings(app, client.base_url), **settings)


def onboarded(client, person_ids) -> bool:
    return all("STORE" in client.consents(person_id) for person_id in person_ids)


def queue_burst(client, db, env, count: int, *, put_delay: float) -> list[int]:
    """Create ``count`` persons, make the CRM ``put_delay`` s slow to write each one's
    consent (so the burst lasts), and queue their onboarding."""
    person_ids = [client.create_person(f"Burst{n}", "Person", None) for n in range(count)]
    client.fault(delay=put_delay, times=count, match="/Consent/", method="PUT")
    settings = Settings.from_env(env)
    for person_id in person_ids:
        enqueue_event(db, settings, "onboard", person_id, new_event_id())
    return person_ids


@contextmanager
def workers(env, count: int):
    """``count`` worker processes for the duration of the block."""
    processes = [start_worker(env) for _ in range(count)]
    try:
        yield processes
    finally:
        for process in processes:
            stop_worker(process)


def test_a_ticket_that_lapses_during_a_burst_is_renewed_once_per_lapse_not_once_per_worker(
        online, connector_env, tmp_path):
    app, client = online(ticket_ttl=5, ticket_sliding=False)
    env, db = online_env(connector_env, app, client, 5, tmp_path)
    person_ids = queue_burst(client, db, env, 50, put_delay=0.6)  # outlasts 2 or 3 tickets

    with workers(env, 3):
        wait_for(lambda: onboarded(client, person_ids), timeout=120, interval=0.5,
                 what="all 50 persons to be onboarded")

    signed_in = sorted(a["time"] for a in client.sign_ins() if a["successful"])
    lapses_met = [c for c in client.calls() if c["status"] == 401]
    assert len(signed_in) >= 2 and lapses_met, "the burst should outlast a ticket"
    # One sign-in per lapse: each ticket lived its 5 s before the next sign-in, however many
    # of the three workers met the 401 together.
    gaps = [later - earlier for earlier, later in zip(signed_in, signed_in[1:])]
    assert min(gaps) >= 4.5, gaps
    assert len(lapses_met) > len(signed_in) - 1  # more 401s than sign-ins: they were shared
    assert not FailedJobRegistry(ONBOARDING, connection=db).get_job_ids()


def test_a_tenant_that_moves_during_a_burst_is_found_at_its_new_address(
        online, connector_env, tmp_path):
    app, client = online()
    env, db = online_env(connector_env, app, client, 6, tmp_path)
    person_ids = queue_burst(client, db, env, 30, put_delay=0.2)

    with workers(env, 2):
        wait_for(lambda: sum("STORE" in client.consents(p) for p in person_ids) >= 5,
                 what="the burst to be under way")
        moved = client.move_tenant()
        wait_for(lambda: onboarded(client, person_ids), timeout=60, interval=0.5,
                 what="all 30 persons to be onboarded")

    calls = client.calls()
    assert any(c["status"] == 421 for c in calls), "some call met the old address"
    farm = moved["Endpoint"].rstrip("/").rsplit("/", 2)[-2]
    late_puts = [c for c in calls if c["method"] == "PUT" and c["status"] == 204
                 and c["path"].startswith(f"/{farm}/")]
    assert late_puts, "writes went on at the new address"
    assert not FailedJobRegistry(ONBOARDING, connection=db).get_job_ids()


def test_a_revoked_system_user_token_fails_jobs_naming_it_after_a_bounded_number_of_sign_ins(
        online, connector_env, tmp_path):
    app, client = online()
    env, db = online_env(connector_env, app, client, 7, tmp_path, RETRY_INTERVALS="1,1,1")
    with workers(env, 1):  # it signs in and asks who it is at start, then beats
        # Revoked between its sign-in and its question, the worker would refuse to start.
        wait_for(lambda: workers_alive(db), what="the worker to start")
        client.revoke_system_user()  # an administrator withdrew the app's consent
        settings = Settings.from_env(env)
        jobs = [enqueue_event(db, settings, "onboard", client.create_person(f"Revoked{n}", "P", None),
                                   new_event_id()) for n in range(10)]
        registry = FailedJobRegistry(ONBOARDING, connection=db)
        wait_for(lambda: len(registry.get_job_ids()) == 10, timeout=60,
                 what="every job to fail")

    for job in jobs:
        reason = Job.fetch(job.id, connection=db).meta["reason"]
        assert "SUPEROFFICE_SYSTEM_USER_TOKEN" in reason, reason
        assert "refused" in reason
    attempts_after_revoke = [a for a in client.sign_ins() if not a["successful"]]
    assert 1 <= len(attempts_after_revoke) <= 2, attempts_after_revoke  # not one per job

    # A worker started now refuses to start and says why.
    refused = cli(env, "worker", "--burst")
    assert refused.returncode == 2
    assert "SUPEROFFICE_SYSTEM_USER_TOKEN" in refused.stderr

    # The administrator approves the app again; doctor's sign-in lets the workers go on at
    # once instead of after the 5 minutes they remember the refusal.
    client.reset()
    doctor = cli(env, "doctor")
    assert "the refusal the workers remembered is forgotten" in doctor.stdout, doctor.stdout
    assert cli(env, "worker", "--burst").returncode == 0


def test_a_tenant_in_maintenance_makes_jobs_wait_and_status_says_so(
        online, connector_env, tmp_path):
    app, client = online(state_valid_for=1)
    env, db = online_env(connector_env, app, client, 8, tmp_path, RETRY_INTERVALS="1,1,1,1,1")
    person_id = client.create_person("Patient", "Person", None)
    client.set_tenant_state("OfflineMaintenance")  # an upgrade starts
    job = enqueue_event(db, Settings.from_env(env), "onboard", person_id, new_event_id())

    status = cli(env, "status")
    assert "OfflineMaintenance" in status.stdout and "jobs wait" in status.stdout

    with workers(env, 1):
        wait_for(lambda: Job.fetch(job.id, connection=db).meta.get("attempts"),
                 what="a first attempt")
        reason = Job.fetch(job.id, connection=db).meta["reason"]
        assert "OfflineMaintenance" in reason and job.get_status(refresh=True) != "failed"
        client.set_tenant_state("Running")  # the answer the connector holds lapses within 5 s
        wait_for(lambda: "STORE" in client.consents(person_id), timeout=90, interval=0.5,
                 what="the onboarding once the tenant runs again")


def test_doctor_passes_on_a_healthy_setup_and_names_the_setting_on_a_broken_one(
        online, connector_env, tmp_path):
    app, client = online()
    web_port = free_port()
    env, db = online_env(connector_env, app, client, 9, tmp_path,
                         PUBLIC_BASE_URL=f"http://127.0.0.1:{web_port}")
    web = make_server("127.0.0.1", web_port, create_app(Settings.from_env(env)), threaded=True)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        hook = client.call("POST", "Webhook", json={
            "Name": "consent-connector", "Events": ["person.created"], "State": "Active",
            "TargetUrl": f"http://127.0.0.1:{web_port}/webhooks/superoffice",
            "Secret": env["SUPEROFFICE_WEBHOOK_SECRET"].split(",")[0], "Type": "webhook"})
        assert hook.status_code == 200, hook.text

        with workers(env, 1):
            wait_for(lambda: workers_alive(db), what="the worker's first heartbeat")
            healthy = cli(env, "doctor")
        client.revoke_system_user()
        broken = cli(env, "doctor")
    finally:
        web.shutdown()

    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "10 of 10 checks passed." in healthy.stdout
    for line in ("✓ sign-in", "✓ tenant         Cust12345 Running", "✓ API            the "
                 "connector is associate 9", "✓ webhooks", "✓ SMTP", "✓ Redis", "✓ database",
                 "✓ workers", "✓ public URL"):
        assert line in healthy.stdout, healthy.stdout
    assert broken.returncode == 1
    assert "✗ sign-in        SuperOffice refused the system user sign-in" in broken.stdout
    assert "→ fix: SUPEROFFICE_SYSTEM_USER_TOKEN" in broken.stdout
    assert "✗ API            not checked: the sign-in failed" in broken.stdout
    assert "sandbox-client-secret" not in healthy.stdout + broken.stdout


def cli(env, *args):
    return subprocess.run([sys.executable, "-m", "connector", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
