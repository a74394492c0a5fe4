"""Wire format of the shipment types: read from PersonEntity.ShipmentTypes, written with a
JSON Patch on PATCH Person/{id} that changes only the selection
(docs/en/api/reference/restful/rest/Person/v1PersonEntity_PatchPersonEntity.md)."""

import json

import pytest
import responses

from connector.crm.types import ShipmentType
from connector.superoffice.client import SuperOfficeClient
from connector.exceptions import CRMError, PersonNotFoundError
from tests.unit.test_superoffice_client import API, fixture

TYPES = (ShipmentType(1, "Newsletter", False), ShipmentType(2, "Event invitations", True),
         ShipmentType(3, "Product news", False))


@pytest.fixture
def client():
    return SuperOfficeClient(API, access_token="8A:Cust12345.token", app_token="app-secret")


@pytest.fixture
def crm():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def test_the_person_entity_carries_the_shipment_types(client, crm):
    entity = fixture("person_entity__full.json")
    crm.get(f"{API}/Person/{entity['PersonId']}", json=entity)
    person = client.get_person(entity["PersonId"])
    assert person.shipment_types == tuple(
        ShipmentType(item["Id"], item["Name"], item["Selected"], item["Deleted"])
        for item in entity["ShipmentTypes"])


def test_a_person_without_shipment_types_has_none(client, crm):
    entity = fixture("person_entity__minimal.json")
    entity.pop("ShipmentTypes", None)
    crm.get(f"{API}/Person/{entity['PersonId']}", json=entity)
    assert client.get_person(entity["PersonId"]).shipment_types == ()


def test_unreadable_shipment_types_are_a_permanent_error(client, crm):
    entity = fixture("person_entity__minimal.json") | {"ShipmentTypes": [{"Name": "No id"}]}
    crm.get(f"{API}/Person/{entity['PersonId']}", json=entity)
    with pytest.raises(CRMError) as caught:
        client.get_person(entity["PersonId"])
    assert caught.value.permanent and "ShipmentTypes[0]" in str(caught.value)


def test_the_selection_is_written_as_a_json_patch_that_tests_what_was_read(client, crm):
    crm.patch(f"{API}/Person/12", json={"PersonId": 12})
    client.set_shipment_types(12, {1: True, 2: False}, TYPES)

    [call] = crm.calls
    assert call.request.method == "PATCH"
    assert call.request.headers["Content-Type"] == "application/json-patch+json"
    assert call.request.headers["Authorization"] == "Bearer 8A:Cust12345.token"
    assert call.request.headers["SO-AppToken"] == "app-secret"
    assert json.loads(call.request.body) == [
        {"op": "test", "path": "/ShipmentTypes/0/Id", "value": 1},
        {"op": "test", "path": "/ShipmentTypes/0/Selected", "value": False},
        {"op": "replace", "path": "/ShipmentTypes/0/Selected", "value": True},
        {"op": "test", "path": "/ShipmentTypes/1/Id", "value": 2},
        {"op": "test", "path": "/ShipmentTypes/1/Selected", "value": True},
        {"op": "replace", "path": "/ShipmentTypes/1/Selected", "value": False},
    ]  # nothing but the selection: no name, email or other field a CRM user may have edited


def test_nothing_to_change_sends_nothing(client, crm):
    client.set_shipment_types(12, {}, TYPES)
    assert len(crm.calls) == 0


def test_an_unknown_shipment_type_is_refused_before_calling(client, crm):
    with pytest.raises(ValueError):
        client.set_shipment_types(12, {9: True}, TYPES)


@pytest.mark.parametrize("status", [409, 412])
def test_a_conflict_is_transient_so_the_retry_reads_the_person_again(client, crm, status):
    crm.patch(f"{API}/Person/12", status=status, json={"Error": "test failed"})
    with pytest.raises(CRMError) as caught:
        client.set_shipment_types(12, {1: True}, TYPES)
    assert (caught.value.status, caught.value.permanent) == (status, False)
    assert "changed since" in str(caught.value)


def test_a_deleted_person_is_permanent(client, crm):
    crm.patch(f"{API}/Person/12", status=404)
    crm.get(API.removesuffix("/v1"), status=200, json={"v1": API + "/"})
    with pytest.raises(PersonNotFoundError):
        client.set_shipment_types(12, {1: True}, TYPES)


def test_a_server_error_is_transient_with_retry_after(client, crm):
    # longer than a job waits in place (CRM_WAIT_IN_PLACE): the job comes back then
    crm.patch(f"{API}/Person/12", status=503, headers={"Retry-After": "120"})
    with pytest.raises(CRMError) as caught:
        client.set_shipment_types(12, {1: True}, TYPES)
    assert (caught.value.permanent, caught.value.retry_after) == (False, 120.0)
    assert len(crm.calls) == 1
