"""The personal page in a real browser (Debian's chromium via Playwright), opened from the
link in a real confirmation mail, against the connector, a real worker and the sandbox CRM."""

import io
import json
import re
import time
from datetime import timedelta
from urllib.parse import urlsplit

import itsdangerous.timed
import pytest
from openpyxl import load_workbook
from rq.job import JobStatus

from connector import i18n
from connector.config import load_config
from connector.links import LinkSigner
from tests.conftest import ROOT, consent_given_days_ago, new_event_id, wait_for
from connector.queueing import enqueue_event
from connector.services import build_services
from connector.expiry_pass import expiry_pass
from connector.times import now, parse_iso

pytestmark = pytest.mark.integration
CONFIG = load_config(ROOT / "config" / "purposes.yaml")
NOTICE = CONFIG.purposes["e_marketing"].notice


@pytest.fixture
def onboarded(sandbox, worker, redis_conn, settings, smtp_server, live_server):
    """Create a person in the CRM, let the worker onboard them, return (person id, the link
    from their mail pointed at the live server)."""
    def onboard(first="Ada", email="ada.page@example.org", language=None):
        person_id = sandbox.create_person(first, "Tester", email, language=language)
        job = enqueue_event(redis_conn, settings, "onboard", person_id, new_event_id())
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, what="onboarding")
        return person_id, live_server + link_in_mail(smtp_server, email)
    return onboard


def link_in_mail(smtp_server, email, index=0) -> str:
    mail = wait_for(lambda: len(smtp_server.sink.to(email)) > index and smtp_server.sink.to(email),
                    what="the mail")[index]
    text = mail.get_body(("plain",)).get_content()
    return re.search(r"https://consent\.example\.com(/p/[\w.-]+)", text).group(1)


def crm_row(sandbox, person_id, purpose, legal_basis):
    """Wait until the CRM holds ``legal_basis`` for ``purpose``; return the row."""
    def row():
        found = sandbox.consents(person_id).get(purpose)
        return found if found and found["LegalBaseKey"] == legal_basis else None
    return wait_for(row, what=f"{purpose} on {legal_basis} in the CRM")


def test_page_shows_purposes_legal_bases_sources_and_the_consent_text(onboarded, page,
                                                                      live_server):
    _, url = onboarded()
    requests_seen = []
    page.on("request", lambda request: requests_seen.append(request.url))

    response = page.goto(url)

    assert response.status == 200
    assert page.get_by_role("heading", level=1).inner_text() == "Hello Ada"
    store = page.get_by_role("region", name="Sales and service")
    assert "Active" in store.inner_text() and "Legitimate interest" in store.inner_text()
    assert "Registered by our staff" in store.inner_text()
    assert store.get_by_label("Allow this").is_checked()
    marketing = page.get_by_role("region", name="E-marketing")
    assert "Not given" in marketing.inner_text()
    assert marketing.locator("blockquote p").inner_text() == NOTICE.text["en"]
    assert f"version {NOTICE.version}" in marketing.locator("blockquote footer").inner_text()
    assert not marketing.get_by_label("Yes, I agree").is_checked()
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert all(urlsplit(u).netloc == urlsplit(live_server).netloc for u in requests_seen)


