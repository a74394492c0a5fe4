"""POST /webhooks/superoffice against a real Redis server: every answer of the receiver."""

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis
from rq import Queue

from connector import metrics
from connector.intake import Promoter
from connector.web.app import create_app
from connector.superoffice.webhook import sign
from tests.conftest import CONNECTOR_ASSOCIATE, USER_ASSOCIATE, WEBHOOK_SECRETS, new_event_id
from connector.keys import HISTORY, ONBOARDING

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_conn(redis_url):
    """A Redis database no worker listens on, so queued jobs stay where the tests look."""
    connection = redis.Redis.from_url(f"{redis_url}?db=2")
    connection.flushdb()
    return connection


PROMOTING = {}
"""The settings the jobs are queued with (their retry policy), for ``queued``."""


@pytest.fixture(autouse=True)
def promoting_settings(settings):
    PROMOTING["settings"] = settings


@pytest.fixture
def app(settings, redis_conn):
    return create_app(settings, connection=redis_conn)


@pytest.fixture
def client(app):
    return app.test_client()


def event(name="person.created", person_id=123, event_id=None, changed_by=USER_ASSOCIATE, **extra):
    """A payload shaped like SuperOffice's (docs/api/webhooks)."""
    return {"EventId": event_id or new_event_id(), "Timestamp": sent_now(),
            "Changes": ["person_id", "firstname"], "Event": name, "PrimaryKey": person_id,
            "Entity": "person", "ContextIdentifier": "Cust12345",
            "ChangedByAssociateId": changed_by, "WebhookName": "consent-connector", **extra}


def sent_now(seconds_ago: float = 0) -> str:
    """A Timestamp as SuperOffice writes it (seven fraction digits, Z), ``seconds_ago``."""
    when = datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def post(client, payload, secret=WEBHOOK_SECRETS[0], headers=None, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    all_headers = {"Content-Type": "application/json"}
    if secret:
        all_headers["X-SuperOffice-Signature"] = sign(body, secret)
    all_headers.update(headers or {})
    return client.post("/webhooks/superoffice", data=body, headers=all_headers)


def queued(redis_conn, queue_name=ONBOARDING) -> list:
    """The jobs on ``queue_name`` once a worker's promoter made jobs of what the receiver
    handed to the intake (connector.intake)."""
    Promoter(redis_conn, PROMOTING["settings"], holder="test").promote()
    return Queue(queue_name, connection=redis_conn).get_jobs()


def test_person_created_queues_one_onboarding_job(client, redis_conn):
    payload = event(person_id=77)
    response = post(client, payload)
    assert response.status_code == 200
    assert response.json["status"] == "queued"
    jobs = queued(redis_conn)
    assert len(jobs) == 1
    assert jobs[0].args == (77, payload["EventId"])
    assert jobs[0].id == response.json["job_id"]
    assert jobs[0].meta["person_id"] == 77


def test_a_rotated_secret_is_still_accepted(client, redis_conn):
    response = post(client, event(), secret=WEBHOOK_SECRETS[1])
    assert response.status_code == 200
    assert len(queued(redis_conn)) == 1


@pytest.mark.parametrize("secret, headers, reason_word", [
    (None, None, "missing"),
    ("not-our-secret", None, "does not match"),
    (None, {"X-SuperOffice-Signature": "garbage that is not base64 ✓"}, "does not match"),
])
def test_bad_signatures_get_401_and_queue_nothing(client, redis_conn, secret, headers, reason_word):
    response = post(client, event(), secret=secret, headers=headers)
    assert response.status_code == 401
    assert response.json["error"] == "bad_signature"
    assert reason_word in response.json["message"]
    assert "SUPEROFFICE_WEBHOOK_SECRET" in response.json["message"]  # the setting to check
    assert queued(redis_conn) == []


def test_bad_signatures_are_counted_for_status_by_the_minute(client, redis_conn):
    for _ in range(3):
        post(client, event(), secret="not-our-secret")
    post(client, event())  # a good one is not counted

    count, latest = metrics.signature_rejections(redis_conn)
    assert count == 3 and time.time() - 120 < latest <= time.time()


def test_signature_of_another_body_is_refused(client, redis_conn):
    body = json.dumps(event()).encode()
    other = sign(body + b" ", WEBHOOK_SECRETS[0])
    response = post(client, None, secret=None, raw=body, headers={"X-SuperOffice-Signature": other})
    assert response.status_code == 401
    assert queued(redis_conn) == []


def test_registration_test_event_gets_200(client, redis_conn):
    payload = event(name="test", person_id=0) | {"Entity": "test"}
    response = post(client, payload, headers={"X-Hook-Test": "true", "X-SuperOffice-Event": "test"})
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    assert queued(redis_conn) == []


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b"", b"[1, 2]", b"\"text\"", b"null",
                                 b"[" * 20000 + b"]" * 20000])  # nested deeper than json allows
def test_bodies_that_are_not_a_json_object_get_400(client, redis_conn, raw):
    response = post(client, None, raw=raw)
    assert response.status_code == 400
    assert response.json["error"] == "malformed_json"
    assert queued(redis_conn) == []


@pytest.mark.parametrize("change, bad_fields", [
    ({"EventId": "not-a-guid"}, {"EventId"}),
    ({"PrimaryKey": "abc"}, {"PrimaryKey"}),
    ({"PrimaryKey": [1]}, {"PrimaryKey"}),
    ({"PrimaryKey": -5}, {"PrimaryKey"}),
    ({"Event": None, "EventId": None}, {"Event", "EventId"}),
    ({"ChangedByAssociateId": {"x": 1}}, {"ChangedByAssociateId"}),
    ({"Changes": "person_id"}, {"Changes"}),
])
def test_valid_json_with_wrong_fields_gets_422_naming_them(client, redis_conn, change, bad_fields):
    payload = event() | change
    response = post(client, payload)
    assert response.status_code == 422
    assert response.json["error"] == "invalid_event"
    assert set(response.json["fields"]) == bad_fields
    assert queued(redis_conn) == []


