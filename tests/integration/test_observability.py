"""Watching it run, against the session's real Redis: /metrics adds up what every process
counted and reads queue depths from RQ, a Redis outage never turns a metric into an error,
/healthz and /readyz, and gunicorn's own log lines as redacted JSON."""

import hashlib
import json
import shutil
import subprocess
import sys
from datetime import timedelta

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
import requests
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rq import Callback, Queue, SimpleWorker, Worker, get_current_job

from connector import metrics
from connector.evidence.database import Database
from connector.redis_connection import ensure_embedded_server, stop_embedded_server
from connector.web.context import EXTENSION
from connector.web.app import create_app
from connector.logs import GUNICORN_ACCESS_LOG_FORMAT
from connector.settings import Settings
from connector.support.jobs import decide_workers_alive
from connector.times import now
from tests.conftest import ROOT, free_port, new_event_id, start_worker, stop_worker, wait_for
from connector.keys import HISTORY, ONBOARDING, PREFERENCES
from connector.queueing import enqueue_event

pytestmark = pytest.mark.integration


@pytest.fixture
def db8(redis_url, redis_conn):
    """Database 8 of the session's Redis (redis_conn has emptied every database): no worker
    listens there, so queued jobs stay queued."""
    return redis.Redis.from_url(f"{redis_url}?db=8")


@pytest.fixture
def client(settings, db8):
    return create_app(settings, connection=db8).test_client()


@pytest.fixture
def dead_redis():
    """A client of a Redis that is not there: every command raises ConnectionError (at once:
    redis-py's default retries with backoff would only make the test slow)."""
    return redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1,
                       socket_timeout=1, retry=Retry(NoBackoff(), 0))


class Scrape(dict):
    """One GET /metrics, parsed: ``scrape.value(sample_name, **labels)``."""

    def value(self, name: str, **labels: str) -> float:
        return self[(name, tuple(sorted(labels.items())))]


