"""Wire format of the SuperOffice client, against payloads shaped like SuperOffice's docs."""

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
import redis
import requests
import responses

from connector import __version__
from connector.crm.types import ConsentRecord, Person
from connector.crm.budget import CRMBudget, LocalBudget
from connector.defaults import CRM_WAIT_IN_PLACE
from connector.superoffice.client import SuperOfficeClient, parse_retry_after
from connector.superoffice.parse import (language_code, parse_consent_info, parse_date,
                                         parse_person_entity)
from connector.exceptions import CRMError, PersonNotFoundError

API = "https://online3.superoffice.com/Cust12345/api/v1"
FIXTURES = Path(__file__).resolve().parents[2] / "connector" / "superoffice" / "fixtures"
PERSONAL_DATA = ("Kari", "Nordmann", "kari", "@", "Nordlys")
UTC = timezone.utc


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture
def client():
    return SuperOfficeClient(API + "/", access_token="8A:Cust12345.token", app_token="app-secret")


@pytest.fixture
def crm():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def assert_no_personal_data(error: Exception) -> None:
    for word in PERSONAL_DATA:
        assert word not in str(error)


def error_of(call) -> CRMError:
    with pytest.raises(CRMError) as caught:
        call()
    assert_no_personal_data(caught.value)
    return caught.value


# -- requests ----------------------------------------------------------------------------


def test_get_person_sends_one_authenticated_get(client, crm):
    crm.get(f"{API}/Person/12", json=fixture("person_entity__full.json"))

    client.get_person(12)

    assert len(crm.calls) == 1
    request = crm.calls[0].request
    assert request.method == "GET"
    assert request.url == f"{API}/Person/12"
    assert request.headers["Authorization"] == "Bearer 8A:Cust12345.token"
    assert request.headers["SO-AppToken"] == "app-secret"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == f"consent-connector/{__version__}"


def test_ticket_auth_without_app_token(crm):
    crm.get(f"{API}/Person/12", json=fixture("person_entity__full.json"))

    SuperOfficeClient(API, ticket="7T:abc==").get_person(12)

    headers = crm.calls[0].request.headers
    assert headers["Authorization"] == "SOTicket 7T:abc=="
    assert "SO-AppToken" not in headers


@pytest.mark.parametrize("credentials", [{}, {"access_token": "a", "ticket": "t"}])
def test_client_needs_exactly_one_credential(credentials):
    with pytest.raises(ValueError):
        SuperOfficeClient(API, **credentials)


def test_repr_hides_tokens(client):
    assert "token" not in repr(client) and "secret" not in repr(client)


def test_every_call_has_the_timeout(crm):
    crm.get(f"{API}/Person/12", json=fixture("person_entity__full.json"))
    crm.put(f"{API}/Person/12/Consent/STORE", status=204)
    client = SuperOfficeClient(API, access_token="t", timeout=(2.0, 7.5))

    client.get_person(12)
    client.set_consent(12, "STORE", "API", "61F", "")

    assert [call.request.req_kwargs["timeout"] for call in crm.calls] == [(2.0, 7.5), (2.0, 7.5)]


def test_set_consent_puts_keys_in_path_and_encoded_query(client, crm):
    crm.put(f"{API}/Person/12/Consent/EMARKETING", status=204)

    result = client.set_consent(12, "EMARKETING", "WEBFORM", "61A",
                                "Signed up via form & ticked box: ja/nei, æøå")

    assert result is None
    request = crm.calls[0].request
    assert request.method == "PUT"
    assert request.url == (f"{API}/Person/12/Consent/EMARKETING?source=WEBFORM&legalBase=61A"
                           "&comment=Signed%20up%20via%20form%20%26%20ticked%20box%3A%20ja%2Fnei"
                           "%2C%20%C3%A6%C3%B8%C3%A5")
    assert request.body is None
    assert request.headers["Authorization"] == "Bearer 8A:Cust12345.token"
    assert request.headers["SO-AppToken"] == "app-secret"


def test_set_consent_quotes_a_purpose_key_with_odd_characters(client, crm):
    crm.put(f"{API}/Person/12/Consent/NEWS%20LETTER%2FB", status=204)

    client.set_consent(12, "NEWS LETTER/B", "API", "61F", "")

    assert crm.calls[0].request.url.startswith(f"{API}/Person/12/Consent/NEWS%20LETTER%2FB?")
    assert crm.calls[0].request.url.endswith("&comment=")


def test_set_consent_cuts_the_comment_to_255_characters(client, crm):
    crm.put(f"{API}/Person/12/Consent/STORE", status=204)

    client.set_consent(12, "STORE", "API", "61F", "x" * 300)

    assert crm.calls[0].request.params["comment"] == "x" * 255


