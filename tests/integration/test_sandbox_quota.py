"""The sandbox's request quota over real HTTP: a burst over it is answered 429 with Retry-After,
a caller that waits gets through again; only the tenant's API counts (not the state API, the
sign-in or the sandbox controls); the quota control sets, reports and removes it, and a reset
puts back the quota the sandbox was created with.

The session's sandbox has no quota: each test sets its own and the ``crm`` fixture removes it."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from sandbox.server import create_sandbox_app, run_in_thread, stop_server
from tests.conftest import TENANT, USER_TOKEN, SandboxClient

PER_SECOND = 5


@pytest.fixture
def crm(sandbox_server):
    """The session's sandbox, emptied, with a quota of PER_SECOND; none again afterwards,
    whatever the test did."""
    sandbox_server.reset()
    try:
        sandbox_server.set_quota(PER_SECOND)
        yield sandbox_server
    finally:
        sandbox_server.set_quota(None)


def burst(crm: SandboxClient, count: int) -> list[requests.Response]:
    """``count`` GETs sent at once, as a connector's parallel jobs would."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: crm.call("GET", "List/LegalBase/Items"), range(count)))


def statuses(responses: list[requests.Response]) -> list[int]:
    return sorted(response.status_code for response in responses)


def test_a_burst_over_the_quota_is_answered_429_with_retry_after(crm):
    answers = burst(crm, 8)
    assert statuses(answers) == [200] * 5 + [429] * 3
    for refused in (a for a in answers if a.status_code == 429):
        assert refused.headers["Retry-After"].isdigit() and int(refused.headers["Retry-After"]) >= 1
        assert refused.json() == {"Error": "Too many requests: the tenant allows 5 requests per "
                                           "second", "ErrorType": "TooManyRequests"}
    assert crm.quota() == {"per_second": PER_SECOND, "served": 5, "refused": 3}


def test_a_caller_that_waits_retry_after_gets_through_again(crm):
    refused = [a for a in burst(crm, PER_SECOND + 1) if a.status_code == 429]
    assert len(refused) == 1
    time.sleep(int(refused[0].headers["Retry-After"]))
    assert statuses(burst(crm, PER_SECOND)) == [200] * PER_SECOND


def test_every_caller_shares_the_quota_and_a_refused_call_is_not_authenticated(crm):
    for token in ("no-such-token", "", USER_TOKEN, "webform-token"):
        crm.call("GET", "List/LegalBase/Items", token=token)
    crm.call("GET", "Person/999")
    assert crm.call("GET", "List/LegalBase/Items", token="no-such-token").status_code == 429
    assert crm.quota()["served"] == PER_SECOND


def test_a_refused_call_leaves_a_queued_fault_for_a_call_that_gets_through(crm):
    burst(crm, PER_SECOND)
    crm.fault(status=503, match="Person")
    assert crm.call("GET", "Person/1").status_code == 429
    assert len(crm.faults()) == 1


def test_the_state_api_the_sign_in_and_the_controls_are_not_counted(crm):
    base = crm.base_url
    burst(crm, PER_SECOND + 1)
    assert requests.get(f"{base}/api/state/{TENANT}", timeout=5).status_code == 200
    assert requests.get(f"{base}/login/.well-known/jwks", timeout=5).status_code == 200
    sign_in = requests.post(f"{base}/Login/api/PartnerSystemUser/Authenticate", timeout=5,
                            json={"SignedSystemToken": "x", "ContextIdentifier": TENANT})
    assert sign_in.status_code == 200 and sign_in.json()["IsSuccessful"] is False
    assert len(crm.sign_ins()) == 1
    assert crm.quota() == {"per_second": PER_SECOND, "served": PER_SECOND, "refused": 1}


def test_a_quota_of_null_removes_it_and_a_new_one_starts_full(crm):
    burst(crm, PER_SECOND)
    crm.set_quota(None)
    assert statuses(burst(crm, 8)) == [200] * 8
    assert crm.quota() == {"per_second": None, "served": 0, "refused": 0}
    crm.set_quota(2.5)
    assert statuses(burst(crm, 3)) == [200, 200, 429]
    assert crm.quota() == {"per_second": 2.5, "served": 2, "refused": 1}


@pytest.mark.parametrize("body", [{"per_second": 0}, {"per_second": -1}, {"per_second": "ten"},
                                  {"per_second": True}, {}, [10]])
def test_the_quota_control_refuses_anything_but_a_positive_number_or_null(crm, body):
    answer = requests.put(f"{crm.base_url}/__sandbox/quota", json=body, timeout=5)
    assert answer.status_code == 400 and "per_second" in answer.json()["Error"]
    assert crm.quota()["per_second"] == PER_SECOND


def test_a_reset_puts_back_the_quota_the_sandbox_was_created_with(crm, tmp_path):
    burst(crm, PER_SECOND + 1)
    crm.reset()
    assert crm.quota() == {"per_second": None, "served": 0, "refused": 0}
    server, base = run_in_thread(create_sandbox_app(TENANT, {USER_TOKEN: 7}, data_dir=tmp_path,
                                                    quota=2))
    try:
        limited = SandboxClient(base)
        assert statuses(burst(limited, 3)) == [200, 200, 429]
        limited.set_quota(None)
        limited.reset()
        assert statuses(burst(limited, 3)) == [200, 200, 429]
        assert limited.quota() == {"per_second": 2, "served": 2, "refused": 1}
    finally:
        stop_server(server)
