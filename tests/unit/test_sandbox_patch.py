"""The sandbox CRM's PATCH Person/{id}: JSON Patch and merge patch change only what is sent,
a failed test answers 409 and changes nothing."""

import pytest

from sandbox.server import create_sandbox_app

HEADERS = {"Authorization": "Bearer token"}
BASE = "/Cust12345/api/v1/Person"


@pytest.fixture
def client():
    client = create_sandbox_app().test_client()
    response = client.post(BASE, json={"Firstname": "Ada", "Lastname": "L"}, headers=HEADERS)
    assert response.status_code == 200
    return client


def selection(client):
    return {t["Name"]: t["Selected"] for t in client.get(f"{BASE}/1", headers=HEADERS).json["ShipmentTypes"]}


def test_a_new_person_has_the_default_shipment_types_unselected(client):
    assert selection(client) == {"Newsletter": False, "Event invitations": False,
                                 "Product news": False}


def test_json_patch_changes_only_the_selection(client):
    response = client.patch(f"{BASE}/1", headers=HEADERS, json=[
        {"op": "test", "path": "/ShipmentTypes/1/Id", "value": 2},
        {"op": "replace", "path": "ShipmentTypes/1/selected", "value": True}])
    assert response.status_code == 200
    assert selection(client)["Event invitations"] is True
    assert response.json["Firstname"] == "Ada"


def test_a_failed_test_is_409_and_changes_nothing(client):
    response = client.patch(f"{BASE}/1", headers=HEADERS, json=[
        {"op": "replace", "path": "/ShipmentTypes/0/Selected", "value": True},
        {"op": "test", "path": "/ShipmentTypes/1/Selected", "value": True}])
    assert response.status_code == 409
    assert not any(selection(client).values())


def test_merge_patch_by_id_and_plain_fields(client):
    response = client.patch(f"{BASE}/1", headers=HEADERS,
                            json={"ShipmentTypes": [{"Id": 3, "Selected": True}],
                                  "Firstname": "Augusta"})
    assert response.status_code == 200
    assert selection(client)["Product news"] is True
    assert response.json["Firstname"] == "Augusta" and response.json["Lastname"] == "L"


def test_unknown_paths_are_refused(client):
    response = client.patch(f"{BASE}/1", headers=HEADERS,
                            json=[{"op": "replace", "path": "/Emails/0/Value", "value": "x"}])
    assert response.status_code == 400


def test_the_person_card_shows_the_subscriptions(client):
    client.patch(f"{BASE}/1", headers=HEADERS, json={"ShipmentTypes": [{"Id": 1, "Selected": True}]})
    card = client.get("/Cust12345/person/1").get_data(as_text=True)
    assert "Subscriptions (shipment types)" in card
    assert '<tr data-shipment-type="1">' in card and "<td>Yes</td>" in card
