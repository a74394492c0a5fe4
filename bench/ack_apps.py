"""The two anchor receivers of bench/ack_bench.py, served by gunicorn as the project is:

    gunicorn ... 'bench.ack_apps:bare_app()'
    gunicorn ... 'bench.ack_apps:naive_app()'      # needs REDIS_URL, SUPEROFFICE_WEBHOOK_SECRET

``bare_app``: POST /webhooks/superoffice answers 202 without reading the request: what
gunicorn's sync workers and Flask cost by themselves.

``naive_app``: the plainest receiver that does the job: read the body, check the signature
(``connector.superoffice.webhook.verify_signature``, every secret of the comma-separated
SUPEROFFICE_WEBHOOK_SECRET), parse the JSON and queue one RQ job whose id is the EventId, then
answer 200 with a small JSON body like the project's. Its Redis client is made once per
process (as any Flask app would); the RQ queue object per request. No dedupe, no metrics,
no logging, no schema validation.
"""

import json
import os

import redis
import rq
from flask import Flask, jsonify, request

from connector.exceptions import SignatureError
from connector.superoffice.webhook import SIGNATURE_HEADER, verify_signature

PATH = "/webhooks/superoffice"


def bare_app() -> Flask:
    """Flask answering 202 to POST /webhooks/superoffice, reading nothing."""
    app = Flask(__name__)

    @app.post(PATH)
    def receive():
        return "", 202

    return app


def naive_app() -> Flask:
    """Flask verifying, parsing and queueing each webhook with RQ (see the module docstring)."""
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    secrets = [secret.strip() for secret in os.environ["SUPEROFFICE_WEBHOOK_SECRET"].split(",")]
    app = Flask(__name__)

    @app.post(PATH)
    def receive():
        body = request.get_data()
        try:
            verify_signature(body, request.headers.get(SIGNATURE_HEADER), secrets)
        except SignatureError:
            return jsonify(error="bad_signature"), 401
        payload = json.loads(body)
        person_id, event_id = payload["PrimaryKey"], payload["EventId"]
        rq.Queue("onboarding", connection=connection).enqueue(
            "workers.jobs.onboard_person", person_id, event_id, job_id=event_id)
        return jsonify(status="queued", event_id=event_id), 200

    return app
