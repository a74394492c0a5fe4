"""The export end to end: ``consent-connector export`` and GET /admin/export/<id> against the
sandbox CRM over HTTP and a real PostgreSQL holding the ledger; the files read back with openpyxl
and, once, through LibreOffice."""

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from connector.web.app import create_app
from connector.cli import main
from connector.i18n import text
from connector.superoffice.client import PAUSES_PER_CALL
from tests.conftest import (CONNECTOR_ASSOCIATE, CONNECTOR_TOKEN, ROOT, USER_ASSOCIATE,
                            wait_for)
from tests.factories import shipped_config

pytestmark = pytest.mark.integration

CONFIG = shipped_config()
ADMIN_TOKEN = "admin-token-0123456789abcdef"
NB = "nb"


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def cli(connector_env):
    """Run ``consent-connector export ...`` in this process with the connector's environment."""
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, ["export", *args], env=connector_env, catch_exceptions=False)
    return run


def create_person(sandbox, first="Kari", last="Nordmann", email="kari@example.no",
                  company="Nordmann AS", language="Norwegian") -> int:
    body = {"Firstname": first, "Lastname": last, "Emails": [{"Value": email}] if email else [],
            "Contact": {"Name": company} if company else None,
            "CustomerLanguage": {"Value": language} if language else None}
    response = sandbox.call("POST", "Person", json=body)
    assert response.status_code == 200, response.text
    return response.json()["PersonId"]


def connector_writes(sandbox, person_id, purpose, legal_base, source, comment):
    """A consent row written as the connector's associate (as the jobs do)."""
    response = sandbox.call("PUT", f"Person/{person_id}/Consent/{purpose}", token=CONNECTOR_TOKEN,
                            params={"source": source, "legalBase": legal_base, "comment": comment})
    assert response.status_code == 204, response.text


def stamp(offset_seconds: float = 0) -> str:
    moment = datetime.now(timezone.utc) + timedelta(seconds=offset_seconds)
    return moment.isoformat(timespec="milliseconds")


def kari_with_history(sandbox, ledger) -> int:
    """A Norwegian person onboarded by the connector, who objected on her page, got
    e-marketing from a CRM user, and whose failed job support retried."""
    person_id = create_person(sandbox)
    connector_writes(sandbox, person_id, "STORE", "61F", "USER",
                     "Recorded by consent-connector for a new person")
    ledger.append(person_id, "consent.recorded", purpose="STORE", legal_basis="61F",
                  source="USER", comment="Recorded by consent-connector for a new person",
                  actor="connector", job_id="job-1", event_id="event-1")
    ledger.append(person_id, "mail.sent", mail="confirmation", token_id="tok-1",
                  message_id="<1@consent.example.com>", actor="connector", job_id="job-1")
    connector_writes(sandbox, person_id, "STORE", "WITHDRAWN", "WEBFORM",
                     "Objection by the person on their personal page; link tok-1")
    ledger.append(person_id, "consent.changed", purpose="STORE", previous_legal_basis="61F",
                  legal_basis="WITHDRAWN", source="WEBFORM",
                  comment="Objection by the person on their personal page; link tok-1",
                  actor="person", token_id="tok-1", user_agent="Mozilla/5.0 (X11; Linux)",
                  ip="203.0.113.0/24 #1a2b3c4d5e6f7a8b", submitted_at=stamp(-1), job_id="job-2")
    sandbox.set_consent(person_id, "EMARKETING", "61A")  # a CRM user (associate 7)
    ledger.append(person_id, "crm.consent_changed", purpose="EMARKETING", legal_basis="61A",
                  source="USER", actor="crm user", associate_id=USER_ASSOCIATE)
    ledger.append(person_id, "support.retry", actor="support", job_id="job-2")
    return person_id


def crm_time(value: str) -> datetime:
    """A sandbox date-time (naive UTC text) as the naive UTC datetime of a date cell."""
    return datetime.fromisoformat(value)


def ledger_time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(timezone.utc).replace(tzinfo=None)


def table(sheet):
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    return rows[0], rows[1:]


