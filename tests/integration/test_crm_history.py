"""Consent changes made by CRM users reach the ledger, so a person's history is complete."""

import pytest
from rq.job import JobStatus

from tests.conftest import USER_ASSOCIATE, new_event_id, wait_for
from connector.queueing import enqueue_event

pytestmark = pytest.mark.integration


def run(job):
    wait_for(lambda: job.get_status(refresh=True) in (JobStatus.FINISHED, JobStatus.FAILED),
             what=f"job {job.id}")
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED, job.meta.get("reason")
    return job.return_value()


def test_crm_users_changes_are_recorded_from_to_and_only_once(sandbox, worker, redis_conn,
                                                              settings, ledger):
    person_id = sandbox.create_person("History", "Person", None)
    run(enqueue_event(redis_conn, settings, "onboard", person_id, new_event_id()))
    sandbox.set_consent(person_id, "STORE", "WITHDRAWN")  # a CRM user, after a phone call
    sandbox.set_consent(person_id, "EMARKETING", "61A", source="USER")

    result = run(enqueue_event(redis_conn, settings, "crm-change", person_id, new_event_id()))

    assert sorted(result["recorded"]) == ["EMARKETING", "STORE"]
    changes = {e["purpose"]: e for e in ledger.entries(person_id)
               if e["action"] == "crm.consent_changed"}
    assert (changes["STORE"]["previous_legal_basis"], changes["STORE"]["legal_basis"]) == (
        "61F", "WITHDRAWN")
    assert (changes["EMARKETING"]["previous_legal_basis"], changes["EMARKETING"]["legal_basis"]) \
        == ("", "61A")
    assert changes["STORE"]["associate_id"] == str(USER_ASSOCIATE)
    assert changes["STORE"]["actor"] == "crm user"

    again = run(enqueue_event(redis_conn, settings, "crm-change", person_id, new_event_id()))
    assert again["recorded"] == []


def test_a_row_deleted_in_the_crm_is_recorded_as_removed(sandbox, worker, redis_conn, settings, ledger):
    person_id = sandbox.create_person("Removed", "Row", None)
    run(enqueue_event(redis_conn, settings, "onboard", person_id, new_event_id()))
    assert sandbox.call("DELETE", f"Person/{person_id}/Consent/STORE").status_code == 204

    result = run(enqueue_event(redis_conn, settings, "crm-change", person_id, new_event_id()))

    assert result["recorded"] == ["STORE"]
    removed = [e for e in ledger.entries(person_id)
               if e["action"] == "crm.consent_removed"]
    assert [(e["purpose"], e["previous_legal_basis"]) for e in removed] == [("STORE", "61F")]
    assert run(enqueue_event(redis_conn, settings, "crm-change", person_id, new_event_id()))[
        "recorded"] == []
