"""Reconciliation end to end: persons whose webhook never came are listed from the sandbox CRM
over HTTP, queued in a real Redis (a database of its own, db 6, so the session's worker does
not take the jobs) and onboarded by real worker processes; the commands run as a support
person runs them, as subprocesses."""

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import redis
from rq import Queue
from rq.cron import CronScheduler
from rq.job import Job
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from click.testing import CliRunner

from connector.cli import main
from connector.crm.types import PersonListing
from connector.exceptions import CRMError
from connector.settings import Settings
from sandbox.server import create_sandbox_app, run_in_thread, stop_server
from tests.conftest import (CONNECTOR_ASSOCIATE, CONNECTOR_TOKEN, ROOT, TENANT, USER_ASSOCIATE,
                            USER_TOKEN, SandboxClient, consent_given_days_ago, fixed_crm,
                            free_port, new_event_id, run_command, start_worker, wait_for)
from connector import intake
from connector.intake import BACKFILL, EVENTS
from connector.keys import BACKFILL as BACKFILL_QUEUE
from connector.keys import HISTORY, ONBOARDING
from connector.queueing import enqueue_event
from connector.keys import RECONCILE_LAST_RUN as LAST_RUN_KEY
from connector.evidence import facts
from connector.reconcile import (WATERMARK_OVERLAP, backfill_progress, read_last_run, reconcile,
                                 scheduled_pass)
from connector.services import build_services
from workers.reconcile import start_reconcile_cron, stop_reconcile_cron

pytestmark = pytest.mark.integration

UTC = timezone.utc


# ---------------------------------------------------------------- helpers
@pytest.fixture
def env6(connector_env, redis_conn, tmp_path):
    """The connector's environment on Redis db 6 (emptied: ``redis_conn`` flushes all)."""
    return connector_env | {"REDIS_URL": connector_env["REDIS_URL"] + "?db=6",
                            "DATA_DIR": str(tmp_path)}


@pytest.fixture
def db6(env6):
    return redis.Redis.from_url(env6["REDIS_URL"])


@pytest.fixture
def in_process(env6):
    """Services built in this process (for calling the pass directly)."""
    return build_services(Settings.from_env(env6), redis_timeout=None)


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    """Run ``consent-connector ARGS`` as a support person would (in this process)."""
    return run_command(env, *args)


def drain(env: dict) -> None:
    """Run a burst worker on the environment's Redis until its queues are empty."""
    worker = start_worker(env, "--burst")
    assert worker.wait(60) == 0, worker.log_path.read_text()


def email() -> str:
    return f"reconcile-{uuid.uuid4().hex[:8]}@example.org"


def person_gets(sandbox, person_id) -> int:
    return sum(1 for c in sandbox.calls()
               if c["method"] == "GET" and c["path"].endswith(f"/Person/{person_id}"))


def list_calls(sandbox) -> list[dict]:
    return [c for c in sandbox.calls() if c["method"] == "GET" and c["path"].endswith("/Person")]


def created(sandbox, person_id) -> datetime:
    text = sandbox.call("GET", f"Person/{person_id}").json()["CreatedDate"]
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---------------------------------------------------------------- finding lost persons
def test_lost_persons_are_found_onboarded_and_not_queued_again(sandbox, env6, db6, smtp_server,
                                                               evidence_database):
    address = email()
    ada = sandbox.create_person("Ada", "Lovelace", address)
    nomail = sandbox.create_person("No", "Mail")
    assert sandbox.call("GET", "Webhook").json() == []  # the connector was never told

    result = cli(env6, "reconcile")

    assert result.returncode == 0, result.stderr
    assert "first pass: the last 24 h" in result.stdout
    after = parse_qs(list_calls(sandbox)[0]["query"])["$filter"][0].split("'")[1]
    window = datetime.now(UTC) - datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert timedelta(hours=24) <= window < timedelta(hours=24, minutes=1)
    assert f"queued             2 onboarding job(s): person {ada}, {nomail}" in result.stdout
    drain(env6)
    assert set(sandbox.consents(ada)) == {"STORE"} and set(sandbox.consents(nomail)) == {"STORE"}
    assert len(smtp_server.sink.to(address)) == 1
    last = read_last_run(db6)
    assert (last["ok"], last["trigger"], last["listed"], last["queued"]) == (True, "manual", 2, 2)
    assert facts.read_watermark(evidence_database) == max(created(sandbox, ada), created(sandbox, nomail))

    second = cli(env6, "reconcile")

    assert second.returncode == 0, second.stderr
    assert "the watermark, minus 5 min overlap" in second.stdout
    assert "listed             2 persons" in second.stdout  # the overlap lists them again ...
    assert "queued             0" in second.stdout  # ... and queues nobody
    assert Queue(ONBOARDING, connection=db6).count == 0


