"""decide_preference_changes: what the person's choices on their own page write to the CRM."""

import itertools

import pytest

from connector.consent import (ACTIVE, NOT_GIVEN, NOT_RECORDED, WITHDRAWN, ConsentConfig,
                               ConsentWrite, LegalBasis, Notice, Purpose, Source, decide_defaults,
                               decide_preference_changes, describe_purposes, fold_key)
from connector.crm.types import COMMENT_MAX_LENGTH, ConsentRecord
from tests.factories import record, shipped_config



@pytest.fixture(scope="module")
def shipped() -> ConsentConfig:
    return shipped_config()


def rows(writes: list[ConsentWrite]) -> list[tuple[str, str, str]]:
    return [(w.purpose.crm_key, w.legal_basis.crm_key, w.source.crm_key) for w in writes]


def apply(existing: list[ConsentRecord], writes: list[ConsentWrite]) -> list[ConsentRecord]:
    """The person's rows after the CRM took the writes (one row per purpose, as in the CRM)."""
    after = {fold_key(r.purpose): r for r in existing}
    for w in writes:
        after[fold_key(w.purpose.crm_key)] = ConsentRecord(
            w.purpose.crm_key, w.legal_basis.crm_key, w.source.crm_key, w.comment)
    return list(after.values())


# --- hand-built configs ------------------------------------------------------------------------

CONSENT = LegalBasis("consent", "61A", {"en": "Consent"})
CONSENT_WEB = LegalBasis("consent_web", "61A-WEB", {"en": "Consent on the web"})
CONTRACT = LegalBasis("contract", "61B", {"en": "Contract"})
LI = LegalBasis("legitimate_interest", "61F", {"en": "Legitimate interest"})
WITHDRAWN_BASIS = LegalBasis("withdrawn", "WITHDRAWN", {"en": "Withdrawn"}, withdrawn=True)
USER = Source("user", "USER", {"en": "Registered by our staff"}, confirm_by_email=True)
WEB = Source("web_form", "WEBFORM", {"en": "Web form"}, confirm_by_email=True)

STORE = Purpose("sales_and_service", "STORE", {"en": "Sales and service"},
                default_legal_basis="legitimate_interest", allow_objection=True)
PROFILING = Purpose("profiling", "PROFILE", {"en": "Profiling"}, allow_objection=True)  # no default
BILLING = Purpose("billing", "BILLING", {"en": "Billing"}, default_legal_basis="contract")
EMARKETING = Purpose("e_marketing", "EMARKETING", {"en": "E-marketing"}, requires_consent=True,
                     notice=Notice("2026-01", {"en": "I agree"}))
SMS = Purpose("sms", "SMS", {"en": "SMS"}, requires_consent=True)  # no notice: comment has none
NEWSLETTER = Purpose("newsletter", "NEWS", {"en": "Newsletter"})  # neither: the person can't change


def make_config(*purposes: Purpose, **page: str) -> ConsentConfig:
    return ConsentConfig(
        legal_bases={b.key: b for b in (CONSENT, CONSENT_WEB, CONTRACT, LI, WITHDRAWN_BASIS)},
        sources={s.key: s for s in (USER, WEB)},
        purposes={p.key: p for p in purposes},
        default_source="user",
        **page,
    )


ALL = make_config(BILLING, EMARKETING, STORE, NEWSLETTER, PROFILING, SMS)


# --- requires_consent: on and off ----------------------------------------------------------------

def test_giving_consent_writes_the_page_consent_basis_and_source(shipped):
    writes = decide_preference_changes(shipped, [record("STORE", "61F")], {"e_marketing": True})
    assert rows(writes) == [("EMARKETING", "61A", "WEBFORM")]
    assert writes[0].purpose is shipped.purposes["e_marketing"]
    assert writes[0].source is shipped.sources[shipped.page_source]


@pytest.mark.parametrize("legal_basis", ["WITHDRAWN", "61F", "SOMETHING_ELSE"])
def test_giving_consent_replaces_any_other_row(shipped, legal_basis):
    writes = decide_preference_changes(shipped, [record("EMARKETING", legal_basis)],
                                       {"e_marketing": True})
    assert rows(writes) == [("EMARKETING", "61A", "WEBFORM")]


