"""``consent-connector jobs`` as support staff use it: a real worker on its own Redis database,
the sandbox CRM over HTTP, real SMTP, and the command run as a separate process."""

import re
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import requests
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from connector.settings import Settings
from tests.conftest import (new_event_id, own_database, run_command, start_worker, stop_worker,
                            wait_for)
from connector.support import jobs as support
from connector.times import parse_duration
from connector.keys import ONBOARDING
from connector.queueing import enqueue_event, enqueue_preferences

pytestmark = pytest.mark.integration

DB = 4  # the session's worker listens on db 0; this module's worker on its own database
NO_SUCH_PERSON = 987654


@pytest.fixture(scope="module")
def own_db(connector_env):
    """The connector's environment on this module's Redis database, and a client of it."""
    return own_database(connector_env, DB, RETRY_INTERVALS="1")


@pytest.fixture(scope="module")
def env(own_db):
    return own_db[0]


@pytest.fixture(scope="module")
def conn(own_db):
    return own_db[1]


@pytest.fixture(scope="module")
def settings4(env) -> Settings:
    return Settings.from_env(env)


@pytest.fixture(scope="module")
def crm(sandbox_server):
    """The sandbox CRM, emptied once: person ids stay unique across this module's tests."""
    sandbox_server.reset()
    yield sandbox_server
    clear_faults(sandbox_server)


@pytest.fixture(scope="module")
def support_worker(env, conn):
    process = start_worker(env)
    yield process
    stop_worker(process)


@pytest.fixture(autouse=True)
def no_faults_left(request):
    yield
    if "crm" in request.fixturenames:
        clear_faults(request.getfixturevalue("crm"))


def clear_faults(sandbox):
    requests.delete(f"{sandbox.base_url}/__sandbox/faults", timeout=5).raise_for_status()


def jobs_cli(env, *args) -> subprocess.CompletedProcess:
    """Run ``consent-connector jobs ARGS`` as support staff would (in this process)."""
    return run_command(env, "jobs", *args)


def wait_failed(conn, job, timeout=20.0):
    registry = FailedJobRegistry(job.origin, connection=conn)
    wait_for(lambda: job.id in registry, timeout=timeout, what=f"job {job.id} to fail")
    job.refresh()
    return job


def wait_finished(job, timeout=20.0):
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, timeout=timeout,
             what=f"job {job.id} to finish")


def line_of(output: str, job_id: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(job_id)]
    assert len(lines) == 1, output
    return lines[0]


def put_calls(sandbox, person_id):
    return [c for c in sandbox.calls()
            if c["method"] == "PUT" and f"/Person/{person_id}/" in c["path"]]


