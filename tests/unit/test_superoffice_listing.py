"""Wire format of the client's listings: GET Person (OData over the Person archive) and
GET Webhook, against payloads shaped like SuperOffice's docs (v1PersonEntity_GetAll.md:
{odata.metadata, odata.nextLink, value: [{PrimaryKey, EntityName, <columns>}]};
docs/en/api/search/odata/datetime.md for afterTime; the Webhook carrier of
docs/en/automation/webhook/subscription.md)."""

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from connector.crm.budget import LocalBudget
from connector.defaults import CRM_WAIT_IN_PLACE
from connector.superoffice.client import (LIST_PAGE_SIZE_MAX, PAUSES_PER_CALL,
                                       SuperOfficeClient, WebhookInfo, odata_datetime)
from connector.crm.types import PersonListing
from connector.superoffice.parse import parse_person_row
from connector.exceptions import CRMError, PersonNotFoundError

API = "https://online3.superoffice.com/Cust12345/api/v1"
METADATA = f"{API}/archive$metadata"
UTC = timezone.utc
SINCE = datetime(2026, 11, 1, 8, 30, 15, tzinfo=UTC)


@pytest.fixture
def client():
    return SuperOfficeClient(API, access_token="8A:Cust12345.token", app_token="app-secret")


class FakeTime:
    """A clock that only moves when the client sleeps; ``waits`` records every sleep."""

    def __init__(self):
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def time_passes():
    return FakeTime()


@pytest.fixture
def paced(time_passes):
    """A client whose waits for the CRM's pauses are recorded, not slept."""
    budget = LocalBudget(clock=time_passes.clock, sleep=time_passes.sleep)
    return SuperOfficeClient(API, access_token="8A:Cust12345.token", app_token="app-secret",
                             budget=budget)


@pytest.fixture
def crm():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def row(person_id, registered="2026-11-02T09:00:00", updated="2026-11-02T09:00:00", key=None):
    return {"PrimaryKey": person_id if key is None else key, "EntityName": "person",
            "personId": person_id, "personRegisteredDate": registered,
            "personUpdatedDate": updated}


def page(*rows, next_link=None):
    return {"odata.metadata": METADATA, "odata.nextLink": next_link, "value": list(rows)}


