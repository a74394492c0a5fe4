"""A person deleted in the CRM: the sandbox sends person.deleted (as SuperOffice does), the
connector schedules the erasure of the identifying proof in their ledger, and erases it when
LEDGER_ERASE_AFTER_DAYS are over; the consent facts and the chain stay."""

from datetime import timedelta

import pytest

from connector.evidence import facts
from connector.times import parse_iso
from connector.web.app import create_app
from sandbox.server import run_in_thread, stop_server
from tests.conftest import WEBHOOK_SECRETS, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def connector_receiving_webhooks(sandbox, settings, redis_conn):
    """The connector's web app served over HTTP, registered in the sandbox for person.deleted
    (the session's worker runs the jobs it queues)."""
    server, url = run_in_thread(create_app(settings, connection=redis_conn))
    response = sandbox.call("POST", "Webhook", json={
        "Name": "consent-connector", "Events": ["person.deleted"], "State": "Active",
        "TargetUrl": f"{url}/webhooks/superoffice", "Secret": WEBHOOK_SECRETS[0],
        "Type": "webhook"})
    assert response.status_code == 200, response.text
    yield
    stop_server(server)


def test_a_person_deleted_in_the_crm_loses_their_identifying_proof_after_the_grace_period(
        sandbox, worker, ledger, evidence_database, connector_receiving_webhooks):
    person_id = sandbox.create_person("Dora", "Deleted", "dora.deleted@example.org")
    ledger.append(person_id, "consent.changed", purpose="EMARKETING", legal_basis="61A",
                  actor="person", token_id="tok-9", ip="203.0.113.0/24 #0123456789abcdef",
                  user_agent="Mozilla/5.0 (X11; Linux)", notice_version="2026-01")

    response = sandbox.call("DELETE", f"Person/{person_id}")
    assert response.status_code == 204, response.text
    assert sandbox.call("GET", f"Person/{person_id}").status_code == 404

    deleted = wait_for(lambda: [e for e in ledger.entries(person_id)
                                if e["action"] == "person.deleted"], what="person.deleted")
    due = parse_iso(deleted[0]["erase_after"])
    assert deleted[0]["actor"] == "crm user" and deleted[0]["event_id"]
    assert ledger.entries(person_id)[0]["ip"].startswith("203.0.113.0/24")  # not yet
    assert facts.erase_due(evidence_database, "connector", due - timedelta(minutes=1)) == {}

    assert facts.erase_due(evidence_database, "connector", due) == {person_id: 1}

    entries = ledger.entries(person_id)
    assert (entries[0]["ip"], entries[0]["user_agent"]) == ("erased", "erased")
    assert (entries[0]["legal_basis"], entries[0]["token_id"]) == ("61A", "tok-9")
    assert [e["action"] for e in entries] == ["consent.changed", "person.deleted",
                                              "ledger.erased"]
    assert ledger.verify(person_id) is None
