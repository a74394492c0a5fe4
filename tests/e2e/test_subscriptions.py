"""Subscriptions (the CRM's shipment types) on the personal page and the one-click unsubscribe
link, in a real browser against the connector, a real worker and the sandbox CRM; what reached
the CRM is read back over the sandbox's API."""

import time

import pytest

from connector.config import load_config
from connector.links import LinkSigner, UnsubscribeSigner
from tests.conftest import ROOT, wait_for
from tests.e2e.test_person_page import crm_row, onboarded  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
CONFIG = load_config(ROOT / "config" / "purposes.yaml")
NOTICE = CONFIG.purposes["e_marketing"].notice
ALL_OFF = {"Newsletter": False, "Event invitations": False, "Product news": False}


def crm_shipment_types(sandbox, person_id, expected):
    """Wait until the CRM's shipment types of the person are ``expected`` (name → selected)."""
    return wait_for(lambda: sandbox.shipment_types(person_id) == expected,
                    what=f"shipment types {expected} in the CRM")


def subscription_entries(ledger, redis_conn, person_id, count=None):
    """The person's subscription.changed ledger entries; with ``count``, once there are that
    many and the job that wrote them has finished."""
    def entries():
        return [e for e in ledger.entries(person_id)
                if e["action"] == "subscription.changed"]
    if count is None:
        return entries()
    wait_for(lambda: len(entries()) >= count and not redis_conn.keys("connector:pending:*"),
             what=f"{count} subscription entries in the ledger")
    return entries()


def subscribe_in_the_crm(sandbox, person_id, *names):
    """A CRM user gives consent and ticks shipment types on the person card."""
    sandbox.set_consent(person_id, "EMARKETING", "61A")
    ids = {item["Name"]: item["Id"] for item in sandbox.person(person_id)["ShipmentTypes"]}
    sandbox.patch_person(person_id, {"ShipmentTypes": [{"Id": ids[n], "Selected": True}
                                                       for n in names]})


def test_subscribing_while_e_marketing_is_off_gives_the_consent_in_the_same_save(
        onboarded, page, sandbox, redis_conn, ledger, settings, output_dir):
    person_id, url = onboarded("Sub", "sub.page@example.org")
    page.goto(url)
    marketing = page.get_by_role("region", name="E-marketing")
    assert not marketing.get_by_label("Yes, I agree").is_checked()
    subscriptions = marketing.get_by_role("group", name="What you receive")
    assert subscriptions.locator("label").all_inner_texts() == [
        "Newsletter", "Event invitations", "Product news"]
    assert not subscriptions.get_by_label("Newsletter").is_checked()

    subscriptions.get_by_label("Newsletter").check()
    # The save's answer must have loaded before the page is reloaded below: a reload while
    # that navigation is under way fails ("Not attached to an active page").
    with page.expect_navigation():
        page.get_by_role("button", name="Save my choices").click()

    row = crm_row(sandbox, person_id, "EMARKETING", "61A")
    assert NOTICE.version in row["Comment"]
    crm_shipment_types(sandbox, person_id, {**ALL_OFF, "Newsletter": True})
    entries = subscription_entries(ledger, redis_conn, person_id, 1)
    assert len(entries) == 1
    entry = entries[0]
    assert entry["subscription"] == "newsletter" and entry["shipment_type"] == "1 Newsletter"
    assert entry["change"] == "unsubscribed → subscribed"
    assert entry["notice_version"] == NOTICE.version and entry["actor"] == "person"
    signer = LinkSigner(settings.secret_keys, settings.link_max_age_days)
    assert entry["token_id"] == signer.read(url.rsplit("/", 1)[1]).token_id
    assert entry["ip"].startswith("127.0.0.0/24 #") and "Chrome" in entry["user_agent"]

    wait_for(lambda: not redis_conn.keys("connector:pending:*"), what="the job to finish")
    page.reload()
    marketing = page.get_by_role("region", name="E-marketing")
    assert marketing.get_by_label("Yes, I agree").is_checked()
    assert marketing.get_by_label("Newsletter").is_checked()
    assert not marketing.get_by_label("Product news").is_checked()
    page.screenshot(path=output_dir / "person-page-subscriptions.png", full_page=True)