def test_giving_then_withdrawing_e_marketing_reaches_the_crm_with_proof(
        onboarded, page, sandbox, redis_conn, settings, output_dir, ledger):
    person_id, url = onboarded()
    page.goto(url)
    page.get_by_role("region", name="E-marketing").get_by_label("Yes, I agree").check()
    page.get_by_role("button", name="Save my choices").click()

    assert page.get_by_role("status").first.inner_text().startswith("Thank you")
    row = crm_row(sandbox, person_id, "EMARKETING", "61A")
    assert row["ConsentSourceKey"] == "WEBFORM"
    assert "personal page" in row["Comment"] and NOTICE.version in row["Comment"]
    page.screenshot(path=output_dir / "person-page-saved.png", full_page=True)

    changes = [e for e in ledger.entries(person_id) if e["action"] == "consent.changed"]
    assert len(changes) == 1
    proof = changes[0]
    assert (proof["purpose"], proof["legal_basis"], proof["actor"]) == ("EMARKETING", "61A", "person")
    assert proof["notice_version"] == NOTICE.version
    signer = LinkSigner(settings.secret_keys, settings.link_max_age_days)
    assert proof["token_id"] == signer.read(url.rsplit("/", 1)[1]).token_id
    assert proof["ip"].startswith("127.0.0.0/24 #") and "127.0.0.1" not in proof["ip"]
    assert "Chrome" in proof["user_agent"]

    page.reload()
    marketing = page.get_by_role("region", name="E-marketing")
    assert "Active" in marketing.inner_text()
    marketing.get_by_label("Yes, I agree").uncheck()
    page.get_by_role("button", name="Save my choices").click()

    withdrawn = crm_row(sandbox, person_id, "EMARKETING", "WITHDRAWN")
    assert "withdrawn" in withdrawn["Comment"].lower()
    page.reload()
    assert "Withdrawn" in page.get_by_role("region", name="E-marketing").inner_text()


def status_line(page, purpose: str):
    return page.get_by_role("region", name=purpose).locator("dd[data-status]")


def test_a_save_the_job_finishes_at_once_shows_its_result_in_the_status_line(onboarded, page,
                                                                             sandbox):
    person_id, url = onboarded()
    page.goto(url)
    page.get_by_role("region", name="E-marketing").get_by_label("Yes, I agree").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Save my choices").click()

    assert status_line(page, "E-marketing").inner_text() == "Active"  # no reload
    assert sandbox.consents(person_id)["EMARKETING"]["LegalBaseKey"] == "61A"
    assert "being saved" not in page.content()


def test_a_slow_save_says_what_is_being_saved_in_the_status_line_then_the_result(
        onboarded, page, sandbox):
    person_id, url = onboarded()
    page.goto(url)
    sandbox.fault(delay=5, times=1, match="/Consent/STORE", method="PUT")
    page.get_by_role("region", name="Sales and service").get_by_label("Allow this").uncheck()
    with page.expect_navigation():
        page.get_by_role("button", name="Save my choices").click()

    status = status_line(page, "Sales and service")
    assert status.inner_text() == "Objection being saved…"
    assert status.get_attribute("data-status") == "saving_objection"
    assert not page.get_by_role("region", name="Sales and service").get_by_label(
        "Allow this").is_checked()
    crm_row(sandbox, person_id, "STORE", "WITHDRAWN")
    wait_for(lambda: page.reload() and status_line(page, "Sales and service").inner_text()
             == "Withdrawn", what="the page to show the objection saved")


def test_objecting_to_sales_and_service_is_recorded_as_withdrawn(onboarded, page, sandbox):
    person_id, url = onboarded()
    page.goto(url)
    page.get_by_role("region", name="Sales and service").get_by_label("Allow this").uncheck()
    page.get_by_role("button", name="Save my choices").click()
    row = crm_row(sandbox, person_id, "STORE", "WITHDRAWN")
    assert "bjection" in row["Comment"]


def test_the_form_works_with_the_keyboard_alone(onboarded, page, sandbox):
    person_id, url = onboarded()
    page.goto(url)
    checkbox = page.get_by_role("region", name="E-marketing").get_by_label("Yes, I agree")
    for _ in range(30):  # Tab until the consent checkbox has the focus
        page.keyboard.press("Tab")
        if checkbox.evaluate("element => element === document.activeElement"):
            break
    page.keyboard.press("Space")
    assert checkbox.is_checked()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the submit button follows the last checkbox
    crm_row(sandbox, person_id, "EMARKETING", "61A")


def test_a_post_without_csrf_token_changes_nothing(onboarded, page, sandbox, redis_conn, ledger):
    person_id, url = onboarded()
    page.goto(url)
    response = page.request.post(url, form={"purpose": "e_marketing", "choice:e_marketing": "on",
                                            "notice:e_marketing": NOTICE.version})
    assert response.status == 400
    assert "This form has expired" in response.text()
    time.sleep(1)  # give a wrongly queued job the time to show up
    assert "EMARKETING" not in sandbox.consents(person_id)
    assert not [e for e in ledger.entries(person_id) if e["action"] == "consent.changed"]


