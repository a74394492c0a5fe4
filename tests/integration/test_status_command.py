"""`consent-connector status`: queues, workers, failures and the config in force."""

import os
import subprocess
import sys

import pytest

from connector.config import config_version
from connector.keys import CONFIG_IN_FORCE
from connector.queueing import enqueue_event
from connector.redis_connection import embedded_server_running
from connector.settings import Settings
from connector.web.app import create_app
from tests.conftest import ROOT, new_event_id, own_database, start_worker, stop_worker, wait_for
from tests.factories import edit_file, shipped_config_copy

pytestmark = pytest.mark.integration


def test_status_shows_failed_jobs_workers_and_the_config_version(sandbox, connector_env,
                                                                 tmp_path):
    env, own_db = own_database(connector_env, 13, DATA_DIR=str(tmp_path))
    enqueue_event(own_db, Settings.from_env(env), "onboard", 424242, new_event_id())  # no such person
    worker = start_worker(env, "--burst")
    assert worker.wait(60) == 0, worker.log_path.read_text()

    client = create_app(Settings.from_env(env), connection=own_db).test_client()
    for _ in range(2):  # a CRM signing with another secret than ours
        assert client.post("/webhooks/superoffice", data=b"{}", headers={
            "X-SuperOffice-Signature": "bm90IG91cnM="}).status_code == 401

    result = status(env)

    assert result.returncode == 1, result.stdout + result.stderr  # it needs attention
    out = result.stdout
    assert "  onboarding   0 queued, 0 scheduled, 0 running, 1 failed" in out
    assert "1 failed job(s): `consent-connector jobs list --failed` says why" in out
    assert "workers      0 alive" in out  # the burst worker has finished
    version = config_version(ROOT / 'config' / 'purposes.yaml')
    assert f"on disk      version {version}: valid (2 purposes)" in out
    assert f"in force     version {version} in the workers (reported " in out
    assert "2 request(s) with a bad signature in the last 60 minutes" in out
    assert "set SUPEROFFICE_WEBHOOK_SECRET to the webhook's secret" in out
    assert "Webhooks (in SuperOffice)" in out and "Reconciliation" in out
    assert out.rstrip().splitlines()[-1] == (
        "status: needs attention: no worker is alive; 1 failed job(s); no Active webhook sends "
        "person.created; 2 webhook request(s) with a bad signature: check "
        "SUPEROFFICE_WEBHOOK_SECRET")


def status(env):
    return subprocess.run([sys.executable, "-m", "connector", "status"], cwd=ROOT,
                          env=os.environ | env, capture_output=True, text=True, timeout=60)


def test_status_works_with_a_refused_purposes_file_and_names_the_version_in_force(
        sandbox, connector_env, tmp_path):
    path = shipped_config_copy(tmp_path)
    env, own_db = own_database(connector_env, 13, DATA_DIR=str(tmp_path),
                               CONSENT_CONFIG=str(path))
    good = config_version(path)
    worker = start_worker(env)
    try:
        wait_for(lambda: own_db.hget(CONFIG_IN_FORCE, "version"), what="the worker's report")
        edit_file(path, "    crm_key: STORE", "    crm_kye: STORE")  # an admin's typo

        result = status(env)
    finally:
        stop_worker(worker)

    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert f"on disk      version {config_version(path)}: REFUSED, 2 problem(s):" in out
    assert "unknown field 'crm_kye' (did you mean 'crm_key'?)" in out
    assert f"in force     version {good} in the workers" in out
    assert "workers      1 alive" in out
    assert "the purposes file on disk is refused" in out.splitlines()[-1]


def test_status_exits_2_when_redis_cannot_be_reached(connector_env, tmp_path):
    result = status(connector_env | {"REDIS_URL": "redis://127.0.0.1:1/0",
                                     "DATA_DIR": str(tmp_path)})

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Redis unreachable" in result.stdout and "check REDIS_URL" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith(
        "status: needs attention: Redis is unreachable")


def test_a_command_that_started_the_embedded_redis_leaves_none_behind(connector_env, tmp_path):
    env = {key: value for key, value in connector_env.items() if key != "REDIS_URL"}

    result = subprocess.run([sys.executable, "-m", "connector", "jobs", "list"], cwd=ROOT,
                            env={**{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
                                 **env, "DATA_DIR": str(tmp_path)},
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "redis.conf").exists()  # it did start one
    assert not embedded_server_running(tmp_path)