def test_set_consent_accepts_200(client, crm):
    crm.put(f"{API}/Person/12/Consent/STORE", status=200, json=None)

    client.set_consent(12, "STORE", "API", "61F", "")

    assert len(crm.calls) == 1


# -- parsing ------------------------------------------------------------------------------


def test_get_person_parses_the_entity(client, crm):
    crm.get(f"{API}/Person/12", json=fixture("person_entity__full.json"))

    person = client.get_person(12)

    assert isinstance(person, Person)
    assert (person.id, person.first_name, person.last_name) == (12, "Kari", "Nordmann")
    assert person.email == "kari.nordmann@example.no"  # the first of Emails[]
    assert person.language == "nb"  # CustomerLanguage {"Value": "Norsk"}
    assert person.company_name == "Nordlys Testfirma AS"
    assert person.created_by_associate_id == 5


def test_get_person_parses_consents_with_utc_dates(client, crm):
    crm.get(f"{API}/Person/12", json=fixture("person_entity__full.json"))

    consents = client.get_person(12).consents

    assert consents == (
        ConsentRecord(purpose="STORE", legal_basis="61F", source="USER",
                      comment="Existing customer, kept for sales and service",
                      registered=datetime(2026, 11, 29, 10, 15, tzinfo=UTC), registered_by=5,
                      updated=None, updated_by=None),  # "0001-01-01T00:00:00" and associate 0
        ConsentRecord(purpose="EMARKETING", legal_basis="WITHDRAWN", source="WEBFORM",
                      comment="Unsubscribed by phone",
                      registered=datetime(2026, 3, 2, 7, 0, 0, 123456, tzinfo=UTC), registered_by=7,
                      updated=datetime(2026, 6, 15, 14, 30, tzinfo=UTC), updated_by=9),
    )
    assert all(c.registered.utcoffset() == timedelta(0) for c in consents)


def test_get_person_with_nothing_set(client, crm):
    crm.get(f"{API}/Person/13", json=fixture("person_entity__minimal.json"))

    person = client.get_person(13)

    assert person == Person(id=13, first_name="Ola", last_name="Hansen", email=None, language=None,
                            company_name=None, created_by_associate_id=None, consents=())


def test_blank_emails_are_skipped_and_no_consents_key_is_no_consents():
    entity = {"PersonId": 3, "Emails": [{"Value": " "}, {"Value": " b@example.org "}],
              "Consents": None, "Contact": {"Name": ""}}

    person = parse_person_entity(entity)

    assert (person.email, person.consents, person.company_name) == ("b@example.org", (), None)


def test_consent_info_array_parses_like_entity_consents():
    entity_consents = fixture("person_entity__full.json")["Consents"]

    records = [parse_consent_info(item) for item in fixture("consent_info__list.json")]

    assert records == [parse_consent_info(item) for item in entity_consents]
    assert [r.purpose for r in records] == ["STORE", "EMARKETING"]


@pytest.mark.parametrize("value, code", [
    ("English", "en"), ("Norsk", "nb"), ("Norwegian", "nb"), ("Bokmål", "nb"), ("Swedish", "sv"),
    ("Svenska", "sv"), ("Danish", "da"), ("German", "de"), ("Dutch", "nl"), ("Finnish", "fi"),
    ("French", "fr"), ("Spanish", "es"), ("English (UK)", "en"), (" english ", "en"),
    ("SE", "sv"), ("NO", "nb"), ("DK", "da"), ("Klingon", None), ("", None), (None, None),
])
def test_language_code_from_customer_language(value, code):
    assert language_code({"Id": 4, "Value": value, "Tooltip": ""}) == code


def test_language_code_of_null_customer_language_is_none():
    assert language_code(None) is None


@pytest.mark.parametrize("text, expected", [
    ("2026-11-29T10:15:00", datetime(2026, 11, 29, 10, 15, tzinfo=UTC)),
    ("2026-11-29T10:15:00Z", datetime(2026, 11, 29, 10, 15, tzinfo=UTC)),
    ("2026-11-29T11:15:00+01:00", datetime(2026, 11, 29, 10, 15, tzinfo=UTC)),
    ("0001-01-01T00:00:00", None),
    ("1899-12-30T00:00:00", None),
    ("", None),
    (None, None),
])
def test_parse_date(text, expected):
    parsed = parse_date(text)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo == UTC


def test_unreadable_date_is_a_permanent_error():
    error = error_of(lambda: parse_date("29.11.2026"))
    assert error.permanent


