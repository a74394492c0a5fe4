"""The admin area: who may enter (Flask's test client) and the failed-jobs page and
rq-dashboard in a real browser, against a live server, a real worker on its own Redis
database and the sandbox CRM."""

import threading

import pytest
import requests
from rq.job import JobStatus
from rq.registry import FailedJobRegistry
from werkzeug.serving import make_server

from connector.web.app import create_app
from connector.settings import Settings
from tests.conftest import (new_event_id, own_database, start_worker, stop_worker,
                            wait_for)
from connector.keys import ONBOARDING
from connector.queueing import enqueue_event

pytestmark = pytest.mark.integration

DB = 5  # the session's worker listens on db 0; this module's worker on its own database
TOKEN = "admin-token-for-tests-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
NO_SUCH_PERSON = 876543


@pytest.fixture(scope="module")
def own_db(connector_env):
    """The connector's environment on this module's Redis database, and a client of it."""
    return own_database(connector_env, DB, ADMIN_TOKEN=TOKEN)


@pytest.fixture(scope="module")
def env(own_db):
    return own_db[0]


@pytest.fixture(scope="module")
def conn(own_db):
    return own_db[1]


@pytest.fixture(scope="module")
def admin_settings(env) -> Settings:
    return Settings.from_env(env)


@pytest.fixture(scope="module")
def admin_app(admin_settings, conn):
    return create_app(admin_settings, connection=conn)


@pytest.fixture(scope="module")
def admin_worker(env, conn):
    process = start_worker(env)
    yield process
    stop_worker(process)


@pytest.fixture(scope="module")
def admin_server(admin_app):
    server = make_server("127.0.0.1", 0, admin_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def admin_page(browser):
    context = browser.new_context(http_credentials={"username": "sam", "password": TOKEN})
    yield context.new_page()
    context.close()


def failed_job(conn, settings, person_id):
    """Queue an onboarding job and wait until the module's worker failed it."""
    job = enqueue_event(conn, settings, "onboard", person_id, new_event_id())
    registry = FailedJobRegistry(ONBOARDING, connection=conn)
    wait_for(lambda: job.id in registry, what=f"job {job.id} to fail")
    return job


def clear_faults(sandbox):
    requests.delete(f"{sandbox.base_url}/__sandbox/faults", timeout=5).raise_for_status()


# -- who may enter ---------------------------------------------------------------------------

ADMIN_PATHS = ["/admin/", "/admin/jobs/some-job", "/admin/rq/", "/admin/rq/0/data/queues.json",
               "/admin/rq/0/data/workers.json", "/admin/status", "/admin/persons/1",
               "/admin/persons?id=1"]


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_without_admin_token_configured_the_admin_area_does_not_exist(settings, conn, path):
    assert settings.admin_token is None
    client = create_app(settings, connection=conn).test_client()
    assert client.get(path, headers=BEARER).status_code == 404


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_credentials_are_required(admin_app, path):
    client = admin_app.test_client()
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert client.get(path, headers={"Authorization": "Bearer wrong-token-0123456789"}
                      ).status_code == 401
    assert client.get(path, auth=("sam", "wrong-token-0123456789")).status_code == 401


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_plain_http_from_another_machine_is_refused(admin_app, path):
    client = admin_app.test_client()
    remote = {"REMOTE_ADDR": "10.0.0.9"}
    assert client.get(path, headers=BEARER, environ_base=remote).status_code == 403
    over_https = client.get(path, headers=BEARER, environ_base=remote,
                            base_url="https://consent.example.com")
    assert over_https.status_code in (200, 303, 404)  # 404: /admin/jobs/some-job does not exist


def test_rq_dashboard_pages_and_data_answer_with_rq_3(admin_app, conn, admin_settings, sandbox,
                                                      admin_worker):
    job = failed_job(conn, admin_settings, NO_SUCH_PERSON)
    client = admin_app.test_client()
    for path in ["/admin/rq/", "/admin/rq/0/view/workers", "/admin/rq/0/view/jobs",
                 f"/admin/rq/0/view/job/{job.id}"]:
        response = client.get(path, headers=BEARER)
        assert response.status_code == 200, path
        directives = dict(d.strip().split(" ", 1)
                          for d in response.headers["Content-Security-Policy"].split(";"))
        assert "'sha256-" in directives["script-src"], path  # its inline script, by hash
        assert "unsafe-inline" not in directives["script-src"], path
    queues = client.get("/admin/rq/0/data/queues.json", headers=BEARER).get_json()["queues"]
    assert {q["name"]: q["failed_job_registry_count"] for q in queues}[ONBOARDING] >= 1
    failed = client.get(f"/admin/rq/0/data/jobs/{ONBOARDING}/failed/8/asc/1.json",
                        headers=BEARER).get_json()
    assert job.id in [j["id"] for j in failed["jobs"]]
    details = client.get(f"/admin/rq/0/data/job/{job.id}.json", headers=BEARER).get_json()
    assert details["status"] == "failed" and "PersonNotFoundError" in details["exc_info"]
    workers = client.get("/admin/rq/0/data/workers.json", headers=BEARER).get_json()["workers"]
    assert len(workers) == 1 and {ONBOARDING, "preferences"} <= set(workers[0]["queues"])

    # Changes through rq-dashboard would not reach the ledger: refused, even with CSRF passed.
    for path in (f"/admin/rq/requeue/{ONBOARDING}", f"/admin/rq/job/{job.id}/requeue"):
        assert client.get(path, headers=BEARER).status_code in (403, 405)
    assert job.id in FailedJobRegistry(ONBOARDING, connection=conn)


def test_a_retry_without_csrf_token_changes_nothing(admin_app, conn, admin_settings, sandbox,
                                                     admin_worker, ledger):
    job = failed_job(conn, admin_settings, NO_SUCH_PERSON + 1)
    client = admin_app.test_client()
    response = client.post(f"/admin/jobs/{job.id}/retry", headers=BEARER)
    assert response.status_code == 400
    assert job.id in FailedJobRegistry(ONBOARDING, connection=conn)
    assert not ledger.entries(NO_SUCH_PERSON + 1)


# -- in the browser --------------------------------------------------------------------------


def test_failed_job_is_listed_with_its_reason_and_retried_from_the_page(
        admin_page, admin_server, conn, admin_settings, sandbox, admin_worker, output_dir, ledger):
    person_id = sandbox.create_person("Reto", "Retry", None)
    sandbox.fault(status=400, times=1, match=f"Person/{person_id}/Consent", method="PUT")
    job = failed_job(conn, admin_settings, person_id)
    clear_faults(sandbox)  # the CRM admin fixed the cause

    admin_page.goto(f"{admin_server}/admin/")
    row = admin_page.locator("tr", has=admin_page.get_by_role("link", name=job.id))
    cells = row.locator("td").all_inner_texts()
    assert cells[1:4] == [str(person_id), "onboarding", "1"]
    assert cells[5] == (f"CRM refused consent STORE for person {person_id} (400): "
                        f"Injected fault: HTTP 400")
    admin_page.screenshot(path=output_dir / "admin-failed-jobs.png", full_page=True)

    row.get_by_role("link", name=job.id).click()
    assert admin_page.get_by_role("heading", level=1).inner_text() == f"Job {job.id}"
    assert "Traceback (most recent call last)" in admin_page.locator("pre").inner_text()
    admin_page.screenshot(path=output_dir / "admin-job.png", full_page=True)
    admin_page.go_back()

    row.get_by_role("button", name=f"Retry job {job.id}").click()

    assert "is queued again" in admin_page.get_by_role("status").inner_text()
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, what="the retried job")
    assert sandbox.consents(person_id)["STORE"]["LegalBaseKey"] == "61F"
    entries = ledger.entries(person_id)
    assert [e["action"] for e in entries] == ["support.retry", "consent.recorded",
                                               "person.onboarded"]
    assert (entries[0]["job_id"], entries[0]["actor"]) == (job.id, "sam (admin page)")
    admin_page.reload()
    assert admin_page.get_by_role("link", name=job.id).count() == 0


