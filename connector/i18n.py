"""The connector's own words in every language it speaks: the person's page, the confirmation
mail and the export, from one YAML file per language in connector/locales/.

Each file has the sections ``page``, ``mail``, ``export`` and ``rights`` (who "we" are and the
person's rights, in the mail and on the page) (key → text, ``str.format``
placeholders in braces) and ``dates`` (a pattern and the twelve month names). A key a language
lacks is shown in English; tests/unit/test_i18n.py checks that none is lacking. What the admin
configures (purpose, legal basis and source names) comes from config/purposes.yaml instead.

The files are read once, on first use, and kept; a missing or malformed file fails that first
lookup with an error naming it. To add a language: copy en.yaml to <code>.yaml, translate every
text, and add the code to ``LANGUAGES`` and to the languages of config/purposes.yaml.
"""

from collections.abc import Mapping
from datetime import date
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import yaml

from connector.consent import FALLBACK_LANGUAGE, ConsentConfig, choose_language

LANGUAGES = ("en", "nb", "sv", "da", "de", "nl")
SECTIONS = ("page", "mail", "export", "rights")

RIGHTS = ("right_access", "right_rectification", "right_erasure", "right_restriction",
          "right_portability", "right_objection", "right_withdrawal")
"""The person's rights (GDPR Art. 15-18, 20, 21, 7(3)) as the mail and the page list them:
keys of the ``rights`` section, in that order."""
LOCALES_DIR = Path(__file__).parent / "locales"


class DateWords(NamedTuple):
    """How a language writes a date in running text."""

    pattern: str  # with {day}, {month} and {year}
    months: tuple[str, ...]  # January .. December


class Catalog(NamedTuple):
    """One language's words: texts per section (English filling the gaps), and dates."""

    sections: Mapping[str, Mapping[str, str]]
    dates: DateWords


def texts(section: str, language: str | None) -> Mapping[str, str]:
    """Return every text of ``section`` in ``language``, English where it has none.

    Args:
        section: one of ``SECTIONS``.
        language: a code in ``LANGUAGES``; anything else (or None) gets English.

    Returns:
        A read-only mapping of key to text, placeholders not filled in (templates use it as
        ``t.key``).

    Raises:
        KeyError: ``section`` is not one of ``SECTIONS`` (a programming error).
        FileNotFoundError: on first use, a locale file is missing.
        ValueError: on first use, a locale file is not shaped as connector/locales/en.yaml.
    """
    return _catalog(language).sections[section]


def text(section: str, key: str, language: str | None, **values: Any) -> str:
    """Return the text ``key`` of ``section`` in ``language`` with ``values`` filled in.

    Args:
        section: one of ``SECTIONS``.
        key: the text's key, e.g. ``"sheet.history"``.
        language: a code in ``LANGUAGES``; anything else (or None) gets English.
        **values: the placeholders to fill in, e.g. ``name="Kari"``.

    Raises:
        KeyError: ``section`` or ``key`` is unknown (a programming error).
    """
    template = texts(section, language)[key]
    return template.format(**values) if values else template


def text_or(section: str, key: str, language: str | None, default: str) -> str:
    """Like ``text`` for keys built from data (an action, an actor): ``default`` when unknown.

    Args:
        section: one of ``SECTIONS``.
        key: the text's key, e.g. ``f"action.{action}"``.
        language: a code in ``LANGUAGES``; anything else (or None) gets English.
        default: what to return when ``section`` has no ``key``, not even in English.
    """
    return texts(section, language).get(key, default)


def format_date(value: date, language: str | None) -> str:
    """Write a date the way ``language`` writes it in running text ("21. mars 2026").

    Args:
        value: the date (a datetime is taken in its own time zone).
        language: a code in ``LANGUAGES``; anything else (or None) is written in English.
    """
    pattern, months = _catalog(language).dates
    return pattern.format(day=value.day, month=months[value.month - 1], year=value.year)


def language_for(config: ConsentConfig, requested: str | None) -> str:
    """Return the configured language closest to ``requested`` (``nb-NO`` → ``nb``) that the
    catalogs have, else English.

    Args:
        config: the purposes config, whose ``languages`` the connector may speak.
        requested: a language code from a person, a query string or a form; may be None.
    """
    code = choose_language(config, requested)
    return code if code in LANGUAGES else FALLBACK_LANGUAGE


def _catalog(language: str | None) -> Catalog:
    """The catalog of ``language``, English when there is none."""
    catalogs = _catalogs()
    return catalogs.get(language, catalogs[FALLBACK_LANGUAGE])


@cache
def _catalogs() -> dict[str, Catalog]:
    """Every language's catalog, read from LOCALES_DIR, English filling each one's gaps."""
    read = {language: _read(LOCALES_DIR / f"{language}.yaml") for language in LANGUAGES}
    english = read[FALLBACK_LANGUAGE]
    return {language: Catalog({section: MappingProxyType({**english[section], **words[section]})
                               for section in SECTIONS},
                              DateWords(words["dates"]["pattern"],
                                        tuple(words["dates"]["months"])))
            for language, words in read.items()}


def _read(path: Path) -> dict[str, Any]:
    """Read one locale file and check its shape (not its keys: the tests compare those).

    Raises:
        FileNotFoundError: the file is missing (the package is installed without it).
        ValueError: the file is not YAML, or not shaped as ``SECTIONS`` plus ``dates``.
    """
    try:
        words = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{path}: locale file missing; every language in "
                                f"connector.i18n.LANGUAGES needs one") from error
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from error
    expected = [*SECTIONS, "dates"]
    if not isinstance(words, dict) or set(words) != set(expected):
        found = list(words) if isinstance(words, dict) else type(words).__name__
        raise ValueError(f"{path}: expected the sections {expected}, found {found}")
    for section in SECTIONS:
        if not isinstance(words[section], dict) or not all(
                isinstance(key, str) and isinstance(value, str)
                for key, value in words[section].items()):
            raise ValueError(f"{path}: section {section!r} must map keys to texts")
    dates = words["dates"]
    if not (isinstance(dates, dict) and isinstance(dates.get("pattern"), str)
            and isinstance(dates.get("months"), list) and len(dates["months"]) == 12
            and all(isinstance(month, str) for month in dates["months"])):
        raise ValueError(f"{path}: 'dates' must have a 'pattern' text and 12 'months'")
    return words