def test_outage_then_retry_by_support(env, conn, settings4, crm, support_worker, smtp_server, ledger):
    email = "olga.outage@example.org"
    person_id = crm.create_person("Olga", "Outage", email)
    crm.fault(status=503, times=50, match="Consent", method="PUT")
    job = wait_failed(conn, enqueue_event(conn, settings4, "onboard", person_id, new_event_id()))

    # 1. The list says which person, which step and why, in words.
    listing = jobs_cli(env, "list", "--failed")
    assert listing.returncode == 0, listing.stderr
    line = line_of(listing.stdout, job.id)
    assert line.split()[1:5] == [str(person_id), "onboarding", "failed", "2"]
    assert (f"gave up after 2 attempts: CRM failed (503) while writing consent STORE for "
            f"person {person_id}") in line
    assert "@" not in listing.stdout and "Traceback" not in listing.stdout
    assert listing.stdout.splitlines()[0].split() == ["JOB", "PERSON", "STEP", "STATUS",
                                                      "ATTEMPTS", "WHEN", "(UTC)", "REASON"]

    # 2. show: arguments, each attempt, the traceback last.
    shown = jobs_cli(env, "show", job.id)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert re.search(r"^Status +failed \(queue onboarding\)$", out, re.M), out
    assert re.search(rf"^Arguments +person_id = {person_id}$", out, re.M), out
    assert "Attempts (2)" in out
    assert out.count("CRM failed (503) while writing consent STORE") >= 3  # reason + 2 attempts
    assert out.index("Attempts (2)") < out.index("Traceback (most recent call last)")
    assert out.rstrip().splitlines()[-1].startswith("connector.exceptions.CRMError: CRM failed")
    assert email not in out

    # 3. The dry run reads the CRM, says what would be written and sent, and writes nothing.
    puts_before = len(put_calls(crm, person_id))
    dry = jobs_cli(env, "retry", job.id, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would write STORE: legal basis 61F, source USER" in dry.stdout
    assert "would send the confirmation mail" in dry.stdout
    assert "nothing was queued" in dry.stdout
    assert len(put_calls(crm, person_id)) == puts_before
    assert job.id in FailedJobRegistry(ONBOARDING, connection=conn)
    assert not [e for e in ledger.entries(person_id) if e["action"] == "support.retry"]

    # 4. The outage is over: the retry writes the consent and sends the one mail.
    clear_faults(crm)
    retried = jobs_cli(env, "retry", job.id, "--as", "Sam Support")
    assert retried.returncode == 0, retried.stderr
    assert f"queued again: {job.id}" in retried.stdout
    wait_finished(job)
    assert crm.consents(person_id)["STORE"]["LegalBaseKey"] == "61F"
    assert len(smtp_server.sink.to(email)) == 1
    actions = [e["action"] for e in ledger.entries(person_id)]
    assert actions == ["support.retry", "consent.recorded", "mail.sent",
                       "person.onboarded"]
    entry = ledger.entries(person_id)[0]
    assert (entry["job_id"], entry["step"], entry["actor"]) == (job.id, "onboarding", "Sam Support")
    assert datetime.fromisoformat(entry["at"]) > datetime.now(timezone.utc) - timedelta(minutes=1)
    assert job.id not in FailedJobRegistry(ONBOARDING, connection=conn)


def test_preferences_dry_run_masks_and_retry_by_person(env, conn, settings4, crm,
                                                       support_worker, ledger):
    person_id = crm.create_person("Pia", "Prefs", "pia.prefs@example.org")
    crm.fault(status=400, times=5, match=f"Person/{person_id}/Consent", method="PUT")
    proof = {"submitted_at": "2026-11-29T05:00:00Z", "token_id": "tok-123",
             "notice:e_marketing": "2026-01", "user_agent": "Mozilla/5.0 (X11; Linux) Firefox/140",
             "ip": "203.0.113.0/24 #0123456789abcdef"}
    prefs = enqueue_preferences(conn, settings4, person_id, {"e_marketing": True}, proof)
    gone = enqueue_event(conn, settings4, "onboard", NO_SUCH_PERSON, new_event_id())
    wait_failed(conn, prefs)
    wait_failed(conn, gone)

    # The permanent errors failed at once, each with its own plain reason.
    mine = jobs_cli(env, "list", "--person", str(person_id))
    assert gone.id not in mine.stdout
    line = line_of(mine.stdout, prefs.id)
    assert line.split()[1:5] == [str(person_id), "preferences", "failed", "1"]
    assert f"CRM refused consent EMARKETING for person {person_id} (400)" in line
    assert "gave up" not in line
    everyone = jobs_cli(env, "list", "--failed").stdout
    assert f"CRM answered 404: person {NO_SUCH_PERSON} no longer exists" in line_of(everyone,
                                                                                  gone.id)

    # Personal data in the arguments is masked; the proof that is not personal stays.
    shown = jobs_cli(env, "show", prefs.id).stdout
    assert "Mozilla" not in shown and "203.0.113" not in shown and "pia.prefs" not in shown
    assert "'user_agent': '(masked)'" in shown and "'token_id': 'tok-123'" in shown
    assert "choices = {'e_marketing': True}" in shown

    # Dry runs: what the preferences job would write; the onboarding would fail again.
    puts_before = len(put_calls(crm, person_id))
    dry = jobs_cli(env, "retry", prefs.id, gone.id, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    planned = dry.stdout.split(f"{gone.id} (onboarding for person {NO_SUCH_PERSON}), if run now:")
    assert len(planned) == 2, dry.stdout
    assert "would write EMARKETING: legal basis 61A, source WEBFORM" in planned[0]
    assert "link tok-123" in planned[0]
    assert f"the job would fail again: CRM answered 404: person {NO_SUCH_PERSON}" in planned[1]
    assert len(put_calls(crm, person_id)) == puts_before

    # Retry everything of this person: only their job is queued again.
    clear_faults(crm)
    retried = jobs_cli(env, "retry", "--all", "--person", str(person_id))
    assert retried.returncode == 0, retried.stderr
    assert "1 job(s) queued again." in retried.stdout
    wait_finished(prefs)
    assert crm.consents(person_id)["EMARKETING"]["LegalBaseKey"] == "61A"
    assert gone.id in FailedJobRegistry(ONBOARDING, connection=conn)
    retry = next(e for e in ledger.entries(person_id) if e["action"] == "support.retry")
    assert retry["actor"] == support.default_actor() and retry["step"] == "preferences"
    assert not ledger.entries(NO_SUCH_PERSON)


def test_waiting_and_running_jobs_are_listed(env, conn, settings4, crm, support_worker):
    # A job waiting 30 s for its retry.
    waiting_person = crm.create_person("Wanda", "Waiting", None)
    crm.fault(status=503, times=1, match=f"Person/{waiting_person}/Consent", method="PUT")
    slow_retry = Settings.from_env(env | {"RETRY_INTERVALS": "30"})
    waiting = enqueue_event(conn, slow_retry, "onboard", waiting_person, new_event_id())
    scheduled = ScheduledJobRegistry(ONBOARDING, connection=conn)
    wait_for(lambda: waiting.id in scheduled, what="the job to wait for its retry")
    # A job the worker is busy with: the CRM takes 3 s to answer.
    running_person = crm.create_person("Rudi", "Running", None)
    crm.fault(delay=3, times=1, match=f"Person/{running_person}", method="GET")
    running = enqueue_event(conn, settings4, "onboard", running_person, new_event_id())
    started = StartedJobRegistry(ONBOARDING, connection=conn)
    wait_for(lambda: running.id in started, what="the job to start")

    listing = jobs_cli(env, "list", "--scheduled", "--started")
    assert listing.returncode == 0, listing.stderr
    line = line_of(listing.stdout, waiting.id)
    assert line.split()[1:5] == [str(waiting_person), "onboarding", "scheduled", "1"]
    assert "failed once so far, will try again: CRM failed (503)" in line
    runs_at = datetime.strptime(" ".join(line.split()[5:7]), "%Y-%m-%d %H:%M:%S")
    due = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(seconds=30)
    assert abs((runs_at - due).total_seconds()) < 10
    line = line_of(listing.stdout, running.id)
    assert line.split()[1:4] == [str(running_person), "onboarding", "started"]
    assert "running on worker" in line
    assert "0 failed" not in listing.stdout  # only what was asked for
    assert listing.stdout.rstrip().splitlines()[-1].startswith("1 scheduled, 1 started.")

    wait_finished(running)
    Job.fetch(waiting.id, connection=conn).delete()  # not left to run after this test


def test_purge_deletes_only_old_failed_jobs(env, conn, settings4, crm, support_worker):
    old = wait_failed(conn, enqueue_event(conn, settings4, "onboard", NO_SUCH_PERSON + 1, new_event_id()))
    recent = wait_failed(conn, enqueue_event(conn, settings4, "onboard", NO_SUCH_PERSON + 2,
                                                  new_event_id()))
    old.ended_at = datetime.now(timezone.utc) - timedelta(days=40)
    old.save()

    purged = jobs_cli(env, "purge", "--older-than", "30d")

    assert purged.returncode == 0, purged.stderr
    assert f"deleted {old.id} (onboarding for person {NO_SUCH_PERSON + 1}" in purged.stdout
    assert recent.id not in purged.stdout
    assert not Job.exists(old.id, connection=conn)
    assert old.id not in FailedJobRegistry(ONBOARDING, connection=conn)
    assert recent.id in FailedJobRegistry(ONBOARDING, connection=conn)
    assert jobs_cli(env, "purge", "--older-than", "30d").stdout.startswith(
        "No failed jobs older than 30d.")
    wrong = jobs_cli(env, "purge", "--older-than", "30 days")
    assert wrong.returncode == 2 and "not a duration" in wrong.stderr


def test_unknown_and_unfailed_jobs_are_refused(env, conn, settings4, crm, support_worker):
    for args in (("show", "no-such-job"), ("retry", "no-such-job")):
        result = jobs_cli(env, *args)
        assert result.returncode == 1, (args, result.stdout)
        assert "no job with id 'no-such-job'" in result.stderr
    done = enqueue_event(conn, settings4, "onboard", crm.create_person("Fine", "Done", None),
                              new_event_id())
    wait_finished(done)
    result = jobs_cli(env, "retry", done.id)
    assert result.returncode == 1
    assert f"job {done.id} is finished, not failed" in result.stderr
    nothing = jobs_cli(env, "retry")
    assert nothing.returncode == 2 and "--all" in nothing.stderr


def test_reasons_and_arguments_never_show_an_email_address(conn):
    job = Job.create("workers.jobs.send_fresh_link", args=(5,), connection=conn,
                     meta={"person_id": 5, "step": "fresh link", "reason": "x",
                           "attempts": [{"at": "2026-11-29T05:00:00+00:00",
                                         "error": "mail server refused <kari@example.no> (550)"},
                                        {"at": "2026-11-29T05:00:10+00:00",
                                         "error": "mail server refused <kari@example.no> (550)"}]})
    job.meta["reason"] = job.meta["attempts"][-1]["error"]
    reason = support.plain_reason(job, support.FAILED)
    assert reason == "gave up after 2 attempts: mail server refused <[email hidden]> (550)"
    assert support.mask_value({"user_agent": "Firefox", "note": "to a.b+c@d.example.com",
                               "token_id": "t1"}) == {
        "user_agent": "(masked)", "note": "to [email hidden]", "token_id": "t1"}
    assert parse_duration("12h") == timedelta(hours=12)
    with pytest.raises(ValueError):
        parse_duration("12")
