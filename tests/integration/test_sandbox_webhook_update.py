"""The sandbox's PUT and PATCH Webhook/{id} over real HTTP (v1Webhook_PutWebhook.md,
v1Webhook_PatchWebhook.md): an operator re-activates a webhook that went TooManyErrors, and
its count of consecutive failures starts afresh."""

from __future__ import annotations

import threading

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from sandbox.server import create_sandbox_app, run_in_thread, stop_server

TENANT = "Cust12345"
TOKEN = "test-token"


class Receiver:
    """A webhook target answering ``status`` to events (200 to the registration test event)."""

    def __init__(self, status: int = 200):
        self.status = status
        self.events = 0
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def __call__(self, environ, start_response):
        request = Request(environ)
        request.get_data()
        if request.headers.get("X-Hook-Test") == "true":
            return Response("ok")(environ, start_response)
        with self.lock:
            self.events += 1
        return Response("ok", status=self.status)(environ, start_response)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def crm():
    """A sandbox whose webhook retries do not wait; yields (app, base_url)."""
    app = create_sandbox_app(TENANT, {TOKEN: 9}, retry_delays=(0, 0))
    server, base = run_in_thread(app)
    yield app, base
    stop_server(server)


@pytest.fixture
def receiver():
    target = Receiver()
    yield target
    target.close()


def api(base: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{base}/{TENANT}/api/v1/{path}", timeout=10,
                            headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs)


def register(base: str, receiver: Receiver) -> dict:
    response = api(base, "POST", "Webhook", json={
        "Name": "connector", "Events": ["person.created"], "TargetUrl": receiver.url,
        "Secret": "s3cret", "State": "Active", "Type": "webhook"})
    assert response.status_code == 200, response.text
    return response.json()


def fail_until_too_many_errors(app, base: str, receiver: Receiver, hook_id: int) -> None:
    """Three events of three failed attempts each: the webhook goes TooManyErrors."""
    receiver.status = 503
    dispatcher = app.extensions["sandbox"]["dispatcher"]
    for _ in range(3):
        api(base, "POST", "Person", json={"Firstname": "Ada"})
        assert dispatcher.wait_idle(5)
    assert api(base, "GET", f"Webhook/{hook_id}").json()["State"] == "TooManyErrors"


def test_patching_state_active_re_activates_a_too_many_errors_webhook_with_a_fresh_count(crm, receiver):
    app, base = crm
    hook = register(base, receiver)
    fail_until_too_many_errors(app, base, receiver, hook["WebhookId"])
    patched = api(base, "PATCH", f"Webhook/{hook['WebhookId']}",
                  json=[{"op": "test", "path": "State", "value": "TooManyErrors"},
                        {"op": "replace", "path": "/state", "value": "Active"}])
    assert patched.status_code == 200
    assert patched.json()["State"] == "Active" and patched.json()["Name"] == "connector"
    dispatcher = app.extensions["sandbox"]["dispatcher"]
    api(base, "POST", "Person", json={"Firstname": "Ada"})  # three more failures: not nine in a row
    assert dispatcher.wait_idle(5)
    assert api(base, "GET", f"Webhook/{hook['WebhookId']}").json()["State"] == "Active"
    receiver.status = 200
    api(base, "POST", "Person", json={"Firstname": "Ada"})
    assert dispatcher.wait_idle(5)
    assert receiver.events == 13


def test_put_replaces_the_webhook_and_re_activates_it(crm, receiver):
    app, base = crm
    hook = register(base, receiver)
    fail_until_too_many_errors(app, base, receiver, hook["WebhookId"])
    body = {"Name": "renamed", "Events": ["person.created", "person.changed"],
            "TargetUrl": receiver.url, "Secret": "new-secret", "State": "Active"}
    response = api(base, "PUT", f"Webhook/{hook['WebhookId']}", json=body)
    assert response.status_code == 200
    saved = response.json()
    assert {name: saved[name] for name in body} == body
    assert saved["WebhookId"] == hook["WebhookId"] and saved["Registered"] == hook["Registered"]
    assert api(base, "GET", "Webhook").json() == [saved]
    receiver.status = 200
    api(base, "POST", "Person", json={"Firstname": "Ada"})
    assert app.extensions["sandbox"]["dispatcher"].wait_idle(5)
    assert receiver.events == 10


