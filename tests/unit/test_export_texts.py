"""The export's headings catalogue: every text in every language, sheet names Excel accepts."""

import string

import pytest

from connector.consent import ACTIVE, NOT_GIVEN, NOT_RECORDED, WITHDRAWN
from connector.exports.texts import LANGUAGES, TEXTS, text, text_or
from tests.factories import shipped_config

LEDGER_ACTIONS = ("consent.recorded", "consent.changed", "mail.sent", "support.retry",
                  "crm.consent_changed")
LEDGER_ACTORS = ("connector", "person", "support", "crm_user")
MAIL_KINDS = ("confirmation", "fresh-link")  # workers/jobs.py: _deliver_confirmation(kind)


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("key", sorted(TEXTS))
def test_every_text_is_in_every_language_with_the_same_placeholders(key):
    texts = TEXTS[key]
    assert set(texts) == set(LANGUAGES), f"{key}: missing {set(LANGUAGES) - set(texts)}"
    assert all(value.strip() for value in texts.values()), key
    assert {language: placeholders(value) for language, value in texts.items()} == {
        language: placeholders(texts["en"]) for language in LANGUAGES}


def test_the_catalogue_covers_the_languages_the_config_offers():
    assert set(shipped_config().languages) <= set(LANGUAGES)


@pytest.mark.parametrize("language", LANGUAGES)
def test_sheet_names_are_valid_and_distinct_for_excel(language):
    names = [text(key, language) for key in TEXTS if key.startswith("sheet.")]
    assert len(set(names)) == len(names)
    for name in names:
        assert 0 < len(name) <= 31 and not set(name) & set("[]:*?/\\"), name


def test_every_status_action_actor_and_mail_kind_has_words():
    for status in (ACTIVE, WITHDRAWN, NOT_GIVEN, NOT_RECORDED):
        assert f"status.{status}" in TEXTS
    for action in LEDGER_ACTIONS:
        assert f"action.{action}" in TEXTS
    for actor in LEDGER_ACTORS:
        assert f"actor.{actor}" in TEXTS
    for kind in MAIL_KINDS:
        assert f"mail.{kind}" in TEXTS


def test_text_falls_back_to_english_and_fills_placeholders():
    assert text("sheet.history", "nb") == "Historikk"
    assert text("sheet.history", "fi") == "History"
    assert text("sheet.history", None) == "History"
    assert text("by.associate", "de", id=7) == "CRM-Benutzer, Benutzer-ID 7"
    assert text_or("action.something.new", "nb", "something.new") == "something.new"