def test_retry_all_requeues_every_failed_job(admin_page, admin_server, conn, admin_settings,
                                             sandbox, admin_worker, ledger):
    first = failed_job(conn, admin_settings, NO_SUCH_PERSON + 2)
    second = failed_job(conn, admin_settings, NO_SUCH_PERSON + 3)
    admin_page.goto(f"{admin_server}/admin/")
    failed_before = len(FailedJobRegistry(ONBOARDING, connection=conn))

    admin_page.get_by_role("button", name=f"Retry all {failed_before} failed jobs").click()

    assert f"{failed_before} failed job(s) queued again" in admin_page.get_by_role(
        "status").inner_text()
    for job, person_id in ((first, NO_SUCH_PERSON + 2), (second, NO_SUCH_PERSON + 3)):
        assert [e["action"] for e in ledger.entries(person_id)] == ["support.retry"]
        # the person is still gone: the job runs again and fails again, one attempt more
        wait_for(lambda: len(job.get_meta(refresh=True).get("attempts", [])) == 2,
                 what="the job's second attempt")


def test_rq_dashboard_works_in_the_browser_under_its_csp(admin_page, admin_server, conn,
                                                         admin_settings, sandbox, admin_worker):
    """Its scripts run (they fill its tables) while markup smuggled into job data does not."""
    job = failed_job(conn, admin_settings, NO_SUCH_PERSON + 4)
    job.meta["reason"] = '<img src="/no-such-image" onerror="document.title=\'xss\'">'
    job.save_meta()
    problems, blocked = [], []
    admin_page.on("console", lambda m: m.type == "error" and (
        blocked if "Content Security Policy" in m.text else problems).append(m.text))
    admin_page.on("pageerror", lambda e: problems.append(str(e)))
    admin_page.on("response", lambda r: r.status >= 400 and not r.url.endswith("/favicon.ico")
                  and problems.append(f"{r.status} {r.url}"))  # its icon link points at /static

    admin_page.goto(f"{admin_server}/admin/rq/")
    admin_page.locator("tr", has_text=ONBOARDING).first.wait_for()  # drawn by its script
    admin_page.goto(f"{admin_server}/admin/rq/0/view/workers")
    admin_page.locator("tr", has_text="preferences").first.wait_for()
    admin_page.goto(f"{admin_server}/admin/rq/0/view/job/{job.id}")
    admin_page.get_by_text("PersonNotFoundError").first.wait_for()
    admin_page.wait_for_timeout(300)

    assert admin_page.title() != "xss"
    assert any("inline event handler" in text for text in blocked), blocked
    assert [p for p in problems if "no-such-image" not in p  # the smuggled image
            and not p.startswith("Failed to load resource")] == []  # (logged as responses)


