"""POST /webhooks/superoffice: verify, validate, drop what we do not act on, queue the rest.

Acts on person.created (onboarding), person.consented / person.unconsented (recording a
CRM user's change in the ledger) and person.deleted (scheduling the erasure of the identifying
proof in the person's ledger after LEDGER_ERASE_AFTER_DAYS). Answers (always JSON): 200 for every accepted event, the
body saying queued, duplicate, ignored (also for a stale one: older than WEBHOOK_MAX_AGE)
or test; 401 bad signature, 400 not JSON, 413 too large,
422 wrong fields, 503 (with Retry-After) when Redis cannot take it; 404 and 405 for other
paths and methods.

The receiver is a WSGI app of its own (``WebhookReceiver``), which connector.web.app mounts at
MOUNT beside the people's pages: SuperOffice's deliveries are signed machine requests, the
hottest path of the connector, so none of the pages' per-request work (Flask's contexts,
session, CSRF, rate limits, the CRM's priority for someone waiting) runs for them. Its
answer waits only for what must be done first: the signature, the fields, and the event
queued in one round trip to Redis (connector.intake); the log line of a queued event is
written later, by the worker that makes its job.

SuperOffice counts only a 200 as delivered: any other answer, a 202 included, is a failed
attempt, and nine failed attempts in a row switch the webhook off (TooManyErrors;
docs/en/automation/webhook/dev/notification.md, "Error Handling for Webhooks").
"""

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

import redis
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from connector import defaults, metrics
from connector.exceptions import SignatureError
from connector.intake import Entry
from connector.services import Services
from connector.superoffice.webhook import (PERSON_CONSENTED, PERSON_CREATED, PERSON_DELETED,
                                           PERSON_UNCONSENTED, SIGNATURE_HEADER, TEST_HEADER,
                                           InvalidEventError, MalformedBodyError, WebhookEvent,
                                           parse_event, verify_signature)
from connector.times import now

# What each event we act on becomes (a kind of connector.queueing.EVENT_JOBS): new persons
# are onboarded; consent changes made by CRM users are recorded in the ledger, so a person's
# history is complete; a deletion schedules the erasure of the identifying proof.
KIND_OF_EVENT = {
    PERSON_CREATED: "onboard",
    PERSON_CONSENTED: "crm-change",
    PERSON_UNCONSENTED: "crm-change",
    PERSON_DELETED: "deletion",
}

MOUNT = "/webhooks"
"""Where connector.web.app mounts the receiver: its paths are below it."""

SUPEROFFICE = "/superoffice"

ANSWER_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store"))
"""Sent with every answer (JSON for a machine: the pages' other security headers are about
documents in a browser)."""

log = logging.getLogger(__name__)


class WebhookRequest(Request):
    """A delivery: refused with 413 when larger than WEBHOOK_MAX_BYTES."""

    max_content_length = defaults.WEBHOOK_MAX_BYTES


@dataclass
class Answer:
    """A JSON answer, as a plain WSGI app: all an answer here needs, at a fraction of the cost
    of werkzeug's Response on the receiver's hot path."""

    status: int
    body: dict
    headers: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, environ, start_response):
        payload = json.dumps(self.body).encode()
        start_response(f"{self.status} {HTTP_STATUS_CODES[self.status]}",
                        [("Content-Type", "application/json"),
                         ("Content-Length", str(len(payload))), *ANSWER_HEADERS, *self.headers])
        return [payload]


