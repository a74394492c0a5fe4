"""The processes refuse to start on a missing setting or an invalid purposes file, and say
which variable or which line is wrong."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, start_worker

pytestmark = pytest.mark.integration


@pytest.fixture
def broken_config(tmp_path):
    path = tmp_path / "purposes.yaml"
    shipped = (ROOT / "config" / "purposes.yaml").read_text()
    path.write_text(shipped.replace("legal_basis: legitimate_interest",
                                    "legal_basis: legitimate_intrest"))
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1)
                if "legitimate_intrest" in text)
    return path, line


def test_worker_refuses_an_invalid_purposes_file(connector_env, broken_config, tmp_path):
    path, line = broken_config
    worker = start_worker(connector_env | {"CONSENT_CONFIG": str(path), "DATA_DIR": str(tmp_path)})
    assert worker.wait(30) == 2
    output = worker.log_path.read_text()
    assert f"{path}:{line}:" in output
    assert "legitimate_intrest" in output and "did you mean 'legitimate_interest'" in output


def test_worker_refuses_a_missing_setting(connector_env, tmp_path):
    env = os.environ | connector_env | {"DATA_DIR": str(tmp_path)}
    del env["SECRET_KEY"]
    process = subprocess.run([sys.executable, "-m", "connector", "worker"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=30)
    assert process.returncode == 2
    assert "SECRET_KEY: required but not set" in process.stderr


def test_web_refuses_an_invalid_purposes_file(connector_env, broken_config):
    path, line = broken_config
    env = os.environ | connector_env | {"CONSENT_CONFIG": str(path)}
    process = subprocess.run(
        [sys.executable, "-c", "from connector.web.app import create_app_from_env; create_app_from_env()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert process.returncode == 2
    assert f"{path}:{line}:" in process.stderr


def test_config_check_reports_file_line_and_reason(broken_config):
    path, line = broken_config
    process = subprocess.run([sys.executable, "-m", "connector", "config", "check", str(path)],
                             cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert process.returncode == 1
    assert f"{path}:{line}:" in process.stderr
    assert "not defined in legal_bases" in process.stderr


def test_config_check_accepts_the_shipped_file():
    process = subprocess.run([sys.executable, "-m", "connector", "config", "check",
                              "config/purposes.yaml"], cwd=ROOT, capture_output=True, text=True,
                             timeout=30)
    assert process.returncode == 0, process.stderr
    assert "valid — 2 purposes" in process.stdout


def test_procfile_web_stops_at_once_on_a_missing_setting(tmp_path):
    """gunicorn must not keep rebooting workers that cannot start (hence --preload)."""
    command = next(line.split(" ", 1)[1] for line in (ROOT / "Procfile").read_text().splitlines()
                   if line.startswith("web:"))
    env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin", "PORT": "0",
           "DATA_DIR": str(tmp_path)}
    process = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
    assert process.returncode == 2
    assert "SUPEROFFICE_SYSTEM_USER_TOKEN: required" in process.stderr
