"""The confirmation mail as a mail program shows it: its HTML part, from a real onboarding's
mail, in a real browser (Debian's chromium via Playwright)."""

import re

import pytest

from connector import i18n
from tests.e2e.test_person_page import CONFIG, onboarded  # noqa: F401 -- the fixture

pytestmark = pytest.mark.integration


def test_the_mail_shows_what_we_record_the_rights_and_who_we_are(onboarded, page,  # noqa: F811
                                                                 smtp_server, output_dir):
    onboarded("Kari", "kari.mail@example.org")
    mail = smtp_server.sink.to("kari.mail@example.org")[0]
    page.set_viewport_size({"width": 700, "height": 900})
    page.set_content(mail.get_body(("html",)).get_content())

    rights = i18n.texts("rights", "en")
    for heading in (i18n.text("mail", "heading_recorded", "en"), rights["heading_rights"],
                    rights["heading_controller"]):
        assert page.get_by_role("heading", name=heading).is_visible(), heading
    body = page.locator("body").inner_text()
    controller = CONFIG.controller
    assert controller.name in body and controller.address in body
    assert CONFIG.purposes["sales_and_service"].retention["en"] in body
    assert page.get_by_role("link", name=controller.email).get_attribute("href") == (
        f"mailto:{controller.email}")
    export = page.get_by_role("link", name=re.compile(r"export$"))
    assert export.get_attribute("href").endswith("/export")
    page.screenshot(path=output_dir / "confirmation-mail.png", full_page=True)
