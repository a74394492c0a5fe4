"""The client on SuperOffice Online: a 401 renews the credentials and the call is made once
more; a moved tenant (421, a redirect, a refused host) is looked up again; the state API's
answers decide whether jobs wait (docs/en/apps/tenant-status/status-page.md)."""

from datetime import datetime, timedelta, timezone

import pytest
import requests
import responses

from connector import defaults
from connector.exceptions import CRMError, TenantUnavailableError
from connector.superoffice.client import SuperOfficeClient
from connector.superoffice.tenant import (TenantState, cache_seconds, decide_tenant_availability,
                                          parse_tenant_state)

OLD = "https://sod2.superoffice.com/Cust12345/api/v1"
NEW = "https://sod3.superoffice.com/Cust12345/api/v1"
PERSON = {"PersonId": 12, "Firstname": "A", "Lastname": "B", "Emails": [], "Consents": []}
UTC = timezone.utc


class Tickets:
    """Credentials that hand out ticket 1, then 2 … on each renewal."""

    variable = "SUPEROFFICE_SYSTEM_USER_TOKEN"

    def __init__(self):
        self.number = 1
        self.renewals = []

    def headers(self):
        return {"Authorization": f"SOTicket {self.number}", "SO-AppToken": "secret"}

    def renew(self, rejected):
        self.renewals.append(rejected["Authorization"])
        self.number += 1
        return self.outcome

    outcome = "fresh"


class Moving:
    """An endpoint at OLD that the state API says moved to NEW."""

    discovered = True

    def __init__(self):
        self.url = OLD
        self.relocations = []

    def api_url(self):
        return self.url

    def relocate(self, stale):
        self.relocations.append(stale)
        self.url = NEW
        return self.url


@pytest.fixture
def crm():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def test_a_401_renews_the_ticket_and_the_call_is_made_once_more(crm):
    crm.get(f"{OLD}/Person/12", status=401)
    crm.get(f"{OLD}/Person/12", json=PERSON)
    tickets = Tickets()

    person = SuperOfficeClient(OLD, credentials=tickets).get_person(12)

    assert person.id == 12
    assert tickets.renewals == ["SOTicket 1"]
    assert [c.request.headers["Authorization"] for c in crm.calls] == ["SOTicket 1", "SOTicket 2"]
    assert crm.calls[1].request.headers["SO-AppToken"] == "secret"


def test_a_second_401_with_a_fresh_ticket_is_permanent_and_names_the_client_secret(crm):
    crm.get(f"{OLD}/Person/12", status=401)
    crm.get(f"{OLD}/Person/12", status=401)
    tickets = Tickets()

    with pytest.raises(CRMError) as caught:
        SuperOfficeClient(OLD, credentials=tickets).get_person(12)

    assert caught.value.permanent and "SUPEROFFICE_CLIENT_SECRET" in str(caught.value)
    assert len(tickets.renewals) == 1


def test_a_ticket_taken_over_from_another_process_may_have_lapsed_too_so_it_is_renewed_again(crm):
    crm.get(f"{OLD}/Person/12", status=401)
    crm.get(f"{OLD}/Person/12", status=401)
    crm.get(f"{OLD}/Person/12", json=PERSON)
    tickets = Tickets()
    tickets.outcome = "shared"

    assert SuperOfficeClient(OLD, credentials=tickets).get_person(12).id == 12
    assert tickets.renewals == ["SOTicket 1", "SOTicket 2"]


def test_shared_tickets_that_keep_lapsing_make_the_job_wait_not_fail(crm):
    for _ in range(4):
        crm.get(f"{OLD}/Person/12", status=401)
    tickets = Tickets()
    tickets.outcome = "shared"

    with pytest.raises(CRMError) as caught:
        SuperOfficeClient(OLD, credentials=tickets).get_person(12)

    assert (caught.value.status, caught.value.permanent) == (401, False)
    assert len(tickets.renewals) == 3


def test_a_fixed_token_is_not_retried_on_401(crm):
    crm.get(f"{OLD}/Person/12", status=401)

    with pytest.raises(CRMError) as caught:
        SuperOfficeClient(OLD, access_token="t").get_person(12)

    assert caught.value.permanent and "renew SUPEROFFICE_ACCESS_TOKEN" in str(caught.value)
    assert len(crm.calls) == 1


@pytest.mark.parametrize("old_answer", [{"status": 421}, {"status": 302, "headers": {
    "Location": NEW + "/Person/12"}}, {"body": requests.exceptions.ConnectionError("refused")}])
