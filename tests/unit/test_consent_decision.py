"""decide_defaults, ConsentConfig.source_for and pick_text: the pure consent domain."""


import pytest

from connector.config import CONSENT_CRM_KEY
from connector.consent import (ConsentConfig, ConsentWrite, LegalBasis, Purpose, Source,
                               SourceRule, decide_defaults, default_comment, pick_text)
from connector.crm.types import COMMENT_MAX_LENGTH
from tests.factories import record, shipped_config



@pytest.fixture(scope="module")
def shipped() -> ConsentConfig:
    return shipped_config()


# --- hand-built configs ------------------------------------------------------------------------

LI = LegalBasis("legitimate_interest", "61F", {"en": "Legitimate interest", "nb": "Berettiget interesse"})
CONTRACT = LegalBasis("contract", "61B", {"en": "Contract"})
CONSENT = LegalBasis("consent", "61A", {"en": "Consent"})
WITHDRAWN = LegalBasis("withdrawn", "WITHDRAWN", {"en": "Withdrawn"}, withdrawn=True)
USER = Source("user", "USER", {"en": "Registered by our staff"}, confirm_by_email=True)
WEB = Source("web_form", "WEBFORM", {"en": "Web form"}, confirm_by_email=True)
API = Source("api", "API", {"en": "API"}, confirm_by_email=False)


def make_config(*purposes: Purpose, rules=(SourceRule(42, "web_form"),)) -> ConsentConfig:
    return ConsentConfig(
        legal_bases={b.key: b for b in (CONSENT, CONTRACT, LI, WITHDRAWN)},
        sources={s.key: s for s in (USER, WEB, API)},
        purposes={p.key: p for p in purposes},
        default_source="user",
        source_rules=tuple(rules),
    )


STORE = Purpose("sales_and_service", "STORE", {"en": "Sales and service"},
                default_legal_basis="legitimate_interest")
BILLING = Purpose("billing", "BILLING", {"en": "Billing"}, default_legal_basis="contract")
EMARKETING = Purpose("e_marketing", "EMARKETING", {"en": "E-marketing"}, requires_consent=True)
NEWSLETTER = Purpose("newsletter", "NEWS", {"en": "Newsletter"})  # no default, not consent-only


# --- shipped config ----------------------------------------------------------------------------

@pytest.mark.parametrize("source_key", ["user", "web_form", "api"])
def test_new_person_gets_store_on_61f_with_the_given_source(shipped, source_key):
    source = shipped.sources[source_key]
    writes = decide_defaults(shipped, [], source)
    assert [(w.purpose.crm_key, w.legal_basis.crm_key, w.source.crm_key) for w in writes] == [
        ("STORE", "61F", source.crm_key)]
    assert writes[0].source is source


def test_comment_names_purpose_legal_basis_and_source(shipped):
    (write,) = decide_defaults(shipped, [], shipped.sources["web_form"])
    assert 0 < len(write.comment) <= COMMENT_MAX_LENGTH
    assert "Sales and service" in write.comment
    assert "Legitimate interest" in write.comment
    assert "Web form" in write.comment
    assert "consent-connector" in write.comment


def test_new_person_never_gets_emarketing(shipped):
    for source in shipped.sources.values():
        writes = decide_defaults(shipped, [], source)
        assert "EMARKETING" not in {w.purpose.crm_key for w in writes}
        assert all(w.legal_basis.crm_key != CONSENT_CRM_KEY for w in writes)
        assert all(not w.legal_basis.withdrawn for w in writes)


@pytest.mark.parametrize("legal_basis", ["61F", "61A", "61B", "WITHDRAWN", "SOMETHING_ELSE"])
def test_an_existing_store_row_suppresses_the_write_whatever_its_legal_basis(shipped, legal_basis):
    existing = [record("STORE", legal_basis)]
    assert decide_defaults(shipped, existing, shipped.sources["user"]) == []


def test_an_unknown_crm_purpose_row_does_not_disturb(shipped):
    existing = [record("SOME_OTHER_CRM_PURPOSE", "61A"), record("EMARKETING", "WITHDRAWN")]
    writes = decide_defaults(shipped, existing, shipped.sources["user"])
    assert [w.purpose.crm_key for w in writes] == ["STORE"]


def test_existing_records_may_be_any_iterable(shipped):
    existing = (r for r in [record("STORE", "WITHDRAWN")])
    assert decide_defaults(shipped, existing, shipped.sources["user"]) == []


# --- hand-built configs ------------------------------------------------------------------------