@pytest.mark.parametrize("legal_basis", ["61A", "61a", " 61A "])
def test_consent_already_given_is_not_written_again(shipped, legal_basis):
    existing = [record("EMARKETING", legal_basis, source="USER")]
    assert decide_preference_changes(shipped, existing, {"e_marketing": True}) == []


def test_consent_purpose_row_matches_by_folded_crm_key(shipped):
    assert decide_preference_changes(shipped, [record(" emarketing", "61A")],
                                     {"e_marketing": True}) == []


def test_withdrawing_consent_writes_withdrawn(shipped):
    writes = decide_preference_changes(shipped, [record("EMARKETING", "61A")],
                                       {"e_marketing": False})
    assert rows(writes) == [("EMARKETING", "WITHDRAWN", "WEBFORM")]
    assert writes[0].legal_basis.withdrawn


def test_withdrawing_also_withdraws_a_crm_users_other_basis(shipped):
    writes = decide_preference_changes(shipped, [record("EMARKETING", "61F")],
                                       {"e_marketing": False})
    assert rows(writes) == [("EMARKETING", "WITHDRAWN", "WEBFORM")]


def test_withdrawing_consent_never_given_writes_nothing(shipped):
    assert decide_preference_changes(shipped, [], {"e_marketing": False}) == []
    assert decide_preference_changes(shipped, [record("STORE", "61F")],
                                     {"e_marketing": False}) == []


@pytest.mark.parametrize("legal_basis", ["WITHDRAWN", "withdrawn", "Withdrawn", " WITHDRAWN "])
def test_withdrawing_again_writes_nothing_whatever_the_case(shipped, legal_basis):
    assert decide_preference_changes(shipped, [record("EMARKETING", legal_basis)],
                                     {"e_marketing": False}) == []


def test_page_consent_basis_and_source_come_from_the_config():
    config = make_config(EMARKETING, page_source="user", page_consent_legal_basis="consent_web")
    writes = decide_preference_changes(config, [], {"e_marketing": True})
    assert rows(writes) == [("EMARKETING", "61A-WEB", "USER")]
    # a row on plain consent is not the page's basis: it is written
    assert rows(decide_preference_changes(config, [record("EMARKETING", "61A")],
                                          {"e_marketing": True})) == [
        ("EMARKETING", "61A-WEB", "USER")]
    assert decide_preference_changes(config, [record("EMARKETING", "61a-web")],
                                     {"e_marketing": True}) == []


# --- allow_objection: object and take it back ----------------------------------------------------

def test_objecting_writes_withdrawn_over_the_default(shipped):
    writes = decide_preference_changes(shipped, [record("STORE", "61F")],
                                       {"sales_and_service": False})
    assert rows(writes) == [("STORE", "WITHDRAWN", "WEBFORM")]


def test_objecting_without_a_row_writes_withdrawn_so_no_default_comes_later(shipped):
    writes = decide_preference_changes(shipped, [], {"sales_and_service": False})
    assert rows(writes) == [("STORE", "WITHDRAWN", "WEBFORM")]
    after = apply([], writes)
    assert decide_defaults(shipped, after, shipped.sources["user"]) == []


@pytest.mark.parametrize("legal_basis", ["WITHDRAWN", "withdrawn", "wIthDrawn "])
def test_objecting_again_writes_nothing_whatever_the_case(shipped, legal_basis):
    assert decide_preference_changes(shipped, [record("STORE", legal_basis)],
                                     {"sales_and_service": False}) == []


@pytest.mark.parametrize("legal_basis", ["WITHDRAWN", "withdrawn", " Withdrawn"])
def test_taking_back_an_objection_restores_the_default_basis(shipped, legal_basis):
    writes = decide_preference_changes(shipped, [record("STORE", legal_basis)],
                                       {"sales_and_service": True})
    assert rows(writes) == [("STORE", "61F", "WEBFORM")]
    assert writes[0].legal_basis is shipped.legal_bases["legitimate_interest"]


