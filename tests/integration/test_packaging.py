"""The package as pip builds it: no setuptools warnings, and every file the connector reads at
run time (templates, static files, locales, migrations) inside the wheel."""

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

RUN_TIME_FILES = ("connector/purposes.yaml", "connector/locales/en.yaml", "connector/web/templates/person.html",
                  "connector/web/templates/admin/jobs.html", "connector/web/static/page/page.css",
                  "connector/mail/templates/confirmation.html",
                  "connector/evidence/migrations/script.py.mako",
                  "connector/evidence/migrations/versions/0001_evidence.py",
                  "sandbox/templates/person.html")


def test_the_wheel_builds_without_warnings_and_carries_every_run_time_file(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                            str(ROOT), "-w", str(tmp_path)],
                           capture_output=True, text=True, timeout=300)

    assert built.returncode == 0, built.stderr
    assert "Warning" not in built.stderr and "would be ignored" not in built.stderr, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert [name for name in RUN_TIME_FILES if name not in names] == []
    assert not [name for name in names if "__pycache__" in name or name.startswith("tests/")]