def test_writes_come_in_config_order_with_each_purposes_own_basis():
    config = make_config(BILLING, EMARKETING, STORE, NEWSLETTER)
    writes = decide_defaults(config, [], USER)
    assert [(w.purpose.key, w.legal_basis.crm_key) for w in writes] == [
        ("billing", "61B"), ("sales_and_service", "61F")]
    assert all(isinstance(w, ConsentWrite) for w in writes)


def test_only_the_purposes_without_a_row_are_written():
    config = make_config(BILLING, STORE)
    writes = decide_defaults(config, [record("BILLING", "WITHDRAWN")], API)
    assert [w.purpose.crm_key for w in writes] == ["STORE"]
    assert writes[0].source is API


def test_purposes_without_default_are_never_written():
    config = make_config(EMARKETING, NEWSLETTER)
    assert decide_defaults(config, [], USER) == []


def test_existing_row_matches_by_crm_key_not_config_key():
    config = make_config(STORE)
    # a row named like the config key is some other CRM purpose: STORE is still missing
    assert len(decide_defaults(config, [record("sales_and_service", "61F")], USER)) == 1
    assert decide_defaults(config, [record("STORE", "61F")], USER) == []


@pytest.mark.parametrize("configured, in_crm", [("store", "STORE"), ("STORE", "store"),
                                                ("STORE", " Store "), (" store", "STORE")])
def test_existing_row_suppresses_even_when_the_crm_key_differs_in_case(configured, in_crm):
    # the config's duplicate check folds case and spaces, so the match must too: otherwise a
    # WITHDRAWN row 'STORE' would be overwritten for a purpose configured as 'store'
    purpose = Purpose("sales_and_service", configured, {"en": "Sales and service"},
                      default_legal_basis="legitimate_interest")
    assert decide_defaults(make_config(purpose), [record(in_crm, "WITHDRAWN")], USER) == []


def test_comment_is_cut_to_255_characters():
    long_name = Purpose("long", "LONG", {"en": "P" * 400}, default_legal_basis="contract")
    (write,) = decide_defaults(make_config(long_name), [], USER)
    assert len(write.comment) == COMMENT_MAX_LENGTH
    assert write.comment.startswith("Recorded by consent-connector")


def test_comment_uses_english_names():
    purpose = Purpose("p", "P", {"nb": "Salg", "en": "Sales"}, default_legal_basis="legitimate_interest")
    comment = default_comment(purpose, LI, Source("s", "S", {"de": "Quelle", "en": "Source"}, True))
    assert "Sales" in comment and "Legitimate interest" in comment and "Source" in comment
    assert "Salg" not in comment and "Berettiget" not in comment and "Quelle" not in comment


# --- source_for --------------------------------------------------------------------------------

def test_source_for_a_matching_rule(shipped):
    assert shipped.source_for(42).key == "web_form"
    assert shipped.source_for(42).crm_key == "WEBFORM"


@pytest.mark.parametrize("associate", [None, 7, 0, 43])
def test_source_for_without_a_match_is_the_default(shipped, associate):
    assert shipped.source_for(associate).key == "user"


def test_source_for_first_matching_rule_wins():
    config = make_config(STORE, rules=(SourceRule(5, "api"), SourceRule(42, "web_form"),
                                       SourceRule(5, "web_form")))
    assert config.source_for(5) is API
    assert config.source_for(42) is WEB
    assert config.source_for(None) is USER


def test_source_for_with_no_rules_is_always_the_default():
    config = make_config(STORE, rules=())
    assert config.source_for(42) is USER


# --- pick_text ---------------------------------------------------------------------------------

TEXTS = {"nb": "Salg", "en": "Sales", "de": "Vertrieb"}


def test_pick_text_in_the_persons_language():
    assert pick_text(TEXTS, "nb") == "Salg"
    assert pick_text(TEXTS, "de") == "Vertrieb"


@pytest.mark.parametrize("language", ["sv", None, ""])
def test_pick_text_falls_back_to_english(language):
    assert pick_text(TEXTS, language) == "Sales"


def test_pick_text_falls_back_to_any_text_without_english():
    assert pick_text({"nb": "Salg"}, "sv") == "Salg"
    assert pick_text({"nb": "Salg", "de": "Vertrieb"}, None) in {"Salg", "Vertrieb"}


def test_pick_text_of_no_texts_is_empty():
    assert pick_text({}, "nb") == ""
    assert pick_text({}, None) == ""


def test_pick_text_with_shipped_config(shipped):
    purpose = shipped.purposes["e_marketing"]
    assert pick_text(purpose.name, "nb") == "E-markedsføring"
    assert pick_text(purpose.name, "fi") == "E-marketing"