def scrape(client) -> Scrape:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def parse(text: str) -> Scrape:
    return Scrape({(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                   for family in text_string_to_metric_families(text)
                   for sample in family.samples})


def depth(scraped: Scrape, queue: str, state: str) -> float:
    return scraped.value("connector_queue_jobs", queue=queue, state=state)


def test_metrics_add_up_what_every_process_counted(client, db8, redis_url):
    metrics.count_webhook(db8, "received")
    metrics.count_webhook(db8, "queued")
    metrics.count_job(db8, "onboarding", "retried")
    metrics.observe_crm_call(db8, "GET", 200, 0.12)
    metrics.observe_crm_call(db8, "PUT", None, 3.2)
    metrics.count_mail(db8, "sent")
    # Another process, with its own connection, counts into the same figures.
    other = ("import redis; from connector import metrics as m; "
             f"c = redis.Redis.from_url({redis_url + '?db=8'!r}); "
             "m.count_webhook(c, 'received'); m.count_job(c, 'onboarding', 'retried'); "
             "m.observe_crm_call(c, 'GET', 200, 0.4); m.count_mail(c, 'failed')")
    subprocess.run([sys.executable, "-c", other], cwd=ROOT, check=True, timeout=60)

    scraped = scrape(client)
    assert scraped.value("connector_webhooks_total", outcome="received") == 2
    assert scraped.value("connector_webhooks_total", outcome="queued") == 1
    assert scraped.value("connector_webhooks_total", outcome="rejected_signature") == 0
    assert scraped.value("connector_jobs_total", step="onboarding", outcome="retried") == 2
    assert scraped.value("connector_crm_requests_total", method="GET", status="200") == 2
    assert scraped.value("connector_crm_requests_total", method="PUT", status="error") == 1
    seconds = "connector_crm_request_seconds"
    assert scraped.value(f"{seconds}_count", method="GET") == 2
    assert scraped.value(f"{seconds}_sum", method="GET") == pytest.approx(0.52)
    assert scraped.value(f"{seconds}_bucket", method="GET", le="0.25") == 1
    assert scraped.value(f"{seconds}_bucket", method="GET", le="0.5") == 2
    assert scraped.value(f"{seconds}_bucket", method="PUT", le="2.5") == 0
    assert scraped.value(f"{seconds}_bucket", method="PUT", le="5.0") == 1
    assert scraped.value("connector_mails_total", outcome="sent") == 1
    assert scraped.value("connector_mails_total", outcome="failed") == 1
    assert all(key.startswith(b"connector:metrics:") for key in db8.keys("connector:*"))


def test_a_jobs_counts_are_held_and_sent_together_when_it_ends(client, db8):
    with metrics.counted_together(db8):
        metrics.observe_crm_call(db8, "GET", 200, 0.1)
        metrics.observe_crm_call(db8, "PUT", 204, 0.1)
        metrics.count_mail(db8, "sent")
        metrics.count_job(db8, "onboarding", "succeeded")
        assert not db8.keys("connector:metrics:*")  # held, nothing sent yet
    scraped = scrape(client)

    assert scraped.value("connector_crm_requests_total", method="PUT", status="204") == 1
    assert scraped.value("connector_mails_total", outcome="sent") == 1
    assert scraped.value("connector_jobs_total", step="onboarding", outcome="succeeded") == 1
    metrics.count_mail(db8, "sent")  # outside the block: at once
    assert scrape(client).value("connector_mails_total", outcome="sent") == 2


def explode():
    raise RuntimeError("boom")


def started_right_now() -> float:
    """A job that scrapes while it runs: how many jobs its own queue has in state started."""
    job = get_current_job()
    scraped = parse(generate_latest(metrics.RedisCollector(job.connection)).decode())
    return depth(scraped, job.origin, "started")


def test_queue_depths_and_workers_are_read_live_from_rq(client, db8, settings):
    before = scrape(client)
    assert depth(before, ONBOARDING, "queued") == 0
    assert before.value("connector_workers") == 0

    for person_id in (1, 2, 3):
        enqueue_event(db8, settings, "onboard", person_id, new_event_id())
    Queue(PREFERENCES, connection=db8).enqueue_in(timedelta(hours=1), explode)
    history = Queue(HISTORY, connection=db8)
    history.enqueue(explode)
    peek = history.enqueue(started_right_now, meta={"step": "history"},
                           on_success=Callback(metrics.job_succeeded))
    SimpleWorker([history], connection=db8).work(burst=True)

    scraped = scrape(client)
    assert depth(scraped, ONBOARDING, "queued") == 3
    assert depth(scraped, PREFERENCES, "scheduled") == 1
    assert depth(scraped, PREFERENCES, "queued") == 0
    assert depth(scraped, HISTORY, "failed") == 1
    assert depth(scraped, HISTORY, "queued") == 0
    assert depth(scraped, HISTORY, "started") == 0
    assert peek.latest_result().return_value == 1  # it saw itself running
    assert scraped.value("connector_jobs_total", step="history", outcome="succeeded") == 1

    worker = Worker([ONBOARDING], connection=db8, name="observability-test")
    worker.register_birth()
    try:
        assert scrape(client).value("connector_workers") == 1
    finally:
        worker.register_death()
    assert scrape(client).value("connector_workers") == 0


def test_a_redis_outage_never_turns_a_metric_into_an_error(dead_redis, settings, monkeypatch):
    attempts = []
    pipeline = dead_redis.pipeline
    monkeypatch.setattr(dead_redis, "pipeline",
                        lambda *args, **kwargs: attempts.append(1) or pipeline(*args, **kwargs))
    assert metrics.count_webhook(dead_redis, "received") is None
    assert metrics.count_job(dead_redis, "onboarding", "failed") is None
    assert metrics.observe_crm_call(dead_redis, "GET", None, 10.0) is None
    assert metrics.crm_observer(dead_redis)("PUT", 503, 0.2) is None
    assert metrics.count_mail(dead_redis, "failed") is None
    job = type("Job", (), {"meta": {"step": "onboarding"}})()
    assert metrics.job_succeeded(job, dead_redis, None) is None
    # After the first failure the others do not wait for Redis again, for a few seconds.
    assert len(attempts) == 1

    client = create_app(settings, connection=dead_redis).test_client()
    scraped = client.get("/metrics")
    assert scraped.status_code == 503
    assert "redis unreachable" in scraped.text
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["redis"].startswith("unreachable")
    assert ready.json["config"] == "ok"


def test_an_outage_of_one_redis_does_not_silence_another(db8, client, dead_redis):
    metrics.count_webhook(dead_redis, "received")  # a quiet period for that pool only
    metrics.count_webhook(db8, "received")
    assert scrape(client).value("connector_webhooks_total", outcome="received") == 1


def test_readyz_names_the_config_version_in_force(tmp_path, connector_env, db8):
    config_file = tmp_path / "purposes.yaml"
    shutil.copy(ROOT / "config" / "purposes.yaml", config_file)
    settings = Settings.from_env(connector_env | {"CONSENT_CONFIG": str(config_file)})
    client = create_app(settings, connection=db8).test_client()
    version = hashlib.sha256(config_file.read_bytes()).hexdigest()[:12]

    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ok", "redis": "ok", "config": "ok", "database": "ok",
                          "config_version": version, "redis_durability": "ok"}

    text = config_file.read_text()
    config_file.write_text(text.replace("legal_basis: legitimate_interest",
                                        "legal_basis: legitimate_intrest", 1))
    refused = hashlib.sha256(config_file.read_bytes()).hexdigest()[:12]
    ready = client.get("/readyz")
    assert ready.status_code == 200  # the last good config still serves
    assert ready.json["config_version"] == version
    assert ready.json["config_file"] == (f"version {refused} on disk was refused (see the log); "
                                         f"{version} is in force")

    config_file.write_text(text.replace("{en: Sales and service,", "{en: Customer care,", 1))
    edited = hashlib.sha256(config_file.read_bytes()).hexdigest()[:12]
    ready = client.get("/readyz")
    assert ready.json["config_version"] == edited and "config_file" not in ready.json


