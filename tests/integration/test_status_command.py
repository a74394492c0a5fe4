"""`consent-connector status`: queues, workers, failures and the config in force."""

import os
import subprocess
import sys

import pytest

from connector.config import config_version
from connector.settings import Settings
from tests.conftest import ROOT, new_event_id, own_database, start_worker
from connector.queueing import enqueue_event

pytestmark = pytest.mark.integration


def test_status_shows_failed_jobs_workers_and_the_config_version(sandbox, connector_env,
                                                                 tmp_path):
    env, own_db = own_database(connector_env, 13, DATA_DIR=str(tmp_path))
    enqueue_event(own_db, Settings.from_env(env), "onboard", 424242, new_event_id())  # no such person
    worker = start_worker(env, "--burst")
    assert worker.wait(60) == 0, worker.log_path.read_text()

    result = subprocess.run([sys.executable, "-m", "connector", "status"], cwd=ROOT,
                            env=os.environ | env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "  onboarding   0 queued, 0 scheduled, 0 running, 1 failed" in out
    assert "1 failed job(s): `consent-connector jobs list --failed` says why" in out
    assert "workers      0 alive" in out  # the burst worker has finished
    assert f"in force     version {config_version(ROOT / 'config' / 'purposes.yaml')}" in out
    assert "Webhooks (in SuperOffice)" in out and "Reconciliation" in out
