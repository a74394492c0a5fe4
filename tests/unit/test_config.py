"""config/purposes.yaml: the shipped file loads, and every bad edit is refused with its line."""

import textwrap
from pathlib import Path

import pytest

from connector.config import check_config, load_config
from connector.consent import ConsentConfig
from connector.exceptions import ConfigError, ConfigProblem

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "purposes.yaml"

# A small valid file. Tests replace one line at a time; line numbers are 1-based.
VALID = """\
languages: [en, nb]
legal_bases:
  consent: {crm_key: "61A", name: {en: Consent}}
  legitimate_interest: {crm_key: "61F", name: {en: Legitimate interest}}
  withdrawn: {crm_key: WITHDRAWN, name: {en: Withdrawn}, withdrawn: true}
sources:
  user: {crm_key: USER, name: {en: User}, confirm_by_email: true}
  web_form: {crm_key: WEBFORM, name: {en: Web form}, confirm_by_email: true}
new_persons:
  source: user
  source_rules:
    - {created_by_associate_id: 42, source: web_form}
purposes:
  sales_and_service:
    crm_key: STORE
    name: {en: Sales and service, nb: Salg og service}
    default_for_new_persons: {legal_basis: legitimate_interest}
    retention: {en: While you are a customer}
  e_marketing:
    crm_key: EMARKETING
    name: {en: E-marketing}
    requires_consent: true
    notice: {version: "2026-01", text: {en: I agree}}
    retention: {en: Until you withdraw}
controller:
  name: Acme AS
  address: "Storgata 1, 0155 Oslo"
  email: privacy@acme.example
  privacy_statement_url: https://acme.example/privacy
  supervisory_authority: {name: Datatilsynet, url: "https://www.datatilsynet.no"}
"""


def in_purposes(text: str) -> str:
    """VALID with ``text`` added at the end of its purposes (from line 25, before controller)."""
    return VALID.replace("controller:\n", text + "controller:\n", 1)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "purposes.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def edit(tmp_path: Path, **lines: str) -> Path:
    """VALID with some lines replaced: edit(tmp_path, line_15="    crm_kye: STORE")."""
    rows = VALID.splitlines()
    for name, text in lines.items():
        rows[int(name.removeprefix("line_")) - 1] = text
    return write(tmp_path, "\n".join(rows) + "\n")


def only_problem(path: Path) -> ConfigProblem:
    problems = check_config(path)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def assert_problem(problem: ConfigProblem, line: int, *words: str) -> None:
    assert problem.line == line, str(problem)
    for word in words:
        assert word in problem.message, str(problem)


# --- the shipped file ----------------------------------------------------------------------------

def test_shipped_config_loads_with_superoffice_keys():
    config = load_config(SHIPPED)

    assert isinstance(config, ConsentConfig)
    assert config.languages == ("en", "nb", "sv", "da", "de", "nl")
    assert [b.crm_key for b in config.legal_bases.values()] == ["61A", "61B", "61F", "WITHDRAWN"]
    assert [b.key for b in config.legal_bases.values() if b.withdrawn] == ["withdrawn"]

    store = config.purpose_by_crm_key("STORE")
    assert store.key == "sales_and_service"
    assert config.legal_bases[store.default_legal_basis].crm_key == "61F"
    assert not store.requires_consent

    emarketing = config.purpose_by_crm_key("EMARKETING")
    assert emarketing.requires_consent and emarketing.default_legal_basis is None
    assert emarketing.notice.version and emarketing.notice.text["en"]

    assert [s.crm_key for s in config.sources.values()] == ["USER", "WEBFORM", "API"]
    assert config.source_for(None).crm_key == "USER"
    rule = config.source_rules[0]
    assert config.source_for(rule.created_by_associate_id).crm_key == "WEBFORM"
    assert config.source_by_crm_key("API").confirm_by_email is False

    assert store.allow_objection and not emarketing.allow_objection
    assert config.sources[config.page_source].crm_key == "WEBFORM"
    assert config.legal_bases[config.page_consent_legal_basis].crm_key == "61A"


