"""SuperOffice's webhook events, read from the recorded payloads in
connector/superoffice/fixtures/ (``webhook__<event>__<variant>.json``, the spec), and what the
receiver does with each: queue a job, or ignore the event and say why."""

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from connector.superoffice.webhook import parse_event
from connector.web.webhooks import KIND_OF_EVENT, decide_stale, decide_webhook

FIXTURES = Path(__file__).resolve().parents[2] / "connector" / "superoffice" / "fixtures"
CONNECTOR_ASSOCIATE = 9  # SUPEROFFICE_ASSOCIATE_ID in these tests


def fixture_body(name: str) -> bytes:
    return (FIXTURES / f"webhook__{name}.json").read_bytes()


def check_webhook(name: str, expected_kind: str | None, expected_reason: str = "") -> None:
    """Parse the recorded payload ``name`` and check what the receiver decides for it."""
    event = parse_event(fixture_body(name))
    payload = json.loads(fixture_body(name))
    assert (event.event_id, event.event, event.primary_key) == (
        payload["EventId"], payload["Event"], payload["PrimaryKey"])
    assert decide_webhook(event, CONNECTOR_ASSOCIATE) == (expected_kind, expected_reason)


def test_a_person_created_by_a_user_is_onboarded():
    check_webhook("person_created__by_user", "onboard")


@pytest.mark.parametrize("name", ["person_consented__by_crm_user",
                                  "person_unconsented__by_crm_user"])
def test_a_crm_users_consent_change_is_recorded(name):
    check_webhook(name, "crm-change")


def test_a_person_deleted_in_the_crm_has_the_erasure_of_their_proof_scheduled():
    check_webhook("person_deleted__by_crm_user", "deletion")


def test_the_connectors_own_consent_writes_coming_back_are_ignored():
    check_webhook("person_consented__by_the_connector", None,
                  "caused by the connector's own associate")


def test_events_the_connector_does_not_act_on_are_ignored_with_the_reason():
    check_webhook("person_changed__not_acted_on", None, "person.changed events are not acted on")


def test_every_event_the_receiver_acts_on_has_a_recorded_payload():
    recorded = {json.loads(path.read_bytes())["Event"] for path in FIXTURES.glob("webhook__*.json")}
    assert set(KIND_OF_EVENT) <= recorded


def test_an_event_is_stale_only_past_webhook_max_age_and_never_without_a_timestamp():
    event = parse_event(fixture_body("person_created__by_user"))
    sent = event.timestamp

    assert decide_stale(event, sent + timedelta(seconds=3600), 3600) == ""
    assert decide_stale(event, sent + timedelta(seconds=3601), 3600).startswith(
        "stale: sent 3601 s ago")
    assert decide_stale(event, sent - timedelta(hours=2), 3600) == ""  # a clock ahead of ours
    assert decide_stale(replace(event, timestamp=None), sent + timedelta(days=9), 3600) == ""