def summary_pairs(sheet) -> dict:
    return {row[0]: row[1] for row in sheet.iter_rows(min_row=4, values_only=True) if row[0]}


def legal_basis_name(crm_key: str, language: str = NB) -> str:
    return CONFIG.legal_basis_by_crm_key(crm_key).name[language]


def source_name(crm_key: str, language: str = NB) -> str:
    return CONFIG.source_by_crm_key(crm_key).name[language]


def purpose_name(crm_key: str, language: str = NB) -> str:
    return CONFIG.purpose_by_crm_key(crm_key).name[language]


def no_leftovers(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


# -- one person, command line ------------------------------------------------------------------


def test_the_workbook_shows_the_crm_rows_and_every_ledger_entry(sandbox, ledger, cli,
                                                                tmp_path):
    person_id = kari_with_history(sandbox, ledger)
    out = tmp_path / "kari.xlsx"
    before = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)

    result = cli(str(person_id), "-o", str(out), "--by", "Siri Support")

    assert result.exit_code == 0, result.output
    assert f"person {person_id}, 2 purposes, 5 history entries" in result.stdout
    assert "Kari" not in result.output  # no personal data in the command's own output
    book = load_workbook(out)
    assert book.sheetnames == ["Sammendrag", "Samtykker", "Historikk"]  # CustomerLanguage Norwegian

    # Summary: the person and the export, against the CRM
    entity = sandbox.call("GET", f"Person/{person_id}").json()
    pairs = summary_pairs(book["Sammendrag"])
    assert book["Sammendrag"]["A1"].value == f"Samtykker og historikk: {entity['FullName']}"
    assert pairs["Person-ID (CRM)"] == person_id
    assert pairs["Navn"] == entity["FullName"]
    assert pairs["E-post"] == entity["Emails"][0]["Value"]
    assert pairs["Firma"] == entity["Contact"]["Name"]
    assert pairs["Eksportert av"] == "Siri Support"
    assert before <= pairs["Eksportert (UTC)"] <= datetime.now(timezone.utc).replace(tzinfo=None)
    assert pairs["Hvor opplysningene kom fra"].split("\n") == [source_name("WEBFORM"),
                                                              source_name("USER")]
    assert pairs["E-poster sendt"] == 1
    for key in ("61A", "61F", "WITHDRAWN"):
        basis = CONFIG.legal_basis_by_crm_key(key)
        assert pairs[basis.name[NB]] == basis.description[NB]

    # Consents: one row per purpose, read live from the CRM
    header, rows = table(book["Samtykker"])
    assert header[0] == "Formål" and header[5] == "Registrert (UTC)"
    crm = sandbox.consents(person_id)
    assert [row[0] for row in rows] == [purpose_name("STORE"), purpose_name("EMARKETING")]
    for row, purpose in zip(rows, ("STORE", "EMARKETING")):
        crm_row = crm[purpose]
        assert row[2] == legal_basis_name(crm_row["LegalBaseKey"])
        assert row[3] == source_name(crm_row["ConsentSourceKey"])
        withdrawn = crm_row["LegalBaseKey"] == "WITHDRAWN"
        assert row[4] == text("export", "status.withdrawn" if withdrawn else "status.active", NB)
        assert row[5] == crm_time(crm_row["Registered"])
        assert row[7] == crm_time(crm_row["Updated"])
        assert row[6].endswith(f" {crm_row['RegisteredAssociateId']}")
        assert row[8].endswith(f" {crm_row['UpdatedAssociateId']}")
        assert row[9] == crm_row["Comment"]
    assert rows[0][6].startswith("consent-connector")  # associate 9 is the connector
    assert rows[1][6] == f"CRM-bruker, bruker-ID {USER_ASSOCIATE}"

    # History: every ledger entry, oldest first
    entries = ledger.entries(person_id)
    header, rows = table(book["Historikk"])
    assert header[0] == "Når (UTC)"
    assert len(rows) == len(entries) == 5
    for row, entry in zip(rows, entries):
        assert row[0] == ledger_time(entry["at"])
        assert row[1] == text("export", f"action.{entry['action']}", NB)
    recorded, mail, objection, crm_change, retry = rows
    assert recorded[3] == f"(ingen) → {legal_basis_name('61F')}"
    assert recorded[5] == text("export", "actor.connector", NB)
    assert "event_id: event-1" in recorded[14]
    assert mail[12:14] == [text("export", "mail.confirmation", NB), "<1@consent.example.com>"]
    assert objection[3] == f"{legal_basis_name('61F')} → {legal_basis_name('WITHDRAWN')}"
    assert objection[5] == text("export", "actor.person", NB)
    assert objection[8:11] == ["tok-1", "203.0.113.0/24 #1a2b3c4d5e6f7a8b",
                               "Mozilla/5.0 (X11; Linux)"]
    assert objection[11] == ledger_time(entries[2]["submitted_at"])
    assert crm_change[5] == f"CRM-bruker, bruker-ID {USER_ASSOCIATE}"
    assert retry[5] == text("export", "actor.support", NB)

    for sheet in (book["Samtykker"], book["Historikk"]):
        assert sheet.freeze_panes == "B2"
        assert sheet.auto_filter.ref.startswith("A1:") and sheet.auto_filter.ref.endswith(
            str(sheet.max_row))


