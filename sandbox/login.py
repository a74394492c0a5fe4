"""The system user flow of SuperOffice Online: signed system user token in, JWT with a ticket out.

docs/en/api/authentication/online/auth-application/ (SuperOfficeDocs/superoffice-docs):

* sign-system-user-token.md — the app sends ``<system user token>.<UTC yyyyMMddHHmm>.<base64
  signature>``, the signature RSA/SHA-256 over the first two parts, made with the app's
  private key;
* get-system-user-ticket.md — ``POST /Login/api/PartnerSystemUser/Authenticate`` with
  SignedSystemToken, ApplicationToken (the client secret), ContextIdentifier and
  ReturnTokenType; the answer carries IsSuccessful, Token (a JWT) and ErrorMessage;
* index.md — the JWT's ``ticket`` claim is used as ``Authorization: SOTicket <ticket>`` with
  ``SO-AppToken: <client secret>``; the ticket "is valid for 6 hours, with a sliding
  expiration each time it is used".

:class:`SystemUserLogin` holds the registered system users, the tickets it issued, the
revocations and the sign-in log; ``sandbox.server`` puts it behind HTTP.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.keys import SandboxKeys

#: Issuer of system user tokens (validate-security-tokens.md, "Validation parameters").
ISSUER = "SuperOffice AS"
#: The sandbox tenant's database serial; the JWT's audience is ``spn:<serial>``.
SERIAL = "1801550193"
CLAIM_PREFIX = "http://schemes.superoffice.net/identity/"
#: Seconds a sign-in's JWT is valid.
JWT_LIFETIME = 300
#: Default ticket lifetime: 6 hours (auth-application/index.md).
TICKET_TTL = 6 * 3600
#: How far the signed token's timestamp may be from now.
TIMESTAMP_WINDOW = timedelta(minutes=10)
TIMESTAMP_FORMAT = "%Y%m%d%H%M"
NETSERVER_SERVICES = "Services88"


class SignInRefused(Exception):
    """A sign-in attempt was refused; the message is the answer's ErrorMessage."""


@dataclass
class Ticket:
    """A system user ticket the sandbox issued and when it lapses."""

    value: str
    system_token: str
    associate_id: int
    expires: float


def split_signed_token(signed: str) -> tuple[str, str, str]:
    """Split ``<token>.<yyyyMMddHHmm>.<signature>`` from the right (the token may hold dots).

    Raises:
        SignInRefused: the value does not have the three parts.
    """
    parts = signed.rsplit(".", 2) if isinstance(signed, str) else []
    if len(parts) != 3 or not all(parts):
        raise SignInRefused("SignedSystemToken must be '<system user token>.<yyyyMMddHHmm>.<signature>'")
    return parts[0], parts[1], parts[2]


