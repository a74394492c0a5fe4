"""The sandbox CRM over real HTTP: auth, persons, consents, faults, webhooks.

The sandbox runs in a thread on a free port; webhook receivers are tiny WSGI apps
in threads that record raw bodies, headers and arrival times.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from sandbox.server import create_sandbox_app, run_in_thread, stop_server

TENANT = "Cust12345"
TOKEN = "test-token"
ASSOCIATE = 9


# ---------------------------------------------------------------- fixtures
class Receiver:
    """A webhook target that records every request and answers ``status`` (test events: 200)."""

    def __init__(self, status: int = 200):
        self.status = status
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def __call__(self, environ, start_response):
        request = Request(environ)
        raw = request.get_data()
        with self.lock:
            self.requests.append({"time": time.monotonic(), "headers": dict(request.headers), "raw": raw})
        is_test = request.headers.get("X-Hook-Test") == "true"
        return Response("ok", status=200 if is_test else self.status)(environ, start_response)

    def events(self, name: str | None = None) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["headers"].get("X-Superoffice-Event") != "test"
                    and (name is None or r["headers"].get("X-Superoffice-Event") == name)]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events()) >= count:
                return self.events()
            time.sleep(0.02)
        raise AssertionError(f"expected {count} deliveries, got {len(self.events())}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def start(**options):
    app = create_sandbox_app(TENANT, {TOKEN: ASSOCIATE, "webform-token": 42}, **options)
    server, base = run_in_thread(app)
    return app, server, base


@pytest.fixture
def crm():
    """A fresh sandbox with real delivery timing; yields (app, base_url)."""
    app, server, base = start()
    yield app, base
    stop_server(server)


@pytest.fixture
def fast_crm():
    """A sandbox whose webhook retries do not wait."""
    app, server, base = start(retry_delays=(0, 0))
    yield app, base
    stop_server(server)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def api(base: str, method: str, path: str, token: str | None = TOKEN, **kwargs) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, f"{base}/{TENANT}/api/v1/{path}", headers=headers, timeout=10, **kwargs)


def new_person(base: str, **fields) -> dict:
    body = {"Firstname": "Ada", "Lastname": "Lovelace", "Emails": [{"Value": "ada@example.com"}],
            "Contact": {"Name": "Analytical Engines Ltd"}, **fields}
    response = api(base, "POST", "Person", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def register(base: str, receiver: Receiver, events, secret: str = "s3cret") -> requests.Response:
    return api(base, "POST", "Webhook", json={"Name": "connector", "Events": list(events),
                                              "TargetUrl": receiver.url, "Secret": secret,
                                              "State": "Active", "Type": "webhook"})


# ---------------------------------------------------------------- auth and routing
def test_api_calls_without_valid_credentials_answer_401_json(crm):
    _, base = crm
    missing = api(base, "GET", "Person/1", token=None)
    wrong = api(base, "GET", "Person/1", token="nope")
    assert missing.status_code == wrong.status_code == 401
    assert "Error" in missing.json() and "Error" in wrong.json()
    ticket = requests.get(f"{base}/{TENANT}/api/v1/Person/1", timeout=5,
                          headers={"Authorization": f"SOTicket {TOKEN}"})
    assert ticket.status_code == 404  # authenticated; the person just does not exist


def test_app_token_is_required_when_configured():
    app, server, base = start(app_token="app-123")
    try:
        assert api(base, "GET", "List/LegalBase/Items").status_code == 401
        ok = api(base, "GET", "List/LegalBase/Items", headers={"SO-AppToken": "app-123"})
        assert ok.status_code == 200
    finally:
        stop_server(server)


def test_unknown_tenant_route_and_method_answer_json_errors(crm):
    _, base = crm
    other = requests.get(f"{base}/Cust99999/api/v1/Person/1", headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=5)
    assert other.status_code == 404 and "Error" in other.json()
    unknown = api(base, "GET", "NoSuchThing")
    assert unknown.status_code == 404 and "Error" in unknown.json()
    assert api(base, "PATCH", "Person/1/Consent/STORE").status_code == 405


# ---------------------------------------------------------------- persons
def test_created_person_reads_back_in_superoffice_shape(crm):
    _, base = crm
    created = new_person(base, CustomerLanguage={"Value": "Swedish"})
    person = api(base, "GET", f"Person/{created['PersonId']}").json()
    assert person["Firstname"] == "Ada" and person["FullName"] == "Ada Lovelace"
    assert person["Emails"] == [{"Value": "ada@example.com", "StrippedValue": "ada@example.com", "Description": ""}]
    assert person["Contact"]["Name"] == "Analytical Engines Ltd" and person["Contact"]["ContactId"] > 0
    assert person["CreatedBy"]["AssociateId"] == ASSOCIATE
    assert person["CreatedBy"]["Name"] == "consent-connector"
    assert person["CustomerLanguage"] == {"Id": 3, "Value": "Swedish", "Tooltip": "Swedish"}
    assert person["Consents"] == []
    assert [(t["Id"], t["Name"], t["Selected"]) for t in person["ShipmentTypes"]] == [
        (1, "Newsletter", False), (2, "Event invitations", False), (3, "Product news", False)]
    assert time.strptime(person["CreatedDate"], "%Y-%m-%dT%H:%M:%S")
    assert api(base, "GET", "Person/999").status_code == 404


def test_person_list_filters_on_registered_time_and_pages(crm):
    _, base = crm
    first = new_person(base)
    for _ in range(2):
        new_person(base)
    since = first["CreatedDate"]
    params = {"$select": "personId,personRegisteredDate", "$filter": "personRegisteredDate afterTime '2000-01-01T00:00:00'",
              "$top": 2}
    page = api(base, "GET", "Person", params=params).json()
    assert [r["PrimaryKey"] for r in page["value"]] == [1, 2]
    assert page["value"][0] == {"PrimaryKey": 1, "EntityName": "person", "personId": "1", "personRegisteredDate": since}
    rest = requests.get(page["odata.nextLink"], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).json()
    assert [r["PrimaryKey"] for r in rest["value"]] == [3] and rest["odata.nextLink"] is None
    none = api(base, "GET", "Person", params={"$filter": "personRegisteredDate afterTime '2999-01-01T00:00:00'"})
    assert none.json()["value"] == []
    assert api(base, "GET", "Person", params={"$filter": "email contains 'x'"}).status_code == 400


# ---------------------------------------------------------------- consents
def test_setting_a_consent_twice_updates_one_row(crm):
    _, base = crm
    pid = new_person(base)["PersonId"]
    first = api(base, "PUT", f"Person/{pid}/Consent/STORE", params={"source": "API", "legalBase": "61F",
                                                                     "comment": "new person"})
    assert first.status_code == 204 and first.content == b""
    second = api(base, "PUT", f"Person/{pid}/Consent/STORE", token="webform-token",
                 params={"source": "WEBFORM", "legalBase": "61A", "comment": "ticked the box"})
    assert second.status_code == 204
    rows = api(base, "GET", f"Person/{pid}/Consent").json()
    assert len(rows) == 1
    row = rows[0]
    assert (row["ConsentPurposeKey"], row["LegalBaseKey"], row["ConsentSourceKey"]) == ("STORE", "61A", "WEBFORM")
    assert (row["RegisteredAssociateId"], row["UpdatedAssociateId"]) == (ASSOCIATE, 42)
    assert row["Comment"] == "ticked the box" and row["LegalBaseName"] == "Consent"
    assert api(base, "GET", f"Person/{pid}/Consent/STORE").json() is True
    assert api(base, "GET", f"Person/{pid}/Consent/EMARKETING").json() is False


def test_withdrawn_and_deleted_consents_read_as_false(crm):
    _, base = crm
    pid = new_person(base)["PersonId"]
    api(base, "PUT", f"Person/{pid}/Consent/EMARKETING", params={"source": "USER", "legalBase": "61A"})
    api(base, "PUT", f"Person/{pid}/Consent/EMARKETING", params={"source": "USER", "legalBase": "WITHDRAWN"})
    assert api(base, "GET", f"Person/{pid}/Consent/EMARKETING").json() is False
    assert api(base, "GET", f"Person/{pid}").json()["Consents"][0]["LegalBaseKey"] == "WITHDRAWN"
    api(base, "PUT", f"Person/{pid}/Consent/STORE", params={"source": "API", "legalBase": "61F"})
    assert api(base, "DELETE", f"Person/{pid}/Consent/STORE").status_code == 204
    assert api(base, "GET", f"Person/{pid}/Consent/STORE").json() is False


@pytest.mark.parametrize("params, word", [
    ({"source": "API", "legalBase": "61Z"}, "61Z"),
    ({"source": "FAX", "legalBase": "61A"}, "FAX"),
    ({"legalBase": "61A"}, "source"),
    ({"source": "API"}, "legalBase"),
    ({"source": "API", "legalBase": "61A", "comment": "x" * 256}, "255"),
])
def test_bad_consent_requests_answer_400_naming_the_problem(crm, params, word):
    _, base = crm
    pid = new_person(base)["PersonId"]
    response = api(base, "PUT", f"Person/{pid}/Consent/STORE", params=params)
    assert response.status_code == 400 and word in response.json()["Error"]
    assert api(base, "GET", f"Person/{pid}/Consent").json() == []


def test_unknown_purpose_is_400_and_unknown_person_404(crm):
    _, base = crm
    pid = new_person(base)["PersonId"]
    bad = api(base, "PUT", f"Person/{pid}/Consent/TELEPATHY", params={"source": "API", "legalBase": "61A"})
    assert bad.status_code == 400 and "TELEPATHY" in bad.json()["Error"]
    gone = api(base, "PUT", "Person/4711/Consent/STORE", params={"source": "API", "legalBase": "61A"})
    assert gone.status_code == 404


def test_lists_expose_the_default_keys(crm):
    _, base = crm
    purposes = {r["Key"] for r in api(base, "GET", "List/ConsentPurpose/Items").json()}
    bases = {r["Key"] for r in api(base, "GET", "List/LegalBase/Items").json()}
    sources = {r["Key"] for r in api(base, "GET", "List/ConsentSource/Items").json()}
    assert purposes == {"STORE", "EMARKETING"}
    assert {"61A", "61B", "61F", "WITHDRAWN"} <= bases
    assert {"USER", "WEBFORM", "API"} <= sources


# ---------------------------------------------------------------- faults and logs
def test_faults_answer_the_given_status_with_retry_after_then_clear(crm):
    _, base = crm
    pid = new_person(base)["PersonId"]
    requests.post(f"{base}/__sandbox/faults", json={"status": 503, "times": 2, "retry_after": 2,
                                                    "match": "Consent", "method": "PUT"}, timeout=5)
    params = {"source": "API", "legalBase": "61F"}
    assert api(base, "GET", f"Person/{pid}").status_code == 200  # not matched
    for _ in range(2):
        hit = api(base, "PUT", f"Person/{pid}/Consent/STORE", params=params)
        assert hit.status_code == 503 and hit.headers["Retry-After"] == "2" and "Error" in hit.json()
    assert api(base, "PUT", f"Person/{pid}/Consent/STORE", params=params).status_code == 204
    calls = requests.get(f"{base}/__sandbox/calls", timeout=5).json()
    assert [c["status"] for c in calls if c["method"] == "PUT"] == [503, 503, 204]
    assert all("body" not in c for c in calls)


def test_delay_fault_makes_calls_slow_until_cleared(crm):
    _, base = crm
    requests.post(f"{base}/__sandbox/faults", json={"delay": 1, "times": 5, "match": "Person"}, timeout=5)
    with pytest.raises(requests.Timeout):
        requests.get(f"{base}/{TENANT}/api/v1/Person/1", headers={"Authorization": f"Bearer {TOKEN}"},
                     timeout=0.3)
    requests.delete(f"{base}/__sandbox/faults", timeout=5)
    assert api(base, "GET", "Person/1").status_code == 404


# ---------------------------------------------------------------- webhooks
def test_registration_sends_a_test_event_and_fails_when_target_does_not_answer_200(crm, receiver):
    _, base = crm
    saved = register(base, receiver, ["person.created"])
    assert saved.status_code == 200 and saved.json()["State"] == "Active"
    test_call = receiver.requests[0]["headers"]
    assert test_call["X-Superoffice-Event"] == "test" and test_call["X-Hook-Test"] == "true"
    refused = api(base, "POST", "Webhook", json={"Name": "dead", "Events": ["person.created"],
                                                  "TargetUrl": "http://127.0.0.1:9/nothing", "Type": "webhook"})
    assert refused.status_code == 400 and "127.0.0.1:9" in refused.json()["Error"]
    listed = api(base, "GET", "Webhook").json()
    assert [(h["Name"], h["State"]) for h in listed] == [("connector", "Active")]


def test_person_created_is_delivered_signed_without_personal_data(crm, receiver):
    app, base = crm
    register(base, receiver, ["person.created"], secret="s3cret")
    pid = new_person(base)["PersonId"]
    api(base, "PUT", f"Person/{pid}/Consent/STORE", params={"source": "API", "legalBase": "61F"})
    (delivery,) = receiver.wait_for(1)
    raw, headers = delivery["raw"], delivery["headers"]
    expected = base64.b64encode(hmac.new(b"s3cret", raw, hashlib.sha256).digest()).decode()
    assert hmac.compare_digest(headers["X-Superoffice-Signature"], expected)
    payload = json.loads(raw)
    assert payload["Event"] == "person.created" and payload["PrimaryKey"] == pid
    assert payload["ContextIdentifier"] == TENANT and payload["ChangedByAssociateId"] == ASSOCIATE
    assert payload["EventId"] == headers["X-Superoffice-Eventid"] and headers["X-Superoffice-Retry"] == "0"
    assert headers["User-Agent"].startswith("NetServer-Webhook/")
    assert "ada@example.com" not in raw.decode() and "Lovelace" not in raw.decode()
    assert app.extensions["sandbox"]["dispatcher"].wait_idle(5)
    assert receiver.events("person.consented") == []  # not subscribed


def test_consent_events_carry_the_callers_associate(fast_crm, receiver):
    app, base = fast_crm
    register(base, receiver, ["person.consented", "person.unconsented"], secret="")
    pid = new_person(base)["PersonId"]
    api(base, "PUT", f"Person/{pid}/Consent/STORE", token="webform-token", params={"source": "WEBFORM", "legalBase": "61A"})
    api(base, "PUT", f"Person/{pid}/Consent/STORE", params={"source": "USER", "legalBase": "WITHDRAWN"})
    assert app.extensions["sandbox"]["dispatcher"].wait_idle(5)
    got = sorted((json.loads(r["raw"])["Event"], json.loads(r["raw"])["ChangedByAssociateId"]) for r in receiver.events())
    assert got == [("person.consented", 42), ("person.unconsented", ASSOCIATE)]
    assert all("X-Superoffice-Signature" not in r["headers"] for r in receiver.events())


def test_failing_receiver_gets_three_attempts_one_and_four_seconds_apart(crm, receiver):
    app, base = crm
    register(base, receiver, ["person.created"])
    receiver.status = 500
    new_person(base)
    attempts = receiver.wait_for(3, timeout=10)
    assert [a["headers"]["X-Superoffice-Retry"] for a in attempts] == ["0", "1", "2"]
    assert len({a["headers"]["X-Superoffice-Eventid"] for a in attempts}) == 1
    assert attempts[1]["time"] - attempts[0]["time"] >= 0.9
    assert attempts[2]["time"] - attempts[1]["time"] >= 3.9
    assert app.extensions["sandbox"]["dispatcher"].wait_idle(5)
    log = requests.get(f"{base}/__sandbox/deliveries", timeout=5).json()
    assert [(d["attempt"], d["status"]) for d in log] == [(0, 500), (1, 500), (2, 500)]


def test_nine_failed_deliveries_in_a_row_three_events_set_too_many_errors(fast_crm, receiver):
    """notification.md: 3 attempts per event, "a total of 9 consecutive attempts" before
    TooManyErrors."""
    app, base = fast_crm
    register(base, receiver, ["person.created"])
    receiver.status = 503
    dispatcher = app.extensions["sandbox"]["dispatcher"]
    for _ in range(2):
        new_person(base)
        assert dispatcher.wait_idle(5)
    assert api(base, "GET", "Webhook").json()[0]["State"] == "Active"  # 6 failed so far
    new_person(base)
    assert dispatcher.wait_idle(5)
    (hook,) = api(base, "GET", "Webhook").json()
    assert hook["State"] == "TooManyErrors"
    assert len(receiver.events()) == 9
    new_person(base)
    assert dispatcher.wait_idle(5)
    assert len(receiver.events()) == 9


def test_only_a_200_delivers_an_event_a_202_is_a_failed_attempt(fast_crm, receiver):
    app, base = fast_crm
    register(base, receiver, ["person.created"])
    receiver.status = 202
    new_person(base)
    assert app.extensions["sandbox"]["dispatcher"].wait_idle(5)
    log = requests.get(f"{base}/__sandbox/deliveries", timeout=5).json()
    assert [(d["attempt"], d["status"]) for d in log] == [(0, 202), (1, 202), (2, 202)]
    receiver.status = 200
    new_person(base)
    assert app.extensions["sandbox"]["dispatcher"].wait_idle(5)
    assert len(receiver.events()) == 4  # delivered at the first attempt


def test_410_gone_stops_the_webhook_at_once(fast_crm, receiver):
    app, base = fast_crm
    register(base, receiver, ["person.created"])
    receiver.status = 410
    new_person(base)
    assert app.extensions["sandbox"]["dispatcher"].wait_idle(5)
    assert len(receiver.events()) == 1
    assert api(base, "GET", "Webhook").json()[0]["State"] == "Stopped"


# ---------------------------------------------------------------- person card and reset
def test_person_card_shows_consents_escaped(crm):
    _, base = crm
    pid = new_person(base, Firstname="<script>x</script>")["PersonId"]
    api(base, "PUT", f"Person/{pid}/Consent/STORE", params={"source": "API", "legalBase": "61F",
                                                             "comment": "default for new persons"})
    page = requests.get(f"{base}/{TENANT}/person/{pid}", timeout=5).text
    assert "&lt;script&gt;" in page and "<script>x" not in page
    assert "Legitimate interest" in page and "default for new persons" in page and "consent-connector" in page
    assert f"/{TENANT}/person/{pid}" in requests.get(f"{base}/", timeout=5).text


def test_reset_forgets_everything(crm):
    _, base = crm
    pid = new_person(base)["PersonId"]
    assert requests.post(f"{base}/__sandbox/reset", timeout=5).status_code == 204
    assert api(base, "GET", f"Person/{pid}").status_code == 404
    assert requests.get(f"{base}/__sandbox/calls", timeout=5).json()[-1]["status"] == 404