def test_shipped_config_has_every_text_in_every_language():
    config = load_config(SHIPPED)
    texts = [t for b in config.legal_bases.values() for t in (b.name, b.description)]
    texts += [s.name for s in config.sources.values()]
    texts += [t for p in config.purposes.values() for t in (p.name, p.description, p.retention)]
    texts += [p.notice.text for p in config.purposes.values() if p.notice]
    texts += [p.recipients for p in config.purposes.values() if p.recipients]
    for text in texts:
        assert set(text) == set(config.languages), text


def test_valid_file_has_no_problems_and_keeps_file_order(tmp_path):
    path = write(tmp_path, VALID)
    assert check_config(path) == []
    config = load_config(path)
    assert list(config.purposes) == ["sales_and_service", "e_marketing"]
    assert list(config.legal_bases) == ["consent", "legitimate_interest", "withdrawn"]
    assert config.default_source == "user"
    assert config.purposes["e_marketing"].notice.version == "2026-01"
    assert not any(p.allow_objection for p in config.purposes.values())  # default false
    assert (config.page_source, config.page_consent_legal_basis) == ("web_form", "consent")


# --- YAML syntax and shape -------------------------------------------------------------------------

def test_yaml_syntax_error_gives_line(tmp_path):
    path = edit(tmp_path, line_16="    name: {en: Sales and service, nb: Salg og service")
    assert_problem(only_problem(path), 17, "YAML syntax")


def test_tab_indentation_gets_a_hint(tmp_path):
    path = edit(tmp_path, line_15="\tcrm_key: STORE")
    assert_problem(only_problem(path), 15, "YAML syntax", "tabs")


def test_load_config_raises_config_error_with_problems(tmp_path):
    path = edit(tmp_path, line_15="    crm_kye: STORE")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == check_config(path)
    assert f"{path}:15: purpose 'sales_and_service': unknown field 'crm_kye'" in str(caught.value)


def test_unknown_field_suggests_the_right_name(tmp_path):
    path = edit(tmp_path, line_15="    crm_key: STORE", line_22="    requires_concent: true")
    problems = check_config(path)
    assert_problem(problems[0], 22, "purpose 'e_marketing'", "unknown field 'requires_concent'",
                   "did you mean 'requires_consent'?")


def test_unknown_top_level_section(tmp_path):
    path = write(tmp_path, VALID + "purpose:\n  x: {crm_key: X}\n")
    assert_problem(only_problem(path), 31, "unknown field 'purpose'", "did you mean 'purposes'?")


def test_missing_required_field_points_at_the_entry(tmp_path):
    path = edit(tmp_path, line_15="    description: {en: What we do}")
    assert_problem(only_problem(path), 14, "purpose 'sales_and_service'", "'crm_key'", "missing")


def test_missing_section(tmp_path):
    path = write(tmp_path, VALID.replace("new_persons:\n  source: user\n  source_rules:\n"
                                         "    - {created_by_associate_id: 42, source: web_form}\n",
                                         ""))
    assert_problem(only_problem(path), 1, "'new_persons'", "missing")


def test_wrong_types(tmp_path):
    path = edit(tmp_path,
                line_7="  user: {crm_key: USER, name: {en: User}, confirm_by_email: \"yes\"}",
                line_12="    - {created_by_associate_id: forty-two, source: web_form}")
    problems = check_config(path)
    assert len(problems) == 2, problems
    assert_problem(problems[0], 7, "source 'user'", "confirm_by_email", "true or false")
    assert_problem(problems[1], 12, "source rule 1", "created_by_associate_id", "whole number")


def test_unquoted_numeric_crm_key_asks_for_quotes(tmp_path):
    path = edit(tmp_path, line_3="  consent: {crm_key: 61, name: {en: Consent}}")
    assert_problem(only_problem(path), 3, "legal basis 'consent'", "must be text", "quotes")


