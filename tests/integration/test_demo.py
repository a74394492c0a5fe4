"""`make demo` end to end: sandbox CRM → signed webhook → gunicorn → embedded Redis →
worker → consents in the CRM and mails in the outbox, each link opening its page."""

import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def test_demo_runs_the_whole_system_on_embedded_defaults(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SMTP_URL", "SERVE")}
    env["DATA_DIR"] = str(tmp_path / "demo")
    result = subprocess.run([sys.executable, "-m", "sandbox.demo"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=240)
    output = result.stdout + result.stderr

    assert result.returncode == 0, output
    assert "Demo OK" in output
    assert output.count("legal basis 61F") == 4
    assert "source WEBFORM" in output  # the person created through the web form
    assert "'Slik behandler vi opplysningene dine' (nb)" in output  # the Norwegian person
    assert output.count("opens: HTTP 200") == 3  # every mailed link opens its page
    assert "no mail: the person has no email address" in output
    assert "the links above no longer open. `make demo SERVE=1` keeps it all running" in output

    logs = "".join(p.read_text() for p in (tmp_path / "demo").glob("*.log"))
    assert "event.queued" in logs
    for personal in ("Lovelace", "Nordmann", "ada@example.org", "kari@example.no"):
        assert personal not in logs


def test_a_served_demo_is_usable_from_the_command_line_and_a_second_demo_leaves_it_alone(
        tmp_path):
    data_dir = tmp_path / "var" / "demo"  # where make demo keeps it, seen from tmp_path
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "SMTP_URL", "DATA_DIR", "CONSENT_CONFIG")}
    env["PATH"] = "/usr/bin:/bin"  # a fresh terminal: the virtualenv's commands are not on it
    demo = subprocess.Popen([sys.executable, "-m", "sandbox.demo"], cwd=ROOT,
                            env=env | {"DATA_DIR": str(data_dir), "SERVE": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in demo.stdout:  # the demo prints "Stop with Ctrl-C." once it serves
            lines.append(line)
            if line.startswith("Stop with Ctrl-C") or "DEMO FAILED" in line:
                break
        output = "".join(lines)
        assert "Everything keeps running" in output, output

        # Every command the demo prints works when pasted into a shell, from another folder.
        env_file = data_dir / "env"
        assert env_file.stat().st_mode & 0o777 == 0o600
        assert f"source {env_file}" in output
        status = subprocess.run(["bash", "-c", f"source {env_file} && consent-connector status"],
                                cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "workers      1 alive" in status.stdout
        # Without the demo's settings, a command says where the demo's Redis is rather than
        # start one of its own beside it (DATA_DIR is ./var by default).
        unsourced = subprocess.run(["bash", "-c", f"source {env_file} && unset DATA_DIR && "
                                                  f"consent-connector status"],
                                   cwd=tmp_path, env=env, capture_output=True, text=True,
                                   timeout=60)
        assert unsourced.returncode == 2
        assert ("no Redis runs in DATA_DIR (var), but a demo runs in var/demo: `source "
                "var/demo/env`") in unsourced.stderr
        assert not (tmp_path / "var" / "redis.sock").exists()
        curl = next(line.strip() for line in lines if line.strip().startswith("curl "))
        created = subprocess.run(["bash", "-c", curl], capture_output=True, text=True,
                                 timeout=30)
        assert created.returncode == 0 and '"PersonId"' in created.stdout, created.stderr

        second = subprocess.run([sys.executable, "-m", "sandbox.demo"], cwd=ROOT,
                                env=env | {"DATA_DIR": str(data_dir)}, capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 2
        assert f"A demo is running in {data_dir} (process {demo.pid})" in second.stderr
        assert list((data_dir / "outbox").iterdir()) and env_file.exists()
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        demo.wait(30)
    assert not env_file.exists() and not (data_dir / "demo.pid").exists()
    assert not (data_dir / "redis.sock").exists()  # its Redis stopped with it