@pytest.mark.parametrize("existing", [[], [record("STORE", "61F")], [record("STORE", "61B")]])
def test_allowing_what_is_not_objected_to_writes_nothing(shipped, existing):
    assert decide_preference_changes(shipped, existing, {"sales_and_service": True}) == []


def test_taking_back_an_objection_without_a_default_writes_nothing():
    config = make_config(PROFILING)
    assert decide_preference_changes(config, [record("PROFILE", "WITHDRAWN")],
                                     {"profiling": True}) == []
    # objecting still works
    assert rows(decide_preference_changes(config, [], {"profiling": False})) == [
        ("PROFILE", "WITHDRAWN", "WEBFORM")]


# --- what the person cannot change ---------------------------------------------------------------

@pytest.mark.parametrize("choice", [True, False])
@pytest.mark.parametrize("existing", [[], [record("NEWS", "61A")], [record("NEWS", "WITHDRAWN")],
                                      [record("BILLING", "61B")]])
def test_purposes_neither_consent_nor_objection_are_ignored(existing, choice):
    assert decide_preference_changes(ALL, existing, {"newsletter": choice,
                                                     "billing": choice}) == []


def test_unknown_keys_and_crm_keys_are_ignored(shipped):
    choices = {"STORE": False, "EMARKETING": True, "no_such_purpose": True, "": False}
    assert decide_preference_changes(shipped, [record("STORE", "61F")], choices) == []


def test_a_crm_users_row_on_an_unrelated_purpose_is_untouched(shipped):
    existing = [record("NEWS", "61A", source="USER"), record("STORE", "61F"),
                record("EMARKETING", "61A"), record("SOME_CRM_PURPOSE", "WITHDRAWN")]
    writes = decide_preference_changes(ALL, existing, {"newsletter": False, "e_marketing": False,
                                                       "sales_and_service": False})
    assert rows(writes) == [("EMARKETING", "WITHDRAWN", "WEBFORM"),
                            ("STORE", "WITHDRAWN", "WEBFORM")]
    writes = decide_preference_changes(shipped, existing, {"e_marketing": False,
                                                           "sales_and_service": False})
    assert {w.purpose.crm_key for w in writes} == {"EMARKETING", "STORE"}


def test_choices_must_be_true_or_false():
    with pytest.raises(TypeError, match="e_marketing"):
        decide_preference_changes(ALL, [], {"e_marketing": "false"})
    with pytest.raises(TypeError, match="sales_and_service"):
        decide_preference_changes(ALL, [], {"sales_and_service": 0})


def test_omitted_purposes_are_left_alone(shipped):
    existing = [record("EMARKETING", "61A"), record("STORE", "61F")]
    assert decide_preference_changes(shipped, existing, {}) == []
    assert rows(decide_preference_changes(shipped, existing, {"e_marketing": False})) == [
        ("EMARKETING", "WITHDRAWN", "WEBFORM")]


def test_writes_come_in_config_order():
    choices = {"sms": True, "profiling": False, "sales_and_service": False, "e_marketing": True}
    writes = decide_preference_changes(ALL, (r for r in []), choices)
    assert [w.purpose.key for w in writes] == ["e_marketing", "sales_and_service", "profiling",
                                               "sms"]
    assert all(isinstance(w, ConsentWrite) for w in writes)


# --- comments ------------------------------------------------------------------------------------

def test_comments_say_who_where_what(shipped):
    given = decide_preference_changes(shipped, [], {"e_marketing": True})[0].comment
    assert given == "Consent given by the person on their personal page (notice 2026-01)"
    withdrawn = decide_preference_changes(shipped, [record("EMARKETING", "61A")],
                                          {"e_marketing": False})[0].comment
    assert withdrawn == "Consent withdrawn by the person on their personal page"
    objection = decide_preference_changes(shipped, [], {"sales_and_service": False})[0].comment
    assert objection == "Objection by the person on their personal page"
    taken_back = decide_preference_changes(shipped, [record("STORE", "WITHDRAWN")],
                                           {"sales_and_service": True})[0].comment
    assert taken_back == "Objection withdrawn by the person on their personal page"