def test_empty_crm_key(tmp_path):
    path = edit(tmp_path, line_15='    crm_key: ""')
    assert_problem(only_problem(path), 15, "purpose 'sales_and_service'", "crm_key", "empty")


def test_duplicate_yaml_key_is_reported(tmp_path):
    path = write(tmp_path, in_purposes("  sales_and_service:\n    crm_key: OTHER\n"
                                       "    name: {en: X}\n    retention: {en: Y}\n"))
    problem = only_problem(path)
    assert_problem(problem, 25, "'sales_and_service' appears twice", "line 14")


# --- cross-references ------------------------------------------------------------------------------

def test_default_legal_basis_must_be_defined(tmp_path):
    path = edit(tmp_path, line_17="    default_for_new_persons: {legal_basis: legit}")
    assert_problem(only_problem(path), 17, "purpose 'sales_and_service'",
                   "legal basis 'legit' is not defined in legal_bases",
                   "defined: consent, legitimate_interest, withdrawn")


def test_default_source_must_be_defined(tmp_path):
    path = edit(tmp_path, line_10="  source: usr")
    assert_problem(only_problem(path), 10, "new_persons", "source 'usr' is not defined in sources",
                   "did you mean 'user'?")


def test_source_rule_source_must_be_defined(tmp_path):
    path = edit(tmp_path, line_12="    - {created_by_associate_id: 42, source: webform}")
    assert_problem(only_problem(path), 12, "source rule 1", "'webform' is not defined in sources",
                   "user, web_form")


# --- GDPR rules ------------------------------------------------------------------------------------

def test_requires_consent_purpose_cannot_have_a_default(tmp_path):
    path = write(tmp_path, in_purposes("    default_for_new_persons: {legal_basis: consent}\n"))
    assert_problem(only_problem(path), 25, "purpose 'e_marketing'", "requires_consent",
                   "default_for_new_persons", "GDPR", "consent nobody gave")


def test_default_cannot_rest_on_consent(tmp_path):
    path = edit(tmp_path, line_17="    default_for_new_persons: {legal_basis: consent}")
    assert_problem(only_problem(path), 17, "purpose 'sales_and_service'", "consent",
                   "Art. 6(1)(a)", "only the person can give consent")


def test_default_cannot_be_the_withdrawn_basis(tmp_path):
    path = edit(tmp_path, line_17="    default_for_new_persons: {legal_basis: withdrawn}")
    assert_problem(only_problem(path), 17, "purpose 'sales_and_service'", "'withdrawn'",
                   "withdrawal marker")


def test_requires_consent_needs_a_notice(tmp_path):
    path = write(tmp_path, VALID.replace('    notice: {version: "2026-01", text: {en: I agree}}\n',
                                         ""))
    assert_problem(only_problem(path), 19, "purpose 'e_marketing'", "needs a notice", "Art. 7(1)")


def test_notice_needs_a_version(tmp_path):
    path = edit(tmp_path, line_23="    notice: {text: {en: I agree}}")
    assert_problem(only_problem(path), 23, "purpose 'e_marketing'", "'notice.version'", "missing")


def test_notice_needs_an_english_text(tmp_path):
    path = edit(tmp_path, line_23='    notice: {version: "2026-01", text: {nb: Jeg samtykker}}')
    assert_problem(only_problem(path), 23, "purpose 'e_marketing'", "'notice.text'",
                   "English text")


# --- lists and languages ---------------------------------------------------------------------------

def test_duplicate_crm_key_in_one_list(tmp_path):
    path = edit(tmp_path, line_20="    crm_key: STORE")
    assert_problem(only_problem(path), 20, "purpose 'e_marketing'", "crm_key 'STORE'",
                   "already used by purpose 'sales_and_service'", "line 15")


def test_same_crm_key_in_different_lists_is_fine(tmp_path):
    path = edit(tmp_path, line_20="    crm_key: USER")
    assert check_config(path) == []


