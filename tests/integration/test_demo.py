"""`make demo` end to end: sandbox CRM → signed webhook → gunicorn → embedded Redis →
worker → consents in the CRM and mails in the outbox, each link opening its page."""

import os
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

    logs = "".join(p.read_text() for p in (tmp_path / "demo").glob("*.log"))
    assert "event.queued" in logs
    for personal in ("Lovelace", "Nordmann", "ada@example.org", "kari@example.no"):
        assert personal not in logs
