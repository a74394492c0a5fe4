"""The personal page's fixed phrases: every configured language, every key, same placeholders."""

import string
from pathlib import Path

import pytest

from connector.config import load_config
from connector.web.texts import TEXTS

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "purposes.yaml"
ENGLISH = TEXTS["en"]


def _placeholders(text: str) -> set[str]:
    """The names of the ``str.format`` fields in ``text`` ({name}, {version}, ...)."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def test_languages_are_those_of_the_config():
    assert set(TEXTS) == set(load_config(SHIPPED).languages)


@pytest.mark.parametrize("language", sorted(TEXTS))
def test_every_language_has_exactly_the_english_keys(language):
    texts = TEXTS[language]
    assert set(texts) - set(ENGLISH) == set(), "keys that English does not have"
    assert set(ENGLISH) - set(texts) == set(), "keys missing"


@pytest.mark.parametrize("language", sorted(TEXTS))
def test_every_text_has_the_english_placeholders(language):
    for key, text in TEXTS[language].items():
        assert _placeholders(text) == _placeholders(ENGLISH[key]), f"{language}.{key}: {text!r}"


@pytest.mark.parametrize("language", sorted(TEXTS))
def test_no_text_is_empty(language):
    for key, text in TEXTS[language].items():
        assert isinstance(text, str) and text.strip(), f"{language}.{key} is empty"
