"""The onboarding job end to end: real Redis, a real worker process, the sandbox CRM over
HTTP and a real SMTP exchange."""

import re

import pytest
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from connector.settings import Settings
from tests.conftest import (CONNECTOR_ASSOCIATE, WEBFORM_TOKEN, free_port, new_event_id,
                            own_database, start_worker, stop_worker, wait_for)
from connector.keys import ONBOARDING
from connector.queueing import enqueue_event

pytestmark = pytest.mark.integration


def run_onboarding(redis_conn, settings, person_id, timeout=20.0) -> Job:
    """Queue an onboarding job for the session's worker and wait until it finished or failed."""
    job = enqueue_event(redis_conn, settings, "onboard", person_id, new_event_id())
    return wait_until_done(job, timeout)


def wait_until_done(job: Job, timeout: float = 20.0) -> Job:
    def done():
        status = job.get_status(refresh=True)
        return status in (JobStatus.FINISHED, JobStatus.FAILED)
    wait_for(done, timeout=timeout, what=f"job {job.id} to finish")
    job.refresh()
    return job


def put_calls(sandbox, person_id):
    return [c for c in sandbox.calls()
            if c["method"] == "PUT" and f"/Person/{person_id}/" in c["path"]]


def test_new_person_gets_default_consent_and_one_mail(sandbox, worker, redis_conn, settings,
                                                      smtp_server, ledger):
    person_id = sandbox.create_person("Ada", "Lovelace", "ada@example.org")

    job = run_onboarding(redis_conn, settings, person_id)

    assert job.get_status() == JobStatus.FINISHED, job.meta.get("reason")
    consents = sandbox.consents(person_id)
    assert set(consents) == {"STORE"}  # E-marketing needs the person's own consent
    store = consents["STORE"]
    assert (store["LegalBaseKey"], store["ConsentSourceKey"]) == ("61F", "USER")
    assert store["RegisteredAssociateId"] == CONNECTOR_ASSOCIATE
    assert "Sales and service" in store["Comment"] and "consent-connector" in store["Comment"]

    mails = smtp_server.sink.to("ada@example.org")
    assert len(mails) == 1
    text = mails[0].get_body(("plain",)).get_content()
    assert "Sales and service" in text and "Legitimate interest" in text
    link = re.search(r"https://consent\.example\.com/p/[\w.-]+", text)
    assert link, text

    entries = ledger.entries(person_id)
    assert [e["action"] for e in entries] == ["consent.recorded", "mail.sent", "person.onboarded"]
    assert entries[0]["purpose"] == "STORE" and entries[0]["legal_basis"] == "61F"
    assert entries[0]["job_id"] == job.id
    assert entries[1]["message_id"] == mails[0]["Message-ID"]


def test_person_from_the_web_form_associate_gets_the_webform_source(sandbox, worker, redis_conn,
                                                                     settings, smtp_server):
    person_id = sandbox.create_person("Grace", "Hopper", "grace@example.org", token=WEBFORM_TOKEN)
    job = run_onboarding(redis_conn, settings, person_id)
    assert job.get_status() == JobStatus.FINISHED, job.meta.get("reason")
    assert sandbox.consents(person_id)["STORE"]["ConsentSourceKey"] == "WEBFORM"
    assert len(smtp_server.sink.to("grace@example.org")) == 1


def test_person_without_email_gets_consents_and_no_mail(sandbox, worker, redis_conn, settings, ledger):
    person_id = sandbox.create_person("No", "Mail", None)
    job = run_onboarding(redis_conn, settings, person_id)
    assert job.get_status() == JobStatus.FINISHED
    assert sandbox.consents(person_id)["STORE"]["LegalBaseKey"] == "61F"
    assert "no email" in job.return_value()["mail"]
    assert [e["action"] for e in ledger.entries(person_id)] == ["consent.recorded",
                                                                "person.onboarded"]


def test_existing_rows_are_never_overwritten(sandbox, worker, redis_conn, settings, smtp_server):
    person_id = sandbox.create_person("Withdrawn", "Already", "withdrawn@example.org")
    sandbox.set_consent(person_id, "STORE", "WITHDRAWN")
    before = sandbox.consents(person_id)["STORE"]

    job = run_onboarding(redis_conn, settings, person_id)

    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value()["written"] == []
    after = sandbox.consents(person_id)["STORE"]
    assert after == before
    assert len(put_calls(sandbox, person_id)) == 1  # only the CRM user's own PUT


def test_running_twice_writes_nothing_new_and_sends_no_second_mail(sandbox, worker, redis_conn,
                                                                   settings, smtp_server):
    person_id = sandbox.create_person("Twice", "Run", "twice@example.org")
    first = run_onboarding(redis_conn, settings, person_id)
    second = run_onboarding(redis_conn, settings, person_id)

    assert first.return_value()["written"] == ["STORE"]
    assert second.return_value() == {"person_id": person_id, "written": [], "mail": "already sent"}
    assert len(put_calls(sandbox, person_id)) == 1
    assert len(smtp_server.sink.to("twice@example.org")) == 1


