"""Property-based test of POST /webhooks/superoffice: whatever the body, signed or not, the
receiver answers with a 2xx or a 4xx and a JSON reason, never a 5xx.

Bounded to a few seconds in ``make test`` (FUZZ_EXAMPLES, default 300); a longer run:
``FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest tests/integration/test_webhook_fuzz.py``.
"""

import json
import os
import uuid

import pytest
import redis
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from connector.superoffice.webhook import sign
from connector.web.app import create_app
from tests.conftest import WEBHOOK_SECRETS

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))

# Integers around every edge a SuperOffice id has (past Python's 4,300-digit limit: see
# long_integers, written as bytes: Python cannot even print them).
edge_integers = st.one_of(
    st.integers(), st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, 2**63, -(2**63)]))
json_scalars = st.one_of(st.none(), st.booleans(), edge_integers,
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)
field_values = st.one_of(json_values, st.just(str(uuid.uuid4())),
                         st.sampled_from(["person.created", "person.consented",
                                          "person.unconsented", "person.changed", "test"]))
event_like = st.fixed_dictionaries({}, optional={
    name: field_values for name in ("EventId", "Event", "PrimaryKey", "Entity", "Timestamp",
                                    "ContextIdentifier", "ChangedByAssociateId", "WebhookName",
                                    "Changes", "FieldValues")})


def encoded(value) -> bytes:
    return json.dumps(value).encode()


def with_long_integer(digits: int, field: str) -> bytes:
    """A person.created event whose ``field`` is an integer of ``digits`` digits."""
    event = {"EventId": str(uuid.uuid4()), "Event": "person.created", "PrimaryKey": 1,
             "ChangedByAssociateId": 7}
    text = json.dumps({**event, field: "DIGITS"})
    return text.replace('"DIGITS"', "9" * digits).encode()


long_integers = st.builds(with_long_integer, st.integers(4000, 20000),
                          st.sampled_from(["PrimaryKey", "ChangedByAssociateId", "Changes"]))
bodies = st.one_of(st.binary(max_size=600), json_values.map(encoded), event_like.map(encoded),
                   st.text(max_size=300).map(str.encode), long_integers)


@pytest.fixture(scope="module")
def client(settings, redis_url):
    connection = redis.Redis.from_url(f"{redis_url}?db=4")  # no worker listens here
    connection.flushdb()
    yield create_app(settings, connection=connection).test_client()
    connection.flushdb()


@hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])
@given(body=bodies, signing=st.sampled_from(["signed", "unsigned", "garbage"]),
       test_header=st.booleans())
def test_no_body_signed_or_not_gets_a_server_error(client, body, signing, test_header):
    headers = {"Content-Type": "application/json"}
    if signing == "signed":
        headers["X-SuperOffice-Signature"] = sign(body, WEBHOOK_SECRETS[0])
    elif signing == "garbage":
        headers["X-SuperOffice-Signature"] = "not-a-signature-✓"
    if test_header:
        headers["X-Hook-Test"] = "true"

    response = client.post("/webhooks/superoffice", data=body, headers=headers)

    assert response.status_code < 500, (response.status_code, response.data[:300])
    assert response.is_json and ("error" in response.json or "status" in response.json)
    if signing != "signed":
        assert response.status_code == 401
