"""Read config/purposes.yaml into the consent model, or say everything that is wrong with it.

The purposes file is edited by a CRM admin, not a developer, so a bad edit is refused with
*every* problem at once, each with the file, the line and plain words::

    config/purposes.yaml:31: purpose 'e_marketing': unknown field 'crm_kye' (did you mean 'crm_key'?)
    config/purposes.yaml:40: purpose 'sales_and_service': legal basis 'legit' is not defined in
        legal_bases (defined: consent, contract, legitimate_interest, withdrawn)

How it works:
    1. The YAML is composed into nodes (they carry line numbers) and indexed: every mapping
       key and list item gets the line it starts on, keyed by its path
       (``("purposes", "e_marketing", "crm_key")``). Duplicate keys are reported here, since
       PyYAML would silently keep the last one.
    2. Marshmallow schemas check the shape: required fields, types, unknown fields.
       Their nested error dicts are flattened into paths and looked up in the index.
    3. Cross-checks that need the whole file (references between sections, GDPR rules,
       languages, duplicate CRM keys) run on the raw data, so they are reported even when
       the shape has errors elsewhere.
    4. When nothing is wrong, the data becomes the frozen dataclasses of connector.consent.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
import time
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema, ValidationError, fields, validate

from connector.consent import (
    FALLBACK_LANGUAGE,
    fold_key,
    REPORT,
    WITHDRAW,
    ConsentConfig,
    ConsentExpiry,
    Controller,
    DataProtectionOfficer,
    Duration,
    LegalBasis,
    Notice,
    Purpose,
    Source,
    SourceRule,
    Subscription,
    SupervisoryAuthority,
)
from connector.exceptions import ConfigError, ConfigProblem

log = logging.getLogger(__name__)

__all__ = ["load_config", "check_config", "LiveConfig", "config_version", "CONSENT_CRM_KEY"]

CONSENT_CRM_KEY = "61A"
"""The CRM key of GDPR Art. 6(1)(a), consent. A default may never rest on it (nor on the
legal basis whose config name is ``consent``): only the person can give consent."""

CONSENT_KEY = "consent"

PAGE_DEFAULTS = {"source": ConsentConfig.page_source,
                 "consent_legal_basis": ConsentConfig.page_consent_legal_basis}
"""What the person's page records when ``subscription_page`` (or one of its fields) is left
out: the keys of ``sources`` and ``legal_bases`` that ConsentConfig defaults to."""

_YamlPath = tuple[Any, ...]

_UNKNOWN = "unknown field"
_REQUIRED = "is missing (it is required)"
_NULL = "is empty: give it a value, or remove the line"
_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
_LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")

_SECTIONS = {"legal_bases": "legal basis", "sources": "source", "purposes": "purpose",
             "subscriptions": "subscription"}


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------

def load_config(path: str | Path) -> ConsentConfig:
    """Read and validate a purposes file.

    Args:
        path: the YAML file, usually ``config/purposes.yaml``.

    Returns:
        The validated consent configuration, with legal bases, sources and purposes in file
        order.

    Raises:
        ConfigError: the file is unreadable or invalid; ``problems`` lists every problem with
            its file and line.
    """
    problems, config = _check(Path(path))
    if problems or config is None:
        raise ConfigError(problems)
    return config


def check_config(path: str | Path) -> list[ConfigProblem]:
    """Return every problem in a purposes file, in line order; an empty list when it is valid."""
    problems, _ = _check(Path(path))
    return problems


# ---------------------------------------------------------------------------------------------
# Marshmallow schemas: the shape of the file
# ---------------------------------------------------------------------------------------------

def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, Mapping):
        return "a group of fields"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    return type(value).__name__


class _Text(fields.String):
    """A string; numbers and true/false are refused (YAML turns `61` or `no` into those)."""

    default_error_messages = {"invalid": "must be text", "required": _REQUIRED, "null": _NULL}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            if isinstance(value, bool):
                raise ValidationError(f"must be text, not {_describe(value)} (YAML reads a bare "
                                      f"yes/no/on/off/true/false as that): put it in quotes")
            if isinstance(value, int | float):
                raise ValidationError(f"must be text, not {_describe(value)}: put it in quotes, "
                                      f"like \"{value}\"")
            raise ValidationError(f"must be text, not {_describe(value)}")
        return value


class _Version(fields.Field):
    """A notice version: text, or a number or date YAML read from it (kept as written)."""

    default_error_messages = {"required": _REQUIRED, "null": _NULL}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, str | int | date):
            raise ValidationError(f"must be a version like \"2026-01\", not {_describe(value)}")
        text = value.isoformat() if isinstance(value, date) else str(value)
        if not text.strip():
            raise ValidationError("must not be empty")
        return text


_DURATION_PATTERN = re.compile(r"^\s*(\d+)\s+(day|week|month|year)s?\s*$", re.IGNORECASE)


class _Duration(fields.Field):
    """A span like "24 months", "30 days", "2 years", "6 weeks"."""

    default_error_messages = {"required": _REQUIRED, "null": _NULL}

    def _deserialize(self, value, attr, data, **kwargs):
        match = _DURATION_PATTERN.match(value) if isinstance(value, str) else None
        if match is None or int(match.group(1)) < 1:
            raise ValidationError(f"must be a span like \"24 months\", \"30 days\", \"2 years\" "
                                  f"or \"6 weeks\", not {_describe(value)}")
        return Duration(int(match.group(1)), match.group(2).lower() + "s")


class _OnExpiry(fields.Field):
    """What happens when a consent lapses: withdraw or report."""

    default_error_messages = {"required": _REQUIRED, "null": _NULL}

    def _deserialize(self, value, attr, data, **kwargs):
        if value in (WITHDRAW, REPORT):
            return value
        close = (difflib.get_close_matches(value, (WITHDRAW, REPORT), n=1, cutoff=0.5)
                 if isinstance(value, str) else [])
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValidationError(f"must be {WITHDRAW} (record the lapsed consent as withdrawn in "
                              f"the CRM) or {REPORT} (only report it), not {_describe(value)}"
                              f"{hint}")


class _Bool(fields.Field):
    """true or false, nothing else ("yes", 1 and "true" in quotes are refused)."""

    default_error_messages = {"required": _REQUIRED, "null": _NULL}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError(f"must be true or false, not {_describe(value)}")
        return value


class _Id(fields.Field):
    """A positive whole number (a CRM id)."""

    default_error_messages = {"required": _REQUIRED, "null": _NULL}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(f"must be a whole number above 0, like 42, not {_describe(value)}")
        return value


def _crm_key_ok(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be empty: give the key this list item has in the CRM")
    if value != value.strip():
        raise ValidationError(f"'{value}' starts or ends with spaces; the CRM key would not match")


def _key_ok(value: str) -> None:
    if not _KEY_PATTERN.match(value):
        raise ValidationError(f"the name '{value}' may only use lower-case letters, digits and _ "
                              f"and must start with a letter (like legitimate_interest)")


def _text_ok(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be empty")


def _language_ok(value: str) -> None:
    if not _LANGUAGE_PATTERN.match(value):
        raise ValidationError(f"'{value}' is not a language code like en, nb, sv")


def _texts(missing: str = _REQUIRED, **kwargs) -> fields.Dict:
    """Texts per language: ``{en: "...", nb: "..."}``; ``missing`` is said when a required
    one is left out."""
    return fields.Dict(
        keys=_Text(validate=_language_ok), values=_Text(validate=_text_ok),
        error_messages={"invalid": "must be texts per language, like {en: \"...\", nb: \"...\"}",
                        "required": missing, "null": _NULL},
        **kwargs)


def _web_address(**kwargs) -> fields.Url:
    return fields.Url(schemes={"http", "https"}, error_messages={
        "invalid": "must be a web address starting with https://", "required": _REQUIRED,
        "null": _NULL}, **kwargs)


def _email_address(**kwargs) -> fields.Email:
    return fields.Email(error_messages={
        "invalid": "must be an email address, like privacy@example.com", "required": _REQUIRED,
        "null": _NULL}, **kwargs)


def _named(values: fields.Field, what: str) -> fields.Dict:
    """A section of named entries (``legal_bases``, ``sources``, ``purposes``)."""
    return fields.Dict(
        keys=_Text(validate=_key_ok), values=values, required=True,
        validate=validate.Length(min=1, error=f"is empty: define at least one {what}"),
        error_messages={"invalid": f"must be a list of named {what} entries (name: then its fields)",
                        "required": _REQUIRED, "null": f"is empty: define at least one {what}"})


def _nested(schema: type[Schema], **kwargs) -> fields.Nested:
    return fields.Nested(schema, error_messages={"required": _REQUIRED, "null": _NULL}, **kwargs)


class _Base(Schema):
    error_messages = {"unknown": _UNKNOWN, "type": "must be a group of fields (name: value lines)"}


class _LegalBasisSchema(_Base):
    crm_key = _Text(required=True, validate=_crm_key_ok)
    name = _texts(required=True)
    description = _texts(load_default=dict)
    withdrawn = _Bool(load_default=False)


class _SourceSchema(_Base):
    crm_key = _Text(required=True, validate=_crm_key_ok)
    name = _texts(required=True)
    confirm_by_email = _Bool(required=True)


class _SourceRuleSchema(_Base):
    created_by_associate_id = _Id(required=True)
    source = _Text(required=True)


class _NewPersonsSchema(_Base):
    source = _Text(required=True)
    source_rules = fields.List(_nested(_SourceRuleSchema), load_default=list,
                               error_messages={"invalid": "must be a list (lines starting with -)",
                                               "null": _NULL})


class _DefaultSchema(_Base):
    legal_basis = _Text(required=True)


class _NoticeSchema(_Base):
    version = _Version(required=True)
    text = _texts(required=True)
    earlier = fields.Dict(keys=_Text(validate=_text_ok), values=_texts(), load_default=dict,
                          error_messages={"invalid": "must be the earlier versions' texts by "
                                                     "version, like {{\"2026-01\": {{en: "
                                                     "\"...\"}}}}", "null": _NULL})


class _PurposeSchema(_Base):
    crm_key = _Text(required=True, validate=_crm_key_ok)
    name = _texts(required=True)
    description = _texts(load_default=dict)
    default_for_new_persons = _nested(_DefaultSchema, load_default=None, allow_none=False)
    requires_consent = _Bool(load_default=False)
    allow_objection = _Bool(load_default=False)
    notice = _nested(_NoticeSchema, load_default=None, allow_none=False)
    privacy_statement_url = _web_address(load_default=None)
    retention = _texts(
        required=True,
        missing="is missing (it is required): say how long you keep the data for this purpose, "
                "or by what rule (GDPR Art. 13(2)(a)), e.g. retention: {{en: \"While you are our "
                "customer, and 3 years after\"}}")
    recipients = _texts(load_default=dict)
    consent_valid_for = _Duration(load_default=None)
    remind_before = _Duration(load_default=None)
    on_expiry = _OnExpiry(load_default=WITHDRAW)


class _ShipmentType(fields.Field):
    """A CRM shipment type: its id (a whole number above 0) or its name (text)."""

    default_error_messages = {"required": _REQUIRED, "null": _NULL}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, str) and value.strip() and value == value.strip():
            return value
        raise ValidationError(f"must be the CRM shipment type's id (a whole number above 0, like "
                              f"3) or its name in quotes (like \"Newsletter\"), not "
                              f"{_describe(value)}")


class _SubscriptionSchema(_Base):
    purpose = _Text(required=True)
    shipment_type = _ShipmentType(required=True)
    name = _texts(required=True)
    description = _texts(load_default=dict)


class _SubscriptionPageSchema(_Base):
    source = _Text(load_default=PAGE_DEFAULTS["source"])
    consent_legal_basis = _Text(load_default=PAGE_DEFAULTS["consent_legal_basis"])


class _AuthoritySchema(_Base):
    name = _Text(required=True, validate=_text_ok)
    url = _web_address(required=True)


class _OfficerSchema(_Base):
    email = _email_address(required=True)
    name = _Text(load_default=None, validate=_text_ok)


class _ControllerSchema(_Base):
    name = _Text(required=True, validate=_text_ok)
    address = _Text(required=True, validate=_text_ok)
    email = _email_address(required=True)
    privacy_statement_url = _web_address(required=True)
    supervisory_authority = _nested(_AuthoritySchema, required=True)
    dpo = _nested(_OfficerSchema, load_default=None, allow_none=False)


_CONTROLLER_MISSING = (
    "is missing (it is required): the mail and the page must say who you are (GDPR Art. "
    "13(1)(a)-(b)). Add controller: with name, address, email, privacy_statement_url and "
    "supervisory_authority: {{name: ..., url: https://...}} (and dpo: {{email: ...}} if you "
    "have a data protection officer)")


class _ConfigSchema(_Base):
    error_messages = {"unknown": _UNKNOWN,
                      "type": "the file must be a set of sections (legal_bases:, sources:, ...)"}

    controller = fields.Nested(_ControllerSchema, required=True, error_messages={
        "required": _CONTROLLER_MISSING, "null": _NULL})
    delete_after = _Duration(load_default=None)
    languages = fields.List(_Text(validate=_language_ok), load_default=lambda: [FALLBACK_LANGUAGE],
                            error_messages={"invalid": "must be a list of language codes, like "
                                                       "[en, nb, sv]", "null": _NULL})
    legal_bases = _named(_nested(_LegalBasisSchema), "legal basis")
    sources = _named(_nested(_SourceSchema), "source")
    new_persons = _nested(_NewPersonsSchema, required=True)
    subscription_page = _nested(_SubscriptionPageSchema, load_default=None, allow_none=False)
    purposes = _named(_nested(_PurposeSchema), "purpose")
    subscriptions = fields.Dict(
        keys=_Text(validate=_key_ok), values=_nested(_SubscriptionSchema), load_default=dict,
        error_messages={"invalid": "must be a list of named subscription entries (name: then its "
                                   "fields)", "null": _NULL})


# ---------------------------------------------------------------------------------------------
# Reading YAML with line numbers
# ---------------------------------------------------------------------------------------------

_SYNTAX_HINTS = {
    "'\\t'": "indent with spaces, not tabs",
    "mapping values are not allowed": "a value containing ': ' must be put in quotes",
    "expected ',' or '}', but got ':'": "a value containing ': ' must be put in quotes",
    "expected <block end>": "check the indentation: fields of one entry must line up",
    "could not find expected ':'": "every field needs a ':' after its name",
}


def _syntax_problem(file: str, text: str, error: yaml.YAMLError) -> ConfigProblem:
    problem = getattr(error, "problem", None) or str(error)
    mark = getattr(error, "problem_mark", None)
    if mark is None or "<stream end>" in problem:  # the end of the file: say where it began
        mark = getattr(error, "context_mark", None) or mark
    context = getattr(error, "context", None)
    message = f"YAML syntax: {problem}" + (f" ({context})" if context else "")
    hint = next((h for k, h in _SYNTAX_HINTS.items() if k in problem), None)
    if "mapping values are not allowed" in problem and mark is not None:
        hint = _indented_too_deep(text, mark) or hint
    if hint:
        message += f" — {hint}"
    last_line = max(1, len(text.splitlines()))
    return ConfigProblem(file, min(mark.line + 1, last_line) if mark else None, message)


def _indented_too_deep(text: str, mark: yaml.Mark) -> str | None:
    """The hint for a field's line indented deeper than the line above, which has its value
    already (YAML then reads the field as part of that value): most often the line above
    lost its indentation. None when the ': ' YAML stumbled on follows another one on its line
    (a value that needs quotes)."""
    lines = text.splitlines()
    if mark.line >= len(lines) or ": " in lines[mark.line][:mark.column]:
        return None
    above = next((number for number in range(mark.line - 1, -1, -1)
                  if lines[number].strip() and not lines[number].lstrip().startswith("#")),
                 None)
    if above is None:
        return None
    return (f"this line is indented deeper than line {above + 1}, which has its value "
            f"already: the fields of one entry must line up (did line {above + 1} lose its "
            f"indentation?)")


class _Index:
    """The line of every mapping key and list item in a YAML document, by path."""

    def __init__(self, root: yaml.Node, file: str):
        self.file = file
        self.lines: dict[_YamlPath, int] = {(): root.start_mark.line + 1}
        self.problems: list[ConfigProblem] = []
        self._scalars = yaml.SafeLoader("")
        self._walk(root, ())

    def _walk(self, node: yaml.Node, path: _YamlPath) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = self._scalars.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    self.problems.append(ConfigProblem(
                        self.file, line,
                        f"{_where(path + (key,))}'{key}' appears twice (first on line {seen[key]}); "
                        f"YAML would silently keep only this one: merge them into one"))
                    continue
                seen[key] = line
                self.lines[path + (key,)] = line
                self._walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.lines[path + (index,)] = item.start_mark.line + 1
                self._walk(item, path + (index,))

    def line(self, path: _YamlPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor in the file (a missing field → the
        line of the entry that lacks it)."""
        while path not in self.lines:
            path = path[:-1]
        return self.lines[path]