def test_text_in_unlisted_language(tmp_path):
    path = edit(tmp_path, line_16="    name: {en: Sales and service, fr: Ventes}")
    assert_problem(only_problem(path), 16, "purpose 'sales_and_service'", "'name'", "'fr'",
                   "not in languages (en, nb)")


def test_name_needs_english(tmp_path):
    path = edit(tmp_path, line_16="    name: {nb: Salg og service}")
    assert_problem(only_problem(path), 16, "purpose 'sales_and_service'", "'name'",
                   "English text")


def test_english_must_be_a_listed_language(tmp_path):
    path = edit(tmp_path, line_1="languages: [nb, en_GB]")
    problems = check_config(path)
    assert problems, "a file without en in languages must be refused"
    assert_problem(problems[0], 1, "languages", "'en' must be listed")


# --- the withdrawn marker --------------------------------------------------------------------------

def test_a_withdrawn_legal_basis_is_required(tmp_path):
    path = edit(tmp_path, line_5="  withdrawn: {crm_key: WITHDRAWN, name: {en: Withdrawn}}")
    assert_problem(only_problem(path), 2, "legal_bases", "withdrawn: true", "WITHDRAWN")


def test_only_one_withdrawn_legal_basis(tmp_path):
    path = edit(tmp_path, line_3='  consent: {crm_key: "61A", name: {en: Consent}, withdrawn: true}')
    problems = check_config(path)
    assert len(problems) == 2, "\n".join(map(str, problems))
    # consent is also the person's page's default consent basis, which may not be withdrawn
    assert_problem(problems[0], 1, "subscription_page", "'consent' is the withdrawal marker")
    assert_problem(problems[1], 5, "legal basis 'withdrawn'", "only one",
                   "'consent' already has it")


# --- everything at once ----------------------------------------------------------------------------

def test_every_problem_is_reported_in_line_order(tmp_path):
    path = edit(tmp_path,
                line_5="  withdrawn: {crm_key: WITHDRAWN, name: {en: Withdrawn, fr: Retiré}}",
                line_10="  source: usr",
                line_15="    crm_kye: STORE",
                line_17="    default_for_new_persons: {legal_basis: legit}",
                line_20="    crm_key: 42")
    problems = check_config(path)
    found = [(p.line, p.message) for p in problems]
    assert [line for line, _ in found] == [2, 5, 10, 14, 15, 17, 20], "\n".join(map(str, problems))
    messages = " | ".join(message for _, message in found)
    for words in ("withdrawn: true", "'fr'", "source 'usr'", "'crm_key' is missing",
                  "unknown field 'crm_kye'", "legal basis 'legit'", "must be text"):
        assert words in messages
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(caught.value.problems) == 7


# --- who "we" are and how long we keep the data (GDPR Art. 13) ----------------------------------

def test_the_controller_and_each_purposes_retention_are_read(tmp_path):
    config = load_config(write(tmp_path, VALID.replace(
        "  supervisory_authority:", "  dpo: {email: dpo@acme.example}\n  supervisory_authority:")))
    controller = config.controller
    assert (controller.name, controller.address, controller.email) == (
        "Acme AS", "Storgata 1, 0155 Oslo", "privacy@acme.example")
    assert controller.privacy_statement_url == "https://acme.example/privacy"
    assert controller.supervisory_authority.name == "Datatilsynet"
    assert (controller.dpo.email, controller.dpo.name) == ("dpo@acme.example", None)
    assert config.purposes["sales_and_service"].retention == {"en": "While you are a customer"}
    assert config.purposes["e_marketing"].recipients == {}
    assert load_config(SHIPPED).controller.dpo.email == "dpo@example.com"


def test_a_file_without_a_controller_is_refused_saying_what_to_add(tmp_path):
    path = write(tmp_path, VALID.split("controller:")[0])
    assert_problem(only_problem(path), 1, "'controller' is missing", "Art. 13(1)(a)-(b)",
                   "supervisory_authority")