def test_unsubscribing_from_one_leaves_the_others_and_what_a_crm_user_edited(
        onboarded, page, sandbox, redis_conn, ledger):
    person_id, url = onboarded("Unsub", "unsub.page@example.org")
    subscribe_in_the_crm(sandbox, person_id, "Newsletter", "Product news")
    page.goto(url)
    marketing = page.get_by_role("region", name="E-marketing")
    assert marketing.get_by_label("Newsletter").is_checked()
    sandbox.patch_person(person_id, [{"op": "replace", "path": "/Firstname", "value": "Renamed"}])

    marketing.get_by_label("Product news").uncheck()
    page.get_by_role("button", name="Save my choices").click()
    assert "being saved" in page.get_by_role("region", name="E-marketing").inner_text() or \
        not redis_conn.keys("connector:pending:*")

    crm_shipment_types(sandbox, person_id, {**ALL_OFF, "Newsletter": True})
    assert sandbox.person(person_id)["Firstname"] == "Renamed"  # not clobbered
    assert sandbox.consents(person_id)["EMARKETING"]["LegalBaseKey"] == "61A"
    patches = [c for c in sandbox.calls() if c["method"] == "PATCH" and c["associate_id"] == 9]
    assert len(patches) == 1
    [entry] = subscription_entries(ledger, redis_conn, person_id, 1)
    assert (entry["subscription"], entry["change"]) == ("product_news",
                                                        "subscribed → unsubscribed")


def test_turning_e_marketing_off_unsubscribes_from_all(onboarded, page, sandbox, redis_conn,
                                                      ledger):
    person_id, url = onboarded("Off", "off.page@example.org")
    subscribe_in_the_crm(sandbox, person_id, "Newsletter", "Event invitations")
    page.goto(url)
    page.get_by_role("region", name="E-marketing").get_by_label("Yes, I agree").uncheck()
    page.get_by_role("button", name="Save my choices").click()

    crm_row(sandbox, person_id, "EMARKETING", "WITHDRAWN")
    crm_shipment_types(sandbox, person_id, ALL_OFF)
    assert {e["subscription"] for e in subscription_entries(ledger, redis_conn, person_id, 2)} == {
        "newsletter", "event_invitations"}


def test_unsubscribe_from_everything_is_one_click(onboarded, page, sandbox, redis_conn, ledger):
    person_id, url = onboarded("All", "all.page@example.org")
    subscribe_in_the_crm(sandbox, person_id, "Newsletter", "Event invitations", "Product news")
    page.goto(url)

    page.get_by_role("button", name="Unsubscribe from everything").click()

    assert page.get_by_role("status").first.inner_text().startswith("Thank you")
    row = crm_row(sandbox, person_id, "EMARKETING", "WITHDRAWN")
    assert "withdrawn" in row["Comment"].lower()
    crm_shipment_types(sandbox, person_id, ALL_OFF)
    assert len(subscription_entries(ledger, redis_conn, person_id, 3)) == 3


def test_unsubscribe_from_everything_needs_the_csrf_token(onboarded, page, sandbox):
    person_id, url = onboarded("Csrf", "csrf.sub@example.org")
    subscribe_in_the_crm(sandbox, person_id, "Newsletter")
    page.goto(url)
    response = page.request.post(f"{url}/unsubscribe-all", form={})
    assert response.status == 400
    time.sleep(1)
    assert sandbox.shipment_types(person_id)["Newsletter"] is True


def test_one_click_post_unsubscribes_without_cookies_or_csrf(
        onboarded, browser, sandbox, redis_conn, ledger, settings, live_server):
    person_id, _ = onboarded("Click", "click.page@example.org")
    subscribe_in_the_crm(sandbox, person_id, "Newsletter", "Product news")
    link = UnsubscribeSigner(settings.secret_keys).make_link(live_server, person_id, "newsletter")
    context = browser.new_context()  # a mailbox provider's POST: no cookies, no session
    try:
        page = context.new_page()
        assert context.cookies() == []
        response = page.request.post(link, form={"List-Unsubscribe": "One-Click"})
        assert response.status == 200
        assert "no longer receive" in response.text()
    finally:
        context.close()

    crm_shipment_types(sandbox, person_id, {**ALL_OFF, "Product news": True})
    assert sandbox.consents(person_id)["EMARKETING"]["LegalBaseKey"] == "61A"
    [entry] = subscription_entries(ledger, redis_conn, person_id, 1)
    assert (entry["subscription"], entry["via"]) == ("newsletter", "one-click")
    assert entry["token_id"].startswith("u-")


def test_the_unsubscribe_link_opened_shows_a_button_and_changes_nothing(
        onboarded, page, sandbox, settings, live_server):
    person_id, _ = onboarded("Open", "open.page@example.org")
    subscribe_in_the_crm(sandbox, person_id, "Event invitations")
    link = UnsubscribeSigner(settings.secret_keys).make_link(live_server, person_id,
                                                              "event_invitations")
    response = page.goto(link)
    assert response.status == 200
    assert "Event invitations" in page.get_by_role("heading", level=1).inner_text() + \
        page.locator("main p").first.inner_text()
    time.sleep(1)
    assert sandbox.shipment_types(person_id)["Event invitations"] is True

    page.get_by_role("button", name="Unsubscribe").click()
    assert page.get_by_role("heading", level=1).inner_text() == "You are unsubscribed"
    crm_shipment_types(sandbox, person_id, ALL_OFF)

    head, _, signature = link.rpartition(".")
    assert page.goto(f"{head}.x{signature[1:]}").status == 404
