"""The jobs' planners (connector.plans): what each job will write, mail and record, decided
from what it read, with no CRM, Redis or worker."""

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from connector.crm.types import Person, ShipmentType
from connector.emails import single_address
from connector.plans import (CONNECTOR, CRM_USER, PERSON, decide_confirmation_mail,
                             decide_mail_to, mail_sent_entry, plan_crm_changes, plan_onboarding,
                             plan_preferences)
from tests.factories import record, shipped_config

CONFIG = shipped_config()
WEBFORM_ASSOCIATE = 42  # config/purposes.yaml: persons this associate creates come from web_form
PROOF = {"submitted_at": "2026-11-29T10:00:00+00:00", "token_id": "t1", "user_agent": "Firefox",
         "ip": "203.0.113.0/24 #1a2b3c4d5e6f7a8b", "notice:e_marketing": "2026-01"}


def person(*consents, email="kari@example.no", created_by=None, shipment_types=()) -> Person:
    return Person(id=12, first_name="Kari", last_name="Nordmann", email=email, language="nb",
                  company_name=None, created_by_associate_id=created_by,
                  consents=tuple(consents), shipment_types=tuple(shipment_types))


# -- onboarding ----------------------------------------------------------------------------------


def test_onboarding_a_new_person_writes_the_defaults_records_each_and_mails():
    plan = plan_onboarding(CONFIG, person(), event_id="e1", job_id="j1")

    assert [(s.write.purpose.crm_key, s.write.legal_basis.crm_key, s.write.source.crm_key)
            for s in plan.steps] == [("STORE", "61F", "USER")]
    [step] = plan.steps
    assert step.entry.action == "consent.recorded"
    assert step.entry.details == {"purpose": "STORE", "legal_basis": "61F", "source": "USER",
                                  "comment": step.write.comment, "actor": CONNECTOR,
                                  "job_id": "j1", "event_id": "e1"}
    assert plan.mail.send
    assert [(r.purpose, r.legal_basis) for r in plan.consents] == [("STORE", "61F")]


def test_onboarding_leaves_a_purpose_the_crm_has_a_row_for_and_mails_what_the_crm_holds():
    withdrawn = record("STORE", "WITHDRAWN")

    plan = plan_onboarding(CONFIG, person(withdrawn))

    assert plan.steps == ()
    assert plan.consents == (withdrawn,)


def test_onboarding_records_the_rows_the_crm_had_that_the_ledger_does_not_know():
    given = replace(record("EMARKETING", "61A", "WEBFORM"),
                    registered=datetime(2025, 3, 1, 9, tzinfo=timezone.utc), registered_by=42)

    plan = plan_onboarding(CONFIG, person(given), known={}, event_id="e1")

    [found] = plan.found
    assert found.action == "crm.consent_changed"
    assert (found.details["purpose"], found.details["legal_basis"], found.details["actor"],
            found.details["associate_id"]) == ("EMARKETING", "61A", CRM_USER, 42)
    assert found.details["crm_registered"] == "2025-03-01T09:00:00+00:00"
    known = {"EMARKETING": {"legal_basis": "61A", "source": "WEBFORM"}}
    assert plan_onboarding(CONFIG, person(given), known=known).found == ()
    assert plan_onboarding(CONFIG, person(given)).found == ()  # the ledger was not read
    own = plan_onboarding(CONFIG, person(given), known={}, own_associate_id=42).found
    assert own[0].details["actor"] == CONNECTOR  # its own write, from an interrupted attempt


def test_onboarding_takes_the_source_from_who_created_the_person():
    plan = plan_onboarding(CONFIG, person(created_by=WEBFORM_ASSOCIATE))

    assert plan.source.crm_key == "WEBFORM"
    assert [s.write.source.crm_key for s in plan.steps] == ["WEBFORM"]


def test_no_confirmation_mail_without_an_address_or_for_a_source_not_confirmed_by_mail():
    without_address = plan_onboarding(CONFIG, person(email=None))
    api = CONFIG.sources["api"]

    assert (without_address.mail.send, without_address.mail.reason) == (
        False, "the person has no email address")
    assert decide_confirmation_mail(api, person()).reason == (
        "source API is not confirmed by mail")
    assert decide_mail_to(person()).send


# -- preferences -------------------------------------------------------------------------------


def test_giving_consent_on_the_page_writes_it_with_the_proof_and_the_notice_shown():
    before = record("EMARKETING", "WITHDRAWN", "WEBFORM")

    plan = plan_preferences(CONFIG, person(before), {"e_marketing": True}, PROOF, job_id="j2")

    [step] = plan.steps
    assert (step.write.purpose.crm_key, step.write.legal_basis.crm_key) == ("EMARKETING", "61A")
    assert step.entry.action == "consent.changed"
    details = step.entry.details
    assert (details["previous_legal_basis"], details["legal_basis"]) == ("WITHDRAWN", "61A")
    assert (details["actor"], details["job_id"], details["notice_version"]) == (PERSON, "j2",
                                                                                "2026-01")
    assert {name: details[name] for name in ("submitted_at", "token_id", "user_agent", "ip")} == {
        name: PROOF[name] for name in ("submitted_at", "token_id", "user_agent", "ip")}
    assert "link t1" in step.write.comment
    assert plan.subscriptions == ()