def test_repeated_identical_posts_are_harmless(onboarded, page, sandbox, redis_conn, ledger):
    person_id, url = onboarded()
    page.goto(url)
    form = {"csrf_token": page.locator("input[name=csrf_token]").first.input_value(),
            "purpose": "e_marketing", "choice:e_marketing": "on", "notice:e_marketing": NOTICE.version}
    for _ in range(3):
        assert page.request.post(url, form=form).status == 200  # after the 303 to the page
    crm_row(sandbox, person_id, "EMARKETING", "61A")
    wait_for(lambda: not redis_conn.keys("connector:pending:*"), what="the jobs to finish")
    puts = [c for c in sandbox.calls() if c["method"] == "PUT" and "EMARKETING" in c["path"]]
    assert len(puts) == 1
    changes = [e for e in ledger.entries(person_id) if e["action"] == "consent.changed"]
    assert len(changes) == 1


def test_get_changes_nothing(onboarded, page, sandbox):
    person_id, url = onboarded()
    before = len(sandbox.calls())
    for _ in range(3):
        page.goto(url)
    assert not [c for c in sandbox.calls()[before:] if c["method"] != "GET"]


def test_a_tampered_link_reveals_nothing(onboarded, page):
    _, url = onboarded("Tamper", "tamper.page@example.org")
    head, _, signature = url.rpartition(".")
    response = page.goto(f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}")
    assert response.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "This link is not valid"
    assert "Tamper" not in page.content()


def test_an_expired_link_offers_a_fresh_one_by_mail(onboarded, page, settings, smtp_server,
                                                    live_server, monkeypatch, sandbox):
    person_id, _ = onboarded("Late", "late.page@example.org")
    real_time = time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real_time() - 30 * 86400)
    old = LinkSigner(settings.secret_keys, settings.link_max_age_days).make_link(live_server,
                                                                                 person_id)
    monkeypatch.undo()

    response = page.goto(old.url)
    assert response.status == 410
    assert page.get_by_role("heading", level=1).inner_text() == "This link has expired"
    assert "Late" not in page.content()
    page.get_by_role("button", name="Send me a new link").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Check your inbox"

    fresh = live_server + link_in_mail(smtp_server, "late.page@example.org", index=1)
    assert page.goto(fresh).status == 200
    assert page.get_by_role("heading", level=1).inner_text() == "Hello Late"


def test_a_tampered_link_asking_for_a_fresh_one_gets_the_same_answer_and_no_mail(
        onboarded, page, smtp_server):
    _, url = onboarded("Probe", "probe.page@example.org")
    page.goto(url)
    csrf = page.locator("input[name=csrf_token]").first.input_value()
    response = page.request.post(url[:-3] + "xyz/renew", form={"csrf_token": csrf})
    assert response.status == 200 and "Check your inbox" in response.text()
    time.sleep(1)
    assert len(smtp_server.sink.to("probe.page@example.org")) == 1  # only the first mail


def test_saving_is_rate_limited_per_link(onboarded, page):
    _, url = onboarded("Busy", "busy.page@example.org")
    page.goto(url)
    form = {"csrf_token": page.locator("input[name=csrf_token]").first.input_value(),
            "purpose": "e_marketing", "notice:e_marketing": NOTICE.version}
    statuses = [page.request.post(url, form=form, max_redirects=0).status for _ in range(11)]
    assert statuses[:10] == [303] * 10
    assert statuses[10] == 429


def test_names_from_the_crm_are_shown_as_text_not_markup(onboarded, page):
    name = '<img src=x onerror="document.title=\'pwned\'">'
    _, url = onboarded(name, "markup.page@example.org")
    page.goto(url)
    assert page.get_by_role("heading", level=1).inner_text() == f"Hello {name}"
    assert page.title() != "pwned"
    assert page.locator("main img").count() == 0


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_language_on_a_phone(onboarded, browser, language, output_dir):
    _, url = onboarded("Kari", f"kari.{language}@example.org")
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    phone = context.new_page()
    phone.goto(f"{url}?lang={language}")
    assert phone.get_by_role("heading", level=1).inner_text() == i18n.text(
        "page", "hello", language, name="Kari")
    assert phone.locator("html").get_attribute("lang") == language
    assert phone.get_by_role("button", name=i18n.text("page", "save", language)).is_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    phone.screenshot(path=output_dir / f"person-page-{language}.png", full_page=True)
    context.close()