def test_a_person_onboarded_from_their_webhook_is_not_queued_again(sandbox, env6, db6,
                                                                  in_process, evidence_database):
    person = sandbox.create_person("Webhook", "Worked", email())
    enqueue_event(db6, Settings.from_env(env6), "onboard", person, new_event_id())
    drain(env6)
    assert facts.onboarded(evidence_database, [person]) == [True]

    summary = reconcile(in_process)

    assert (summary["listed"], summary["already_onboarded"], summary["queued"]) == (1, 1, 0)


# ---------------------------------------------------------------- where a pass starts
def test_the_watermark_limits_a_pass_and_since_overrides_it(sandbox, env6, db6, evidence_database):
    person = sandbox.create_person("Later", "Than", email())
    watermark = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    facts.advance_watermark(evidence_database, watermark)  # as if a pass had seen persons until then

    from_watermark = cli(env6, "reconcile")

    assert from_watermark.returncode == 0, from_watermark.stderr
    assert "listed             0 persons" in from_watermark.stdout
    since = (watermark - WATERMARK_OVERLAP).strftime("%Y-%m-%dT%H:%M:%S")
    assert {parse_qs(c["query"])["$filter"][0] for c in list_calls(sandbox)} == {
        f"personRegisteredDate afterTime '{since}'", f"personUpdatedDate afterTime '{since}'"}

    with_since = cli(env6, "reconcile", "--since", "2h")

    assert with_since.returncode == 0, with_since.stderr
    assert f"queued             1 onboarding job(s): person {person}" in with_since.stdout
    assert facts.read_watermark(evidence_database) == watermark  # never moved backwards


def test_a_pass_since_a_later_time_does_not_jump_the_watermark(sandbox, in_process, db6,
                                                               evidence_database):
    watermark = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    facts.advance_watermark(evidence_database, watermark)
    person = sandbox.create_person("Recent", "One", email())

    summary = reconcile(in_process, since=datetime.now(UTC) - timedelta(hours=1))

    assert summary["queued_ids"] == [person]
    assert facts.read_watermark(evidence_database) == watermark  # persons between it and --since are still to check


def test_since_and_all_together_or_a_bad_since_are_refused():
    both = CliRunner().invoke(main, ["reconcile", "--since", "2h", "--all"])
    bad = CliRunner().invoke(main, ["reconcile", "--since", "yesterday"])

    assert both.exit_code == 2 and "--since or --all" in both.output
    assert bad.exit_code == 2 and "like 30m, 2h, 3d or 1w" in bad.output


