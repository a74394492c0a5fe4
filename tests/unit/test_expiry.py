"""The rules of consents that lapse (connector.expiry) and their plans (plans.plan_expiry),
on the shipped purposes file: E-marketing lasts 24 months, the person is asked 30 days before,
and a lapsed consent is withdrawn."""

import dataclasses
from datetime import datetime, timedelta, timezone

from connector.consent import REPORT, ConsentExpiry, Duration, decide_preference_changes
from connector.crm.types import ConsentRecord, Person, ShipmentType
from connector.expiry import (NOTHING, REMIND, REPORT_LAPSE, WITHDRAW_CONSENT, ExpiryDecision,
                              ExpiryHistory, consent_term, decide_expiry, due_consents,
                              expiry_history)
from connector.expiry_pass import check_job_id
from connector.plans import plan_expiry
from tests.factories import shipped_config

CONFIG = shipped_config()
MARKETING = CONFIG.purposes["e_marketing"]
GIVEN = datetime(2025, 1, 31, 12, tzinfo=timezone.utc)
ROW = ConsentRecord("EMARKETING", "61A", "WEBFORM", registered=GIVEN)
PROOF = {"at": GIVEN.isoformat(), "legal_basis": "61A", "purpose": "EMARKETING"}


def decide(moment, row=ROW, proof=PROOF, history=ExpiryHistory(), purpose=MARKETING):
    return decide_expiry(CONFIG, purpose, row, proof, history, moment)


def test_a_term_ends_by_the_calendar_and_the_reminder_comes_before_it():
    term = consent_term(MARKETING, GIVEN)
    assert term.ends == datetime(2027, 1, 31, 12, tzinfo=timezone.utc)
    assert term.remind_from == datetime(2027, 1, 1, 12, tzinfo=timezone.utc)
    assert Duration(1, "months").after(datetime(2025, 1, 31)) == datetime(2025, 2, 28)
    assert Duration(1, "months").before(datetime(2025, 3, 31)) == datetime(2025, 2, 28)


def test_a_consent_is_left_alone_until_remind_before_then_gets_one_reminder():
    term = consent_term(MARKETING, GIVEN)
    assert decide(term.remind_from - timedelta(seconds=1)).action == NOTHING
    due = decide(term.remind_from)
    assert (due.action, due.lapses_on) == (REMIND, term.ends)
    reminded = ExpiryHistory({term.name: term.ends})
    assert decide(term.remind_from + timedelta(days=1), history=reminded).action == NOTHING
    assert decide(term.ends, history=reminded).action == WITHDRAW_CONSENT


def test_a_late_reminder_gives_the_person_remind_before_to_answer():
    term = consent_term(MARKETING, GIVEN)
    late = term.ends + timedelta(days=100)  # the connector was off, or the setting is new
    decision = decide(late)
    assert (decision.action, decision.lapses_on) == (REMIND, late + timedelta(days=30))
    reminded = ExpiryHistory({term.name: decision.lapses_on})
    assert decide(late + timedelta(days=29), history=reminded).action == NOTHING
    assert decide(late + timedelta(days=30), history=reminded).action == WITHDRAW_CONSENT


def test_a_renewal_in_the_ledger_starts_the_term_again():
    renewed = {**PROOF, "at": (GIVEN + timedelta(days=700)).isoformat()}
    assert decide(consent_term(MARKETING, GIVEN).ends, proof=renewed).action == NOTHING


def test_a_withdrawn_or_missing_row_never_lapses_and_a_row_the_ledger_does_not_know_is_dated_by_the_crm():
    late = GIVEN + timedelta(days=2000)
    assert decide(late, row=dataclasses.replace(ROW, legal_basis="WITHDRAWN")).action == NOTHING
    assert decide(late, row=None).action == NOTHING
    by_crm = decide(GIVEN + timedelta(days=720), proof={**PROOF, "legal_basis": "61F"})
    assert by_crm.term.given == GIVEN and by_crm.action == REMIND
    undated = decide(late, row=ConsentRecord("EMARKETING", "61A", "USER"), proof=None)
    assert (undated.action, undated.term) == (NOTHING, None)


def test_a_row_the_ledger_recorded_from_the_crm_is_dated_by_the_crm():
    found_at_onboarding = {**PROOF, "at": (GIVEN + timedelta(days=400)).isoformat(),
                           "crm_registered": GIVEN.isoformat(), "crm_updated": None}
    found_at_onboarding = {k: v for k, v in found_at_onboarding.items() if v is not None}
    assert decide(GIVEN + timedelta(days=720), proof=found_at_onboarding).term.given == GIVEN


