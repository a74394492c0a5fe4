"""Webhook delivery the way SuperOffice does it (docs/en/automation/webhook/dev/notification.md,
"Error Handling for Webhooks", in SuperOfficeDocs/superoffice-docs).

Per event and webhook, one *delivery cycle* runs in a background thread: up to three POSTs
(the second 1 s after the first, the third 4 s after that), all with the same EventId and
``X-SuperOffice-Retry`` 0, 1, 2. Only a **200** answer delivers the event ("If the HTTP request
fails to receive a 200 response for three attempts, the event … is discarded"); any other
answer, a 202 included, is a failed attempt. After **nine consecutive failed attempts** (three
events' cycles: "a total of 9 consecutive attempts") the webhook goes to State
"TooManyErrors" and stops firing until someone sets it Active again. 410 Gone stops the
webhook for good (State "Stopped"). A failed cycle's event is lost, as in SuperOffice.

Every attempt is written to the store's delivery log (``GET /__sandbox/deliveries``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import requests

from sandbox.store import Store, Webhook

USER_AGENT = "NetServer-Webhook/10.3"
#: Seconds to wait before the 2nd and the 3rd attempt of a cycle.
RETRY_DELAYS = (1.0, 4.0)
#: Consecutive failed attempts (deliveries) after which a webhook is set to TooManyErrors.
MAX_FAILED_ATTEMPTS = 9


def sign(secret: str, body: bytes) -> str:
    """Return SuperOffice's signature: base64(HMAC-SHA256(secret as UTF-8, raw body))."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_payload(hook: Webhook, *, event: str, primary_key: int, entity: str, tenant: str,
                  associate_id: int, changes: list[str], field_values: dict[str, Any]) -> dict:
    """Build the JSON body of one delivery cycle (a fresh EventId each time). A deletion's
    values come as ``Values``, the others' as ``FieldValues``
    (docs/en/automation/webhook/reference/person-events.md)."""
    values = "Values" if event.endswith(".deleted") else "FieldValues"
    return {
        "EventId": str(uuid.uuid4()),
        "Timestamp": _timestamp(),
        "Changes": list(changes),
        "Event": event,
        "PrimaryKey": primary_key,
        "Entity": entity,
        "ContextIdentifier": tenant,
        "ChangedByAssociateId": associate_id,
        "WebhookName": hook.name,
        values: dict(field_values),
    }


def _headers(hook: Webhook, event: str, event_id: str, body: bytes, retry: int) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-SuperOffice-Event": event,
        "X-SuperOffice-EventId": event_id,
        "X-SuperOffice-Retry": str(retry),
    }
    if hook.secret:
        headers["X-SuperOffice-Signature"] = sign(hook.secret, body)
    return headers


def send_test_event(hook: Webhook, tenant: str, timeout: float) -> str | None:
    """POST the registration test event; return None on 200, else the reason it failed."""
    payload = build_payload(hook, event="test", primary_key=0, entity="webhook", tenant=tenant,
                            associate_id=hook.registered_associate_id, changes=[], field_values={})
    body = json.dumps(payload).encode("utf-8")
    headers = _headers(hook, "test", payload["EventId"], body, 0)
    headers["X-Hook-Test"] = "true"
    try:
        response = requests.post(hook.target_url, data=body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        return f"Test call to {hook.target_url} failed: {exc.__class__.__name__}: {exc}"
    if response.status_code != 200:
        return f"Test call to {hook.target_url} answered HTTP {response.status_code}, expected 200"
    return None


class Dispatcher:
    """Fires webhook events in background threads and records each attempt.

    Args:
        store: the sandbox state (webhooks and delivery log).
        tenant: the ContextIdentifier put in every payload.
        retry_delays: pauses before the 2nd and 3rd attempt (tests pass zeros).
        timeout: seconds to wait for the receiver on each attempt.
    """

    def __init__(self, store: Store, tenant: str, retry_delays=RETRY_DELAYS, timeout: float = 10.0):
        self.store = store
        self.tenant = tenant
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self._busy = 0
        self._idle = threading.Condition()

    def fire(self, event: str, *, primary_key: int, associate_id: int, changes: list[str],
             field_values: dict[str, Any], entity: str = "person") -> int:
        """Start one delivery cycle per active webhook subscribed to ``event``; return how many."""
        hooks = self.store.webhooks_for(event)
        for hook in hooks:
            payload = build_payload(hook, event=event, primary_key=primary_key, entity=entity,
                                    tenant=self.tenant, associate_id=associate_id,
                                    changes=changes, field_values=field_values)
            with self._idle:
                self._busy += 1
            threading.Thread(target=self._cycle, args=(hook, payload), daemon=True,
                             name=f"webhook-{hook.webhook_id}-{event}").start()
        return len(hooks)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no delivery cycle is running; return False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def _cycle(self, hook: Webhook, payload: dict) -> None:
        try:
            self._deliver(hook, payload)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _deliver(self, hook: Webhook, payload: dict) -> None:
        body = json.dumps(payload).encode("utf-8")
        attempts = 1 + len(self.retry_delays)
        for retry in range(attempts):
            if retry:
                time.sleep(self.retry_delays[retry - 1])
            if hook.state != "Active":  # stopped meanwhile (410 elsewhere, or by a user)
                return
            status, error = self._post(hook, payload, body, retry)
            with self.store.lock:
                if status == 200:
                    hook.failed_attempts = 0
                    return
                if status == 410:
                    hook.state = "Stopped"
                    return
                hook.failed_attempts += 1
                if hook.failed_attempts >= MAX_FAILED_ATTEMPTS and hook.state == "Active":
                    hook.state = "TooManyErrors"

    def _post(self, hook: Webhook, payload: dict, body: bytes, retry: int):
        headers = _headers(hook, payload["Event"], payload["EventId"], body, retry)
        status, error = None, None
        started = time.time()
        try:
            response = requests.post(hook.target_url, data=body, headers=headers, timeout=self.timeout)
            status = response.status_code
        except requests.RequestException as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        self.store.log_delivery({
            "webhook_id": hook.webhook_id,
            "webhook_name": hook.name,
            "event": payload["Event"],
            "event_id": payload["EventId"],
            "primary_key": payload["PrimaryKey"],
            "attempt": retry,
            "status": status,
            "error": error,
            "time": started,
            "at": datetime.fromtimestamp(started, timezone.utc).isoformat(),
        })
        return status, error