def test_all_backfills_every_person_of_an_existing_crm(sandbox, env6, db6, evidence_database):
    persons = [sandbox.create_person("Old", f"Customer{i}", email() if i == 0 else None)
               for i in range(3)]
    watermark = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    facts.advance_watermark(evidence_database, watermark)  # a normal pass would list none of them

    dry = cli(env6, "reconcile", "--all", "--dry-run")

    assert dry.returncode == 0, dry.stderr
    assert "would queue        3" in dry.stdout
    assert Queue(ONBOARDING, connection=db6).count == 0

    backfill = cli(env6, "reconcile", "--all")

    assert backfill.returncode == 0, backfill.stderr
    assert "every person in the CRM (--all)" in backfill.stdout
    assert "queued             3 onboarding job(s)" in backfill.stdout
    assert "$filter" not in parse_qs(list_calls(sandbox)[-1]["query"])
    assert [entry.person_id for entry in intake.entries(db6, BACKFILL)] == persons
    assert Queue(ONBOARDING, connection=db6).count == 0  # live events go first
    assert facts.read_watermark(evidence_database) == watermark
    assert "backfill    0 of 3 persons onboarded since" in cli(env6, "status").stdout

    drain(env6)

    assert "3 of 3 persons onboarded since" in cli(env6, "status").stdout
    assert "0 left (finished)" in cli(env6, "status").stdout

    jobs = [Job.fetch(f"onboard-reconcile-{p}", connection=db6) for p in persons]
    assert [(job.origin, job.get_status()) for job in jobs] == [("backfill", "finished")] * 3
    assert all(set(sandbox.consents(p)) == {"STORE"} for p in persons)
    # The rate is the pace of the finished jobs, read from RQ's finished registry (whose
    # scores are in whole seconds): 3 from the first one's end to now.
    first_end = min(job.ended_at for job in jobs).replace(tzinfo=UTC)
    before = datetime.now(UTC)
    rate = backfill_progress(db6)["per_minute"]
    after = datetime.now(UTC)
    slowest = 3 / ((after - first_end).total_seconds() + 1) * 60
    fastest = 3 / max((before - first_end).total_seconds() - 1, 0.001) * 60
    assert slowest <= rate <= fastest


# ---------------------------------------------------------------- a polite, careful client
def test_a_429_while_listing_is_waited_out(sandbox, env6):
    person = sandbox.create_person("Rate", "Limited", email())
    sandbox.fault(status=429, times=1, retry_after=1, match="Person", method="GET")

    result = cli(env6, "reconcile")

    assert result.returncode == 0, result.stderr
    assert "waited             1 s" in result.stdout
    assert f"queued             1 onboarding job(s): person {person}" in result.stdout
    first, second = list_calls(sandbox)[:2]
    assert (first["status"], second["status"]) == (429, 200)
    assert first["query"] == second["query"]  # the same page, asked again
    assert second["time"] - first["time"] >= 0.95


def test_a_failed_listing_keeps_the_watermark_and_is_reported(sandbox, env6, db6,
                                                              evidence_database):
    sandbox.create_person("Not", "Yet", email())
    watermark = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    facts.advance_watermark(evidence_database, watermark)
    sandbox.fault(status=429, times=1, retry_after=600, match="Person", method="GET")

    result = cli(env6, "reconcile")

    assert result.returncode == 1
    assert "retry after 600 s" in result.stderr and "watermark stays" in result.stderr
    assert facts.read_watermark(evidence_database) == watermark
    last = read_last_run(db6)
    assert last["ok"] is False and "429" in last["error"]
    assert Queue(ONBOARDING, connection=db6).count == 0

    status = cli(env6, "status").stdout

    assert "(manual) FAILED: CRM is rate limiting the connector (429)" in status
    assert "the watermark did not move" in status


class HalfListingCRM:
    """A CRM whose listing breaks after the given rows."""

    def __init__(self, rows, error):
        self.rows, self.error = rows, error

    def list_persons(self, changed_since, page_size=200):
        yield from self.rows
        raise self.error


def test_a_pass_failing_half_way_queues_what_it_saw_but_keeps_the_watermark(in_process, db6,
                                                                            evidence_database):
    watermark = datetime(2026, 1, 1, tzinfo=UTC)
    facts.advance_watermark(evidence_database, watermark)
    seen = PersonListing(41, watermark + timedelta(hours=1), watermark + timedelta(hours=2))
    half_listing = dataclasses.replace(in_process, crm=HalfListingCRM(
        [seen], CRMError("CRM failed (503) while listing persons", status=503)))

    with pytest.raises(CRMError):
        reconcile(half_listing, page_size=1)

    assert facts.read_watermark(evidence_database) == watermark
    assert [entry.job_id for entry in intake.entries(db6, EVENTS)] == ["onboard-reconcile-41"]
    assert not read_last_run(db6)["ok"]