def check_timestamp(stamp: str, now: datetime) -> None:
    """Accept a signing time (UTC ``yyyyMMddHHmm``) within :data:`TIMESTAMP_WINDOW` of ``now``.

    SuperOffice documents no window for the signed token's timestamp; the sandbox picks ten
    minutes either way, so a stale or future-dated signature is refused.

    Raises:
        SignInRefused: the timestamp does not parse or is too far from now.
    """
    unreadable = SignInRefused(f"The timestamp '{stamp}' in SignedSystemToken is not UTC yyyyMMddHHmm")
    if len(stamp) != 12 or not stamp.isdigit():
        raise unreadable
    try:
        signed_at = datetime.strptime(stamp, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise unreadable from None
    if abs(now - signed_at) > TIMESTAMP_WINDOW:
        raise SignInRefused(f"The timestamp '{stamp}' in SignedSystemToken is more than "
                            f"{int(TIMESTAMP_WINDOW.total_seconds() // 60)} minutes from now (UTC)")


def check_signature(public_key: rsa.RSAPublicKey, system_token: str, stamp: str, signature: str) -> None:
    """Verify the RSA PKCS#1 v1.5 SHA-256 signature over ``<system_token>.<stamp>`` (UTF-8).

    Raises:
        SignInRefused: the signature is not base64 or does not verify with the app's key.
    """
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignInRefused("The signature in SignedSystemToken is not base64") from None
    try:
        public_key.verify(raw, f"{system_token}.{stamp}".encode("utf-8"), padding.PKCS1v15(),
                          hashes.SHA256())
    except InvalidSignature:
        raise SignInRefused("The signature in SignedSystemToken does not verify with the "
                            "application's public key") from None


def system_user_claims(*, ticket: str, tenant: str, endpoint: str, associate_id: int,
                       system_token: str, issued: int) -> dict[str, Any]:
    """Return the claims of a system user JWT (validate-security-tokens.md's claim table)."""
    claims = {"iss": ISSUER, "aud": f"spn:{SERIAL}", "iat": issued, "nbf": issued,
              "exp": issued + JWT_LIFETIME}
    custom = {"ticket": ticket, "ctx": tenant, "serial": SERIAL,
              "webapi_url": f"{endpoint}/api/",
              "netserver_url": f"{endpoint}/Remote/{NETSERVER_SERVICES}/",
              "associateid": str(associate_id), "system_token": system_token,
              "is_administrator": "False"}
    claims.update({CLAIM_PREFIX + name: value for name, value in custom.items()})
    return claims


def new_ticket_value() -> str:
    """Return a fresh random ticket in SuperOffice's ``7T:`` form."""
    return "7T:" + secrets.token_urlsafe(32)


class SystemUserLogin:
    """The sandbox's PartnerSystemUser service and its ticket book.

    Args:
        tenant: the context identifier a sign-in must name.
        keys: the app's public key (verifies signatures) and the token-signing key.
        system_users: system user token → the system user's associate id.
        client_secret: the app's client secret (ApplicationToken, SO-AppToken).
        ticket_ttl: seconds a ticket lives after issue or, when sliding, after its last use.
        ticket_sliding: every accepted call moves the ticket's expiry to now + ttl.
    """

    def __init__(self, tenant: str, keys: SandboxKeys, system_users: dict[str, int],
                 client_secret: str, ticket_ttl: float = TICKET_TTL, ticket_sliding: bool = True):
        self.tenant = tenant
        self.keys = keys
        self.system_users = dict(system_users)
        self.client_secret = client_secret
        self.ticket_ttl = ticket_ttl
        self.ticket_sliding = ticket_sliding
        self.lock = threading.RLock()
        self.tickets: dict[str, Ticket] = {}
        self.reset()

    def reset(self) -> None:
        """Forget revocations and the sign-in log. System users, keys and the tickets issued
        stay: resetting the CRM's data does not sign the apps out (a revocation has already
        made its system user's tickets lapse)."""
        with self.lock:
            self.revoked: set[str] = set()
            self.sign_ins: list[dict[str, Any]] = []

    # -- sign-in --------------------------------------------------------
    def authenticate(self, body: dict[str, Any], endpoint: str) -> str:
        """Check one Authenticate request; return the signed JWT, log the attempt.

        Raises:
            SignInRefused: the request is refused; the message says why.
        """
        try:
            token = self._authenticate(body, endpoint)
        except SignInRefused as refused:
            self._log(False, str(refused))
            raise
        self._log(True, None)
        return token

    def _authenticate(self, body: dict[str, Any], endpoint: str) -> str:
        if body.get("ContextIdentifier") != self.tenant:
            raise SignInRefused(f"Unknown ContextIdentifier '{body.get('ContextIdentifier')}'")
        if not self.is_client_secret(str(body.get("ApplicationToken") or "")):
            raise SignInRefused("ApplicationToken is not this application's client secret")
        if str(body.get("ReturnTokenType") or "").upper() != "JWT":
            raise SignInRefused("ReturnTokenType must be 'JWT'")
        system_token, stamp, signature = split_signed_token(body.get("SignedSystemToken"))
        associate_id = self.system_users.get(system_token)
        if associate_id is None:
            raise SignInRefused("Unknown system user token")
        with self.lock:
            if system_token in self.revoked:
                raise SignInRefused("The system user token has been revoked")
        check_timestamp(stamp, datetime.now(timezone.utc))
        check_signature(self.keys.app_public_key, system_token, stamp, signature)
        ticket = self._issue(system_token, associate_id)
        claims = system_user_claims(ticket=ticket.value, tenant=self.tenant, endpoint=endpoint,
                                    associate_id=associate_id, system_token=system_token,
                                    issued=int(time.time()))
        return jwt.encode(claims, self.keys.token_signing_key, algorithm="RS256",
                          headers={"kid": self.keys.kid})

    def is_client_secret(self, value: str) -> bool:
        """Tell whether ``value`` is the app's client secret (compared in constant time)."""
        return secrets.compare_digest(value.encode("utf-8"), self.client_secret.encode("utf-8"))

    def _issue(self, system_token: str, associate_id: int) -> Ticket:
        ticket = Ticket(new_ticket_value(), system_token, associate_id, time.time() + self.ticket_ttl)
        with self.lock:
            self.tickets[ticket.value] = ticket
        return ticket

    def _log(self, successful: bool, error: str | None) -> None:
        with self.lock:
            self.sign_ins.append({"time": time.time(), "successful": successful, "error": error})

    # -- tickets --------------------------------------------------------
    def is_ticket(self, credential: str) -> bool:
        """Tell whether ``credential`` is a ticket this service issued (lapsed or not)."""
        with self.lock:
            return credential in self.tickets

    def accept_ticket(self, credential: str) -> int | None:
        """Return the associate id of an issued, unexpired ticket (sliding its expiry), else None."""
        now = time.time()
        with self.lock:
            ticket = self.tickets.get(credential)
            if ticket is None or ticket.expires <= now:
                return None
            if self.ticket_sliding:
                ticket.expires = now + self.ticket_ttl
            return ticket.associate_id

    def expire_tickets(self) -> int:
        """Let every issued ticket lapse now; return how many there are."""
        now = time.time()
        with self.lock:
            for ticket in self.tickets.values():
                ticket.expires = now
            return len(self.tickets)

    def revoke(self, system_token: str | None = None) -> list[str]:
        """Revoke one system user (default: all): its sign-ins are refused, its tickets lapse.

        Raises:
            KeyError: ``system_token`` is not a registered system user.
        """
        if system_token is not None and system_token not in self.system_users:
            raise KeyError(system_token)
        tokens = [system_token] if system_token is not None else list(self.system_users)
        now = time.time()
        with self.lock:
            self.revoked.update(tokens)
            for ticket in self.tickets.values():
                if ticket.system_token in tokens:
                    ticket.expires = min(ticket.expires, now)
        return tokens

    def sign_in_log(self) -> list[dict[str, Any]]:
        """Return a copy of the sign-in log."""
        with self.lock:
            return [dict(entry) for entry in self.sign_ins]
