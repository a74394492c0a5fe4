"""The sandbox tenant's state and place over real HTTP: the state API (/api/state/{tenant}) and
its "Api" link, a move to another farm (the old endpoint answers 421, the JWT and the state API
follow) and states whose APIs are not available (503)."""

from __future__ import annotations

import base64
import re
import time
from datetime import datetime, timezone

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from sandbox.server import connector_settings, create_sandbox_app, run_in_thread, stop_server

TENANT = "Cust12345"
TOKEN = "test-token"
CLAIM = "http://schemes.superoffice.net/identity/"
VALID_UNTIL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")


@pytest.fixture
def crm(tmp_path):
    """A sandbox whose state API says ValidUntil is 120 s ahead; yields (app, base_url)."""
    app = create_sandbox_app(TENANT, {TOKEN: 9}, data_dir=tmp_path, state_valid_for=120)
    server, base = run_in_thread(app)
    yield app, base
    stop_server(server)


def api(endpoint: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{endpoint}/api/v1/{path}", timeout=10,
                            headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs)


def state(base: str, context_id: str = TENANT) -> dict:
    response = requests.get(f"{base}/api/state/{context_id}", timeout=5)
    assert response.status_code == 200
    return response.json()


def control(base: str, path: str, **body) -> requests.Response:
    return requests.post(f"{base}/__sandbox/{path}", json=body, timeout=5)


def webapi_url_after_sign_in(app, base: str) -> str:
    """Sign in as the sandbox's system user and return the JWT's webapi_url claim."""
    settings = connector_settings(app, base)
    key = serialization.load_pem_private_key(
        open(settings["SUPEROFFICE_PRIVATE_KEY_FILE"], "rb").read(), password=None)
    text = f"{settings['SUPEROFFICE_SYSTEM_USER_TOKEN']}.{datetime.now(timezone.utc):%Y%m%d%H%M}"
    signature = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    answer = requests.post(f"{base}/Login/api/PartnerSystemUser/Authenticate", timeout=10, json={
        "SignedSystemToken": f"{text}.{signature}", "ContextIdentifier": TENANT,
        "ApplicationToken": settings["SUPEROFFICE_CLIENT_SECRET"], "ReturnTokenType": "JWT"}).json()
    assert answer["IsSuccessful"], answer
    return jwt.decode(answer["Token"], options={"verify_signature": False})[CLAIM + "webapi_url"]