class WebhookReceiver:
    """The WSGI app that receives SuperOffice's webhooks (mounted at MOUNT).

    Args:
        services: the process's services, shared with the pages' app.
    """

    def __init__(self, services: Services):
        self.services = services

    def __call__(self, environ, start_response):
        request = WebhookRequest(environ)
        try:
            response = self.dispatch(request)
        except HTTPException as error:  # 404, 405, 413
            response = _json(error.code, error=error.name.lower().replace(" ", "_"),
                             message=error.description)
            if isinstance(error, MethodNotAllowed):
                response.headers.append(("Allow", ", ".join(error.valid_methods)))
        except Exception:  # a defect: still a JSON answer, and the traceback in the log
            log.exception("webhook.failed")
            response = _json(500, error="internal_error",
                             message="the connector failed to take the event; see its log")
        return response(environ, start_response)

    def dispatch(self, request: WebhookRequest) -> Answer:
        """The answer to ``request``: only POST /superoffice is served."""
        if request.path != SUPEROFFICE:
            raise NotFound()
        if request.method != "POST":
            raise MethodNotAllowed(["POST"])
        return self.receive_superoffice(request)

    def receive_superoffice(self, request: WebhookRequest) -> Answer:
        """Accept one SuperOffice webhook. Every answer is counted by its outcome (/metrics)."""
        services = self.services
        try:
            body = request.get_data(cache=False)
        except HTTPException:
            metrics.count_webhook(services.redis, "received", "rejected_too_large")
            raise
        settings = services.settings
        try:
            verify_signature(body, request.headers.get(SIGNATURE_HEADER),
                             settings.webhook_secrets)
        except SignatureError as error:
            log.warning("webhook.rejected reason=bad_signature setting=SUPEROFFICE_WEBHOOK_SECRET")
            metrics.count_signature_rejection(services.redis)
            return self._answer(401, "rejected_signature", error="bad_signature",
                                message=f"{error}: the webhook must be registered with one of "
                                        f"the secrets in SUPEROFFICE_WEBHOOK_SECRET")

        if request.headers.get(TEST_HEADER, "").lower() == "true":
            return self._answer(200, "test", status="ok", message="test event received")

        try:
            event = parse_event(body)
        except MalformedBodyError as error:
            return self._answer(400, "rejected_json", error="malformed_json", message=str(error))
        except InvalidEventError as error:
            return self._answer(422, "rejected_schema", error="invalid_event",
                                message="the event lacks fields or has wrong values",
                                fields=error.messages)

        stale = decide_stale(event, now(), settings.webhook_max_age)
        if stale:
            log.warning("webhook.stale event_id=%s reason=%s", event.event_id, stale)
            return self._answer(200, "stale", status="ignored", event_id=event.event_id,
                                reason=stale)
        kind, ignored_because = decide_webhook(event, settings.associate_id)
        if kind is None:
            log.info("webhook.ignored event_id=%s reason=%s", event.event_id, ignored_because)
            return self._answer(200, "ignored", status="ignored", event_id=event.event_id,
                                reason=ignored_because)
        entry = Entry(kind, event.primary_key, event.event_id)
        try:
            queued = services.intake.accept(entry)  # counts the answer too: one round trip
        except redis.RedisError as error:
            log.error("webhook.unavailable event_id=%s error=%s", event.event_id,
                      type(error).__name__)
            response = self._answer(503, "unavailable", error="queue_unavailable",
                                    message="the event could not be queued; send it again later")
            response.headers.append(("Retry-After", str(defaults.REDIS_UNAVAILABLE_RETRY_AFTER)))
            return response
        if not queued:
            log.info("webhook.duplicate event_id=%s", event.event_id)
            return _json(200, status="duplicate", event_id=event.event_id,
                         message="this event was already queued")
        return _json(200, status="queued", event_id=event.event_id, job_id=entry.job_id)

    def _answer(self, http_status: int, outcome: str, **body) -> Answer:
        """A JSON answer; /metrics counts the request as received and as ``outcome``."""
        metrics.count_webhook(self.services.redis, "received", outcome)
        return _json(http_status, **body)


def decide_stale(event: WebhookEvent, at: datetime, max_age: int) -> str:
    """Why a signed event is too old to take ("" when it is not): sent more than ``max_age``
    seconds before ``at``. A signature never expires, so an old body could be replayed after
    its EventId left the dedupe window; the reconciliation finds whatever a late event was
    about. An event without a Timestamp, or from a clock ahead of ours, is taken."""
    if event.timestamp is None:
        return ""
    age = (at - event.timestamp).total_seconds()
    if age <= max_age:
        return ""
    return f"stale: sent {int(age)} s ago, more than WEBHOOK_MAX_AGE ({max_age} s)"


def decide_webhook(event: WebhookEvent, own_associate_id: int | None) -> tuple[str | None, str]:
    """What to do with a valid event: (the intake kind of its work, ""), or (None, why it is
    ignored): events the connector does not act on, and its own writes coming back
    (ChangedByAssociateId is SUPEROFFICE_ASSOCIATE_ID: the loop guard)."""
    kind = KIND_OF_EVENT.get(event.event)
    if kind is None:
        return None, f"{event.event} events are not acted on"
    if own_associate_id and event.changed_by_associate_id == own_associate_id:
        return None, "caused by the connector's own associate"
    return kind, ""


def _json(http_status: int, **body) -> Answer:
    return Answer(http_status, body)
