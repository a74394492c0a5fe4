"""The sandbox's GET Person over real HTTP: SLIM mode's display values by default (numbers as the
default English culture writes them), logical values with $output=Logical
(v1PersonEntity_GetAll.md); PrimaryKey is always the raw id."""

from __future__ import annotations

import itertools

import pytest
import requests

from sandbox.server import create_sandbox_app, run_in_thread, stop_server

TENANT = "Cust12345"
TOKEN = "test-token"
COLUMNS = "personId,contactId,fullName,personRegisteredDate"


@pytest.fixture
def crm():
    """A sandbox whose store hands out person ids from 1234; yields the base URL."""
    app = create_sandbox_app(TENANT, {TOKEN: 9})
    app.extensions["sandbox"]["store"]._person_ids = itertools.count(1234)
    server, base = run_in_thread(app)
    yield base
    stop_server(server)


def api(base: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{base}/{TENANT}/api/v1/{path}", timeout=10,
                            headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs)


def new_person(base: str) -> dict:
    response = api(base, "POST", "Person", json={"Firstname": "Ada", "Lastname": "Lovelace",
                                                 "Contact": {"Name": "Analytical Engines Ltd"}})
    assert response.status_code == 200
    return response.json()


def test_the_list_gives_integer_columns_as_display_strings_and_the_primary_key_raw(crm):
    person = new_person(crm)
    (row,) = api(crm, "GET", "Person", params={"$select": COLUMNS}).json()["value"]
    assert row == {"PrimaryKey": 1234, "EntityName": "person", "personId": "1,234",
                   "contactId": "1", "fullName": "Ada Lovelace",
                   "personRegisteredDate": person["CreatedDate"]}
    display = api(crm, "GET", "Person", params={"$select": COLUMNS, "$output": "Display"}).json()
    assert display["value"] == [row]


def test_output_logical_gives_integer_columns_as_numbers(crm):
    person = new_person(crm)
    (row,) = api(crm, "GET", "Person", params={"$select": COLUMNS, "$output": "Logical"}).json()["value"]
    assert row == {"PrimaryKey": 1234, "EntityName": "person", "personId": 1234, "contactId": 1,
                   "fullName": "Ada Lovelace", "personRegisteredDate": person["CreatedDate"]}


def test_filters_and_order_still_work_on_the_numbers_behind_the_display_strings(crm):
    for _ in range(3):
        new_person(crm)
    page = api(crm, "GET", "Person", params={"$select": "personId", "$filter": "personId ge 1235",
                                             "$orderBy": "personId desc"}).json()
    assert [row["personId"] for row in page["value"]] == ["1,236", "1,235"]


def test_an_unknown_output_is_400(crm):
    response = api(crm, "GET", "Person", params={"$output": "Fancy"})
    assert response.status_code == 400 and "Fancy" in response.json()["Error"]