def test_consent_row_without_purpose_is_a_permanent_error(client, crm):
    entity = fixture("person_entity__full.json")
    entity["Consents"][1]["ConsentPurposeKey"] = None
    crm.get(f"{API}/Person/12", json=entity)

    error = error_of(lambda: client.get_person(12))

    assert error.permanent and "Consents[1]" in str(error)


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "put"])
def test_404_is_person_not_found_when_the_api_root_answers(client, crm, method):
    crm.get(API.removesuffix("/v1"), status=200, json={"v1": API + "/", "Version": "v1"})
    if method == "get":
        crm.get(f"{API}/Person/12", status=404)
        call = lambda: client.get_person(12)  # noqa: E731
    else:
        crm.put(f"{API}/Person/12/Consent/STORE", status=404)
        call = lambda: client.set_consent(12, "STORE", "API", "61F", "")  # noqa: E731

    error = error_of(call)

    assert isinstance(error, PersonNotFoundError)
    assert (error.status, error.permanent, error.person_id) == (404, True, 12)


def test_404_names_the_api_url_when_the_api_root_does_not_answer_either(client, crm):
    crm.get(f"{API}/Person/12", status=404)
    crm.get(API.removesuffix("/v1"), status=404)

    error = error_of(lambda: client.get_person(12))

    assert not isinstance(error, PersonNotFoundError)
    assert (error.status, error.permanent) == (404, True)
    assert "check SUPEROFFICE_API_URL" in str(error)


def test_400_carries_the_crms_own_text(client, crm):
    crm.put(f"{API}/Person/12/Consent/EMARKETING", status=400,
            json=fixture("error__400_unknown_legal_base.json"))

    error = error_of(lambda: client.set_consent(12, "EMARKETING", "WEBFORM", "XYZ", ""))

    assert str(error) == "CRM refused consent EMARKETING for person 12 (400): Unknown legal base 'XYZ'"
    assert (error.status, error.permanent) == (400, True)


def test_400_without_body(client, crm):
    crm.get(f"{API}/Person/12", status=400, body="")

    error = error_of(lambda: client.get_person(12))

    assert str(error) == "CRM refused person 12 (400)"
    assert error.permanent


def test_400_text_is_cleaned_of_email_addresses_and_cut(client, crm):
    crm.put(f"{API}/Person/12/Consent/STORE", status=400,
            json={"Message": "Person kari.nordmann@example.no:  bad\nsource " + "y" * 300})

    error = error_of(lambda: client.set_consent(12, "STORE", "BAD", "61F", ""))

    assert "<email>: bad source y" in str(error)
    assert len(str(error)) < 260


@pytest.mark.parametrize("status", [401, 403])
def test_credentials_rejected(client, crm, status):
    crm.get(f"{API}/Person/12", status=status)

    error = error_of(lambda: client.get_person(12))

    what = "renew" if status == 401 else "check the rights of"
    assert str(error) == (f"CRM rejected the connector's credentials ({status}) — {what} "
                          "SUPEROFFICE_ACCESS_TOKEN / SUPEROFFICE_APP_TOKEN (reading person 12)")
    assert (error.status, error.permanent) == (status, True)


def test_credentials_rejected_with_a_ticket_names_the_ticket_variable(crm):
    crm.get(f"{API}/Person/12", status=401)

    error = error_of(lambda: SuperOfficeClient(API, ticket="7T:x").get_person(12))

    assert "renew SUPEROFFICE_TICKET / SUPEROFFICE_APP_TOKEN" in str(error)


def test_421_says_the_tenant_moved(client, crm):
    crm.get(f"{API}/Person/12", status=421)

    error = error_of(lambda: client.get_person(12))

    assert (error.status, error.permanent) == (421, True)
    assert "moved to another host" in str(error)
    assert "https://online.superoffice.com/api/state/Cust12345" in str(error)


def test_421_on_sod_points_to_the_sod_state_api(crm):
    crm.get("https://sod2.superoffice.com/Cust999/api/v1/Person/1", status=421)
    client = SuperOfficeClient("https://sod2.superoffice.com/Cust999/api/v1", access_token="t")

    error = error_of(lambda: client.get_person(1))

    assert "https://sod.superoffice.com/api/state/Cust999" in str(error)


def test_429_with_a_short_retry_after_is_waited_out_and_the_call_made_again(crm):
    waits = []
    client = SuperOfficeClient(API, access_token="t", budget=LocalBudget(sleep=waits.append))
    url = f"{API}/Person/12/Consent/STORE"
    crm.put(url, status=429, headers={"Retry-After": "3"})
    crm.put(url, status=204)

    client.set_consent(12, "STORE", "API", "61F", "")

    assert waits == [pytest.approx(3, abs=0.1)] and len(crm.calls) == 2


