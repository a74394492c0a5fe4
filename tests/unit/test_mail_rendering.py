"""The confirmation mail says what GDPR Art. 13/14 asks, in the person's language, safely."""

import dataclasses
import re
from datetime import datetime, timezone
from email import message_from_bytes, policy

import pytest

from connector import i18n
from connector.consent import (ConsentConfig, Controller, DataProtectionOfficer, LegalBasis,
                               Purpose, Source, SupervisoryAuthority, pick_text)
from connector.crm.types import ConsentRecord, Person
from connector.mail.confirmation import render_confirmation
from connector.mail.repermission import render_repermission
from tests.factories import shipped_config

LINK = "https://consent.example.com/s/tok3n?x=1&y=2"
EXPIRES = datetime(2026, 4, 11, 12, 0, tzinfo=timezone.utc)
SENDER = "Acme privacy <privacy@acme.example>"


@pytest.fixture
def config() -> ConsentConfig:
    legal_bases = {
        "consent": LegalBasis("consent", "61A", {"en": "Consent", "nb": "Samtykke"},
                              {"en": "You agreed to this.", "nb": "Du har sagt ja til dette."}),
        "legitimate_interest": LegalBasis(
            "legitimate_interest", "61F",
            {"en": "Legitimate interest", "nb": "Berettiget interesse"},
            {"en": "We need it to serve you as a customer.",
             "nb": "Vi trenger det for å betjene deg som kunde."}),
        "withdrawn": LegalBasis("withdrawn", "WITHDRAWN", {"en": "Withdrawn"}, withdrawn=True),
    }
    sources = {
        "user": Source("user", "USER", {"en": "Entered by our staff", "nb": "Registrert av oss"},
                       True),
        "web_form": Source("web_form", "WEBFORM", {"en": "Our web form", "nb": "Vårt nettskjema"},
                           True),
    }
    purposes = {
        "sales_and_service": Purpose(
            "sales_and_service", "STORE", {"en": "Sales and service", "nb": "Salg og service"},
            {"en": "To sell to you and serve you.", "nb": "For å selge til deg og betjene deg."},
            default_legal_basis="legitimate_interest"),
        "e_marketing": Purpose(
            "e_marketing", "EMARKETING", {"en": "E-marketing", "nb": "E-markedsføring"},
            {"en": "Newsletters and offers by email.", "nb": "Nyhetsbrev og tilbud på e-post."},
            requires_consent=True),
        "events": Purpose("events", "EVENTS", {"en": "Event invitations"},
                          {"en": "Invitations to our seminars."}, requires_consent=True),
    }
    return ConsentConfig(legal_bases, sources, purposes, default_source="user",
                         languages=("en", "nb", "sv", "da", "de", "nl"))


def person(**changes) -> Person:
    values = dict(id=7, first_name="Kari", last_name="Nordmann", email="kari@example.com",
                  language="en", company_name="Kunde AS", created_by_associate_id=None,
                  consents=())
    values.update(changes)
    return Person(**values)


STORE = ConsentRecord(purpose="STORE", legal_basis="61F", source="WEBFORM")


def render(config, who=None, consents=(STORE,), **kwargs):
    return render_confirmation(config, who or person(), list(consents), LINK, EXPIRES, SENDER,
                               **kwargs)


def parts(message) -> tuple[str, str]:
    """The text and HTML bodies, decoded."""
    return (message.get_body(("plain",)).get_content(),
            message.get_body(("html",)).get_content())


def test_is_multipart_alternative_text_then_html(config):
    message = render(config)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_both_parts_tell_purpose_legal_basis_source_link_and_expiry(config):
    text, html = parts(render(config))
    for body in (text, html):
        assert "Kari" in body
        assert "Sales and service" in body
        assert "To sell to you and serve you." in body
        assert "Legitimate interest" in body
        assert "We need it to serve you as a customer." in body
        assert "Our web form" in body
        assert "11 April 2026" in body
    assert LINK in text
    assert 'href="https://consent.example.com/s/tok3n?x=1&amp;y=2"' in html


def test_purposes_needing_consent_not_given_are_offered(config):
    text, html = parts(render(config))
    for body in (text, html):
        assert "Only with your consent" in body
        assert "E-marketing" in body
        assert "Event invitations" in body


def test_consent_given_is_recorded_not_offered(config):
    given = ConsentRecord(purpose="EMARKETING", legal_basis="61A", source="WEBFORM")
    text, _ = parts(render(config, consents=(STORE, given)))
    recorded, _, offered = text.partition("Only with your consent")
    assert "E-marketing" in recorded and "You agreed to this." in recorded
    assert "E-marketing" not in offered and "Event invitations" in offered