def _read(path: Path) -> tuple[list[ConfigProblem], Any, _Index | None]:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return [ConfigProblem(file, None, f"cannot read the file: {error}")], None, None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is None:
            return [ConfigProblem(file, None, "the file is empty")], None, None
        index = _Index(root, file)
        loader = yaml.SafeLoader("")
        data = loader.construct_document(root)
    except yaml.YAMLError as error:
        return [_syntax_problem(file, text, error)], None, None
    return list(index.problems), data, index


# ---------------------------------------------------------------------------------------------
# Turning marshmallow's errors into problems
# ---------------------------------------------------------------------------------------------

def _where(path: _YamlPath) -> str:
    """Name the entry a path is in, for the start of a message: "purpose 'e_marketing': "."""
    if len(path) >= 3 and path[0] in _SECTIONS:
        return f"{_SECTIONS[path[0]]} '{path[1]}': "
    if len(path) >= 4 and path[:2] == ("new_persons", "source_rules") and isinstance(path[2], int):
        return f"new_persons source rule {path[2] + 1}: "
    return ""


def _field_name(path: _YamlPath) -> str:
    """The field part of a path, after the entry _where() names: "notice.version"."""
    if len(path) >= 3 and path[0] in _SECTIONS:
        rest = path[2:]
    elif len(path) >= 4 and path[:2] == ("new_persons", "source_rules"):
        rest = path[3:]
    else:
        rest = path
    return ".".join(f"[{p + 1}]" if isinstance(p, int) else str(p) for p in rest).replace(".[", "[")


