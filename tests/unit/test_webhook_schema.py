"""parse_event: SuperOffice's webhook JSON → WebhookEvent, or an error naming what is wrong."""

import json
import uuid
from datetime import datetime, timezone

import pytest

from connector.superoffice.webhook import (
    PERSON_CREATED,
    InvalidEventError,
    MalformedBodyError,
    WebhookEvent,
    parse_event,
)

# The documented payload shape (SuperOffice docs, "Webhook Notifications"), for person.created.
DOCUMENTED = {
    "EventId": "88f91933-edce-4c1a-8ded-ade8e2f72434",
    "Timestamp": "2018-04-05T08:28:01.5732501Z",
    "Changes": ["person_id", "contact_id", "firstname", "lastname"],
    "Event": "person.created",
    "PrimaryKey": 18,
    "Entity": "person",
    "ContextIdentifier": "Cust54321",
    "ChangedByAssociateId": 5,
    "WebhookName": "consent-connector",
}


def body(**overrides) -> bytes:
    payload = {**DOCUMENTED, **overrides}
    return json.dumps({k: v for k, v in payload.items() if v is not ...}).encode()


def messages_of(raw: bytes) -> dict:
    with pytest.raises(InvalidEventError) as caught:
        parse_event(raw)
    return caught.value.messages


# --- valid payloads ----------------------------------------------------------------------------

def test_documented_payload_parses():
    event = parse_event(body())
    assert event == WebhookEvent(
        event_id="88f91933-edce-4c1a-8ded-ade8e2f72434",
        event=PERSON_CREATED,
        primary_key=18,
        changed_by_associate_id=5,
        context="Cust54321",
        timestamp=datetime(2018, 4, 5, 8, 28, 1, 573250, tzinfo=timezone.utc),
    )
    assert type(event.event_id) is str
    assert type(event.primary_key) is int


def test_event_id_is_normalised_to_the_canonical_lowercase_guid():
    event = parse_event(body(EventId="88F91933-EDCE-4C1A-8DED-ADE8E2F72434"))
    assert event.event_id == "88f91933-edce-4c1a-8ded-ade8e2f72434"
    assert uuid.UUID(event.event_id)


def test_unknown_extra_fields_are_ignored():
    event = parse_event(body(NewFieldFromSuperOffice={"x": 1}, Another=[1, 2, 3]))
    assert event.primary_key == 18
    assert not hasattr(event, "NewFieldFromSuperOffice")


def test_minimal_payload_with_only_required_fields():
    raw = json.dumps({"EventId": str(uuid.uuid4()), "Event": "person.created",
                      "PrimaryKey": 7}).encode()
    event = parse_event(raw)
    assert event.primary_key == 7
    assert event.changed_by_associate_id is None
    assert event.context is None
    assert event.timestamp is None


def test_null_optional_fields_are_accepted():
    event = parse_event(body(ChangedByAssociateId=None, ContextIdentifier=None))
    assert event.changed_by_associate_id is None
    assert event.context is None


def test_utf8_bom_free_non_ascii_payload_parses():
    event = parse_event(body(WebhookName="Søknad – æøå"))
    assert event.event == "person.created"


# --- malformed bodies ------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b"",
    b"not json",
    b"{\"EventId\": ",
    b"<xml/>",
], ids=["empty", "text", "truncated", "xml"])
def test_non_json_is_a_malformed_body(raw):
    with pytest.raises(MalformedBodyError, match="not valid JSON"):
        parse_event(raw)


@pytest.mark.parametrize("raw", [b"[]", b"[{\"EventId\": 1}]", b"\"text\"", b"42", b"null",
                                 b"true"])
def test_json_that_is_not_an_object_is_a_malformed_body(raw):
    with pytest.raises(MalformedBodyError, match="object"):
        parse_event(raw)


@pytest.mark.parametrize("raw", [
    b"\xff\xfe\x00garbage",
    b'{"EventId": "\xc3\x28"}',          # invalid 2-byte sequence
    b'{"Event": "person.created\x80"}',  # stray continuation byte
])
def test_invalid_utf8_is_a_malformed_body(raw):
    with pytest.raises(MalformedBodyError):
        parse_event(raw)


def test_malformed_body_error_is_not_a_validation_error():
    # the receiver answers these differently from schema errors; keep the types apart
    assert not issubclass(MalformedBodyError, InvalidEventError)


# --- schema errors name each bad field ---------------------------------------------------------

@pytest.mark.parametrize("event_id", ["not-a-guid", "1234", "", 42,
                                      "88f91933-edce-4c1a-8ded-ade8e2f7243"])
def test_event_id_must_be_a_guid(event_id):
    messages = messages_of(body(EventId=event_id))
    assert set(messages) == {"EventId"}


@pytest.mark.parametrize("primary_key", ["abc", "1.5", "18.0", "42", None, [], {}, True])
def test_primary_key_must_be_a_json_integer(primary_key):
    messages = messages_of(body(PrimaryKey=primary_key))
    assert set(messages) == {"PrimaryKey"}


@pytest.mark.parametrize("primary_key", [1.5, 18.9])
def test_primary_key_with_a_fraction_is_refused_not_truncated(primary_key):
    # 18.9 must not become person 18
    messages = messages_of(body(PrimaryKey=primary_key))
    assert set(messages) == {"PrimaryKey"}


@pytest.mark.parametrize("associate", [9.5, "9", True])
def test_changed_by_associate_id_must_be_a_json_integer(associate):
    # 9.5 must not become 9 (which may be the connector's own associate: event dropped)
    messages = messages_of(body(ChangedByAssociateId=associate))
    assert set(messages) == {"ChangedByAssociateId"}


@pytest.mark.parametrize("primary_key", [0, -1, -4711, 2**31, 10**40])
def test_primary_key_must_be_a_positive_32_bit_id(primary_key):
    messages = messages_of(body(PrimaryKey=primary_key))
    assert messages == {"PrimaryKey": ["Must be a positive 32-bit id."]}


@pytest.mark.parametrize("associate", [-1, 2**31, 10**40])
def test_changed_by_associate_id_must_be_a_32_bit_id(associate):
    assert set(messages_of(body(ChangedByAssociateId=associate))) == {"ChangedByAssociateId"}


def test_the_largest_32_bit_ids_are_accepted():
    event = parse_event(body(PrimaryKey=2**31 - 1, ChangedByAssociateId=2**31 - 1))
    assert event.primary_key == 2**31 - 1


@pytest.mark.parametrize("digits", [4301, 5000, 60000])
def test_an_integer_longer_than_python_reads_is_malformed_json_not_a_crash(digits):
    raw = body().replace(b'"PrimaryKey": 18', b'"PrimaryKey": ' + b"9" * digits)
    with pytest.raises(MalformedBodyError):
        parse_event(raw)


@pytest.mark.parametrize("field", ["Event", "EventId", "PrimaryKey"])
def test_missing_required_field_is_named(field):
    messages = messages_of(body(**{field: ...}))
    assert set(messages) == {field}
    assert any("required" in m.lower() for m in messages[field])


def test_every_bad_field_is_reported_at_once():
    raw = json.dumps({"EventId": "nope", "PrimaryKey": "x",
                      "ChangedByAssociateId": "someone"}).encode()
    messages = messages_of(raw)
    assert set(messages) == {"EventId", "PrimaryKey", "Event", "ChangedByAssociateId"}


def test_changes_must_be_a_list_of_strings():
    messages = messages_of(body(Changes="person_id"))
    assert set(messages) == {"Changes"}
