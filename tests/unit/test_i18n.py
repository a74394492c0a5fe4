"""The connector's own words (connector/locales/*.yaml, read by connector/i18n.py): every language
has exactly English's texts with the same placeholders, its dates, sheet names Excel accepts, and
the lookups fall back to English."""

import shutil
import string
from datetime import date
from functools import cache

import pytest
import yaml

from connector import i18n
from connector.consent import ACTIVE, NOT_GIVEN, NOT_RECORDED, WITHDRAWN
from tests.factories import shipped_config

LEDGER_ACTIONS = ("consent.recorded", "consent.changed", "mail.sent", "support.retry",
                  "crm.consent_changed", "consent.expired", "consent.lapsed", "mail.not_sent")
LEDGER_ACTORS = ("connector", "person", "support", "crm_user")
MAIL_KINDS = ("confirmation", "fresh-link", "copy", "new-notice",  # workers: jobs, copies, notices
              "re-permission")  # workers: expiry
SHIPPED = i18n.LOCALES_DIR  # the locales fixture points i18n elsewhere


@cache
def locale(language: str) -> dict:
    """The shipped locale file of ``language`` as written, without English filling its gaps."""
    return yaml.safe_load((SHIPPED / f"{language}.yaml").read_text(encoding="utf-8"))


def placeholders(text: str) -> set[str]:
    """The names of the ``str.format`` fields in ``text`` ({name}, {version}, ...)."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def test_languages_are_those_of_the_config():
    assert set(i18n.LANGUAGES) == {"en", "nb", "sv", "da", "de", "nl"}
    assert set(i18n.LANGUAGES) == set(shipped_config().languages)


@pytest.mark.parametrize("section", i18n.SECTIONS)
@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_language_has_exactly_the_english_keys(language, section):
    texts, english = locale(language)[section], locale("en")[section]
    assert set(texts) - set(english) == set(), "keys that English does not have"
    assert set(english) - set(texts) == set(), "keys missing"


@pytest.mark.parametrize("section", i18n.SECTIONS)
@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_text_has_the_english_placeholders(language, section):
    english = locale("en")[section]
    for key, text in locale(language)[section].items():
        assert placeholders(text) == placeholders(english[key]), f"{language}.{key}: {text!r}"


@pytest.mark.parametrize("section", i18n.SECTIONS)
@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_no_text_is_empty(language, section):
    for key, text in locale(language)[section].items():
        assert isinstance(text, str) and text.strip(), f"{language}.{section}.{key} is empty"


@pytest.mark.parametrize("language", i18n.LANGUAGES[1:])
def test_the_mail_is_really_translated(language):
    assert locale(language)["mail"]["subject"] != locale("en")["mail"]["subject"]


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_language_writes_dates(language):
    dates = locale(language)["dates"]
    assert placeholders(dates["pattern"]) == {"day", "month", "year"}
    assert len(dates["months"]) == 12
    assert all(isinstance(month, str) and month.strip() for month in dates["months"])


def test_format_date_writes_the_languages_own_way_and_english_otherwise():
    assert i18n.format_date(date(2026, 3, 21), "nb") == "21. mars 2026"
    assert i18n.format_date(date(2026, 3, 21), "de") == "21. März 2026"
    assert i18n.format_date(date(2026, 3, 21), "fi") == "21 March 2026"
    assert i18n.format_date(date(2026, 3, 21), None) == "21 March 2026"


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_sheet_names_are_valid_and_distinct_for_excel(language):
    names = [i18n.text("export", key, language)
             for key in locale("en")["export"] if key.startswith("sheet.")]
    assert len(set(names)) == len(names)
    for name in names:
        assert 0 < len(name) <= 31 and not set(name) & set("[]:*?/\\"), name


def test_every_status_action_actor_and_mail_kind_has_words():
    export = locale("en")["export"]
    for status in (ACTIVE, WITHDRAWN, NOT_GIVEN, NOT_RECORDED):
        assert f"status.{status}" in export
    for action in LEDGER_ACTIONS:
        assert f"action.{action}" in export
    for actor in LEDGER_ACTORS:
        assert f"actor.{actor}" in export
    for kind in MAIL_KINDS:
        assert f"mail.{kind}" in export


def test_text_falls_back_to_english_and_fills_placeholders():
    assert i18n.text("export", "sheet.history", "nb") == "Historikk"
    assert i18n.text("export", "sheet.history", "fi") == "History"
    assert i18n.text("export", "sheet.history", None) == "History"
    assert i18n.text("export", "by.associate", "de", id=7) == "CRM-Benutzer, Benutzer-ID 7"
    assert i18n.text_or("export", "action.something.new", "nb", "something.new") == (
        "something.new")
    assert i18n.texts("page", "fi") == i18n.texts("page", "en")


@pytest.fixture
def locales(tmp_path, monkeypatch):
    """A copy of the locale files for a test to spoil; the catalogs are read from it afresh."""
    for language in i18n.LANGUAGES:
        shutil.copy(SHIPPED / f"{language}.yaml", tmp_path)
    monkeypatch.setattr(i18n, "LOCALES_DIR", tmp_path)
    i18n._catalogs.cache_clear()
    yield tmp_path
    i18n._catalogs.cache_clear()


def test_a_text_a_language_lacks_is_shown_in_english(locales):
    words = yaml.safe_load((locales / "nb.yaml").read_text(encoding="utf-8"))
    del words["page"]["save"]
    (locales / "nb.yaml").write_text(yaml.safe_dump(words, allow_unicode=True), encoding="utf-8")
    assert i18n.texts("page", "nb")["save"] == locale("en")["page"]["save"]
    assert i18n.texts("page", "nb")["title"] == locale("nb")["page"]["title"]


def test_a_missing_locale_file_is_named(locales):
    (locales / "sv.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="sv.yaml"):
        i18n.texts("page", "en")


@pytest.mark.parametrize("content", [
    "page: [unclosed",
    "- just a list",
    "page: {}\nmail: {}\nexport: {}\n",
    "page: {title: [a list]}\nmail: {}\nexport: {}\ndates: {pattern: '{day}', months: []}\n",
    "page: {}\nmail: {}\nexport: {}\ndates: {pattern: '{day}', months: [January]}\n",
])
def test_a_malformed_locale_file_is_named(locales, content):
    (locales / "da.yaml").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="da.yaml"):
        i18n.texts("page", "en")