def test_a_person_without_a_language_gets_english_headings(sandbox, ledger, cli, tmp_path):
    person_id = create_person(sandbox, "Ada", "Lovelace", "ada@example.org", company=None,
                              language=None)
    result = cli(str(person_id), "-o", str(tmp_path / "ada.xlsx"))
    assert result.exit_code == 0, result.output
    book = load_workbook(tmp_path / "ada.xlsx")
    assert book.sheetnames == ["Summary", "Consents", "History"]
    _, rows = table(book["Consents"])
    assert [(row[0], row[4]) for row in rows] == [("Sales and service", "Not recorded"),
                                                  ("E-marketing", "Not given")]
    assert table(book["History"])[1] == []
    assert summary_pairs(book["Summary"])["Company"] == "(none)"


def test_the_json_export_says_what_the_workbook_says(sandbox, ledger, cli, tmp_path):
    person_id = kari_with_history(sandbox, ledger)
    assert cli(str(person_id), "-o", str(tmp_path / "kari.xlsx")).exit_code == 0
    result = cli(str(person_id), "--format", "json", "-o", str(tmp_path / "kari.json"))
    assert result.exit_code == 0, result.output

    document = json.loads((tmp_path / "kari.json").read_text(encoding="utf-8"))
    book = load_workbook(tmp_path / "kari.xlsx")
    assert (document["schema"], document["version"]) == ("consent-connector/export", 1)
    assert document["person"]["id"] == person_id and document["language"] == NB

    crm = sandbox.consents(person_id)
    _, consent_rows = table(book["Samtykker"])
    for consent, row in zip(document["consents"], consent_rows):
        crm_row = crm[consent["purpose"]["key"]]
        assert consent["legal_basis"]["key"] == crm_row["LegalBaseKey"]
        assert consent["source"]["key"] == crm_row["ConsentSourceKey"]
        assert consent["registered"] == crm_row["Registered"] + "Z"
        assert consent["registered_by_associate_id"] == crm_row["RegisteredAssociateId"]
        assert consent["comment"] == crm_row["Comment"] == row[9]
        assert [consent["purpose"]["name"], consent["legal_basis"]["name"],
                consent["source"]["name"]] == [row[0], row[2], row[3]]
        assert row[5] == datetime.fromisoformat(consent["registered"][:-1])

    entries = ledger.entries(person_id)
    _, history_rows = table(book["Historikk"])
    assert [entry["id"] for entry in document["history"]] == [entry["id"] for entry in entries]
    for item, entry, row in zip(document["history"], entries, history_rows):
        assert item["action"] == entry["action"]
        assert row[0] == ledger_time(entry["at"]) == datetime.fromisoformat(item["at"][:-1])
        assert (item["legal_basis"] or {}).get("key") == entry.get("legal_basis")
        assert item["proof"]["token_id"] == entry.get("token_id") == row[8]


