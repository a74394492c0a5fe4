"""LinkSigner: signed, expiring personal links that carry ids only."""

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from itsdangerous.timed import TimestampSigner

from connector.exceptions import TokenError
from connector.links import LinkSigner, LinkToken

NEW_KEY = "new-secret-key-0123456789abcdef"
OLD_KEY = "old-secret-key-fedcba9876543210"
BASE_URL = "https://consent.example.com"
PERSON_ID = 4711
DAY = 24 * 3600


def token_of(url: str) -> str:
    prefix = f"{BASE_URL}/p/"
    assert url.startswith(prefix)
    return url[len(prefix):]


def freeze_signing_time(monkeypatch, when: float) -> None:
    """itsdangerous reads the clock through TimestampSigner.get_timestamp (int(time.time()))."""
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(when))


def flip(char: str) -> str:
    return "A" if char != "A" else "B"


@pytest.fixture
def signer() -> LinkSigner:
    return LinkSigner((NEW_KEY,), max_age_days=21)


def test_round_trip_returns_person_and_token_id(signer):
    link = signer.make_link(BASE_URL, PERSON_ID)
    assert signer.read(token_of(link.url)) == LinkToken(person_id=PERSON_ID, token_id=link.token_id)


def test_url_is_base_url_slash_p_slash_token(signer):
    link = signer.make_link(BASE_URL, PERSON_ID)
    token = token_of(link.url)
    assert token and "/" not in token and "?" not in token


def test_every_link_gets_its_own_token_id(signer):
    first, second = (signer.make_link(BASE_URL, PERSON_ID) for _ in range(2))
    assert first.token_id and second.token_id and first.token_id != second.token_id
    assert first.url != second.url


@pytest.mark.parametrize("days", [1, 21, 90])
def test_expires_is_now_plus_max_age(days):
    before = datetime.now(timezone.utc)
    link = LinkSigner((NEW_KEY,), max_age_days=days).make_link(BASE_URL, PERSON_ID)
    after = datetime.now(timezone.utc)
    assert link.expires.tzinfo is not None
    assert before + timedelta(days=days) <= link.expires <= after + timedelta(days=days)


def test_token_holds_only_ids(signer):
    link = signer.make_link(BASE_URL, PERSON_ID)
    payload_part = token_of(link.url).split(".")[0]
    assert not payload_part.startswith(".")  # not zlib-compressed: the payload is plain JSON
    payload = json.loads(base64.urlsafe_b64decode(payload_part + "=" * (-len(payload_part) % 4)))
    assert payload == {"p": PERSON_ID, "t": link.token_id}


def test_token_does_not_contain_email_or_name():
    signer = LinkSigner((NEW_KEY,), 21)
    url = signer.make_link(BASE_URL, PERSON_ID).url
    part = url.split("/p/")[1].split(".")[0]
    decoded = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    assert b"@" not in decoded
    assert set(json.loads(decoded)) == {"p", "t"}


# --- tampering ---------------------------------------------------------------------------------

@pytest.mark.parametrize("part", [0, 1, 2], ids=["payload", "timestamp", "signature"])
def test_a_changed_character_makes_the_token_invalid(signer, part):
    token = token_of(signer.make_link(BASE_URL, PERSON_ID).url)
    pieces = token.split(".")
    assert len(pieces) == 3
    pieces[part] = flip(pieces[part][0]) + pieces[part][1:]
    with pytest.raises(TokenError) as caught:
        signer.read(".".join(pieces))
    assert caught.value.expired is False


def test_a_token_for_another_person_cannot_be_forged(signer):
    token = token_of(signer.make_link(BASE_URL, PERSON_ID).url)
    payload, timestamp, signature = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"p": 1, "t": "x"}).encode()).rstrip(b"=")
    with pytest.raises(TokenError) as caught:
        signer.read(".".join([forged.decode(), timestamp, signature]))
    assert caught.value.expired is False


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "....", "%00%ff", "ünïcødé.x.y"])
def test_garbage_is_invalid_not_expired(signer, garbage):
    with pytest.raises(TokenError) as caught:
        signer.read(garbage)
    assert caught.value.expired is False