def _flatten(errors: Any, holder: Schema | fields.Field | None,
             path: _YamlPath) -> Iterator[tuple[_YamlPath, str, list[str] | None]]:
    """Yield (path, message, known field names for an unknown field) from marshmallow's errors."""
    if isinstance(holder, fields.Nested):
        holder = holder.schema
    if isinstance(errors, list):
        for message in errors:
            if isinstance(message, Mapping):
                yield from _flatten(message, holder, path)
            else:
                yield path, str(message), None
        return
    if not isinstance(errors, Mapping):
        yield path, str(errors), None
        return
    if isinstance(holder, Schema):
        for name, sub in errors.items():
            if name == "_schema":
                yield from _flatten(sub, None, path)
            elif name in holder.fields:
                yield from _flatten(sub, holder.fields[name], path + (name,))
            else:
                yield path + (name,), _UNKNOWN, sorted(holder.fields)
    elif isinstance(holder, fields.Dict):
        for key, sub in errors.items():
            if isinstance(sub, Mapping) and ("key" in sub or "value" in sub):
                if "key" in sub:
                    yield from _flatten(sub["key"], holder.key_field, path + (key,))
                if "value" in sub:
                    yield from _flatten(sub["value"], holder.value_field, path + (key,))
            else:
                yield from _flatten(sub, None, path + (key,))
    elif isinstance(holder, fields.List):
        for index, sub in errors.items():
            yield from _flatten(sub, holder.inner, path + (index,))
    else:
        for key, sub in errors.items():
            yield from _flatten(sub, None, path + (key,))