def test_a_person_who_does_not_exist_is_a_clear_error_and_no_file(connector_env, sandbox,
                                                                   tmp_path):
    out = tmp_path / "nobody.xlsx"
    process = subprocess.run([sys.executable, "-m", "connector", "export", "424242", "-o",
                              str(out)], cwd=ROOT, env={**os.environ, **connector_env},
                             capture_output=True, text=True, timeout=60)
    assert process.returncode == 1, process.stderr
    assert "person 424242 does not exist in the CRM" in process.stderr
    assert "Traceback" not in process.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_crm_outage_is_a_clear_error_and_leaves_the_earlier_file_alone(sandbox, ledger,
                                                                          cli, tmp_path):
    person_id = create_person(sandbox)
    out = tmp_path / "kari.xlsx"
    out.write_bytes(b"yesterday's export")
    sandbox.fault(status=503, times=5, match="Person", method="GET")

    result = cli(str(person_id), "-o", str(out))

    assert result.exit_code == 1
    assert f"cannot read person {person_id} from the CRM" in result.stderr
    assert "503" in result.stderr and "nothing written" in result.stderr
    assert out.read_bytes() == b"yesterday's export"
    assert no_leftovers(tmp_path) == []


def test_a_crm_outage_with_no_earlier_file_leaves_no_file(sandbox, cli, tmp_path):
    person_id = create_person(sandbox)
    sandbox.fault(status=503, times=5, match="Person", method="GET")
    result = cli(str(person_id), "--format", "json", "-o", str(tmp_path / "kari.json"))
    assert result.exit_code == 1 and "503" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_are_refused_before_anything_is_read(cli, sandbox, tmp_path):
    assert cli().exit_code == 2
    assert cli("1", "--all").exit_code == 2
    assert cli("1", "-o", str(tmp_path / "a.json"), "--format", "xlsx").exit_code == 2
    assert cli("--all", "--format", "json").exit_code == 2
    result = cli("1", "-o", str(tmp_path / "missing" / "a.xlsx"))
    assert result.exit_code == 1 and "does not exist" in result.stderr
    assert sandbox.calls() == []


# -- the admin endpoint ------------------------------------------------------------------------


@pytest.fixture
def admin(settings, redis_conn):
    """A test client of the web app with ADMIN_TOKEN set."""
    app = create_app(replace(settings, admin_token=ADMIN_TOKEN), connection=redis_conn)
    if "exports" not in app.blueprints:
        pytest.fail("connector.web.exports.bp is not registered: add "
                    "app.register_blueprint(exports.bp) to connector.web.app.create_app")
    return app.test_client()


BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_the_admin_export_does_not_exist_without_admin_token(settings, redis_conn, sandbox):
    client = create_app(settings, connection=redis_conn).test_client()
    assert client.get("/admin/export/1", headers=BEARER).status_code == 404
    assert sandbox.calls() == []