def test_withdrawn_consent_is_listed_as_withdrawn(config):
    withdrawn = ConsentRecord(purpose="EMARKETING", legal_basis="WITHDRAWN", source="USER")
    text, html = parts(render(config, consents=(STORE, withdrawn)))
    for body in (text, html):
        recorded, _, rest = body.partition("Consents you have withdrawn")
        assert "E-marketing" not in recorded
        assert "E-marketing" in rest.partition("Only with your consent")[0]
        assert "You have withdrawn your consent" in rest
        assert "Only with your consent" in rest  # events are still on offer...
        assert "E-marketing" not in rest.partition("Only with your consent")[2]  # ...not this


def test_nothing_recorded_says_so(config):
    text, html = parts(render(config, consents=()))
    assert "We have not recorded any purpose" in text
    assert "We have not recorded any purpose" in html


def test_crm_keys_missing_from_config_are_shown_as_keys(config):
    odd = ConsentRecord(purpose="LOYALTY", legal_basis="61C", source="IMPORT")
    text, html = parts(render(config, consents=(STORE, odd)))
    for body in (text, html):
        assert "LOYALTY" in body
        assert "61C" in body
        assert "IMPORT" in body


def test_unknown_key_withdrawn_marker_counts_as_withdrawn_without_config(config):
    bare = ConsentConfig({k: v for k, v in config.legal_bases.items() if k != "withdrawn"},
                         config.sources, config.purposes, "user")
    odd = ConsentRecord(purpose="LOYALTY", legal_basis="WITHDRAWN", source="USER")
    text, _ = parts(render(bare, consents=(STORE, odd)))
    assert "LOYALTY" in text.partition("Consents you have withdrawn")[2]


def test_first_name_is_escaped_in_html(config):
    who = person(first_name='<script>alert("x")</script>')
    text, html = parts(render(config, who))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert '<script>alert("x")</script>' in text  # plain text is not HTML: shown as written


def test_config_texts_and_company_are_escaped_in_html(config):
    text, html = parts(render(config, company="Smith & <Sons>"))
    assert "Smith &amp; &lt;Sons&gt;" in html
    assert "Smith & <Sons>" in text


def test_no_first_name_gets_a_neutral_greeting(config):
    text, _ = parts(render(config, person(first_name="")))
    assert text.startswith("Hello,\n")


def test_norwegian_person_gets_norwegian_mail(config):
    message = render(config, person(language="nb"))
    text, html = parts(message)
    assert message["Subject"] == "Slik behandler vi opplysningene dine"
    assert message["Content-Language"] == "nb"
    assert '<html lang="nb"' in html
    for body in (text, html):
        assert "Salg og service" in body          # config text in nb
        assert "Berettiget interesse" in body
        assert "11. april 2026" in body            # date written the Norwegian way
        assert "Administrer samtykkene og abonnementene dine" in body


def test_unknown_language_falls_back_to_english(config):
    message = render(config, person(language="fi"))
    assert message["Subject"] == "How we handle your data"
    assert message["Content-Language"] == "en"


def test_language_not_enabled_in_config_falls_back_to_english(config):
    english_only = ConsentConfig(config.legal_bases, config.sources, config.purposes, "user",
                                 languages=("en",))
    assert render(english_only, person(language="nb"))["Subject"] == "How we handle your data"


@pytest.mark.parametrize("given, chosen", [
    ("nb", "nb"), ("NB-no", "nb"), ("no", "nb"), ("sv_SE", "sv"), ("de", "de"), ("nl", "nl"),
    ("da", "da"), ("fi", "en"), ("", "en"), (None, "en"),
])
def test_mail_language(config, given, chosen):
    assert i18n.language_for(config, given) == chosen


@pytest.mark.parametrize("language", ["en", "nb", "sv", "da", "de", "nl"])
def test_every_language_renders_its_own_subject_and_date(config, language):
    message = render(config, person(language=language))
    text, html = parts(message)
    assert message["Subject"] == i18n.texts("mail", language)["subject"]
    date = i18n.format_date(EXPIRES, language)
    assert date in text and date in html
    assert i18n.texts("mail", language)["heading_manage"] in text


def test_headers(config):
    message = render(config)
    assert message["To"] == "kari@example.com"
    assert message["From"] == SENDER
    assert message["Subject"] == "How we handle your data"
    assert message["Date"]
    assert re.fullmatch(r"<[^@<>]+@acme\.example>", message["Message-ID"])
    assert message["Content-Language"] == "en"
    assert message["Auto-Submitted"] == "auto-generated"


def test_message_ids_are_unique(config):
    assert render(config)["Message-ID"] != render(config)["Message-ID"]