def test_a_purpose_without_retention_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, VALID.replace("    retention: {en: Until you withdraw}\n", ""))
    assert_problem(only_problem(path), 19, "purpose 'e_marketing'", "'retention' is missing",
                   "Art. 13(2)(a)")


def test_controller_fields_are_checked_with_their_lines(tmp_path):
    path = write(tmp_path, VALID.replace("  email: privacy@acme.example",
                                         "  email: privacy at acme")
                 .replace("  privacy_statement_url: https://acme.example/privacy",
                          "  privacy_statement_url: acme.example/privacy")
                 .replace('{name: Datatilsynet, url: "https://www.datatilsynet.no"}',
                          "{name: Datatilsynet}"))
    problems = check_config(path)
    assert [p.line for p in problems] == [28, 29, 30], "\n".join(map(str, problems))
    assert_problem(problems[0], 28, "'controller.email'", "email address")
    assert_problem(problems[1], 29, "'controller.privacy_statement_url'", "https://")
    assert_problem(problems[2], 30, "'controller.supervisory_authority.url'", "missing")


def test_retention_texts_follow_the_language_rules(tmp_path):
    path = edit(tmp_path, line_18="    retention: {nb: Så lenge du er kunde}")
    assert_problem(only_problem(path), 18, "purpose 'sales_and_service'", "'retention'",
                   "English text")


def test_delete_after_is_a_span_and_optional(tmp_path):
    assert load_config(write(tmp_path, VALID)).delete_after is None
    assert str(load_config(SHIPPED).delete_after) == "24 months"
    config = load_config(write(tmp_path, VALID + "delete_after: 3 Years\n"))
    assert (config.delete_after.count, config.delete_after.unit) == (3, "years")
    problem = only_problem(write(tmp_path, VALID + "delete_after: soon\n"))
    assert_problem(problem, 31, "'delete_after'", "\"24 months\"", "'soon'")


def test_earlier_consent_texts_are_kept_by_version_and_checked_like_texts(tmp_path):
    notice = '    notice: {version: "2026-01", text: {en: I agree}}'
    kept = VALID.replace(notice, notice[:-1] + ', earlier: {"2025-06": {en: I agreed}}}')
    assert load_config(write(tmp_path, kept)).purposes["e_marketing"].notice.earlier == {
        "2025-06": {"en": "I agreed"}}
    bad = VALID.replace(notice, notice[:-1] + ', earlier: {"2025-06": {nb: Jeg sa ja}}}')
    assert_problem(only_problem(write(tmp_path, bad)), 23, "'notice.earlier.2025-06'",
                   "English text")


def test_unreadable_and_empty_files(tmp_path):
    assert_problem(only_problem(tmp_path / "missing.yaml"), None, "cannot read")
    assert_problem(only_problem(write(tmp_path, "")), None, "empty")
    assert_problem(only_problem(write(tmp_path, "- a\n- b\n")), 1, "set of sections")


# --- objection -----------------------------------------------------------------------------------

def test_allow_objection_is_read(tmp_path):
    path = write(tmp_path, VALID.replace(
        "    default_for_new_persons: {legal_basis: legitimate_interest}\n",
        "    default_for_new_persons: {legal_basis: legitimate_interest}\n"
        "    allow_objection: true\n"))
    config = load_config(path)
    assert config.purposes["sales_and_service"].allow_objection is True
    assert config.purposes["e_marketing"].allow_objection is False


def test_allow_objection_must_be_true_or_false(tmp_path):
    path = write(tmp_path, VALID.replace(
        "    default_for_new_persons: {legal_basis: legitimate_interest}\n",
        "    default_for_new_persons: {legal_basis: legitimate_interest}\n"
        "    allow_objection: \"yes\"\n"))
    assert_problem(only_problem(path), 18, "purpose 'sales_and_service'", "allow_objection",
                   "true or false")


def test_requires_consent_purpose_cannot_allow_objection(tmp_path):
    path = write(tmp_path, in_purposes("    allow_objection: true\n"))
    assert_problem(only_problem(path), 25, "purpose 'e_marketing'", "requires_consent",
                   "allow_objection", "switches such a purpose on and off")