def test_readyz_says_when_redis_may_lose_webhooks_and_fails_without_the_database(
        connector_env, tmp_path):
    folder = tmp_path / "redis"
    url = ensure_embedded_server(folder)
    try:
        careless = redis.Redis.from_url(url)
        careless.config_set("appendonly", "no")
        careless.config_set("save", "")
        careless.config_set("maxmemory-policy", "allkeys-lru")
        data = tmp_path / "data"
        env = connector_env | {"DATABASE_URL": f"sqlite:///{data}/consent.db"}
        Database(env["DATABASE_URL"]).upgrade()
        app = create_app(Settings.from_env(env), connection=careless)
        client = app.test_client()

        durability = client.get("/readyz")
        app.extensions[EXTENSION].database.dispose()
        shutil.rmtree(data)
        data.write_text("a file where the database's folder was")
        no_database = client.get("/readyz")
    finally:
        stop_embedded_server(folder)

    assert durability.status_code == 200  # it can work: the operator should fix Redis
    assert "allkeys-lru" in durability.json["redis_durability"]
    assert "appendonly yes" in durability.json["redis_durability"]
    assert no_database.status_code == 503
    assert no_database.json["database"] == "unreachable (OperationalError)"


def test_metrics_and_probes_need_no_credentials(client, connector_env, db8):
    settings = Settings.from_env(connector_env | {"ADMIN_TOKEN": "admin-token-0123456789"})
    client = create_app(settings, connection=db8).test_client()
    assert client.get("/metrics").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_gunicorn_logs_json_lines_without_tokens_or_addresses(connector_env, tmp_path):
    """The gunicorn.conf.py lines given for the Procfile, run for real."""
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(
        "from connector.logs import GUNICORN_ACCESS_LOG_FORMAT, gunicorn_logconfig\n"
        "logconfig_dict = gunicorn_logconfig()\n"
        "access_log_format = GUNICORN_ACCESS_LOG_FORMAT\n")
    port = free_port()
    stderr = tmp_path / "gunicorn.err"
    env = {**connector_env, "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin"}
    env.pop("LOG_FORMAT", None)
    with open(stderr, "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(conf), "--preload", "--workers", "1",
             "--no-control-socket",
             "--bind", f"127.0.0.1:{port}", "connector.web.app:create_app_from_env()"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    token = "eyJwIjoyLCJ0IjoiTVRORk1OcUgzTVFOIn0.awu1kg.eEMcZ4ZBx"
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/healthz"), timeout=30, what="gunicorn")
        status = requests.get(f"{base}/p/{token}", timeout=5,  # "This link is not valid"
                              headers={"User-Agent": "Agent/ada@example.com"}).status_code
        wait_for(lambda: token[:10] in stderr.read_text() or "/p/<token>" in stderr.read_text(),
                 timeout=10, what="the access line")
    finally:
        process.terminate()
        process.wait(20)

    text = stderr.read_text()
    records = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    assert token not in text and "ada@example.com" not in text and "127.0.0.1 -" not in text
    assert any(r["logger"] == "gunicorn.error" and "Listening at" in r["message"] for r in records)
    page = next(r for r in records if r["event"] == "http.request" and r["path"] == "/p/<token>")
    assert page["method"] == "GET" and page["status"] == status
    assert isinstance(page["duration_ms"], int)
    assert set(page) >= {"time", "level", "logger", "event", "message"}
    assert GUNICORN_ACCESS_LOG_FORMAT.startswith("http.request ")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_readyz_with_workers_needs_a_worker_with_a_recent_heartbeat(
        connector_env, tmp_path, client, db8):
    assert client.get("/readyz").status_code == 200  # without ?workers=1 workers do not count
    lonely = client.get("/readyz?workers=1")
    assert lonely.status_code == 503
    assert lonely.json["workers"].startswith("none has sent a heartbeat in 60 s")

    env = connector_env | {"REDIS_URL": f"{connector_env['REDIS_URL']}?db=8",
                           "DATA_DIR": str(tmp_path)}
    worker = start_worker(env)
    try:
        wait_for(lambda: client.get("/readyz?workers=1").status_code == 200,
                 what="the worker's heartbeat")
        assert client.get("/readyz?workers=1").json["workers"] == "1 alive"
    finally:
        stop_worker(worker)
    # A worker that stopped without deregistering (killed) still counts until its heartbeat
    # is a minute old: the decision is on the heartbeat, not on RQ's list.
    assert decide_workers_alive([now() - timedelta(seconds=61), None], now(), 60) == 0
    assert decide_workers_alive([now() - timedelta(seconds=5)], now(), 60) == 1
