"""The web process as the Procfile runs it: a few clients that open a connection and send
nothing (or half a request) must not keep a signed webhook from its answer."""

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
import requests

from connector.superoffice.webhook import sign
from tests.conftest import ROOT, WEBHOOK_SECRETS, free_port, new_event_id, own_database, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def web(connector_env, tmp_path):
    """The Procfile's web command on a free port, on a Redis database of its own."""
    env, _ = own_database(connector_env, 15, DATA_DIR=str(tmp_path))
    port = free_port()
    command = next(line.split(" ", 1)[1] for line in (ROOT / "Procfile").read_text().splitlines()
                   if line.startswith("web:"))
    log = open(tmp_path / "web.log", "w")
    process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT,
                               env={**os.environ, **env, "PORT": str(port),
                                    "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"})
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url + "/healthz"), timeout=30, what="the web process")
    yield url
    process.terminate()
    process.wait(15)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_idle_and_half_sent_connections_do_not_hold_up_a_webhook(web):
    port = int(web.rsplit(":", 1)[1])
    idle = []
    for n in range(8):  # more than the Procfile's 2 workers, and than they have threads
        client = socket.create_connection(("127.0.0.1", port))
        if n % 2:
            client.sendall(b"POST /webhooks/superoffice HTTP/1.1\r\nHost: x\r\nContent-Length: 90\r\n")
        idle.append(client)
    time.sleep(0.5)
    body = json.dumps({"EventId": new_event_id(), "Event": "person.created", "PrimaryKey": 4711,
                       "ChangedByAssociateId": 7,
                       "Timestamp": datetime.now(timezone.utc).isoformat()}).encode()
    try:
        started = time.monotonic()
        response = requests.post(web + "/webhooks/superoffice", data=body, timeout=20, headers={
            "Content-Type": "application/json",
            "X-SuperOffice-Signature": sign(body, WEBHOOK_SECRETS[0])})
        waited = time.monotonic() - started
    finally:
        for client in idle:
            client.close()

    assert response.status_code == 200 and response.json()["status"] == "queued"
    # Sync workers kept it waiting past the 20 s timeout; a gthread worker holds a thread for a
    # silent connection at most 5 s, and has more threads than there are idle clients here.
    assert waited < 6, f"the webhook waited {waited:.1f} s behind idle connections"