def test_the_admin_export_asks_for_credentials(admin, sandbox):
    response = admin.get("/admin/export/1")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    wrong = admin.get("/admin/export/1", headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401
    assert sandbox.calls() == []


def test_the_admin_export_gives_the_workbook_the_command_writes(admin, sandbox, ledger, cli,
                                                                tmp_path):
    person_id = kari_with_history(sandbox, ledger)
    response = admin.get(f"/admin/export/{person_id}", headers=BEARER)

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="consents-person-{person_id}.xlsx"')
    assert response.headers["Cache-Control"] == "no-store"
    (tmp_path / "web.xlsx").write_bytes(response.data)
    assert cli(str(person_id), "-o", str(tmp_path / "cli.xlsx")).exit_code == 0
    web, command = load_workbook(tmp_path / "web.xlsx"), load_workbook(tmp_path / "cli.xlsx")
    assert web.sheetnames == command.sheetnames
    for name in ("Samtykker", "Historikk"):
        assert table(web[name]) == table(command[name])
    web_summary = summary_pairs(web["Sammendrag"])
    command_summary = summary_pairs(command["Sammendrag"])
    assert web_summary.pop("Eksportert av") == "admin (ADMIN_TOKEN)"
    for pairs in (web_summary, command_summary):
        pairs.pop("Eksportert (UTC)")
        pairs.pop("Eksportert av", None)
    assert web_summary == command_summary


def test_the_admin_export_as_json_and_with_basic_auth(admin, sandbox, ledger):
    person_id = kari_with_history(sandbox, ledger)
    response = admin.get(f"/admin/export/{person_id}?format=json",
                         auth=("siri", ADMIN_TOKEN))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="consents-person-{person_id}.json"')
    document = json.loads(response.data)
    assert document["exported_by"] == "siri (admin page)"
    assert [c["purpose"]["key"] for c in document["consents"]] == ["STORE", "EMARKETING"]
    assert len(document["history"]) == 5


def test_the_admin_export_answers_404_503_and_400_with_reasons(admin, sandbox):
    missing = admin.get("/admin/export/424242", headers=BEARER)
    assert missing.status_code == 404
    assert "person 424242 does not exist" in missing.text

    person_id = create_person(sandbox)
    sandbox.fault(status=503, times=1, match=f"Person/{person_id}", method="GET", retry_after=30)
    outage = admin.get(f"/admin/export/{person_id}", headers=BEARER)
    assert outage.status_code == 503 and outage.headers["Retry-After"] == "30"
    assert "CRM failed (503)" in outage.text

    assert admin.get(f"/admin/export/{person_id}?format=pdf", headers=BEARER).status_code == 400


# -- LibreOffice --------------------------------------------------------------------------------


def test_libreoffice_opens_the_workbook_and_reads_dates_and_texts(sandbox, ledger, cli,
                                                                   tmp_path):
    soffice = shutil.which("soffice")
    if soffice is None:
        pytest.fail("LibreOffice is not installed (no `soffice` on PATH): install Debian's "
                    "libreoffice-calc-nogui, as `make system-deps` does")
    person_id = kari_with_history(sandbox, ledger)
    workbook = tmp_path / "kari.xlsx"
    assert cli(str(person_id), "-o", str(workbook)).exit_code == 0
    profile = f"-env:UserInstallation=file://{tmp_path / 'lo-profile'}"

    def convert(target: str, folder: str):
        process = subprocess.run([soffice, profile, "--headless", "--convert-to", target,
                                  "--outdir", str(tmp_path / folder), str(workbook)],
                                 capture_output=True, text=True, timeout=120)
        assert process.returncode == 0, process.stderr
        return tmp_path / folder

    pdf = convert("pdf", "pdf") / "kari.pdf"
    assert pdf.exists(), "LibreOffice wrote no PDF"
    body = pdf.read_bytes()
    assert body.startswith(b"%PDF-")
    assert body.count(b"/Type/Page/") + body.count(b"/Type /Page\n") >= 3  # a page per sheet

    # every sheet as CSV (UTF-8, all sheets): what LibreOffice read from each cell
    folder = convert("csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,"
                     "false,-1", "csv")
    import csv
    sheets = {path.stem.split("-", 1)[1]: list(csv.reader(path.open(encoding="utf-8")))
              for path in folder.glob("kari-*.csv")}
    assert set(sheets) == {"Sammendrag", "Samtykker", "Historikk"}
    assert sheets["Historikk"][0][:2] == [text("export", "col.when", NB),
                                          text("export", "col.what", NB)]
    entries = ledger.entries(person_id)
    # dates arrive as dates, shown with the workbook's format (whole seconds)
    assert [row[0] for row in sheets["Historikk"][1:]] == [
        ledger_time(entry["at"]).strftime("%Y-%m-%d %H:%M:%S") for entry in entries]
    crm = sandbox.consents(person_id)
    assert [row[5] for row in sheets["Samtykker"][1:]] == [
        crm[key]["Registered"].replace("T", " ") for key in ("STORE", "EMARKETING")]
    assert sheets["Sammendrag"][0][0] == "Samtykker og historikk: Kari Nordmann"


# -- bulk ------------------------------------------------------------------------------------------


def test_bulk_export_has_one_row_per_person_and_purpose(sandbox, cli, tmp_path, ledger):
    kari = create_person(sandbox)
    connector_writes(sandbox, kari, "STORE", "61F", "USER", "default")
    ledger.append(kari, "consent.recorded", purpose="STORE", legal_basis="61F", source="USER",
                  actor="connector", notice_version="2026-01", token_id="tok-1")
    ada = create_person(sandbox, "Ada", "Lovelace", "ada@example.org", company=None,
                        language=None)
    sandbox.set_consent(ada, "EMARKETING", "61A")
    nils = create_person(sandbox, "Nils", "Nilsen", None, company=None, language=None)
    out = tmp_path / "consents.xlsx"

    result = cli("--all", "-o", str(out), "--by", "DPO")

    assert result.exit_code == 0, result.output
    assert "3 persons, 6 rows" in result.stdout
    book = load_workbook(out)
    assert book.sheetnames == ["Consents", "About this export"]
    header, rows = table(book["Consents"])
    assert header[:2] == ["Person id", "Name"]
    expected = []
    for person_id in (kari, ada, nils):
        crm = sandbox.consents(person_id)
        for purpose in ("STORE", "EMARKETING"):
            expected.append((person_id, purpose, crm.get(purpose, {}).get("LegalBaseKey"),
                             crm.get(purpose, {}).get("ConsentSourceKey")))
    assert [(row[0], row[5], row[7], row[9]) for row in rows] == expected
    assert rows[0][1:4] == ["Kari Nordmann", "kari@example.no", "Nordmann AS"]
    assert rows[0][11] == crm_time(sandbox.consents(kari)["STORE"]["Registered"])
    assert rows[0][12] == CONNECTOR_ASSOCIATE
    recorded = ledger.entries(kari)[0]
    assert rows[0][16:] == [ledger_time(recorded["at"]), "Recorded", "2026-01", "tok-1"]
    assert rows[1][16:] == [None, None, None, None]  # EMARKETING: nothing in the ledger
    about = {row[0]: row[1] for row in book["About this export"].iter_rows(values_only=True)}
    assert (about["Exported by"], about["Persons"], about["Rows (person and purpose)"]) == (
        "DPO", 3, 6)


def test_bulk_export_stopped_by_the_crm_leaves_no_file(sandbox, cli, tmp_path):
    first = create_person(sandbox)
    second = create_person(sandbox, "Ada", "Lovelace", "ada@example.org")
    # reading the second person keeps failing: 3 attempts of the export, each asked again by
    # the client after the pause the CRM asked for; Retry-After 0 keeps the test fast
    reads_of_second = 3 * (1 + PAUSES_PER_CALL)
    sandbox.fault(status=503, times=reads_of_second, match=f"Person/{second}", method="GET",
                  retry_after=0)
    out = tmp_path / "consents.xlsx"

    result = cli("--all", "-o", str(out))

    assert result.exit_code == 1
    assert "export stopped" in result.stderr and f"person {second}" in result.stderr
    assert list(tmp_path.iterdir()) == []
    reads = [c["path"] for c in sandbox.calls() if c["method"] == "GET"]
    assert reads.count(f"/Cust12345/api/v1/Person/{second}") == reads_of_second
    assert f"/Cust12345/api/v1/Person/{first}" in reads


def test_bulk_export_shows_a_progress_bar_on_a_terminal(connector_env, sandbox, tmp_path):
    for index in range(3):
        create_person(sandbox, f"P{index}", "Person", None, company=None, language=None)
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "connector", "export", "--all", "-o",
                                str(tmp_path / "all.xlsx")], cwd=ROOT,
                               env={**os.environ, **connector_env, "COLUMNS": "100"},
                               stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed: the process is done
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    assert wait_for(lambda: process.poll() is not None, timeout=30, what="export to end") \
        is not None
    assert process.returncode == 0, output.decode(errors="replace")
    text_seen = output.decode(errors="replace")
    assert "Exporting persons" in text_seen and "3 persons, 6 rows" in text_seen