# ---------------------------------------------------------------- state API
def test_the_state_api_names_the_endpoint_the_state_and_when_to_ask_again(crm):
    _, base = crm
    answer = state(base)
    assert list(answer) == ["ContextIdentifier", "Endpoint", "State", "IsRunning", "ValidUntil", "Api"]
    assert answer["ContextIdentifier"] == TENANT and answer["Endpoint"] == f"{base}/{TENANT}"
    assert answer["State"] == "Running" and answer["IsRunning"] is True
    assert answer["Api"] == f"{base}/{TENANT}/api"
    assert VALID_UNTIL.match(answer["ValidUntil"]), answer["ValidUntil"]
    valid_until = datetime.strptime(answer["ValidUntil"][:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)
    assert abs(valid_until.timestamp() - (time.time() + 120)) < 10


def test_an_unknown_context_identifier_is_in_state_unknown_without_an_endpoint(crm):
    _, base = crm
    answer = state(base, "Cust99999")
    assert answer["ContextIdentifier"] == "Cust99999" and answer["State"] == "Unknown"
    assert answer["IsRunning"] is False and answer["Endpoint"] is None and answer["Api"] is None
    assert VALID_UNTIL.match(answer["ValidUntil"])


def test_the_api_link_answers_the_version_block_without_auth(crm):
    _, base = crm
    response = requests.get(state(base)["Api"], timeout=5)
    assert response.status_code == 200
    assert response.json() == {"v1": f"{base}/{TENANT}/api/v1/", "Version": "v1",
                               "NetServerVersion": "10.3.0.0", "NetServer": "SuperOffice sandbox",
                               "Services": "Services88"}


# ---------------------------------------------------------------- tenant states
def test_while_offline_for_maintenance_every_api_call_answers_503_with_retry_after(crm):
    _, base = crm
    endpoint = f"{base}/{TENANT}"
    assert control(base, "tenant/state", State="OfflineMaintenance").status_code == 200
    for method, path in (("GET", "List/LegalBase/Items"), ("POST", "Person"), ("GET", "Webhook")):
        response = api(endpoint, method, path, json={})
        assert response.status_code == 503 and response.headers["Retry-After"] == "30"
        assert "APIs are not available" in response.json()["Error"]
    assert requests.get(f"{endpoint}/api/v1/Person/1", timeout=5).status_code == 503  # before auth
    assert state(base)["State"] == "OfflineMaintenance" and state(base)["IsRunning"] is False


def test_online_maintenance_keeps_the_api_available(crm):
    _, base = crm
    control(base, "tenant/state", State="OnlineMaintenance")
    assert api(f"{base}/{TENANT}", "GET", "List/LegalBase/Items").status_code == 200
    assert state(base)["IsRunning"] is True


def test_an_unknown_state_name_is_refused_and_reset_brings_running_back(crm):
    _, base = crm
    refused = control(base, "tenant/state", State="Sleeping")
    assert refused.status_code == 400 and "Sleeping" in refused.json()["Error"]
    control(base, "tenant/state", State="Suspended")
    requests.post(f"{base}/__sandbox/reset", timeout=5)
    assert state(base)["State"] == "Running"
    assert api(f"{base}/{TENANT}", "GET", "List/LegalBase/Items").status_code == 200


# ---------------------------------------------------------------- moves
def test_after_a_move_the_old_endpoint_answers_421_and_the_new_one_works(crm):
    _, base = crm
    old = f"{base}/{TENANT}"
    person = api(old, "POST", "Person", json={"Firstname": "Ada"}).json()
    moved = control(base, "tenant/move", farm="sod7")
    assert moved.status_code == 200
    new = f"{base}/sod7/{TENANT}"
    assert moved.json() == {"Endpoint": new, "Api": f"{new}/api"}
    misdirected = api(old, "GET", f"Person/{person['PersonId']}")
    assert misdirected.status_code == 421 and new in misdirected.json()["Error"]
    assert requests.get(f"{old}/api/v1/Person/1", timeout=5).status_code == 421  # before auth
    assert requests.get(f"{old}/api", timeout=5).status_code == 421
    assert api(f"{base}/sod3/{TENANT}", "GET", "Webhook").status_code == 421
    again = api(new, "GET", f"Person/{person['PersonId']}")
    assert again.status_code == 200 and again.json()["Firstname"] == "Ada"
    assert again.json()["_Links"]["Self"] == f"{new}/api/v1/Person/{person['PersonId']}"
    assert requests.get(f"{new}/api", timeout=5).json()["v1"] == f"{new}/api/v1/"


def test_the_state_api_and_the_jwt_follow_a_move(crm):
    app, base = crm
    assert webapi_url_after_sign_in(app, base) == f"{base}/{TENANT}/api/"
    endpoint = control(base, "tenant/move").json()["Endpoint"]
    assert re.fullmatch(rf"{re.escape(base)}/sod\d+/{TENANT}", endpoint)
    answer = state(base)
    assert answer["Endpoint"] == endpoint and answer["Api"] == f"{endpoint}/api"
    assert webapi_url_after_sign_in(app, base) == f"{endpoint}/api/"
    second = control(base, "tenant/move").json()["Endpoint"]
    assert second != endpoint and api(endpoint, "GET", "Webhook").status_code == 421


def test_the_person_list_links_follow_a_move(crm):
    _, base = crm
    control(base, "tenant/move", farm="sod4")
    endpoint = f"{base}/sod4/{TENANT}"
    for _ in range(2):
        api(endpoint, "POST", "Person", json={"Firstname": "Ada"})
    page = api(endpoint, "GET", "Person", params={"$top": 1}).json()
    assert page["odata.metadata"].startswith(f"{endpoint}/api/v1/")
    assert page["odata.nextLink"].startswith(f"{endpoint}/api/v1/Person?")


def test_reset_moves_the_tenant_back_to_its_initial_endpoint(crm):
    _, base = crm
    control(base, "tenant/move", farm="sod9")
    requests.post(f"{base}/__sandbox/reset", timeout=5)
    assert state(base)["Endpoint"] == f"{base}/{TENANT}"
    assert api(f"{base}/{TENANT}", "GET", "Webhook").status_code == 200
    assert api(f"{base}/sod9/{TENANT}", "GET", "Webhook").status_code == 421


@pytest.mark.parametrize("farm", ["", "a/b", "x" * 40, TENANT, 7])
def test_a_move_to_a_farm_that_is_not_a_plain_name_is_refused(crm, farm):
    _, base = crm
    response = control(base, "tenant/move", farm=farm)
    assert response.status_code == 400 and "farm" in response.json()["Error"]
    assert state(base)["Endpoint"] == f"{base}/{TENANT}"


def test_an_unknown_tenant_under_a_farm_is_404_not_421(crm):
    _, base = crm
    control(base, "tenant/move", farm="sod7")
    response = api(f"{base}/sod7/Cust99999", "GET", "Webhook")
    assert response.status_code == 404 and "Cust99999" in response.json()["Error"]