def test_a_scheduled_pass_leaves_persons_changed_just_now_to_the_next(sandbox, in_process, db6,
                                                                      evidence_database):
    person = sandbox.create_person("Just", "Now", email())

    summary = reconcile(in_process, settle=60, trigger="scheduled")

    assert (summary["listed"], summary["deferred"], summary["queued"]) == (1, 1, 0)
    assert facts.read_watermark(evidence_database) < created(sandbox, person)  # the next pass lists them again
    assert reconcile(in_process, trigger="manual")["queued_ids"] == [person]


def test_the_scheduled_job_skips_when_a_pass_just_ran_or_is_running(sandbox, in_process, db6):
    sandbox.create_person("Some", "One", email())
    first = scheduled_pass(in_process, interval_seconds=900)
    assert first["listed"] == 1
    calls = len(sandbox.calls())

    assert "finished" in scheduled_pass(in_process, interval_seconds=900)["skipped"]
    db6.delete(LAST_RUN_KEY)
    with db6.lock("connector:reconcile:lock", timeout=30):
        assert "another reconciliation pass" in scheduled_pass(in_process,
                                                               interval_seconds=900)["skipped"]
    assert len(sandbox.calls()) == calls  # the CRM was not asked again


# ---------------------------------------------------------------- scheduling with RQ's cron
def test_rq_cron_queues_the_scheduled_pass_and_a_worker_onboards(sandbox, env6, db6,
                                                                 evidence_database, ledger):
    person = sandbox.create_person("Cron", "Job", email())
    lapsing = sandbox.create_person("Lapsing", "Consent", email())
    consent_given_days_ago(sandbox, evidence_database, lapsing, 710)  # due for renewal
    cron = start_reconcile_cron(Settings.from_env(env6), interval_minutes=15, settle=0)
    try:
        wait_for(lambda: Queue(ONBOARDING, connection=db6).count, timeout=15,
                 what="the cron scheduler to queue a pass")
        jobs = [job for s in CronScheduler.all(db6) for job in s.get_jobs()]
        assert [(job.name, job.interval) for job in jobs] == [("reconcile", 900),
                                                              ("erasures", 3600),
                                                              ("expiry", 6 * 3600)]
    finally:
        stop_reconcile_cron(cron)
    assert not cron.is_alive()
    (job,) = Queue(ONBOARDING, connection=db6).jobs
    assert job.func_name == "workers.reconcile.scheduled_reconcile"
    (erasures,) = Queue(HISTORY, connection=db6).jobs
    assert erasures.func_name == "workers.reconcile.scheduled_erasures"
    (expiry,) = Queue(BACKFILL_QUEUE, connection=db6).jobs
    assert expiry.func_name == "workers.expiry.scheduled_expiry"

    drain(env6)

    assert erasures.get_status(refresh=True) == "finished"
    assert erasures.return_value() == {"persons": 0, "entries": 0}
    assert expiry.get_status(refresh=True) == "finished"
    assert {key: expiry.return_value()[key] for key in ("remind", "withdraw", "queued")} == {
        "remind": 1, "withdraw": 0, "queued": 1}
    assert sorted(entry["mail"] for entry in ledger.entries(lapsing)
                  if entry["action"] == "mail.sent") == ["confirmation", "re-permission"]
    assert set(sandbox.consents(person)) == {"STORE"}
    assert read_last_run(db6)["trigger"] == "scheduled"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_the_cron_process_stops_when_its_worker_is_killed(env6):
    # A stand-in for the worker command: logging configured (to stderr, as the worker does),
    # the cron process started, its pid on stdout.
    starter = subprocess.Popen(
        [sys.executable, "-c",
         "import logging, os, sys, time\n"
         "logging.basicConfig(stream=sys.stderr)\n"
         "from connector.settings import Settings\n"
         "from workers.reconcile import start_reconcile_cron\n"
         "cron = start_reconcile_cron(Settings.from_env(os.environ), 15)\n"
         "print(cron.pid, flush=True)\n"
         "time.sleep(60)\n"],
        env={**os.environ, **env6}, cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True)
    cron_pid = None
    try:
        cron_pid = int(starter.stdout.readline())
        assert _alive(cron_pid)

        starter.send_signal(signal.SIGKILL)
        starter.wait(10)

        wait_for(lambda: not _alive(cron_pid), timeout=30, what="the orphaned cron process to stop")
    finally:  # this test's own processes, left over when it fails
        if starter.poll() is None:
            starter.kill()
            starter.wait(10)
        if cron_pid is not None and _alive(cron_pid):
            os.kill(cron_pid, signal.SIGKILL)
        starter.stdout.close()


