"""`consent-connector retention report`: persons with no active purpose for longer than
delete_after, with the evidence, against the sandbox CRM and the session's evidence database;
the date is moved with --as-of."""

import csv
import io

import pytest
from openpyxl import load_workbook

from connector.evidence.ledger import Ledger
from connector.services import build_services
from connector.settings import Settings
from tests.conftest import run_command

pytestmark = pytest.mark.integration


def test_only_persons_withdrawn_from_everything_for_longer_than_delete_after_are_listed(
        connector_env, sandbox, evidence_database, redis_conn, tmp_path):
    ledger = Ledger(evidence_database)
    gone, active, _no_rows = (sandbox.create_person(name, "Tester", f"{name.lower()}@example.org")
                              for name in ("Gone", "Active", "Nothing"))
    services = build_services(Settings.from_env(connector_env))
    try:
        services.crm.set_consent(gone, "STORE", "USER", "WITHDRAWN", "objected on their page")
        services.crm.set_consent(active, "STORE", "USER", "61F", "default")
    finally:
        services.database.dispose()
    entry = ledger.append(gone, "consent.changed", purpose="STORE", legal_basis="WITHDRAWN",
                          source="WEBFORM", actor="person", comment="objection")

    # shipped delete_after: 24 months; rows written today are past it from 2029 on
    later = run_command(connector_env, "retention", "report", "--as-of", "2029-01-01")
    soon = run_command(connector_env, "retention", "report", "--as-of", "2027-06-01")
    as_xlsx = run_command(connector_env, "retention", "report", "--as-of", "2029-01-01",
                          "-o", str(tmp_path / "retention.xlsx"))

    assert later.returncode == 0, later.stderr
    rows = list(csv.DictReader(io.StringIO(later.stdout)))
    assert [row["person_id"] for row in rows] == [str(gone)]
    assert rows[0]["email"] == "gone@example.org"
    assert rows[0]["withdrawn"].startswith("STORE 20")
    assert f"STORE: entry {entry}, consent.changed" in rows[0]["evidence"]
    assert "by person" in rows[0]["evidence"] and "comment objection" in rows[0]["evidence"]
    assert "1 person(s) with no active purpose since before 2027-01-01" in later.stderr
    assert soon.returncode == 0 and list(csv.DictReader(io.StringIO(soon.stdout))) == []

    assert as_xlsx.returncode == 0, as_xlsx.stderr
    sheet = load_workbook(tmp_path / "retention.xlsx")["Past delete_after"]
    assert [cell.value for cell in sheet[2]][0] == gone
    about = load_workbook(tmp_path / "retention.xlsx")["About this report"]
    assert ("delete_after", "24 months") in [(r[0].value, r[1].value) for r in about.iter_rows()
                                             if r[0].value and len(r) > 1]


def test_without_delete_after_or_with_a_bad_file_name_it_says_what_to_do(connector_env,
                                                                           tmp_path):
    path = tmp_path / "purposes.yaml"
    path.write_text(open(connector_env["CONSENT_CONFIG"]).read().replace(
        "delete_after: 24 months", ""))
    unset = run_command(connector_env | {"CONSENT_CONFIG": str(path)}, "retention", "report")
    assert unset.returncode == 2 and "delete_after: 24 months" in unset.stderr
    named = run_command(connector_env, "retention", "report", "-o", str(tmp_path / "x.pdf"))
    assert named.returncode == 2 and "cannot tell the format of x.pdf" in named.stderr