def test_the_page_names_the_controller_and_the_persons_rights_in_every_language(onboarded,
                                                                               page):
    _, url = onboarded("Kari", "kari.rights@example.org")
    controller = CONFIG.controller
    for language in i18n.LANGUAGES:
        page.goto(f"{url}?lang={language}")
        rights = i18n.texts("rights", language)
        region = page.get_by_role("region", name=rights["heading_rights"])
        said = region.inner_text()
        for right in i18n.RIGHTS:
            assert rights[right] in said, (language, right)
        assert rights["complaint"].format(authority=controller.supervisory_authority.name,
                                          url=controller.supervisory_authority.url) in said
        who = page.get_by_role("region", name=rights["heading_controller"])
        assert controller.name in who.inner_text() and controller.address in who.inner_text()
        assert who.get_by_role("link", name=rights["privacy_statement"]).get_attribute(
            "href") == controller.privacy_statement_url
        assert who.get_by_role("link", name=controller.dpo.email).is_visible()
        store = page.get_by_role("region", name=CONFIG.purposes["sales_and_service"].name[
            language])
        assert CONFIG.purposes["sales_and_service"].retention[language] in store.inner_text()


def test_the_person_downloads_their_own_consents_and_history_as_xlsx_and_json(onboarded, page):
    person_id, url = onboarded("Kari", "kari.copy@example.org")
    page.goto(f"{url}?lang=nb")
    copy = page.get_by_role("list", name=i18n.text("page", "copy_heading", "nb"))

    with page.expect_download() as xlsx:
        copy.get_by_role("link", name=i18n.text("page", "copy_xlsx", "nb")).click()
    assert xlsx.value.suggested_filename == f"consents-person-{person_id}.xlsx"
    workbook = load_workbook(io.BytesIO(open(xlsx.value.path(), "rb").read()))
    cells = {str(cell.value) for sheet in workbook for row in sheet.iter_rows()
             for cell in row if cell.value is not None}
    assert "Salg og service" in cells and i18n.text("page", "exported_by_person", "nb") in cells

    with page.expect_download() as document:
        copy.get_by_role("link", name=i18n.text("page", "copy_json", "nb")).click()
    exported = json.loads(open(document.value.path(), encoding="utf-8").read())
    assert exported["person"]["id"] == person_id
    assert [c["purpose"]["key"] for c in exported["consents"]][:1] == ["STORE"]
    assert {e["action"] for e in exported["history"]} >= {"consent.recorded", "mail.sent"}


def test_the_person_asks_for_a_copy_by_mail_and_gets_one_with_the_workbook(
        onboarded, page, smtp_server, ledger):
    person_id, url = onboarded("Kari", "kari.copymail@example.org")
    page.goto(f"{url}?lang=de")
    button = page.get_by_role("button", name=i18n.text("page", "copy_mail_button", "de"))
    button.click()
    assert page.get_by_role("heading", level=1).inner_text() == i18n.text(
        "page", "copy_sent_title", "de")

    mails = wait_for(lambda: len(smtp_server.sink.to("kari.copymail@example.org")) > 1
                     and smtp_server.sink.to("kari.copymail@example.org"), what="the copy")
    copy = mails[1]
    assert copy["Subject"] == i18n.text("mail", "copy_subject", "de")
    attachment = next(copy.iter_attachments())
    assert attachment.get_filename() == f"consents-person-{person_id}.xlsx"
    workbook = load_workbook(io.BytesIO(attachment.get_content()))
    cells = {str(cell.value) for sheet in workbook for row in sheet.iter_rows()
             for cell in row if cell.value is not None}
    assert "Vertrieb und Service" in cells
    wait_for(lambda: [e for e in ledger.entries(person_id) if e.get("mail") == "copy"],
             what="the copy's mail.sent entry")

    page.goto(f"{url}?lang=de")  # asked again at once: the same answer, no second copy
    page.get_by_role("button", name=i18n.text("page", "copy_mail_button", "de")).click()
    assert page.get_by_role("heading", level=1).inner_text() == i18n.text(
        "page", "copy_sent_title", "de")
    time.sleep(2)
    assert len(smtp_server.sink.to("kari.copymail@example.org")) == 2