def query(call) -> dict[str, str]:
    parsed = parse_qs(urlsplit(call.request.url).query, keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def person_list_url():
    return f"{API}/Person"


def listed(client, since=SINCE, **options):
    return [p.person_id for p in client.list_persons(since, **options)]


# -- the request --------------------------------------------------------------------------


def test_listing_since_a_date_asks_registered_then_updated_after_it(client, crm):
    crm.get(person_list_url(), json=page(row(3), row(5)))
    crm.get(person_list_url(), json=page(row(5), row(8, "2026-10-01T00:00:00")))

    assert listed(client) == [3, 5, 8]  # person 5 is in both listings: yielded once

    first, second = (query(c) for c in crm.calls)
    assert first == {"$select": "personId,personRegisteredDate,personUpdatedDate",
                     "$filter": "personRegisteredDate afterTime '2026-11-01T08:30:15'",
                     "$orderBy": "personId", "$top": "200"}
    assert second["$filter"] == "personUpdatedDate afterTime '2026-11-01T08:30:15'"
    request = crm.calls[0].request
    assert request.method == "GET"
    assert request.headers["Authorization"] == "Bearer 8A:Cust12345.token"
    assert request.headers["SO-AppToken"] == "app-secret"
    assert request.headers["Accept"] == "application/json"


def test_filter_is_percent_encoded_with_spaces_as_20(client, crm):
    crm.get(person_list_url(), json=page())
    crm.get(person_list_url(), json=page())

    listed(client)

    raw = urlsplit(crm.calls[0].request.url).query
    assert "personRegisteredDate%20afterTime%20%272026-11-01T08%3A30%3A15%27" in raw
    assert "+" not in raw
    assert raw.startswith("$select=personId,personRegisteredDate,personUpdatedDate&")


def test_listing_everyone_sends_no_filter_and_one_listing(client, crm):
    crm.get(person_list_url(), json=page(row(1), row(2)))

    assert listed(client, since=None) == [1, 2]

    assert len(crm.calls) == 1
    assert "$filter" not in query(crm.calls[0])


@pytest.mark.parametrize("since, expected", [
    (datetime(2026, 11, 1, 10, 30, 15, 999999, tzinfo=timezone(timedelta(hours=2))),
     "2026-11-01T08:30:15"),
    (datetime(2026, 11, 1, 8, 30, 15), "2026-11-01T08:30:15"),  # naive is taken as UTC
])
def test_filter_date_is_utc_whole_seconds_without_offset(since, expected):
    assert odata_datetime(since) == expected


def test_page_size_is_sent_as_top_and_capped(client, crm):
    crm.get(person_list_url(), json=page())
    crm.get(person_list_url(), json=page())

    listed(client, since=None, page_size=50)
    listed(client, since=None, page_size=10_000)

    assert [query(c)["$top"] for c in crm.calls] == ["50", str(LIST_PAGE_SIZE_MAX)]
    with pytest.raises(ValueError):
        listed(client, page_size=0)


# -- paging -------------------------------------------------------------------------------


def test_follows_odata_next_link_until_there_is_none(client, crm):
    second = f"{API}/Person?$select=personId&$orderBy=personId&$top=2&$skip=2"
    third = f"{API}/Person?$select=personId&$orderBy=personId&$top=2&$skip=4"
    crm.get(person_list_url(), json=page(row(1), row(2), next_link=second))
    crm.get(second, json=page(row(3), row(4), next_link=third))
    crm.get(third, json=page(row(5)))

    assert listed(client, since=None, page_size=2) == [1, 2, 3, 4, 5]
    assert [c.request.url for c in crm.calls][1:] == [second, third]
    assert all(c.request.headers["Authorization"] == "Bearer 8A:Cust12345.token"
               for c in crm.calls)


def test_relative_next_link_is_resolved_against_the_api(client, crm):
    crm.get(person_list_url(), json=page(row(1), row(2), next_link="Person?$top=2&$skip=2"))
    crm.get(person_list_url(), json=page(row(3)))

    assert listed(client, since=None, page_size=2) == [1, 2, 3]
    assert crm.calls[1].request.url == f"{API}/Person?$top=2&$skip=2"


def test_next_link_to_another_host_is_refused_and_not_called(client, crm):
    crm.get(person_list_url(), json=page(row(1), next_link="https://evil.example/steal?$skip=1"))

    with pytest.raises(CRMError) as caught:
        listed(client, since=None)

    assert caught.value.permanent
    assert "evil.example" in str(caught.value)
    assert len(crm.calls) == 1


def test_next_link_repeating_its_page_stops_the_listing(client, crm):
    url = f"{API}/Person?$top=1&$skip=1"
    crm.get(person_list_url(), json=page(row(1), next_link=url))
    crm.get(url, json=page(row(2), next_link=url))

    with pytest.raises(CRMError) as caught:
        listed(client, since=None, page_size=1)
    assert caught.value.permanent and "repeats" in str(caught.value)


def test_a_crm_ignoring_skip_does_not_keep_the_listing_going(client, crm):
    crm.get(person_list_url(), json={"value": [row(1), row(2)]})  # answered to every call

    with pytest.raises(CRMError) as caught:
        listed(client, since=None, page_size=2)
    assert caught.value.permanent and "same page" in str(caught.value)
    assert len(crm.calls) == 2


def test_without_next_link_a_full_page_is_followed_by_skip(client, crm):
    crm.get(person_list_url(), json={"value": [row(1), row(2)]})
    crm.get(person_list_url(), json={"value": [row(3)]})

    assert listed(client, since=None, page_size=2) == [1, 2, 3]
    assert query(crm.calls[1])["$skip"] == "2" and query(crm.calls[1])["$top"] == "2"


# -- rows -----------------------------------------------------------------------------------


def test_rows_become_listings_with_aware_utc_dates():
    listing = parse_person_row(row(7, "2026-11-02T09:00:00", "2026-11-03T10:30:00.1234567+01:00"))

    assert listing == PersonListing(7, datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
                                    datetime(2026, 11, 3, 9, 30, 0, 123456, tzinfo=UTC))
    assert listing.changed == datetime(2026, 11, 3, 9, 30, 0, 123456, tzinfo=UTC)


def test_never_updated_person_has_no_updated_date_and_changed_is_registered():
    listing = parse_person_row(row(7, "2026-11-02T09:00:00", "0001-01-01T00:00:00"))

    assert listing.updated is None
    assert listing.changed == datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_the_id_is_the_raw_primary_key_never_the_display_column():
    assert parse_person_row({"PrimaryKey": 1234, "EntityName": "person",
                             "personId": "1,234"}).person_id == 1234
    assert parse_person_row({"PrimaryKey": "25", "EntityName": "person"}).person_id == 25
    assert parse_person_row({"PrimaryKey": 26, "EntityName": "person"}).person_id == 26


@pytest.mark.parametrize("bad", [None, "x", {"PrimaryKey": None}, {"personId": 7},
                                 {"PrimaryKey": "abc"}, {"PrimaryKey": 0},
                                 {"PrimaryKey": True}, {"PrimaryKey": "1,234"},
                                 {"PrimaryKey": 1, "personRegisteredDate": "yesterday"}])
def test_unreadable_rows_fail_permanently(bad):
    with pytest.raises(CRMError) as caught:
        parse_person_row(bad)
    assert caught.value.permanent


@pytest.mark.parametrize("body", [[row(1)], {"value": "nope"}, {"odata.nextLink": None}])
def test_an_answer_that_is_not_a_person_list_fails_permanently(client, crm, body):
    crm.get(person_list_url(), json=body)

    with pytest.raises(CRMError) as caught:
        listed(client, since=None)
    assert caught.value.permanent


# -- failures and the CRM's Retry-After -------------------------------------------------------


def test_429_with_retry_after_is_waited_out_and_the_same_page_asked_again(paced, crm,
                                                                          time_passes):
    second = f"{API}/Person?$top=2&$skip=2"
    crm.get(person_list_url(), json=page(row(1), row(2), next_link=second))
    crm.get(second, status=429, headers={"Retry-After": "7"}, json={"Error": "slow down"})
    crm.get(second, json=page(row(3)))

    assert listed(paced, since=None, page_size=2) == [1, 2, 3]

    assert time_passes.waits == [7.0]
    assert [c.request.url for c in crm.calls] == [crm.calls[0].request.url, second, second]


def test_503_with_retry_after_is_waited_out_too(paced, crm, time_passes):
    crm.get(person_list_url(), status=503, headers={"Retry-After": "2"})
    crm.get(person_list_url(), json=page(row(4)))

    assert listed(paced, since=None) == [4]
    assert time_passes.waits == [2.0]


def test_429_without_retry_after_raises_at_once(paced, crm, time_passes):
    crm.get(person_list_url(), status=429)

    with pytest.raises(CRMError) as caught:
        listed(paced, since=None)
    assert not caught.value.permanent and caught.value.status == 429
    assert time_passes.waits == []


def test_a_retry_after_too_long_to_wait_is_left_to_the_caller(paced, crm, time_passes):
    crm.get(person_list_url(), status=429,
            headers={"Retry-After": str(int(CRM_WAIT_IN_PLACE) + 1)})

    with pytest.raises(CRMError) as caught:
        listed(paced, since=None)
    assert caught.value.retry_after == CRM_WAIT_IN_PLACE + 1 and not caught.value.permanent
    assert time_passes.waits == []


def test_a_page_is_asked_again_only_a_few_times(paced, crm, time_passes):
    for _ in range(PAUSES_PER_CALL + 1):
        crm.get(person_list_url(), status=429, headers={"Retry-After": "1"})

    with pytest.raises(CRMError) as caught:
        listed(paced, since=None)
    assert caught.value.status == 429
    assert time_passes.waits == [1.0] * PAUSES_PER_CALL
    assert len(crm.calls) == PAUSES_PER_CALL + 1


def test_404_on_the_list_is_a_wrong_url_not_a_missing_person(client, crm):
    crm.get(person_list_url(), status=404)

    with pytest.raises(CRMError) as caught:
        listed(client, since=None)
    assert not isinstance(caught.value, PersonNotFoundError)
    assert caught.value.permanent and "SUPEROFFICE_API_URL" in str(caught.value)


def test_bad_credentials_fail_permanently_without_waiting(paced, crm, time_passes):
    crm.get(person_list_url(), status=401)

    with pytest.raises(CRMError) as caught:
        listed(paced, since=None)
    assert caught.value.permanent and "SUPEROFFICE_ACCESS_TOKEN" in str(caught.value)
    assert time_passes.waits == []


# -- webhooks ---------------------------------------------------------------------------------

WEBHOOK = {
    "WebhookId": 123, "Name": "consent-connector", "Events": ["person.created"],
    "TargetUrl": "https://consent.example.com/webhooks/superoffice", "Secret": "s3cret-value",
    "State": "TooManyErrors", "Type": "webhook", "Headers": {}, "Properties": {},
    "Registered": "2026-11-01T08:00:00", "RegisteredAssociate": None,
    "Updated": "2026-11-29T10:15:00", "UpdatedAssociate": None, "ErrorsEmail": "",
}


def test_list_webhooks_reads_id_name_events_state_and_target_never_the_secret(client, crm):
    crm.get(f"{API}/Webhook", json=[WEBHOOK, {**WEBHOOK, "WebhookId": 124, "State": "Active",
                                              "Events": ["contact.created", "person.created"]}])

    hooks = client.list_webhooks()

    assert hooks == [
        WebhookInfo(123, "consent-connector", ("person.created",), "TooManyErrors",
                    "https://consent.example.com/webhooks/superoffice"),
        WebhookInfo(124, "consent-connector", ("contact.created", "person.created"), "Active",
                    "https://consent.example.com/webhooks/superoffice"),
    ]
    assert "s3cret" not in repr(hooks)
    assert crm.calls[0].request.headers["Authorization"] == "Bearer 8A:Cust12345.token"


@pytest.mark.parametrize("body", [{"value": []}, [{"Name": "no id"}], ["x"]])
def test_a_webhook_answer_of_the_wrong_shape_fails_permanently(client, crm, body):
    crm.get(f"{API}/Webhook", json=body)

    with pytest.raises(CRMError) as caught:
        client.list_webhooks()
    assert caught.value.permanent


def test_webhook_access_refused_keeps_its_status_for_the_caller(client, crm):
    crm.get(f"{API}/Webhook", status=403)

    with pytest.raises(CRMError) as caught:
        client.list_webhooks()
    assert caught.value.status == 403 and caught.value.permanent


@responses.activate
def test_consent_lists_reads_the_three_lists_with_their_state():
    from connector.config_diff import CRMListItem

    base = "https://online3.superoffice.com/Cust12345/api/v1/List"
    responses.get(f"{base}/ConsentPurpose/Items", json=[
        {"ConsentPurposeId": 1, "Key": "STORE", "Name": "Sales and service", "Active": 1,
         "Deleted": False},
        {"ConsentPurposeId": 3, "Key": "OLD", "Name": "Old purpose", "Active": 0, "Deleted": False}])
    responses.get(f"{base}/LegalBase/Items", json=[
        {"LegalBaseId": 6, "Key": "61F", "Name": "Legitimate interest", "Deleted": True}])
    responses.get(f"{base}/ConsentSource/Items", json=[
        {"ConsentSourceId": 1, "Key": "USER", "Name": "Registered by user", "Deleted": False,
         "MailTemplateId": 0}])
    client = SuperOfficeClient("https://online3.superoffice.com/Cust12345/api/v1",
                               access_token="t")
    assert client.consent_lists() == {
        "purposes": [CRMListItem("STORE", "Sales and service", True),
                     CRMListItem("OLD", "Old purpose", False)],
        "legal_bases": [CRMListItem("61F", "Legitimate interest", False)],
        "sources": [CRMListItem("USER", "Registered by user", True)],
    }
    assert all(call.request.headers["Authorization"] == "Bearer t" for call in responses.calls)


@responses.activate
def test_a_404_on_a_list_is_a_wrong_url_not_a_missing_person():
    responses.get("https://online3.superoffice.com/Cust12345/api/v1/List/ConsentPurpose/Items",
                  status=404)
    client = SuperOfficeClient("https://online3.superoffice.com/Cust12345/api/v1",
                               access_token="t")
    with pytest.raises(CRMError) as raised:
        client.consent_lists()
    assert not isinstance(raised.value, PersonNotFoundError)
    assert str(raised.value) == ("CRM answered 404 for GET List/ConsentPurpose/Items — check "
                                 "SUPEROFFICE_API_URL")
    assert raised.value.permanent