def test_a_moved_tenant_is_looked_up_again_and_the_call_goes_to_the_new_address(crm, old_answer):
    crm.get(f"{OLD}/Person/12", **old_answer)
    crm.get(f"{NEW}/Person/12", json=PERSON)
    endpoint = Moving()

    assert SuperOfficeClient(endpoint, access_token="t").get_person(12).id == 12
    assert endpoint.relocations == [OLD]


def test_a_tenant_still_misdirected_after_a_look_up_waits(crm):
    crm.get(f"{OLD}/Person/12", status=421)
    crm.get(f"{NEW}/Person/12", status=421)

    with pytest.raises(CRMError) as caught:
        SuperOfficeClient(Moving(), access_token="t").get_person(12)

    assert (caught.value.status, caught.value.permanent) == (421, False)
    assert caught.value.retry_after == defaults.TENANT_STATE_MIN_AGE


def test_a_timeout_is_not_taken_for_a_move(crm):
    crm.get(f"{OLD}/Person/12", body=requests.exceptions.ConnectTimeout("slow"))
    endpoint = Moving()

    with pytest.raises(CRMError) as caught:
        SuperOfficeClient(endpoint, access_token="t").get_person(12)

    assert not caught.value.permanent and endpoint.relocations == []


STATE = {"ContextIdentifier": "Cust12345", "Endpoint": "https://sod2.superoffice.com/Cust12345",
         "State": "Running", "IsRunning": True, "ValidUntil": "2020-10-05T09:52:01.9342965Z",
         "Api": "https://sod2.superoffice.com/Cust12345/api"}


def test_the_state_apis_answer_gives_the_rest_base_and_validity():
    state = parse_tenant_state(STATE, "Cust12345")

    assert state.api_url == "https://sod2.superoffice.com/Cust12345/api/v1"
    assert state.is_running and state.state == "Running"
    assert datetime.fromisoformat(state.valid_until) == datetime(2020, 10, 5, 9, 52, 1, 934296,
                                                                 tzinfo=UTC)
    assert decide_tenant_availability(state, datetime(2020, 10, 5, 9, 0, tzinfo=UTC)) is None


def test_an_answer_about_another_tenant_is_not_taken():
    with pytest.raises(CRMError):
        parse_tenant_state({**STATE, "ContextIdentifier": "Cust1"}, "Cust12345")


@pytest.mark.parametrize("state", ["OfflineMaintenance", "Upgrading", "Suspended", "Provisioning",
                                   "MigrationPending", "Unknown"])
def test_a_tenant_that_is_not_running_makes_jobs_wait_until_valid_until(state):
    answer = parse_tenant_state({**STATE, "State": state, "IsRunning": False}, "Cust12345")
    valid_until = datetime.fromisoformat(answer.valid_until)

    soon = decide_tenant_availability(answer, valid_until - timedelta(seconds=20))
    later = decide_tenant_availability(answer, valid_until - timedelta(hours=1))

    assert isinstance(soon, TenantUnavailableError) and not soon.permanent
    assert soon.retry_after == 20 and soon.state == state
    assert later.retry_after == defaults.TENANT_UNAVAILABLE_RETRY_AFTER


@pytest.mark.parametrize("state", ["Deleted", "Deleting", "DeleteFailed"])
def test_a_deleted_tenant_fails_jobs_naming_the_context_identifier(state):
    error = decide_tenant_availability(
        parse_tenant_state({**STATE, "State": state, "IsRunning": False}, "Cust12345"),
        datetime(2020, 10, 5, 9, 0, tzinfo=UTC))

    assert error.permanent and "SUPEROFFICE_CONTEXT_IDENTIFIER" in str(error)


def test_an_answer_is_kept_until_valid_until_within_bounds():
    at = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def state(seconds, running=True):
        return TenantState("Cust12345", "Running" if running else "OfflineMaintenance", running,
                           OLD, (at + timedelta(seconds=seconds)).isoformat())

    assert cache_seconds(state(600), at) == 600
    assert cache_seconds(state(-5), at) == defaults.TENANT_STATE_MIN_AGE
    assert cache_seconds(state(10 ** 6), at) == defaults.TENANT_STATE_MAX_AGE
    assert cache_seconds(state(600, running=False), at) == defaults.TENANT_UNAVAILABLE_RETRY_AFTER