def test_requires_consent_purpose_may_say_allow_objection_false(tmp_path):
    path = write(tmp_path, in_purposes("    allow_objection: false\n"))
    assert check_config(path) == []


# --- the person's page ---------------------------------------------------------------------------

PAGE = "subscription_page:\n  source: {source}\n  consent_legal_basis: {basis}\n"


def test_subscription_page_is_read(tmp_path):
    path = write(tmp_path, VALID + PAGE.format(source="user", basis="legitimate_interest"))
    assert check_config(path) == []
    config = load_config(path)
    assert (config.page_source, config.page_consent_legal_basis) == ("user",
                                                                     "legitimate_interest")


def test_subscription_page_fields_default_one_by_one(tmp_path):
    path = write(tmp_path, VALID + "subscription_page:\n  source: user\n")
    config = load_config(path)
    assert (config.page_source, config.page_consent_legal_basis) == ("user", "consent")


def test_subscription_page_source_must_be_defined(tmp_path):
    path = write(tmp_path, VALID + PAGE.format(source="webform", basis="consent"))
    assert_problem(only_problem(path), 32, "subscription_page",
                   "source 'webform' is not defined in sources", "user, web_form",
                   "did you mean 'web_form'?")


def test_subscription_page_legal_basis_must_be_defined(tmp_path):
    path = write(tmp_path, VALID + PAGE.format(source="web_form", basis="concent"))
    assert_problem(only_problem(path), 33, "subscription_page",
                   "legal basis 'concent' is not defined in legal_bases",
                   "did you mean 'consent'?")


def test_subscription_page_legal_basis_cannot_be_withdrawn(tmp_path):
    path = write(tmp_path, VALID + PAGE.format(source="web_form", basis="withdrawn"))
    assert_problem(only_problem(path), 33, "subscription_page", "consent_legal_basis 'withdrawn'",
                   "withdrawal marker", "recorded as withdrawn")


def test_subscription_page_unknown_field(tmp_path):
    path = write(tmp_path, VALID + "subscription_page:\n  sorce: web_form\n")
    assert_problem(only_problem(path), 32, "unknown field 'sorce'", "did you mean 'source'?")


def test_subscription_page_fields_must_be_text(tmp_path):
    path = write(tmp_path, VALID + PAGE.format(source="web_form", basis="yes"))
    assert_problem(only_problem(path), 33, "'subscription_page.consent_legal_basis'",
                   "must be text")


def test_empty_subscription_page_section(tmp_path):
    path = write(tmp_path, VALID + "subscription_page:\n")
    assert_problem(only_problem(path), 31, "'subscription_page'", "empty")


def test_missing_subscription_page_needs_the_default_source(tmp_path):
    path = edit(tmp_path,
                line_8="  api: {crm_key: API, name: {en: API}, confirm_by_email: false}",
                line_12="    - {created_by_associate_id: 42, source: api}")
    assert_problem(only_problem(path), 1, "subscription_page is missing",
                   "default source 'web_form' is not defined in sources", "user, api",
                   "add the section")


def test_missing_subscription_page_needs_the_default_consent_basis(tmp_path):
    path = edit(tmp_path, line_3='  art6a: {crm_key: "61A", name: {en: Consent}}')
    assert_problem(only_problem(path), 1, "subscription_page is missing",
                   "default consent_legal_basis 'consent' is not defined in legal_bases",
                   "art6a", "add the section")
    path = write(tmp_path, VALID.replace('  consent: {crm_key: "61A"', '  art6a: {crm_key: "61A"')
                 + PAGE.format(source="web_form", basis="art6a"))
    assert check_config(path) == []
    assert load_config(path).page_consent_legal_basis == "art6a"