def test_crm_failing_for_a_while_is_retried_until_it_works(sandbox, worker, redis_conn, settings,
                                                           smtp_server):
    person_id = sandbox.create_person("Patient", "Person", "patient@example.org")
    sandbox.fault(status=503, times=2, match="Consent", method="PUT")

    job = run_onboarding(redis_conn, settings, person_id, timeout=30)

    assert job.get_status() == JobStatus.FINISHED, job.meta.get("reason")
    attempts = job.meta["attempts"]
    assert len(attempts) == 2
    assert all("503" in a["error"] for a in attempts)
    assert sandbox.consents(person_id)["STORE"]["LegalBaseKey"] == "61F"
    assert len(smtp_server.sink.to("patient@example.org")) == 1


def test_a_short_429_retry_after_is_waited_out_in_place_not_by_a_retry(sandbox, worker,
                                                                        redis_conn, settings):
    person_id = sandbox.create_person("Rate", "Limited", None)
    sandbox.fault(status=429, times=1, retry_after=2, match=f"Person/{person_id}", method="GET")

    job = run_onboarding(redis_conn, settings, person_id)

    assert job.get_status() == JobStatus.FINISHED
    assert job.meta["attempts"] == []  # the job never went back to the queue
    reads = [call for call in sandbox.calls() if call["path"].endswith(f"Person/{person_id}")
             and call["method"] == "GET"]
    assert [call["status"] for call in reads] == [429, 200]
    assert reads[1]["time"] - reads[0]["time"] >= 1.9  # the CRM asked for 2 s


def test_person_gone_fails_at_once_with_a_readable_reason(sandbox, worker, redis_conn, settings):
    job = run_onboarding(redis_conn, settings, 999999)

    assert job.get_status() == JobStatus.FAILED
    assert job.meta["reason"] == "CRM answered 404: person 999999 no longer exists"
    assert len(job.meta["attempts"]) == 1
    assert job.id in FailedJobRegistry(ONBOARDING, connection=redis_conn).get_job_ids()


def test_unknown_crm_key_fails_at_once_naming_it(sandbox, redis_conn, connector_env, tmp_path):
    config = (tmp_path / "purposes.yaml")
    shipped = open(connector_env["CONSENT_CONFIG"]).read()
    config.write_text(shipped.replace("crm_key: STORE", "crm_key: NEWSLETTERS"))
    env, own_db = own_database(connector_env, 1, CONSENT_CONFIG=str(config),
                               DATA_DIR=str(tmp_path))
    person_id = sandbox.create_person("Unknown", "Key", None)
    job = enqueue_event(own_db, Settings.from_env(env), "onboard", person_id, new_event_id())

    worker = start_worker(env, "--burst")
    assert worker.wait(60) == 0, worker.log_path.read_text()

    job.refresh()
    assert job.get_status() == JobStatus.FAILED
    assert "400" in job.meta["reason"] and "NEWSLETTERS" in job.meta["reason"]
    assert len(job.meta["attempts"]) == 1


def test_worker_logs_hold_no_names_or_addresses(worker, sandbox, redis_conn, settings):
    person_id = sandbox.create_person("Secretive", "Sophie", "sophie.secret@example.org")
    run_onboarding(redis_conn, settings, person_id)
    log = worker.log_path.read_text()
    assert f"person {person_id}" in log or str(person_id) in log
    for personal in ("Secretive", "Sophie", "sophie.secret@example.org"):
        assert personal not in log


def test_mail_server_down_retries_the_mail_without_rewriting_consents(sandbox, connector_env,
                                                                      tmp_path):
    env, own_db = own_database(connector_env, 3, RETRY_INTERVALS="1", DATA_DIR=str(tmp_path),
                               SMTP_URL=f"smtp://127.0.0.1:{free_port()}")  # nobody listens
    person_id = sandbox.create_person("Mail", "Down", "mail.down@example.org")
    job = enqueue_event(own_db, Settings.from_env(env), "onboard", person_id, new_event_id())

    worker = start_worker(env)
    try:
        wait_until_done(job, timeout=30)
    finally:
        stop_worker(worker)

    assert job.get_status() == JobStatus.FAILED
    assert len(job.meta["attempts"]) == 2  # the first try and its one retry
    assert all("mail server" in a["error"] for a in job.meta["attempts"])
    assert "mail.down@example.org" not in str(job.meta)
    assert len(put_calls(sandbox, person_id)) == 1  # the retry found the consent written
    assert own_db.get(f"connector:mail:confirmation:{person_id}") is None  # claim released