def test_with_on_expiry_report_a_lapse_is_reported_once_per_term():
    reporting = dataclasses.replace(MARKETING, expiry=ConsentExpiry(Duration(24, "months"),
                                                                    None, REPORT))
    ends = consent_term(reporting, GIVEN).ends
    assert decide(ends, purpose=reporting).action == REPORT_LAPSE
    reported = ExpiryHistory(reported=frozenset({consent_term(reporting, GIVEN).name}))
    assert decide(ends, purpose=reporting, history=reported).action == NOTHING


def test_the_ledger_tells_which_terms_were_reminded_and_reported():
    entries = [{"action": "mail.sent", "mail": "re-permission", "purpose": "EMARKETING",
                "consent_ends": "2027-01-31T12:00:00+00:00",
                "lapses_on": "2027-03-01T00:00:00+00:00"},
               {"action": "consent.lapsed", "purpose": "EMARKETING",
                "consent_ends": "2029-01-31T12:00:00+00:00"},
               {"action": "mail.sent", "mail": "re-permission", "purpose": "STORE",
                "consent_ends": "2030-01-01T00:00:00+00:00"}]
    history = expiry_history(entries, MARKETING)
    assert history.reminded == {"2027-01-31T12:00:00+00:00":
                                datetime(2027, 3, 1, tzinfo=timezone.utc)}
    assert history.reported == {"2029-01-31T12:00:00+00:00"}


def test_the_pass_finds_from_the_ledger_only_the_consents_that_need_something():
    def consent(person, at, basis="61A"):
        return {"person_id": str(person), "action": "consent.changed", "purpose": "EMARKETING",
                "legal_basis": basis, "at": at.isoformat()}
    moment = GIVEN + timedelta(days=720)
    entries = [consent(1, GIVEN), consent(2, GIVEN), consent(2, GIVEN + timedelta(days=1),
                                                                  "WITHDRAWN"),
               consent(3, GIVEN), consent(3, GIVEN + timedelta(days=300)),
               consent(4, GIVEN), {"person_id": "4", "action": "crm.consent_removed",
                                   "purpose": "EMARKETING", "legal_basis": "",
                                   "at": moment.isoformat()}]
    assert [(person, d.action) for person, d in due_consents(CONFIG, MARKETING, entries,
                                                             moment)] == [(1, REMIND)]


def test_a_lapsed_consent_is_planned_as_withdrawn_with_its_subscriptions_and_the_proof():
    person = Person(7, "Ada", "L", "ada@example.org", "en", None, None, (ROW,),
                    (ShipmentType(1, "Newsletter", True), ShipmentType(2, "Product news", False)))
    term = consent_term(MARKETING, GIVEN)
    reminded = {"action": "mail.sent", "mail": "re-permission", "purpose": "EMARKETING",
                "consent_ends": term.name, "lapses_on": term.ends.isoformat()}
    plan = plan_expiry(CONFIG, person, MARKETING, [PROOF, reminded], term.ends, job_id="j1")
    (step,) = plan.steps
    assert (step.write.legal_basis.crm_key, step.write.source.crm_key) == ("WITHDRAWN", "WEBFORM")
    assert step.write.comment.startswith("Consent expired: given 2025-01-31, valid for 24 months")
    assert step.entry.action == "consent.expired"
    assert step.entry.details["previous_legal_basis"] == "61A"
    assert step.entry.details["consent_ends"] == term.name
    assert [(s.change.shipment_type.name, s.change.selected) for s in plan.subscriptions] == [
        ("Newsletter", False)]
    assert plan.subscriptions[0].entry.details["actor"] == "connector"


def test_renewing_on_the_page_writes_the_consent_again_even_though_it_holds():
    assert decide_preference_changes(CONFIG, [ROW], {"e_marketing": True}) == []
    (write,) = decide_preference_changes(CONFIG, [ROW], {"e_marketing": True}, "link x",
                                         renewals=["e_marketing"])
    assert write.legal_basis.crm_key == "61A"
    assert write.comment.startswith("Consent renewed by the person on their personal page "
                                    f"(notice {MARKETING.notice.version})")
    (given,) = decide_preference_changes(CONFIG, [], {"e_marketing": True},
                                         renewals=["e_marketing"])
    assert given.comment.startswith("Consent given")


def test_two_terms_ending_in_the_same_second_get_their_own_job():
    """The CI run where two tests' consents ended in the same second queued one job for both."""
    first = consent_term(MARKETING, GIVEN)
    second = consent_term(MARKETING, GIVEN + timedelta(milliseconds=500))
    ids = {check_job_id(1, "e_marketing", ExpiryDecision(REMIND, "due", term))
           for term in (first, second)}
    assert len(ids) == 2
    assert check_job_id(1, "e_marketing", ExpiryDecision(REMIND, "due", first)) == (
        check_job_id(1, "e_marketing", ExpiryDecision(REMIND, "due", first)))