def test_missing_subscription_page_field_needs_its_default(tmp_path):
    path = write(tmp_path, VALID.replace('  consent: {crm_key: "61A"', '  art6a: {crm_key: "61A"')
                 + "subscription_page:\n  source: user\n")
    assert_problem(only_problem(path), 31, "subscription_page",
                   "'consent_legal_basis' is not given",
                   "default legal basis 'consent' is not defined", "add consent_legal_basis")


def test_default_consent_basis_cannot_be_the_withdrawal_marker(tmp_path):
    path = edit(tmp_path,
                line_3='  consent: {crm_key: WITHDRAWN, name: {en: Consent}, withdrawn: true}',
                line_5='  gone: {crm_key: GONE, name: {en: Gone}}')
    assert_problem(only_problem(path), 1, "subscription_page", "the default consent_legal_basis "
                   "'consent' is the withdrawal marker", "in a subscription_page section")


# --- consents that lapse -------------------------------------------------------------------------

def with_expiry(tmp_path: Path, *fields: str, purpose_line: int = 24) -> Path:
    """VALID with ``fields`` added to a purpose after line ``purpose_line`` (24: e_marketing's
    last line; 18: sales_and_service's), so the first added field is on line purpose_line+1."""
    rows = VALID.splitlines()
    rows[purpose_line:purpose_line] = [f"    {field}" for field in fields]
    return write(tmp_path, "\n".join(rows) + "\n")


def test_a_lapsing_consent_has_its_term_reminder_and_what_happens_when_it_lapses(tmp_path):
    shipped = load_config(SHIPPED).purposes["e_marketing"].expiry
    assert (str(shipped.valid_for), str(shipped.remind_before), shipped.on_expiry) == (
        "24 months", "30 days", "withdraw")
    assert load_config(write(tmp_path, VALID)).purposes["e_marketing"].expiry is None
    expiry = load_config(with_expiry(tmp_path, "consent_valid_for: 1 year")
                         ).purposes["e_marketing"].expiry
    assert (str(expiry.valid_for), expiry.remind_before, expiry.on_expiry) == (
        "1 year", None, "withdraw")


def test_consent_valid_for_on_a_purpose_without_consent_is_refused_with_its_line(tmp_path):
    problem = only_problem(with_expiry(tmp_path, "consent_valid_for: 24 months",
                                       purpose_line=18))
    assert_problem(problem, 19, "only for purposes with requires_consent: true",
                   "legitimate interest does not")


def test_a_reminder_not_shorter_than_the_term_is_refused(tmp_path):
    problem = only_problem(with_expiry(tmp_path, "consent_valid_for: 1 month",
                                       "remind_before: 5 weeks"))
    assert_problem(problem, 26, "remind_before (5 weeks) must be shorter than "
                                "consent_valid_for (1 month)")


def test_a_reminder_or_on_expiry_without_a_term_is_refused(tmp_path):
    problems = check_config(with_expiry(tmp_path, "remind_before: 30 days",
                                        "on_expiry: report"))
    assert [(p.line, "needs consent_valid_for" in p.message) for p in problems] == [
        (25, True), (26, True)]


def test_a_misspelt_on_expiry_is_refused_with_a_suggestion(tmp_path):
    problem = only_problem(with_expiry(tmp_path, "consent_valid_for: 24 months",
                                       "on_expiry: withdrow"))
    assert_problem(problem, 26, "must be withdraw", "or report", "did you mean 'withdraw'?")


def test_a_line_that_lost_its_indentation_is_named_with_the_line_below_it(tmp_path):
    problem = only_problem(edit(tmp_path, line_20="  crm_key: EMARKETING"))  # was 4 spaces
    assert_problem(problem, 21, "indented deeper than line 20, which has its value already",
                   "did line 20 lose its indentation?")
    assert "quotes" not in problem.message


def test_a_colon_inside_a_value_asks_for_quotes_in_both_styles(tmp_path):
    for line in ("    name: Sales: and service", "    name: {en: Sales: and service}"):
        assert_problem(only_problem(edit(tmp_path, line_16=line)), 16,
                       "a value containing ': ' must be put in quotes")