def test_429_with_a_retry_after_longer_than_the_wait_in_place_is_transient(client, crm):
    crm.put(f"{API}/Person/12/Consent/STORE", status=429,
            headers={"Retry-After": str(int(CRM_WAIT_IN_PLACE) + 30)})

    error = error_of(lambda: client.set_consent(12, "STORE", "API", "61F", ""))

    assert (error.status, error.permanent) == (429, False)
    assert error.retry_after == pytest.approx(CRM_WAIT_IN_PLACE + 30, abs=1)
    assert len(crm.calls) == 1  # the job comes back when the pause is over


def test_503_with_retry_after_http_date(client, crm):
    later = datetime.now(UTC) + timedelta(seconds=120)
    crm.get(f"{API}/Person/12", status=503,
            headers={"Retry-After": format_datetime(later, usegmt=True)})

    error = error_of(lambda: client.get_person(12))

    assert (error.status, error.permanent) == (503, False)
    assert 110 <= error.retry_after <= 120
    assert len(crm.calls) == 1


@pytest.mark.parametrize("headers", [{}, {"Retry-After": "soon"}])
def test_500_without_usable_retry_after(client, crm, headers):
    crm.get(f"{API}/Person/12", status=500, headers=headers)

    error = error_of(lambda: client.get_person(12))

    assert (error.status, error.permanent, error.retry_after) == (500, False, None)


def test_retry_after_in_the_past_is_zero():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_connect_timeout_is_transient(client, crm):
    crm.get(f"{API}/Person/12", body=requests.exceptions.ConnectTimeout("connect timeout to " + API))

    error = error_of(lambda: client.get_person(12))

    assert str(error) == "CRM unreachable: connection timed out after 3.05 s (reading person 12)"
    assert (error.status, error.permanent) == (None, False)


def test_read_timeout_is_transient(client, crm):
    crm.put(f"{API}/Person/12/Consent/STORE", body=requests.exceptions.ReadTimeout("read"))

    error = error_of(lambda: client.set_consent(12, "STORE", "API", "61F", ""))

    assert str(error).startswith("CRM unreachable: timed out after 10 s")
    assert (error.status, error.permanent) == (None, False)


def test_connection_error_is_transient_and_hides_the_url(client, crm):
    crm.get(f"{API}/Person/12", body=requests.exceptions.ConnectionError(f"refused {API}/Person/12"))

    error = error_of(lambda: client.get_person(12))

    assert (error.status, error.permanent) == (None, False)
    assert "CRM unreachable" in str(error)
    assert "superoffice.com" not in str(error)


@pytest.mark.parametrize("status", [302, 409, 418])
def test_unexpected_status_is_permanent(client, crm, status):
    crm.get(f"{API}/Person/12", status=status, headers={"Location": "https://example.org/login"})

    error = error_of(lambda: client.get_person(12))

    assert (error.status, error.permanent) == (status, True)
    assert f"unexpected status {status}" in str(error)


def test_204_on_get_is_unexpected(client, crm):
    crm.get(f"{API}/Person/12", status=204)

    error = error_of(lambda: client.get_person(12))

    assert (error.status, error.permanent) == (204, True)


def test_200_that_is_not_json_is_permanent(client, crm):
    crm.get(f"{API}/Person/12", body="<html>Login</html>", content_type="text/html")

    error = error_of(lambda: client.get_person(12))

    assert str(error) == "CRM answered 200 with a body that is not JSON"
    assert (error.status, error.permanent) == (200, True)


@pytest.mark.parametrize("body", [[], {"Firstname": "Kari"}, {"PersonId": "12"}])
def test_200_that_is_not_a_person_is_permanent(client, crm, body):
    crm.get(f"{API}/Person/12", json=body)

    error = error_of(lambda: client.get_person(12))

    assert error.permanent
    assert str(error).startswith("CRM answered 200 with")


def test_uses_the_given_session_without_changing_its_headers(crm):
    crm.get(f"{API}/Person/12", json=fixture("person_entity__full.json"))
    session = requests.Session()
    before = dict(session.headers)

    SuperOfficeClient(API, access_token="t", session=session).get_person(12)

    assert dict(session.headers) == before
    assert crm.calls[0].request.headers["Authorization"] == "Bearer t"


def test_a_budget_that_redis_cannot_serve_fails_the_call_as_transient_before_calling_the_crm(
        crm):
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    client = SuperOfficeClient(API, access_token="t", budget=CRMBudget(unreachable, 10))

    error = error_of(lambda: client.get_person(12))

    assert not error.permanent and "CRM request budget" in str(error)
    assert len(crm.calls) == 0