def test_the_own_export_needs_a_valid_link_and_is_rate_limited(onboarded, page):
    _, url = onboarded("Copy", "copy.limit@example.org")
    tampered = page.request.get(url[:-3] + "abc/export")
    assert tampered.status == 404 and "not valid" in tampered.text()
    first = page.request.get(f"{url}/export?format=json")
    assert first.status == 200 and first.headers["cache-control"] == "no-store"
    assert page.request.get(f"{url}/export?format=pdf").status == 404
    statuses = [page.request.get(f"{url}/export").status for _ in range(9)]
    assert statuses[:8] == [200] * 8 and statuses[8] == 429  # 10 an hour per link, all counted


def test_a_consent_given_to_an_older_text_says_so_above_the_text_now(onboarded, page, sandbox,
                                                                      settings, ledger):
    person_id, url = onboarded("Kari", "kari.older@example.org")
    services = build_services(settings)
    try:  # she agreed to E-marketing on an earlier text, before this one
        services.crm.set_consent(person_id, "EMARKETING", "WEBFORM", "61A", "given on the page")
    finally:
        services.database.dispose()
    ledger.append(person_id, "consent.changed", purpose="EMARKETING", legal_basis="61A",
                  source="WEBFORM", actor="person", notice_version="2025-06")

    page.goto(url)
    marketing = page.get_by_role("region", name="E-marketing")
    note = marketing.get_by_role("note")
    assert note.inner_text() == i18n.text("page", "text_changed", "en", version="2025-06",
                                          current=NOTICE.version)
    assert i18n.text("page", "text_now", "en") in marketing.inner_text()
    assert marketing.get_by_label("Yes, I agree").is_checked()  # her consent stands


def test_a_consent_due_for_renewal_is_renewed_on_the_page_and_its_term_starts_again(
        onboarded, page, sandbox, settings, ledger, evidence_database, output_dir):
    person_id, url = onboarded("Rita", "rita.renew@example.org")
    consent_given_days_ago(sandbox, evidence_database, person_id, 710)  # lapses in ~20 days
    expiry = CONFIG.purposes["e_marketing"].expiry
    valid_for = expiry.valid_for
    term_ends = valid_for.after(parse_iso(ledger.entries(person_id)[-1]["at"]))
    # no re-permission mail yet: whenever it goes, it gives the person remind_before's notice
    ends = max(term_ends, expiry.remind_before.after(now())).date().isoformat()

    page.goto(url)
    marketing = page.get_by_role("region", name="E-marketing")
    assert marketing.locator("[data-valid-until]").inner_text() == ends
    assert marketing.get_by_role("note").inner_text() == i18n.text("page", "renew_due", "en",
                                                                   date=ends)
    page.screenshot(path=output_dir / "person-page-renewal.png", full_page=True)
    marketing.get_by_role("button", name="Renew my consent").click()

    assert page.get_by_role("status").first.inner_text().startswith("Thank you")
    renewed = wait_for(lambda: [entry for entry in ledger.entries(person_id)
                                if entry.get("comment", "").startswith("Consent renewed")],
                       what="the renewal in the ledger")
    assert (renewed[0]["legal_basis"], renewed[0]["previous_legal_basis"]) == ("61A", "61A")
    assert renewed[0]["notice_version"] == NOTICE.version and renewed[0]["token_id"]
    assert "renewed" in crm_row(sandbox, person_id, "EMARKETING", "61A")["Comment"]
    page.reload()
    marketing = page.get_by_role("region", name="E-marketing")
    assert marketing.locator("[data-valid-until]").inner_text() == valid_for.after(
        parse_iso(renewed[0]["at"])).date().isoformat()
    assert marketing.get_by_role("button", name="Renew my consent").count() == 0
    services = build_services(settings)
    try:  # past the old term's end, the renewed consent is not touched
        summary = expiry_pass(services, now() + timedelta(days=60))
    finally:
        services.database.dispose()
    assert (summary["remind"], summary["withdraw"], summary["queued"]) == (0, 0, 0)


