"""SuperOffice webhooks: signature, payload schema and the events the connector acts on.

Signature: base64(HMAC-SHA256(key = secret as UTF-8, message = raw body)), no prefix, in
X-SuperOffice-Signature, only when the webhook has a secret.
https://github.com/SuperOfficeDocs/superoffice-docs/blob/main/docs/api/webhooks/security.md
"""

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from marshmallow import EXCLUDE, Schema, fields, validate

from connector.exceptions import SignatureError

SIGNATURE_HEADER = "X-SuperOffice-Signature"
TEST_HEADER = "X-Hook-Test"
PERSON_CREATED = "person.created"
PERSON_CONSENTED = "person.consented"
PERSON_UNCONSENTED = "person.unconsented"
PERSON_DELETED = "person.deleted"
"""Fired when a person is deleted for good; ``person.softdeleted`` (moved to the recycle bin
in the user interface) is not acted on (docs/en/automation/webhook/reference/person-events.md)."""

MAX_ID = 2**31 - 1
"""SuperOffice's ids are 32-bit integers (its database's int columns): anything larger or
below 1 is not an id it sends."""


def sign(body: bytes, secret: str) -> str:
    """Return the X-SuperOffice-Signature value SuperOffice sends for ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(body: bytes, signature: str | None, secrets: Sequence[str]) -> None:
    """Check ``signature`` against every accepted secret (rotation), in constant time.

    Raises:
        SignatureError: the header is missing or matches none of the secrets.
    """
    if not signature:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    given = signature.strip().encode("ascii", "replace")
    matches = [hmac.compare_digest(sign(body, secret).encode("ascii"), given) for secret in secrets]
    if not any(matches):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body")


class WebhookEventSchema(Schema):
    """The JSON SuperOffice posts. Fields we do not use are ignored, so new ones do no harm."""

    class Meta:
        unknown = EXCLUDE

    EventId = fields.UUID(required=True)
    Event = fields.String(required=True)
    PrimaryKey = fields.Integer(required=True, strict=True,
                                validate=validate.Range(min=1, max=MAX_ID,
                                                        error="Must be a positive 32-bit id."))
    Entity = fields.String(load_default=None)
    Timestamp = fields.AwareDateTime(load_default=None, default_timezone=timezone.utc)
    ContextIdentifier = fields.String(load_default=None, allow_none=True)
    # 0 is how SuperOffice's carriers say "no associate"; the loop guard only compares it.
    ChangedByAssociateId = fields.Integer(load_default=None, allow_none=True, strict=True,
                                          validate=validate.Range(min=0, max=MAX_ID))
    WebhookName = fields.String(load_default=None, allow_none=True)
    Changes = fields.List(fields.String(), load_default=list)


_SCHEMA = WebhookEventSchema()
"""One schema for every request: marshmallow schemas are safe to share for ``load``, and
building one deep-copies its fields (half of what validating an event costs)."""


@dataclass(frozen=True)
class WebhookEvent:
    """An event from the CRM, reduced to what the connector needs (no personal data)."""

    event_id: str
    event: str
    primary_key: int
    changed_by_associate_id: int | None
    context: str | None
    timestamp: datetime | None
    """When SuperOffice sent it (aware, UTC), if it said."""


class MalformedBodyError(ValueError):
    """The body is not a JSON object."""


def parse_event(body: bytes) -> WebhookEvent:
    """Parse and validate a webhook body.

    Raises:
        MalformedBodyError: the body is not valid UTF-8 JSON object.
        marshmallow.ValidationError: the JSON does not have the fields SuperOffice sends;
            ``messages`` maps each bad field to what is wrong.
    """
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        # ValueError covers invalid JSON, bytes that are not UTF-8, and an integer longer than
        # Python's int-to-text limit (4,300 digits), which json.loads refuses too.
        raise MalformedBodyError(f"body is not valid JSON: {str(error)[:200]}") from None
    if not isinstance(payload, dict):
        raise MalformedBodyError("body must be a JSON object")
    data = _SCHEMA.load(payload)
    return WebhookEvent(
        event_id=str(data["EventId"]),
        event=data["Event"],
        primary_key=data["PrimaryKey"],
        changed_by_associate_id=data["ChangedByAssociateId"],
        context=data["ContextIdentifier"],
        timestamp=data["Timestamp"],
    )
