"""X-SuperOffice-Signature: base64(HMAC-SHA256(key = secret as UTF-8, message = raw body)).

https://github.com/SuperOfficeDocs/superoffice-docs/blob/main/docs/api/webhooks/security.md
(the page gives C# and Node routines but no worked secret/body/signature triple, so the
known-answer test below uses the RFC 4231 HMAC-SHA256 test vector, base64-encoded the way
SuperOffice's routines do: ``Convert.ToBase64String(HMACSHA256(UTF8(secret)).ComputeHash(body))``).
"""

import base64
import hashlib
import hmac
import json

import pytest

from connector.exceptions import SignatureError
from connector.superoffice.webhook import SIGNATURE_HEADER, sign, verify_signature

# The payload from SuperOffice's webhook docs (docs/api/webhooks/overview), as raw bytes.
BODY = (b'{"EventId":"88f91933-edce-4c1a-8ded-ade8e2f72434",'
        b'"Timestamp":"2018-04-05T08:28:01.5732501Z",'
        b'"Changes":["contact_id","updated_associate_id","soundEx","updated","name"],'
        b'"Event":"contact.changed","PrimaryKey":18,"Entity":"contact",'
        b'"ContextIdentifier":"Cust54321","ChangedByAssociateId":5,'
        b'"WebhookName":"Tonys Contact Handler"}')
SECRET = "current-webhook-secret"
OLD_SECRET = "previous-webhook-secret"


def reference_signature(body: bytes, secret: str) -> str:
    """Computed independently of the code under test, like SuperOffice's C# example."""
    mac = hmac.HMAC(secret.encode("utf-8"), msg=body, digestmod="sha256")
    return base64.standard_b64encode(mac.digest()).decode()


# --- sign ------------------------------------------------------------------------------------

def test_sign_matches_rfc4231_known_answer():
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
    expected_hex = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    expected = base64.b64encode(bytes.fromhex(expected_hex)).decode()
    assert expected == "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
    assert sign(b"what do ya want for nothing?", "Jefe") == expected


def test_sign_matches_independent_computation_on_documented_payload():
    assert sign(BODY, SECRET) == reference_signature(BODY, SECRET)


def test_sign_is_plain_base64_without_prefix():
    value = sign(BODY, SECRET)
    assert not value.startswith("sha256=")
    assert len(base64.b64decode(value, validate=True)) == hashlib.sha256().digest_size


def test_sign_encodes_a_non_ascii_secret_as_utf8():
    secret = "hemmelig-nøkkel-æøå"
    assert sign(BODY, secret) == reference_signature(BODY, secret)
    assert sign(BODY, secret) != base64.b64encode(
        hmac.new(secret.encode("latin-1"), BODY, hashlib.sha256).digest()).decode()


def test_sign_depends_on_secret_and_body():
    assert sign(BODY, SECRET) != sign(BODY, OLD_SECRET)
    assert sign(BODY, SECRET) != sign(BODY + b" ", SECRET)


# --- verify_signature ----------------------------------------------------------------------

def test_verify_accepts_the_right_signature():
    verify_signature(BODY, reference_signature(BODY, SECRET), [SECRET])


@pytest.mark.parametrize("signing_secret", [SECRET, OLD_SECRET, "third-secret"])
def test_verify_accepts_any_configured_secret_for_rotation(signing_secret):
    verify_signature(BODY, reference_signature(BODY, signing_secret),
                     (SECRET, OLD_SECRET, "third-secret"))


def test_verify_tolerates_surrounding_whitespace_in_the_header():
    verify_signature(BODY, f"  {sign(BODY, SECRET)} ", [SECRET])


@pytest.mark.parametrize("header", [None, ""])
def test_verify_rejects_a_missing_or_empty_header(header):
    with pytest.raises(SignatureError, match=SIGNATURE_HEADER):
        verify_signature(BODY, header, [SECRET])


def test_verify_rejects_a_signature_made_with_another_secret():
    with pytest.raises(SignatureError):
        verify_signature(BODY, reference_signature(BODY, "not-our-secret"), [SECRET, OLD_SECRET])


def test_verify_rejects_when_no_secret_is_configured():
    with pytest.raises(SignatureError):
        verify_signature(BODY, reference_signature(BODY, SECRET), [])


@pytest.mark.parametrize("position", [0, len(BODY) // 2, len(BODY) - 1])
def test_verify_rejects_a_body_changed_by_one_byte(position):
    tampered = bytearray(BODY)
    tampered[position] ^= 0x01
    with pytest.raises(SignatureError):
        verify_signature(bytes(tampered), sign(BODY, SECRET), [SECRET])


@pytest.mark.parametrize("reserialise", [
    lambda data: json.dumps(data).encode(),                      # ", " and ": " separators
    lambda data: json.dumps(data, indent=2).encode(),            # pretty-printed
    lambda data: json.dumps(data, separators=(",", ":"), sort_keys=True).encode(),  # key order
    lambda data: BODY + b"\n",                                   # trailing newline
])
def test_verify_rejects_reserialised_json(reserialise):
    data = json.loads(BODY)
    other = reserialise(data)
    assert other != BODY and json.loads(other) == data  # same JSON, different bytes
    with pytest.raises(SignatureError):
        verify_signature(other, sign(BODY, SECRET), [SECRET])


def test_verify_rejects_a_hex_digest_of_the_right_hmac():
    hex_digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError):
        verify_signature(BODY, hex_digest, [SECRET])


@pytest.mark.parametrize("header", [
    "ünïcødé-garbage",
    "\u2603" * 44,
    sign(BODY, SECRET)[:-1] + "é",                 # right signature but last char non-ASCII
    "\x00\x01\x02",
    "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=\udcff",  # lone surrogate
])
def test_verify_rejects_non_ascii_header_garbage_with_signature_error(header):
    with pytest.raises(SignatureError):
        verify_signature(BODY, header, [SECRET, OLD_SECRET])


def test_signature_error_is_a_connector_error():
    from connector.exceptions import ConnectorError

    with pytest.raises(ConnectorError):
        verify_signature(BODY, "nope", [SECRET])