def test_a_validly_signed_token_without_a_person_id_is_invalid(signer):
    token = signer.serializer.dumps({"t": "abc"})
    with pytest.raises(TokenError) as caught:
        signer.read(token)
    assert caught.value.expired is False
    with pytest.raises(TokenError):
        signer.read(signer.serializer.dumps({"p": "4711", "t": "abc"}))  # id must be an int
    with pytest.raises(TokenError):
        signer.read(signer.serializer.dumps([PERSON_ID]))


# --- expiry --------------------------------------------------------------------------------------

def test_a_token_older_than_max_age_has_expired(signer, monkeypatch):
    freeze_signing_time(monkeypatch, datetime.now(timezone.utc).timestamp() - 22 * DAY)
    token = token_of(signer.make_link(BASE_URL, PERSON_ID).url)
    monkeypatch.undo()
    with pytest.raises(TokenError) as caught:
        signer.read(token)
    assert caught.value.expired is True


def test_a_token_just_inside_max_age_is_still_valid(signer, monkeypatch):
    freeze_signing_time(monkeypatch, datetime.now(timezone.utc).timestamp() - 21 * DAY + 60)
    link = signer.make_link(BASE_URL, PERSON_ID)
    monkeypatch.undo()
    assert signer.read(token_of(link.url)).person_id == PERSON_ID


def test_expiry_follows_the_readers_max_age(monkeypatch):
    freeze_signing_time(monkeypatch, datetime.now(timezone.utc).timestamp() - 3 * DAY)
    token = token_of(LinkSigner((NEW_KEY,), 21).make_link(BASE_URL, PERSON_ID).url)
    monkeypatch.undo()
    assert LinkSigner((NEW_KEY,), 21).read(token).person_id == PERSON_ID
    with pytest.raises(TokenError) as caught:
        LinkSigner((NEW_KEY,), 2).read(token)
    assert caught.value.expired is True


def test_a_tampered_expired_token_is_invalid_not_expired(signer, monkeypatch):
    freeze_signing_time(monkeypatch, datetime.now(timezone.utc).timestamp() - 30 * DAY)
    token = token_of(signer.make_link(BASE_URL, PERSON_ID).url)
    monkeypatch.undo()
    payload, timestamp, signature = token.split(".")
    with pytest.raises(TokenError) as caught:
        signer.read(".".join([payload, timestamp, flip(signature[0]) + signature[1:]]))
    assert caught.value.expired is False


# --- key rotation ----------------------------------------------------------------------------

def test_a_token_signed_with_the_old_key_verifies_after_rotation():
    old_link = LinkSigner((OLD_KEY,), 21).make_link(BASE_URL, PERSON_ID)
    rotated = LinkSigner((NEW_KEY, OLD_KEY), 21)
    assert rotated.read(token_of(old_link.url)) == LinkToken(PERSON_ID, old_link.token_id)


def test_after_rotation_the_first_key_signs():
    token = token_of(LinkSigner((NEW_KEY, OLD_KEY), 21).make_link(BASE_URL, PERSON_ID).url)
    assert LinkSigner((NEW_KEY,), 21).read(token).person_id == PERSON_ID
    with pytest.raises(TokenError):
        LinkSigner((OLD_KEY,), 21).read(token)


def test_a_token_from_an_unrelated_key_fails():
    token = token_of(LinkSigner(("unrelated-key-0000000000000000",), 21)
                     .make_link(BASE_URL, PERSON_ID).url)
    with pytest.raises(TokenError) as caught:
        LinkSigner((NEW_KEY, OLD_KEY), 21).read(token)
    assert caught.value.expired is False


def test_a_token_dropped_from_rotation_fails():
    token = token_of(LinkSigner((OLD_KEY,), 21).make_link(BASE_URL, PERSON_ID).url)
    with pytest.raises(TokenError):
        LinkSigner((NEW_KEY,), 21).read(token)