def test_support_finds_a_person_and_sees_their_consents_ledger_jobs_and_export(
        admin_page, admin_server, conn, admin_settings, sandbox, admin_worker, output_dir):
    person_id = sandbox.create_person("Petra", "Lookup", "petra.lookup@example.org")
    job = enqueue_event(conn, admin_settings, "onboard", person_id, new_event_id())
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, what="onboarding")
    failed = failed_job(conn, admin_settings, NO_SUCH_PERSON + 7)

    admin_page.goto(f"{admin_server}/admin/")
    admin_page.get_by_label("Person id").fill(str(person_id))
    admin_page.get_by_role("button", name="Find").click()

    assert admin_page.get_by_role("heading", level=1).inner_text() == (
        f"Person {person_id}: Petra Lookup")
    consents = admin_page.get_by_role("table", name="Each purpose as the CRM holds it now")
    rows = consents.locator("tbody tr").all_inner_texts()
    assert rows[0].startswith("Sales and service STORE\tactive\tLegitimate interest")
    ledger_rows = admin_page.get_by_role("table", name="Every recorded change, oldest first")
    assert "consent.recorded" in ledger_rows.inner_text()
    assert "mail.sent" in ledger_rows.inner_text()
    assert admin_page.get_by_text("No job of this person is waiting").count() == 1
    with admin_page.expect_download() as download:
        admin_page.get_by_role("link", name="Excel (.xlsx)").click()
    assert download.value.suggested_filename == f"consents-person-{person_id}.xlsx"
    admin_page.screenshot(path=output_dir / "admin-person.png", full_page=True)

    admin_page.goto(f"{admin_server}/admin/persons/{NO_SUCH_PERSON + 7}")  # gone from the CRM
    assert "does not exist in the CRM" in admin_page.get_by_role("status").first.inner_text()
    assert admin_page.get_by_role("button", name=f"Retry job {failed.id}").count() == 1


def test_the_status_page_says_what_the_status_command_says(admin_page, admin_server,
                                                           admin_worker, output_dir):
    admin_page.goto(f"{admin_server}/admin/")
    admin_page.get_by_role("link", name="Status").click()

    assert admin_page.get_by_role("heading", level=1).inner_text() == "Status"
    headings = admin_page.get_by_role("heading", level=2).all_inner_texts()
    assert headings[:2] == ["Queues and workers", "Purposes config"]
    queues = admin_page.get_by_role("region", name="Queues and workers").inner_text()
    assert "workers      1 alive" in queues
    assert admin_page.get_by_role("status").first.inner_text().startswith(
        ("All is well", "Needs attention: "))
    admin_page.screenshot(path=output_dir / "admin-status.png", full_page=True)


def test_json_routes_answer_errors_in_json_and_pages_in_html(admin_app):
    client = admin_app.test_client()

    missing = client.get(f"/admin/export/{NO_SUCH_PERSON}?format=json", headers=BEARER)
    not_a_number = client.get("/admin/export/abc?format=json", headers=BEARER)
    asked_for_json = client.get("/admin/nowhere", headers={**BEARER,
                                                           "Accept": "application/json"})
    from_a_browser = client.get("/admin/nowhere", headers={**BEARER, "Accept": "text/html"})

    assert (missing.status_code, missing.json["error"]) == (404, "not_found")
    assert f"person {NO_SUCH_PERSON} does not exist in the CRM" in missing.json["message"]
    assert (not_a_number.status_code, not_a_number.json["error"]) == (404, "not_found")
    assert asked_for_json.status_code == 404 and asked_for_json.is_json
    assert from_a_browser.status_code == 404 and from_a_browser.mimetype == "text/html"


def test_admin_pages_have_no_accessibility_violations(admin_page, admin_server, conn,
                                                      admin_settings, sandbox, admin_worker):
    from axe_playwright_python.sync_playwright import Axe

    job = failed_job(conn, admin_settings, NO_SUCH_PERSON + 5)
    results = {}
    admin_page.goto(f"{admin_server}/admin/")
    results["jobs"] = Axe().run(admin_page)
    admin_page.goto(f"{admin_server}/admin/jobs/{job.id}")
    results["job"] = Axe().run(admin_page)
    admin_page.goto(f"{admin_server}/admin/persons/{NO_SUCH_PERSON + 5}")
    results["person"] = Axe().run(admin_page)
    admin_page.goto(f"{admin_server}/admin/status")
    results["status"] = Axe().run(admin_page)
    for name, result in results.items():
        assert result.violations_count == 0, f"{name}: {result.generate_report()}"