def test_consent_comment_carries_the_notice_version_only_when_there_is_one():
    config = make_config(EMARKETING, SMS)
    writes = decide_preference_changes(config, [], {"e_marketing": True, "sms": True})
    assert "(notice 2026-01)" in writes[0].comment
    assert "notice" not in writes[1].comment and writes[1].comment.startswith("Consent given")


def test_proof_is_appended_to_every_comment(shipped):
    existing = [record("STORE", "61F")]
    writes = decide_preference_changes(shipped, existing,
                                       {"e_marketing": True, "sales_and_service": False},
                                       proof="link 9f3a…")
    assert [w.comment for w in writes] == [
        "Objection by the person on their personal page; link 9f3a…",
        "Consent given by the person on their personal page (notice 2026-01); link 9f3a…"]


def test_proof_is_one_line():
    (write,) = decide_preference_changes(ALL, [], {"profiling": False},
                                         proof="  link 9f3a\n from 10.0.0.1\t ")
    assert write.comment == ("Objection by the person on their personal page; "
                             "link 9f3a from 10.0.0.1")


def test_a_long_proof_is_cut_to_the_crm_field():
    (write,) = decide_preference_changes(ALL, [], {"e_marketing": True}, proof="x" * 400)
    assert len(write.comment) == COMMENT_MAX_LENGTH
    assert write.comment.startswith("Consent given by the person on their personal page "
                                    "(notice 2026-01); xxx")
    assert write.comment.endswith("x…")


def test_a_long_notice_version_is_cut_too():
    long = Purpose("e_marketing", "EMARKETING", {"en": "E-marketing"}, requires_consent=True,
                   notice=Notice("v" * 300, {"en": "I agree"}))
    (write,) = decide_preference_changes(make_config(long), [], {"e_marketing": True},
                                         proof="link 1")
    assert len(write.comment) == COMMENT_MAX_LENGTH and write.comment.endswith("…")


# --- the whole truth table: idempotent, and the page then shows the choice ----------------------

STATES = [None, "61A", "61a", "61F", "61B", "WITHDRAWN", "withdrawn", "OTHER"]
CHOICES = [None, True, False]  # None: the purpose is not in the choices


@pytest.mark.parametrize("which", ["shipped", "hand-built"])
def test_deciding_again_after_applying_changes_nothing(shipped, which):
    config = shipped if which == "shipped" else make_config(EMARKETING, STORE, PROFILING)
    purposes = list(config.purposes.values())
    checked = 0
    for states in itertools.product(STATES, repeat=len(purposes)):
        existing = [record(p.crm_key, s) for p, s in zip(purposes, states) if s is not None]
        for picked in itertools.product(CHOICES, repeat=len(purposes)):
            choices = {p.key: c for p, c in zip(purposes, picked) if c is not None}
            writes = decide_preference_changes(config, existing, choices, proof="link 9f3a")
            after = apply(existing, writes)
            assert decide_preference_changes(config, after, choices) == [], (existing, choices)
            assert all(0 < len(w.comment) <= COMMENT_MAX_LENGTH for w in writes)
            assert all("2026-01" in w.comment for w in writes
                       if w.purpose.requires_consent and not w.legal_basis.withdrawn
                       and w.purpose.notice)
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("choice", [True, False])
def test_after_applying_the_page_shows_what_the_person_chose(shipped, state, choice):
    existing = [] if state is None else [record("EMARKETING", state), record("STORE", state)]
    choices = {"e_marketing": choice, "sales_and_service": choice}
    after = apply(existing, decide_preference_changes(shipped, existing, choices))
    store, emarketing = (v.status for v in describe_purposes(shipped, after, "en"))
    if choice:
        assert emarketing == ACTIVE
        assert store == (NOT_RECORDED if state is None else ACTIVE)
    else:
        assert emarketing == (NOT_GIVEN if state is None else WITHDRAWN)
        assert store == WITHDRAWN