def test_renewing_needs_the_form_token_a_consent_purpose_the_text_shown_and_a_consent(
        onboarded, page, sandbox, ledger):
    person_id, url = onboarded("Rolf", "rolf.renew@example.org")
    page.goto(url)
    token = page.locator("input[name=csrf_token]").first.input_value()
    renew = url + "/renew-consent"
    form = {"csrf_token": token, "purpose": "e_marketing",
            "notice:e_marketing": NOTICE.version}

    assert page.request.post(renew, form={**form, "csrf_token": ""}).status == 400
    assert page.request.post(renew, form={**form, "purpose": "sales_and_service"}).status == 404
    assert page.request.post(renew, form={**form, "purpose": "nothing"}).status == 404
    older = page.request.post(renew, form={**form, "notice:e_marketing": "2020-01"})
    assert older.status == 200 and i18n.text("page", "notice_changed", "en") in older.text()
    not_given = page.request.post(renew, form=form)  # nothing to renew: no consent yet
    assert not_given.status == 200 and not_given.url.endswith("saved=1")
    time.sleep(1)  # give a wrongly queued job the time to show up
    assert "EMARKETING" not in sandbox.consents(person_id)
    assert not [e for e in ledger.entries(person_id) if e["action"] == "consent.changed"]


def test_the_persons_own_language_is_used_without_asking(onboarded, page):
    _, url = onboarded("Kari", "kari.norsk@example.org", language="Norwegian")
    page.goto(url)
    assert page.get_by_role("heading", level=1).inner_text() == i18n.text(
        "page", "hello", "nb", name="Kari")


def test_a_change_made_in_the_crm_meanwhile_is_shown(onboarded, page, sandbox):
    person_id, url = onboarded("Meanwhile", "meanwhile.page@example.org")
    page.goto(url)
    assert "Not given" in page.get_by_role("region", name="E-marketing").inner_text()
    sandbox.set_consent(person_id, "EMARKETING", "61A", source="USER")  # a CRM user, by phone
    page.reload()
    marketing = page.get_by_role("region", name="E-marketing")
    assert "Active" in marketing.inner_text()
    assert marketing.get_by_label("Yes, I agree").is_checked()


@pytest.mark.parametrize("language", ["en", "de"])
def test_no_accessibility_violations(onboarded, page, language, settings, live_server):
    """axe-core (WCAG 2 A/AA rules and best practices) finds nothing on the page, after a
    save, and on the expired-link page."""
    from axe_playwright_python.sync_playwright import Axe

    person_id, url = onboarded("Access", f"access.{language}@example.org")
    page.goto(f"{url}?lang={language}")
    pages = {"page": Axe().run(page)}
    page.get_by_role("button", name=i18n.text("page", "save", language)).click()
    pages["saved"] = Axe().run(page)
    head, _, signature = url.rpartition(".")
    page.goto(f"{head}.x{signature[1:]}")
    pages["invalid link"] = Axe().run(page)
    for name, results in pages.items():
        assert results.violations_count == 0, f"{name}: {results.generate_report()}"


def test_a_save_against_an_older_consent_text_is_not_counted(onboarded, page, sandbox):
    person_id, url = onboarded("Older", "older.page@example.org")
    page.goto(url)
    form = {"csrf_token": page.locator("input[name=csrf_token]").first.input_value(),
            "purpose": "e_marketing", "choice:e_marketing": "on", "notice:e_marketing": "2020-01"}
    response = page.request.post(url, form=form)
    assert response.status == 200
    assert i18n.text("page", "notice_changed", "en") in response.text()
    time.sleep(1)
    assert "EMARKETING" not in sandbox.consents(person_id)
