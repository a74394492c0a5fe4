"""Chaos: 100 persons created in the CRM while a worker is killed in the middle of a job (and
started again, as the process manager does), Redis restarts and the mail server goes away,
with the web process and two workers as the Procfile runs them.

Every event the web process accepted (answered 200) is processed: each person has their
consent, written once, and their confirmation mail, sent once; every job is done or failed
with a reason support can read. Marked ``chaos``; ``make test`` and CI run it.
"""

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis
import requests
from aiosmtpd.controller import Controller
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry

from connector.intake import waiting
from connector.keys import QUEUE_NAMES
from connector.redis_connection import ensure_embedded_server, stop_embedded_server
from tests.conftest import (ROOT, WEBHOOK_SECRETS, MailSink, free_port, start_worker,
                            stop_worker, wait_for)

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

PERSONS = 100


class MailServer:
    """An SMTP server on a fixed port that the test stops and starts again."""

    def __init__(self):
        self.sink = MailSink()
        self.port = free_port()
        self.controller = None
        self.start()

    def start(self):
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        self.controller.stop()


@pytest.fixture
def system(sandbox, connector_env, tmp_path):
    """Redis of its own (append-only), a mail server, the Procfile's web process and two
    workers, and the sandbox's webhook pointing at the web process."""
    redis_dir = tmp_path / "redis"
    url = ensure_embedded_server(redis_dir)
    mail = MailServer()
    port = free_port()
    env = connector_env | {"REDIS_URL": url, "DATA_DIR": str(tmp_path), "PORT": str(port),
                           "SMTP_URL": f"smtp://127.0.0.1:{mail.port}",
                           "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                           "RETRY_INTERVALS": "1,2,3,5,8,13", "WORKER_MAINTENANCE_INTERVAL": "5"}
    command = next(line.split(" ", 1)[1] for line in (ROOT / "Procfile").read_text().splitlines()
                   if line.startswith("web:"))
    web = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=ROOT,
                           stdout=open(tmp_path / "web.log", "w"), stderr=subprocess.STDOUT,
                           env={**os.environ, **env,
                                "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"})
    web_url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(web_url + "/healthz"), timeout=30, what="the web process")
    hook = sandbox.call("POST", "Webhook", json={
        "Name": "consent-connector", "Events": ["person.created"], "State": "Active",
        "TargetUrl": f"{web_url}/webhooks/superoffice", "Secret": WEBHOOK_SECRETS[0],
        "Type": "webhook"})
    assert hook.status_code == 200, hook.text
    workers = [start_worker(env) for _ in range(2)]
    wait_for(lambda: len(Worker.all(connection=redis.Redis.from_url(url))) == 2, timeout=60,
             what="both workers to start (a slow start must not leave none to kill)")
    yield redis_dir, url, mail, workers, env
    for process in workers:
        stop_worker(process)
    web.terminate()
    web.wait(15)
    mail.stop()
    stop_embedded_server(redis_dir)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def children(process) -> set[int]:
    return {int(pid) for pid in subprocess.run(["pgrep", "-P", str(process.pid)],
                                              capture_output=True, text=True).stdout.split()}


def kill_a_busy_worker(workers: list, url: str) -> bool:
    """SIGKILL a worker process in the middle of a job (with its scheduler child), as an out
    of memory kill would, and start another in its place, as the process manager would."""
    busy = {int(worker.pid) for worker in Worker.all(connection=redis.Redis.from_url(url))
            if worker.get_state() == "busy"}
    for process in workers:
        if process.pid in busy:
            for child in children(process):
                os.kill(child, signal.SIGKILL)
            process.kill()
            process.wait(10)
            return True
    return False


def test_killed_worker_redis_restart_and_smtp_outage_lose_nothing_and_repeat_nothing(
        sandbox, system):
    redis_dir, url, mail, workers, env = system
    emails = {}
    killed = False
    for n in range(PERSONS):
        email = f"chaos{n}@example.com"
        emails[sandbox.create_person(f"Chaos{n}", "Person", email)] = email
        if n == 20:
            mail.stop()  # the mail server goes away for a while
        if n in (30, 31, 32, 33, 34) and not killed:
            killed = kill_a_busy_worker(workers, url)
            if killed:
                workers.append(start_worker(env))
        if n == 50:
            stop_embedded_server(redis_dir)  # Redis restarts (append-only file kept)
            time.sleep(2)
            ensure_embedded_server(redis_dir)
        if n == 70:
            mail.start()
        time.sleep(0.05)
    assert killed, "no worker was busy to kill"

    deliveries = requests.get(f"{sandbox.base_url}/__sandbox/deliveries", timeout=10).json()
    accepted = {d["primary_key"] for d in deliveries
                if d["event"] == "person.created" and d["status"] == 200}
    assert len(accepted) >= PERSONS * 0.9, f"only {len(accepted)} of {PERSONS} accepted"
    connection = redis.Redis.from_url(url)

    def settled():
        queues = [Queue(name, connection=connection) for name in QUEUE_NAMES]
        return not any(waiting(connection).values()) and all(
            q.count == 0 and StartedJobRegistry(q.name, connection=connection).count == 0
            and q.scheduled_job_registry.count == 0 for q in queues)
    wait_for(settled, timeout=240, interval=1, what="every accepted event to be processed")

    failed = FailedJobRegistry("onboarding", connection=connection)
    assert failed.count == 0, [connection.hget(f"rq:job:{j}", "meta") for j in
                               failed.get_job_ids()]
    puts = Counter(call["path"] for call in sandbox.calls()
                   if call["method"] == "PUT" and call["path"].endswith("/Consent/STORE"))
    mails = Counter(mail.sink.recipients)
    for person_id in accepted:
        assert "STORE" in sandbox.consents(person_id), person_id
        assert puts[f"/Cust12345/api/v1/Person/{person_id}/Consent/STORE"] == 1, person_id
        assert mails[emails[person_id]] == 1, (person_id, mails[emails[person_id]])
