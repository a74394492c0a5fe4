"""The personal page in a real browser, opened from the link in a real confirmation mail."""

import re
from urllib.parse import urlsplit

import pytest
from rq.job import JobStatus

from tests.conftest import new_event_id, wait_for
from workers.queues import enqueue_onboarding

pytestmark = pytest.mark.integration


def onboard_and_get_link(sandbox, redis_conn, settings, smtp_server, live_server, first, email,
                         language=None) -> str:
    """Create a person in the CRM, let the worker onboard them, return their mail's link
    pointed at the live server."""
    person_id = sandbox.create_person(first, "Tester", email, language=language)
    job = enqueue_onboarding(redis_conn, settings, person_id, new_event_id())
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, what="onboarding")
    mail = wait_for(lambda: smtp_server.sink.to(email), what="the confirmation mail")[0]
    text = mail.get_body(("plain",)).get_content()
    link = re.search(r"https://consent\.example\.com(/p/[\w.-]+)", text).group(1)
    return live_server + link


def test_link_from_the_mail_shows_the_persons_purposes(sandbox, worker, redis_conn, settings,
                                                       smtp_server, live_server, page, output_dir):
    url = onboard_and_get_link(sandbox, redis_conn, settings, smtp_server, live_server,
                               "Ada", "ada.page@example.org")
    requests_seen = []
    page.on("request", lambda request: requests_seen.append(request.url))

    response = page.goto(url)

    assert response.status == 200
    assert page.get_by_role("heading", level=1).inner_text() == "Hello Ada"
    store = page.get_by_role("row", name=re.compile("Sales and service"))
    assert "Active" in store.inner_text()
    assert "Legitimate interest" in store.inner_text()
    assert "Registered by our staff" in store.inner_text()
    assert "Not given" in page.get_by_role("row", name=re.compile("E-marketing")).inner_text()
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert all(urlsplit(u).netloc == urlsplit(live_server).netloc for u in requests_seen)
    page.screenshot(path=output_dir / "person-page.png", full_page=True)


def test_page_fits_a_phone(sandbox, worker, redis_conn, settings, smtp_server, live_server,
                           browser, output_dir):
    url = onboard_and_get_link(sandbox, redis_conn, settings, smtp_server, live_server,
                               "Phone", "phone.page@example.org")
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    phone = context.new_page()
    phone.goto(url)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    assert phone.get_by_text("Legitimate interest").first.is_visible()
    phone.screenshot(path=output_dir / "person-page-phone.png", full_page=True)
    context.close()


def test_names_from_the_crm_are_shown_as_text_not_markup(sandbox, worker, redis_conn, settings,
                                                        smtp_server, live_server, page):
    name = '<img src=x onerror="document.title=\'pwned\'">'
    url = onboard_and_get_link(sandbox, redis_conn, settings, smtp_server, live_server,
                               name, "markup.page@example.org")
    page.goto(url)
    assert page.get_by_role("heading", level=1).inner_text() == f"Hello {name}"
    assert page.title() != "pwned"
    assert page.locator("main img").count() == 0


def test_a_tampered_link_reveals_nothing(sandbox, worker, redis_conn, settings, smtp_server,
                                        live_server, page):
    url = onboard_and_get_link(sandbox, redis_conn, settings, smtp_server, live_server,
                               "Tamper", "tamper.page@example.org")
    head, _, signature = url.rpartition(".")
    response = page.goto(f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}")
    assert response.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "This link is not valid"
    assert "Tamper" not in page.content()