def test_subscribing_without_consent_gives_it_first_and_selects_the_shipment_type():
    newsletter = ShipmentType(1, "Newsletter", selected=False)

    plan = plan_preferences(CONFIG, person(shipment_types=[newsletter]), {}, PROOF,
                            {"newsletter": True})

    assert [s.write.legal_basis.crm_key for s in plan.steps] == ["61A"]
    assert plan.selection == {1: True}
    [step] = plan.subscriptions
    assert step.entry.action == "subscription.changed"
    assert (step.entry.details["shipment_type"], step.entry.details["change"]) == (
        "1 Newsletter", "unsubscribed → subscribed")


def test_a_choice_that_changes_nothing_plans_nothing():
    plan = plan_preferences(CONFIG, person(record("EMARKETING", "61A", "WEBFORM")),
                            {"e_marketing": True}, PROOF)

    assert (plan.steps, plan.subscriptions, plan.selection) == ((), (), {})


def test_a_choice_that_is_not_true_or_false_is_refused():
    with pytest.raises(TypeError):
        plan_preferences(CONFIG, person(), {"e_marketing": "yes"}, PROOF)


# -- a CRM user's changes -----------------------------------------------------------------------


def test_a_crm_users_change_is_recorded_from_what_the_ledger_last_knew():
    updated = datetime(2026, 11, 29, 10, 15, tzinfo=timezone.utc)
    now = replace(record("STORE", "WITHDRAWN"), updated=updated, updated_by=7)
    known = {"STORE": {"action": "consent.recorded", "legal_basis": "61F", "source": "USER"},
             "EMARKETING": {"action": "consent.changed", "legal_basis": "61A",
                            "source": "WEBFORM"}}

    changed, removed = plan_crm_changes(person(now), known, event_id="e3")

    assert changed.action == "crm.consent_changed"
    assert {k: changed.details[k] for k in ("purpose", "previous_legal_basis", "legal_basis",
                                             "actor", "associate_id", "event_id")} == {
        "purpose": "STORE", "previous_legal_basis": "61F", "legal_basis": "WITHDRAWN",
        "actor": CRM_USER, "associate_id": 7, "event_id": "e3"}
    assert changed.details["crm_updated"] == updated.isoformat()
    assert (removed.action, removed.details["purpose"]) == ("crm.consent_removed", "EMARKETING")


def test_what_the_ledger_already_knows_is_not_recorded_again():
    known = {"STORE": {"action": "crm.consent_changed", "legal_basis": "61F", "source": "USER"},
             "EMARKETING": {"action": "crm.consent_removed", "legal_basis": ""}}

    assert plan_crm_changes(person(record("STORE", "61F")), known) == ()


def test_a_mail_sent_is_recorded_with_the_links_token_and_the_message_id():
    entry = mail_sent_entry("fresh-link", "tok", "<1.2.3@example.com>", "j4")

    assert (entry.action, entry.details) == ("mail.sent", {
        "mail": "fresh-link", "token_id": "tok", "message_id": "<1.2.3@example.com>",
        "actor": CONNECTOR, "job_id": "j4"})


@pytest.mark.parametrize("address, problem", [
    ("victim@example.com, other@evil.example", "more than one address"),
    ("victim@example.com;other@evil.example", "more than one address"),
    ("victim@example.com other@evil.example", "more than one address"),
    ("victim@example.com\r\nBcc: other@evil.example", "line break"),
    ("victim@example.com\n", "line break"),
    ("not an address", "not a valid address"),
    ("victim@localhost", "not a valid address"),
])
def test_an_unusable_address_sends_nothing_and_says_why_without_quoting_it(address, problem):
    decision = decide_mail_to(replace(person(), email=address))

    assert not decision.send and decision.unusable
    assert problem in decision.reason and "victim" not in decision.reason


def test_one_address_is_used_as_email_validator_normalises_it():
    assert single_address(" Kari.Nordmann@Example.NO ") == "Kari.Nordmann@example.no"
    assert decide_mail_to(replace(person(), email="kari@example.no")).send


def test_a_mail_about_a_consent_text_names_its_purpose_and_version():
    entry = mail_sent_entry("new-notice", "tok", "<m@x>", "j5", purpose="EMARKETING",
                            notice_version="2026-02")
    assert (entry.details["purpose"], entry.details["notice_version"]) == ("EMARKETING",
                                                                           "2026-02")