def _schema_problems(errors: Mapping, index: _Index) -> list[ConfigProblem]:
    problems = []
    for path, message, known in _flatten(errors, _ConfigSchema(), ()):
        where = _where(path)
        if known is not None:
            name = str(path[-1])
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed here: {', '.join(known)}"
            text = f"{where}unknown field '{name}' ({hint})"
        elif path:
            text = f"{where}'{_field_name(path)}' {message}"
        else:
            text = message
        problems.append(ConfigProblem(index.file, index.line(path), text))
    return problems


# ---------------------------------------------------------------------------------------------
# Cross-checks on the raw data (run even when the shape has errors elsewhere)
# ---------------------------------------------------------------------------------------------

def _entries(data: Any, section: str) -> list[tuple[str, dict]]:
    value = data.get(section) if isinstance(data, Mapping) else None
    if not isinstance(value, Mapping):
        return []
    return [(key, entry) for key, entry in value.items() if isinstance(entry, Mapping)]


def _defined(keys: list[str]) -> str:
    return ", ".join(keys) if keys else "none"


class _CrossChecks:
    def __init__(self, data: Any, index: _Index):
        self.data = data if isinstance(data, Mapping) else {}
        self.index = index
        self.problems: list[ConfigProblem] = []

    def add(self, path: _YamlPath, message: str) -> None:
        self.problems.append(ConfigProblem(self.index.file, self.index.line(path), message))

    def run(self) -> list[ConfigProblem]:
        self.languages()
        for section in _SECTIONS:
            self.duplicate_crm_keys(section)
        self.withdrawn_marker()
        self.new_persons()
        self.subscription_page()
        self.purposes()
        self.subscriptions()
        return self.problems

    # -- languages -----------------------------------------------------------------------------

    def languages(self) -> None:
        languages = self.data.get("languages", [FALLBACK_LANGUAGE])
        if not isinstance(languages, list):
            return
        seen: set = set()
        for position, language in enumerate(languages):
            if language in seen:
                self.add(("languages", position), f"languages: '{language}' is listed twice")
            seen.add(language)
        if FALLBACK_LANGUAGE not in languages:
            self.add(("languages",), f"languages: '{FALLBACK_LANGUAGE}' must be listed: English "
                                     f"is shown when a text is missing in a person's language")
        allowed = [lang for lang in languages if isinstance(lang, str)]
        for section in _SECTIONS:
            for key, entry in _entries(self.data, section):
                for field in ("name", "description", "retention", "recipients"):
                    self.texts((section, key, field), entry.get(field), allowed,
                               required=field in ("name", "retention"))
                notice = entry.get("notice")
                if isinstance(notice, Mapping):
                    self.texts((section, key, "notice", "text"), notice.get("text"), allowed,
                               required=True)
                    earlier = notice.get("earlier")
                    for version in earlier if isinstance(earlier, Mapping) else ():
                        self.texts((section, key, "notice", "earlier", version),
                                   earlier[version], allowed, required=True)

    def texts(self, path: _YamlPath, texts: Any, allowed: list[str], *, required: bool) -> None:
        if not isinstance(texts, Mapping):
            return  # missing or wrong type: the schema says so
        field = _field_name(path)
        for language in texts:
            if isinstance(language, str) and language not in allowed:
                self.add(path + (language,),
                         f"{_where(path)}'{field}' has a text in '{language}', which is not in "
                         f"languages ({_defined(allowed)}): add it there, or correct the language code")
        if (texts and FALLBACK_LANGUAGE not in texts) or (required and not texts):
            self.add(path, f"{_where(path)}'{field}' needs an English text ({FALLBACK_LANGUAGE}: "
                           f"...): it is shown when a person's language has none")

    # -- lists of the CRM ------------------------------------------------------------------------

    def duplicate_crm_keys(self, section: str) -> None:
        seen: dict[str, str] = {}
        for key, entry in _entries(self.data, section):
            crm_key = entry.get("crm_key")
            if not isinstance(crm_key, str) or not crm_key.strip():
                continue
            folded = fold_key(crm_key)
            if folded in seen:
                self.add((section, key, "crm_key"),
                         f"{_SECTIONS[section]} '{key}': crm_key '{crm_key}' is already used by "
                         f"{_SECTIONS[section]} '{seen[folded]}' (line "
                         f"{self.index.line((section, seen[folded], 'crm_key'))}); each "
                         f"{_SECTIONS[section]} needs its own key in the CRM")
            else:
                seen[folded] = key

    def withdrawn_marker(self) -> None:
        if not isinstance(self.data.get("legal_bases"), Mapping):
            return
        marked = [key for key, entry in _entries(self.data, "legal_bases")
                  if entry.get("withdrawn") is True]
        if not marked:
            self.add(("legal_bases",),
                     "legal_bases: no legal basis has 'withdrawn: true'. Exactly one must: "
                     "SuperOffice records a withdrawal or objection as the legal base WITHDRAWN, "
                     "e.g. withdrawn: {crm_key: WITHDRAWN, name: {en: Withdrawn}, withdrawn: true}")
        for key in marked[1:]:
            self.add(("legal_bases", key, "withdrawn"),
                     f"legal basis '{key}': only one legal basis may have 'withdrawn: true', and "
                     f"'{marked[0]}' already has it (the CRM has one WITHDRAWN marker)")

    # -- references ------------------------------------------------------------------------------

    def reference(self, path: _YamlPath, value: Any, section: str, prefix: str) -> bool:
        """Report ``value`` when it names no entry of ``section``; True when it is defined."""
        if not isinstance(value, str) or not isinstance(self.data.get(section), Mapping):
            return False
        keys = [str(k) for k in self.data[section]]
        if value in keys:
            return True
        close = difflib.get_close_matches(value, keys, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        self.add(path, f"{prefix}{_SECTIONS[section]} '{value}' is not defined in {section} "
                       f"(defined: {_defined(keys)}){hint}")
        return False

    def new_persons(self) -> None:
        new_persons = self.data.get("new_persons")
        if not isinstance(new_persons, Mapping):
            return
        self.reference(("new_persons", "source"), new_persons.get("source"), "sources",
                       "new_persons: ")
        rules = new_persons.get("source_rules")
        if not isinstance(rules, list):
            return
        seen: dict[int, int] = {}
        for position, rule in enumerate(rules):
            if not isinstance(rule, Mapping):
                continue
            path = ("new_persons", "source_rules", position)
            self.reference(path + ("source",), rule.get("source"), "sources", _where(path + ("",)))
            associate = rule.get("created_by_associate_id")
            if isinstance(associate, int) and not isinstance(associate, bool):
                if associate in seen:
                    self.add(path + ("created_by_associate_id",),
                             f"{_where(path + ('',))}associate {associate} already has rule "
                             f"{seen[associate] + 1}; the first match wins, so this rule would "
                             f"never apply")
                else:
                    seen[associate] = position

    def subscription_page(self) -> None:
        page = self.data.get("subscription_page")
        if "subscription_page" in self.data and not isinstance(page, Mapping):
            return  # empty or not a group of fields: the schema says so
        for field, section in (("source", "sources"), ("consent_legal_basis", "legal_bases")):
            path = ("subscription_page", field)
            if page is not None and field in page:
                key = page[field]
                defined = self.reference(path, key, section, "subscription_page: ")
            else:
                key = PAGE_DEFAULTS[field]
                defined = self.page_default(path if page is not None else (), field, section)
            basis = None
            if defined and section == "legal_bases":
                basis = self.data["legal_bases"].get(key)
            if isinstance(basis, Mapping) and basis.get("withdrawn") is True:
                given = page is not None and field in page
                self.add(path if page is not None else (),
                         f"subscription_page: {'' if given else 'the default '}"
                         f"consent_legal_basis '{key}' is the withdrawal marker (withdrawn: "
                         f"true), so a person giving consent on their page would be recorded as "
                         f"withdrawn. Name the legal basis of consent, GDPR Art. 6(1)(a)"
                         f"{'' if given else ', in a subscription_page section'}")

    def page_default(self, path: _YamlPath, field: str, section: str) -> bool:
        """Report a left-out ``subscription_page`` field whose default names no entry of
        ``section``; True when the default is defined."""
        entries = self.data.get(section)
        if not isinstance(entries, Mapping):
            return False  # missing or broken section: reported on its own
        default = PAGE_DEFAULTS[field]
        if default in entries:
            return True
        keys = [str(k) for k in entries]
        if path:
            self.add(path, f"subscription_page: '{field}' is not given, and its default "
                           f"{_SECTIONS[section]} '{default}' is not defined in {section} "
                           f"(defined: {_defined(keys)}): add {field}: <one of them>")
        else:
            self.add(path, f"subscription_page is missing, and its default {field} '{default}' "
                           f"is not defined in {section} (defined: {_defined(keys)}): add the "
                           f"section, e.g. subscription_page: {{source: <a source>, "
                           f"consent_legal_basis: <a legal basis>}}")
        return False

    # -- GDPR rules on purposes --------------------------------------------------------------------

    def purposes(self) -> None:
        legal_bases = dict(_entries(self.data, "legal_bases"))
        for key, purpose in _entries(self.data, "purposes"):
            where = f"purpose '{key}': "
            requires_consent = purpose.get("requires_consent") is True
            default = purpose.get("default_for_new_persons")
            if requires_consent and "default_for_new_persons" in purpose:
                self.add(("purposes", key, "default_for_new_persons"),
                         f"{where}requires_consent is true, so it must not have "
                         f"default_for_new_persons: under GDPR (Art. 4(11), 7) consent is only "
                         f"valid when the person gives it by a clear act of their own; a default "
                         f"would record a consent nobody gave. Remove default_for_new_persons")
            elif isinstance(default, Mapping):
                path = ("purposes", key, "default_for_new_persons", "legal_basis")
                basis_key = default.get("legal_basis")
                if self.reference(path, basis_key, "legal_bases", where):
                    basis = legal_bases.get(basis_key, {})
                    if basis.get("withdrawn") is True:
                        self.add(path, f"{where}the default legal basis '{basis_key}' is the "
                                       f"withdrawal marker: a new person cannot start out "
                                       f"withdrawn. Choose the basis the purpose rests on, or "
                                       f"remove default_for_new_persons")
                    elif basis_key == CONSENT_KEY or basis.get("crm_key") == CONSENT_CRM_KEY:
                        self.add(path, f"{where}a default cannot rest on the legal basis "
                                       f"'{basis_key}' (consent, GDPR Art. 6(1)(a)): only the "
                                       f"person can give consent, by their own clear act "
                                       f"(Art. 4(11), 7). Use another basis such as "
                                       f"legitimate_interest or contract, or remove the default "
                                       f"and set requires_consent: true")
            if requires_consent and purpose.get("allow_objection") is True:
                self.add(("purposes", key, "allow_objection"),
                         f"{where}requires_consent is true, so it must not have "
                         f"allow_objection: true: the person switches such a purpose on and off on "
                         f"their page anyway (giving and withdrawing consent). Remove "
                         f"allow_objection")
            if requires_consent and "notice" not in purpose:
                self.add(("purposes", key),
                         f"{where}requires_consent is true, so it needs a notice: the text "
                         f"the person agrees to and its version, e.g. notice: {{version: "
                         f"\"2026-01\", text: {{en: \"I agree to ...\"}}}}. GDPR Art. 7(1): "
                         f"we must be able to show what the person agreed to")
            self.expiry(key, purpose, requires_consent)

    def expiry(self, key: str, purpose: Mapping, requires_consent: bool) -> None:
        """consent_valid_for only where the person consents; remind_before and on_expiry only
        with it, and the reminder before the consent's whole term."""
        where = f"purpose '{key}': "
        valid_for = purpose.get("consent_valid_for")
        if "consent_valid_for" in purpose and not requires_consent:
            self.add(("purposes", key, "consent_valid_for"),
                     f"{where}consent_valid_for is only for purposes with requires_consent: "
                     f"true: a consent the person gave can lapse, a legal basis such as "
                     f"legitimate interest does not. Remove it, or set requires_consent: true")
        for field in ("remind_before", "on_expiry"):
            if field in purpose and "consent_valid_for" not in purpose:
                self.add(("purposes", key, field),
                         f"{where}{field} needs consent_valid_for (how long a consent lasts), "
                         f"e.g. consent_valid_for: 24 months")
        remind = purpose.get("remind_before")
        spans = [_span(valid_for), _span(remind)]
        if None not in spans and spans[1] >= spans[0]:
            self.add(("purposes", key, "remind_before"),
                     f"{where}remind_before ({remind}) must be shorter than consent_valid_for "
                     f"({valid_for}): the person is asked to renew before the consent ends")


    # -- subscriptions (the CRM's shipment types) --------------------------------------------------

    def subscriptions(self) -> None:
        purposes = dict(_entries(self.data, "purposes"))
        seen: dict[Any, str] = {}
        for key, entry in _entries(self.data, "subscriptions"):
            where = f"subscription '{key}': "
            purpose = entry.get("purpose")
            if self.reference(("subscriptions", key, "purpose"), purpose, "purposes", where):
                if purposes.get(purpose, {}).get("requires_consent") is not True:
                    self.add(("subscriptions", key, "purpose"),
                             f"{where}purpose '{purpose}' does not have requires_consent: true; "
                             f"subscriptions are mailings the person chooses under a consent "
                             f"(like e_marketing), and CRM mailings need both")
            shipment_type = entry.get("shipment_type")
            if isinstance(shipment_type, bool) or not isinstance(shipment_type, int | str):
                continue
            folded = fold_key(shipment_type) if isinstance(shipment_type, str) else shipment_type
            if folded in seen:
                self.add(("subscriptions", key, "shipment_type"),
                         f"{where}shipment type {shipment_type!r} is already used by subscription "
                         f"'{seen[folded]}' (line "
                         f"{self.index.line(('subscriptions', seen[folded], 'shipment_type'))}); "
                         f"each subscription needs its own shipment type in the CRM")
            else:
                seen[folded] = key


# ---------------------------------------------------------------------------------------------
# Putting it together
# ---------------------------------------------------------------------------------------------

def _check(path: Path) -> tuple[list[ConfigProblem], ConsentConfig | None]:
    problems, data, index = _read(path)
    if index is None:
        return problems, None
    loaded = None
    if not isinstance(data, Mapping):
        problems.append(ConfigProblem(index.file, index.line(()),
                                      "the file must be a set of sections (languages:, "
                                      "legal_bases:, sources:, new_persons:, "
                                      "subscription_page:, purposes:), "
                                      f"not {_describe(data)}"))
        return problems, None
    try:
        loaded = _ConfigSchema().load(data)
    except ValidationError as error:
        problems += _schema_problems(error.messages, index)
    problems += _CrossChecks(data, index).run()
    problems = sorted(_unique(problems), key=lambda p: (p.line is None, p.line or 0))
    if problems or loaded is None:
        return problems, None
    return [], _build(loaded)


def _span(value: Any) -> timedelta | None:
    """How long a span the file writes ("30 days") lasts from a fixed day, to compare two
    spans; None when it is not one (the schema says why)."""
    try:
        duration = _Duration().deserialize(value)
    except ValidationError:
        return None
    start = datetime(2001, 1, 1, tzinfo=timezone.utc)
    return duration.after(start) - start


def _unique(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return list(dict.fromkeys(problems))


def _build(data: dict) -> ConsentConfig:
    legal_bases = {key: LegalBasis(key=key, crm_key=entry["crm_key"], name=entry["name"],
                                   description=entry["description"], withdrawn=entry["withdrawn"])
                   for key, entry in data["legal_bases"].items()}
    sources = {key: Source(key=key, crm_key=entry["crm_key"], name=entry["name"],
                           confirm_by_email=entry["confirm_by_email"])
               for key, entry in data["sources"].items()}
    purposes = {}
    for key, entry in data["purposes"].items():
        default = entry["default_for_new_persons"]
        notice = entry["notice"]
        purposes[key] = Purpose(
            key=key, crm_key=entry["crm_key"], name=entry["name"],
            description=entry["description"],
            default_legal_basis=default["legal_basis"] if default else None,
            requires_consent=entry["requires_consent"],
            allow_objection=entry["allow_objection"],
            notice=Notice(version=notice["version"], text=notice["text"],
                          earlier=notice["earlier"]) if notice else None,
            privacy_statement_url=entry["privacy_statement_url"],
            retention=entry["retention"], recipients=entry["recipients"],
            expiry=ConsentExpiry(entry["consent_valid_for"], entry["remind_before"],
                                 entry["on_expiry"]) if entry["consent_valid_for"] else None)
    new_persons = data["new_persons"]
    page = data["subscription_page"] or PAGE_DEFAULTS
    controller, officer = data["controller"], data["controller"]["dpo"]
    authority = controller["supervisory_authority"]
    return ConsentConfig(
        delete_after=data["delete_after"],
        controller=Controller(
            name=controller["name"], address=controller["address"], email=controller["email"],
            privacy_statement_url=controller["privacy_statement_url"],
            supervisory_authority=SupervisoryAuthority(authority["name"], authority["url"]),
            dpo=DataProtectionOfficer(officer["email"], officer["name"]) if officer else None),
        legal_bases=legal_bases, sources=sources, purposes=purposes,
        default_source=new_persons["source"],
        source_rules=tuple(SourceRule(rule["created_by_associate_id"], rule["source"])
                           for rule in new_persons["source_rules"]),
        languages=tuple(data["languages"]),
        page_source=page["source"], page_consent_legal_basis=page["consent_legal_basis"],
        subscriptions={key: Subscription(
            key=key, purpose=entry["purpose"], name=entry["name"],
            description=entry["description"],
            shipment_type_id=entry["shipment_type"] if isinstance(entry["shipment_type"], int)
            else None,
            shipment_type_name=entry["shipment_type"] if isinstance(entry["shipment_type"], str)
            else None)
            for key, entry in data["subscriptions"].items()})



class LiveConfig:
    """The purposes config as the admin last saved it, picked up without a restart.

    ``current()`` looks at the file at most every ``check_every`` seconds; a changed file is
    validated and, when valid, replaces the config in force. An invalid edit is refused: it is
    logged with its file, line and reason, and the last good config stays in force.
    """

    def __init__(self, path: str | Path, check_every: float = 2.0, *, required: bool = True):
        """Load the file. ``required``: an invalid file raises ConfigError (a process cannot
        work without a good config); else it is kept as ``refused`` with no config in force
        (``status`` still reports)."""
        self.path = Path(path)
        self.check_every = check_every
        self.refused: ConfigError | None = None
        """Why the file on disk was refused the last time it was read; None when in force."""
        self.refused_version: str | None = None
        self._seen = self._stamp()  # before reading: an edit saved meanwhile is seen later
        self._checked_at = time.monotonic()
        self._config: ConsentConfig | None = None
        self.version: str | None = None
        try:
            self._config = load_config(self.path)
            self.version = config_version(self.path)
        except ConfigError as error:
            if required:
                raise
            self.refused, self.refused_version = error, config_version(self.path)

    def current(self) -> ConsentConfig:
        """Return the config in force, reloading the file first if it changed.

        Raises:
            ConfigError: no valid config was ever loaded (only with ``required=False``).
        """
        if time.monotonic() - self._checked_at >= self.check_every:
            self.refresh()
        if self._config is None:
            raise self.refused
        return self._config

    def refresh(self) -> None:
        """Reload the file now if it changed since it was last read."""
        self._checked_at = time.monotonic()
        stamp = self._stamp()
        if stamp == self._seen:
            return
        self._seen = stamp
        try:
            self._config = load_config(self.path)
        except ConfigError as error:
            self.refused, self.refused_version = error, config_version(self.path)
            log.error("config.rejected file=%s kept=%s problems=%s", self.path, self.version,
                      " | ".join(str(problem) for problem in error.problems))
            return
        self.version = config_version(self.path)
        self.refused = self.refused_version = None
        log.info("config.reloaded file=%s version=%s", self.path, self.version)

    def _stamp(self) -> tuple[float, int] | None:
        try:
            status = self.path.stat()
        except OSError:
            return None
        return status.st_mtime_ns, status.st_size


def config_version(path: str | Path) -> str:
    """A short fingerprint of the file's content (first 12 hex digits of its SHA-256)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except OSError:
        return "unreadable"