# ---------------------------------------------------------------- status
class Receiver:
    """A webhook target: 200 to SuperOffice's registration test, ``status`` to events."""

    def __init__(self, status: int):
        self.status = status
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks/superoffice"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def __call__(self, environ, start_response):
        is_test = Request(environ).headers.get("X-Hook-Test") == "true"
        return Response("{}", status=200 if is_test else self.status)(environ, start_response)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fast_crm():
    """A sandbox of its own whose webhook retries do not wait (nine failed cycles take
    moments, not 45 s)."""
    app = create_sandbox_app(TENANT, {CONNECTOR_TOKEN: CONNECTOR_ASSOCIATE,
                                      USER_TOKEN: USER_ASSOCIATE}, retry_delays=(0, 0))
    server, base = run_in_thread(app)
    failing, healthy = Receiver(503), Receiver(200)
    yield app, SandboxClient(base), failing, healthy
    failing.close()
    healthy.close()
    stop_server(server)


def register(crm: SandboxClient, name: str, receiver: Receiver, events=("person.created",)):
    response = crm.call("POST", "Webhook", json={
        "Name": name, "Events": list(events), "TargetUrl": receiver.url, "Secret": "s3cret-x",
        "State": "Active", "Type": "webhook"})
    assert response.status_code == 200, response.text
    return response.json()["WebhookId"]


def test_status_shows_a_webhook_in_too_many_errors_and_the_last_pass(fast_crm, env6):
    app, crm, failing, healthy = fast_crm
    broken = register(crm, "consent-connector", failing)
    for i in range(9):  # nine failed deliveries in a row: SuperOffice gives up
        crm.create_person("Lost", f"Event{i}")
        assert app.extensions["sandbox"]["dispatcher"].wait_idle(10)
    working = register(crm, "consent-connector (new)", healthy)
    register(crm, "other app", healthy, events=("contact.created",))
    env = fixed_crm(env6, crm.api_url)
    # the persons whose events were lost:
    assert reconcile(build_services(Settings.from_env(env)))["queued"] == 9

    result = cli(env, "status")

    # no worker runs here: status says so in its exit code (1, issue 15), the webhooks are fine
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert out.rstrip().splitlines()[-1] == "status: needs attention: no worker is alive"
    assert f"#{broken} 'consent-connector': TooManyErrors → {failing.url}" in out
    assert "gave up on it after 9 failed deliveries in a row" in out
    assert f"PATCH {crm.api_url}/Webhook/{broken} with {{\"State\": \"Active\"}}" in out
    assert f"#{working} 'consent-connector (new)': Active → {healthy.url}" in out
    assert "1 other webhook(s) not sending person.created not shown" in out
    assert "s3cret" not in out
    assert "9 listed, 9 queued for onboarding, 0 already onboarded" in out


def test_status_still_reports_the_reconciliation_when_the_crm_is_unreachable(env6, db6):
    env = fixed_crm(env6, f"http://127.0.0.1:{free_port()}/{TENANT}/api/v1")

    result = cli(env, "status")

    assert result.returncode == 1, result.stderr  # no worker, and the CRM cannot be asked
    assert result.stdout.rstrip().splitlines()[-1] == (
        "status: needs attention: no worker is alive; the CRM's webhooks cannot be read")
    assert "could not read the webhooks: CRM unreachable" in result.stdout
    assert "last pass   none yet" in result.stdout and "watermark   none yet" in result.stdout
    assert "no worker is scheduling passes" in result.stdout