def test_put_validates_like_post_and_keeps_the_state_when_none_is_sent(crm, receiver):
    _, base = crm
    hook_id = register(base, receiver)["WebhookId"]
    missing = api(base, "PUT", f"Webhook/{hook_id}", json={"Name": "x", "TargetUrl": receiver.url})
    assert missing.status_code == 400 and "Events" in missing.json()["Error"]
    bad_state = api(base, "PUT", f"Webhook/{hook_id}", json={
        "Name": "x", "TargetUrl": receiver.url, "Events": ["person.created"], "State": "Paused"})
    assert bad_state.status_code == 400 and "Paused" in bad_state.json()["Error"]
    assert api(base, "PUT", f"Webhook/{hook_id}", data=b"nope").status_code == 400
    kept = api(base, "PUT", f"Webhook/{hook_id}", json={
        "Name": "x", "TargetUrl": receiver.url, "Events": ["person.created"]})
    assert kept.status_code == 200 and kept.json()["State"] == "Active" and kept.json()["Secret"] == ""


def test_a_merge_patch_changes_only_the_fields_it_names(crm, receiver):
    _, base = crm
    hook = register(base, receiver)
    response = api(base, "PATCH", f"Webhook/{hook['WebhookId']}", json={"State": "Stopped", "Name": "paused"})
    assert response.status_code == 200
    assert (response.json()["State"], response.json()["Name"]) == ("Stopped", "paused")
    assert response.json()["Events"] == hook["Events"] and response.json()["Secret"] == "s3cret"


def test_a_failed_patch_test_is_409_and_changes_nothing(crm, receiver):
    _, base = crm
    hook_id = register(base, receiver)["WebhookId"]
    response = api(base, "PATCH", f"Webhook/{hook_id}", json=[
        {"op": "replace", "path": "/Name", "value": "changed"},
        {"op": "test", "path": "/State", "value": "Stopped"}])
    assert response.status_code == 409
    assert api(base, "GET", f"Webhook/{hook_id}").json()["Name"] == "connector"


@pytest.mark.parametrize("operations, word", [
    ([{"op": "replace", "path": "/State", "value": "Sleeping"}], "Sleeping"),
    ([{"op": "replace", "path": "/Headers", "value": {}}], "Headers"),
    ([{"op": "move", "path": "/Name", "from": "/Secret"}], "move"),
    ([{"op": "replace", "path": "/Events", "value": []}], "Events"),
    ([{"op": "remove", "path": "/Name"}], "Name"),
])
def test_a_patch_the_sandbox_cannot_apply_is_400(crm, receiver, operations, word):
    _, base = crm
    hook_id = register(base, receiver)["WebhookId"]
    response = api(base, "PATCH", f"Webhook/{hook_id}", json=operations)
    assert response.status_code == 400 and word in response.json()["Error"]


def test_removing_the_secret_by_patch_leaves_it_empty(crm, receiver):
    _, base = crm
    hook_id = register(base, receiver)["WebhookId"]
    response = api(base, "PATCH", f"Webhook/{hook_id}", json=[{"op": "remove", "path": "secret"}])
    assert response.status_code == 200 and response.json()["Secret"] == ""


def test_put_and_patch_of_an_unknown_webhook_are_404(crm):
    _, base = crm
    body = {"Name": "x", "TargetUrl": "http://127.0.0.1:9/", "Events": ["person.created"]}
    assert api(base, "PUT", "Webhook/77", json=body).status_code == 404
    assert api(base, "PATCH", "Webhook/77", json={"State": "Active"}).status_code == 404