def test_serialises_and_parses_back(config):
    raw = render(config, person(language="de", first_name="Jürgen")).as_bytes()
    assert b"\r\n" in raw  # policy SMTP
    parsed = message_from_bytes(raw, policy=policy.default)
    assert "Hallo Jürgen," in parsed.get_body(("plain",)).get_content()
    assert "Hallo Jürgen," in parsed.get_body(("html",)).get_content()


def test_no_email_is_a_value_error(config):
    with pytest.raises(ValueError, match="no email"):
        render(config, person(email=None))


def test_sender_must_be_an_address(config):
    with pytest.raises(ValueError, match="sender"):
        render_confirmation(config, person(), [STORE], LINK, EXPIRES, "Acme")


def test_html_loads_nothing_external(config):
    _, html = parts(render(config))
    assert "<img" not in html and "<link" not in html and "<script" not in html
    assert re.findall(r'(?:src|href)="([^"]+)"', html) == [LINK.replace("&", "&amp;")] * 2


# ---------------------------------------------------------------- who we are, the rights (Art. 13)
CONTROLLER = Controller(
    name="Acme AS", address="Storgata 1, 0155 Oslo", email="privacy@acme.example",
    privacy_statement_url="https://acme.example/privacy",
    supervisory_authority=SupervisoryAuthority("Datatilsynet", "https://www.datatilsynet.no"),
    dpo=DataProtectionOfficer("dpo@acme.example", "Dana DPO"))


def test_the_mail_names_the_controller_its_dpo_the_authority_and_every_right(config):
    with_controller = dataclasses.replace(config, controller=CONTROLLER)
    text, html = parts(render(with_controller))
    rights = i18n.texts("rights", "en")
    for body in (text, html):
        assert "Acme AS has registered your contact details" in body
        for words in ("Who we are", "Storgata 1, 0155 Oslo", "privacy@acme.example",
                      "Data protection officer: Dana DPO, ", "dpo@acme.example",
                      "Your rights", "write to privacy@acme.example",
                      "complain to the supervisory authority: Datatilsynet "
                      "(https://www.datatilsynet.no)"):
            assert words in body, words
        for right in i18n.RIGHTS:
            assert rights[right] in body, right
    assert "Our privacy statement: https://acme.example/privacy" in text
    assert set(re.findall(r'(?:src|href)="([^"]+)"', html)) == {
        LINK.replace("&", "&amp;"), "mailto:privacy@acme.example", "mailto:dpo@acme.example",
        "https://acme.example/privacy"}


def test_each_recorded_purpose_says_how_long_it_is_kept_and_who_receives_it(config):
    store = dataclasses.replace(config.purposes["sales_and_service"],
                                retention={"en": "Three years after our last contact"},
                                recipients={"en": "Our accountant"})
    changed = dataclasses.replace(config, purposes={**config.purposes,
                                                    "sales_and_service": store})
    text, html = parts(render(changed))
    for body in (text, html):
        assert "How long we keep it:" in body and "Three years after our last contact" in body
        assert "Who receives it:" in body and "Our accountant" in body


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_the_rights_and_the_controller_are_in_every_language(language):
    shipped = shipped_config()
    text, html = parts(render(shipped, person(language=language)))
    rights = i18n.texts("rights", language)
    for body in (text, html):
        for key in ("heading_rights", "heading_controller", *i18n.RIGHTS):
            assert rights[key] in body, (language, key)
        assert shipped.controller.name in body and shipped.controller.address in body
        assert pick_text(shipped.purposes["sales_and_service"].retention, language) in body


def test_the_re_permission_mail_asks_in_the_persons_language_with_the_dates_and_the_text():
    shipped = shipped_config()
    marketing = shipped.purposes["e_marketing"]
    kari = Person(5, "Kari", "Nordmann", "kari@example.no", "nb", None, None, ())
    given = datetime(2024, 12, 20, 9, tzinfo=timezone.utc)
    lapses = datetime(2026, 12, 30, 9, tzinfo=timezone.utc)

    message = render_repermission(shipped, kari, marketing, given, lapses, LINK, EXPIRES, SENDER)

    assert message["Subject"] == "Vil du fornye samtykket ditt til «E-markedsføring»?"
    assert message["Content-Language"] == "nb" and message["To"] == "kari@example.no"
    text = message.get_content()
    assert "Den 20. desember 2024 samtykket du til «E-markedsføring»" in text
    assert "utløper samtykket 30. desember 2026" in text
    assert LINK in text and marketing.notice.text["nb"] in text
    assert f"versjon {marketing.notice.version}" in text
    assert shipped.controller.name in text