def test_missing_required_fields_are_listed(client, redis_conn):
    response = post(client, {"Timestamp": "2026-11-29T08:28:01Z"})
    assert response.status_code == 422
    assert {"EventId", "Event", "PrimaryKey"} <= set(response.json["fields"])


def test_oversized_body_gets_413(client, redis_conn):
    payload = event(Changes=["x" * 100] * 1000)
    response = post(client, payload)
    assert response.status_code == 413
    assert response.json["error"] == "request_entity_too_large"
    assert queued(redis_conn) == []


@pytest.mark.parametrize("name", ["person.changed", "contact.created", "person.softdeleted"])
def test_events_not_acted_on_are_ignored_with_200(client, redis_conn, name):
    response = post(client, event(name=name))
    assert response.status_code == 200
    assert response.json["status"] == "ignored"
    assert name in response.json["reason"]
    assert queued(redis_conn) == []


@pytest.mark.parametrize("name, queue_name, job_prefix", [
    ("person.consented", HISTORY, "crm-change-"),
    ("person.unconsented", HISTORY, "crm-change-"),
    ("person.deleted", HISTORY, "deletion-"),
])
def test_consent_changes_and_deletions_by_crm_users_are_queued_for_the_history(client, redis_conn, name,
                                                                 queue_name, job_prefix):
    payload = event(name=name, person_id=55)
    response = post(client, payload)
    again = post(client, payload)
    assert response.status_code == 200 and response.json["status"] == "queued"
    assert again.status_code == 200 and again.json["status"] == "duplicate"
    jobs = queued(redis_conn, queue_name)
    assert [job.id for job in jobs] == [job_prefix + payload["EventId"]]
    assert jobs[0].args == (55, payload["EventId"])


@pytest.mark.parametrize("name", ["person.created", "person.consented", "person.unconsented"])
def test_events_caused_by_the_connector_itself_are_ignored(client, redis_conn, name):
    response = post(client, event(name=name, changed_by=CONNECTOR_ASSOCIATE))
    assert response.status_code == 200
    assert response.json["status"] == "ignored"
    assert "connector" in response.json["reason"]
    assert queued(redis_conn) == []
    assert queued(redis_conn, HISTORY) == []


def test_a_redelivered_event_queues_no_second_job(client, redis_conn):
    payload = event()
    first = post(client, payload)
    again = post(client, payload, headers={"X-SuperOffice-Retry": "1"})
    assert first.status_code == 200 and first.json["status"] == "queued"
    assert again.status_code == 200
    assert again.json["status"] == "duplicate"
    assert len(queued(redis_conn)) == 1


def test_redis_unreachable_gets_503_with_retry_after(settings, tmp_path):
    dead = redis.Redis.from_url(f"unix://{tmp_path}/no-redis-here.sock", socket_timeout=0.5)
    client = create_app(settings, connection=dead).test_client()
    response = post(client, event())
    assert response.status_code == 503
    assert response.json["error"] == "queue_unavailable"
    assert int(response.headers["Retry-After"]) > 0


def test_other_methods_get_405_as_json(client):
    response = client.get("/webhooks/superoffice")
    assert response.status_code == 405
    assert response.json["error"] == "method_not_allowed"
    assert response.headers["Allow"] == "POST"


def test_a_defect_in_the_receiver_is_a_json_500_with_its_traceback_in_the_log(app, client,
                                                                              redis_conn, caplog):
    def broken(entry):
        raise KeyError("a defect")

    app.extensions["connector"].intake.accept = broken
    response = post(client, event())

    assert response.status_code == 500
    assert response.json["error"] == "internal_error"
    failed = [record for record in caplog.records if record.getMessage() == "webhook.failed"]
    assert failed and failed[0].exc_info[0] is KeyError
    assert queued(redis_conn) == []


def test_unknown_webhook_paths_get_404_as_json(client):
    response = client.post("/webhooks/hubspot", data=b"{}")
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


def test_an_event_older_than_webhook_max_age_is_a_replay_answered_200_and_not_queued(
        client, redis_conn):
    stale = post(client, event(Timestamp=sent_now(seconds_ago=3601)))
    fresh = post(client, event(Timestamp=sent_now(seconds_ago=3500)))
    from_2019 = post(client, event(Timestamp="2019-04-05T08:28:01.5732501Z"))

    assert (stale.status_code, stale.json["status"]) == (200, "ignored")
    assert stale.json["reason"].startswith("stale: sent 3601 s ago")
    assert from_2019.status_code == 200 and from_2019.json["reason"].startswith("stale")
    assert fresh.json["status"] == "queued"
    assert len(queued(redis_conn)) == 1
    assert metrics_of(client)['connector_webhooks_total{outcome="stale"}'] == 2.0


def test_an_unreadable_timestamp_is_a_wrong_field(client, redis_conn):
    response = post(client, event(Timestamp="yesterday"))
    assert response.status_code == 422 and set(response.json["fields"]) == {"Timestamp"}


def metrics_of(client) -> dict[str, float]:
    lines = client.get("/metrics").get_data(as_text=True).splitlines()
    return {name: float(value) for name, _, value in (line.rpartition(" ") for line in lines)
            if name.startswith("connector_webhooks_total")}
