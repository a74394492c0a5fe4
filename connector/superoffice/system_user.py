"""Signing in to SuperOffice Online as the app's system user: one sign-in gives a ticket.

The flow (docs/en/api/authentication/online/auth-application/ in SuperOfficeDocs/
superoffice-docs; see docs/superoffice-notes.md):

1. Sign ``<system user token>.<UTC yyyyMMddHHmm>`` with the app's RSA private key, SHA-256
   and PKCS#1 v1.5, and append ``.`` and the base64 signature (sign-system-user-token.md).
2. POST it with the client secret and the tenant's context identifier to
   ``{login}/Login/api/PartnerSystemUser/Authenticate``, asking for a JWT
   (get-system-user-ticket.md). The answer is ``{IsSuccessful, Token, ErrorMessage}``.
3. Validate the JWT: RS256 signature by SuperOffice's certificate (a file, or the
   environment's published keys at ``{login}/login/.well-known/jwks``), issuer
   "SuperOffice AS", audience ``spn:<serial claim>``, expiry (validate-security-tokens.md).
4. Take the ticket and the tenant's API address from its claims.

Nothing here caches: ``connector.superoffice.credentials`` shares one ticket between every
process. Errors are ``SignInError``: permanent, naming the setting to fix, when SuperOffice
refused; transient while its login cannot be reached.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import jwt
import requests
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connector import JSON_HEADERS, defaults
from connector.crm.http import CRMSession
from connector.exceptions import SettingsError, SignInError
from connector.settings import SystemUser
from connector.times import now

log = logging.getLogger(__name__)

CLAIM = "http://schemes.superoffice.net/identity/"
"""Prefix of SuperOffice's own JWT claims (validate-security-tokens.md)."""

ISSUER = "SuperOffice AS"
"""Issuer of a system user JWT (validate-security-tokens.md, "Validation parameters")."""

AUTHENTICATE_PATH = "/Login/api/PartnerSystemUser/Authenticate"
JWKS_PATH = "/login/.well-known/jwks"

PRIVATE_KEY = "SUPEROFFICE_PRIVATE_KEY_FILE"
CERTIFICATE = "SUPEROFFICE_TOKEN_CERTIFICATE_FILE"


@dataclass(frozen=True)
class Ticket:
    """A system user ticket and what its JWT said about the tenant."""

    value: str
    api_url: str | None
    """The tenant's REST base (``…/api/v1``) from the ``webapi_url`` claim, if any."""

    def __repr__(self) -> str:  # never show the ticket
        return f"Ticket(api_url={self.api_url!r})"


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """Read the app's RSA private key: PEM (PKCS#1 or PKCS#8, unencrypted) or the RSA XML
    format SuperOffice's developer portal hands out (``<RSAKeyValue><Modulus>…``).

    Raises:
        SettingsError: naming SUPEROFFICE_PRIVATE_KEY_FILE, when it is unreadable or not an
            RSA private key.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SettingsError(PRIVATE_KEY, f"cannot read {str(path)!r}: {error.strerror}") from None
    text = data.lstrip()
    try:
        if text.startswith(b"<"):
            return rsa_key_from_xml(text)
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SettingsError(PRIVATE_KEY, f"{str(path)!r} is not an unencrypted RSA private key "
                                         f"in PEM or RSA XML format") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SettingsError(PRIVATE_KEY, f"{str(path)!r} holds a {type(key).__name__}, "
                                         f"not an RSA private key")
    return key


def rsa_key_from_xml(document: bytes) -> rsa.RSAPrivateKey:
    """Build an RSA private key from .NET's RSA XML format (each element the base64 of a
    big-endian integer), as sign-system-user-token.md's C# sample reads it.

    Raises:
        ValueError: the document is not a complete RSA private key.
    """
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError as error:
        raise ValueError(f"not XML: {error}") from None

    def number(name: str) -> int:
        element = root.find(name)
        if element is None or not (element.text or "").strip():
            raise ValueError(f"<{name}> is missing")
        return int.from_bytes(base64.b64decode(element.text.strip(), validate=True), "big")

    if root.tag != "RSAKeyValue":
        raise ValueError("the root element is not <RSAKeyValue>")
    public = rsa.RSAPublicNumbers(number("Exponent"), number("Modulus"))
    private = rsa.RSAPrivateNumbers(number("P"), number("Q"), number("D"), number("DP"),
                                    number("DQ"), number("InverseQ"), public)
    return private.private_key()


def sign_system_user_token(system_user_token: str, key: rsa.RSAPrivateKey,
                           when: datetime) -> str:
    """Return the SignedSystemToken: ``token.yyyyMMddHHmm.base64(signature)``, the time in UTC
    and the signature RSA PKCS#1 v1.5 over SHA-256 of the first two parts
    (sign-system-user-token.md)."""
    signed = f"{system_user_token}.{when.strftime('%Y%m%d%H%M')}"
    signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signed}.{base64.b64encode(signature).decode()}"


def setting_for_refusal(message: str) -> str:
    """Name the setting most likely behind SuperOffice's refusal text. SuperOffice documents no
    error texts, so this reads words: the app's secret, the tenant, the key's signature, else
    the system user token (revoked when an administrator withdraws the app's consent)."""
    text = message.lower()
    if re.search(r"application ?token|client ?secret|\bapp\b", text):
        return "SUPEROFFICE_CLIENT_SECRET"
    if re.search(r"context|tenant|customer", text):
        return "SUPEROFFICE_CONTEXT_IDENTIFIER"
    if re.search(r"signature|signed|private key|timestamp", text):
        return PRIVATE_KEY
    return "SUPEROFFICE_SYSTEM_USER_TOKEN"


class SystemUserLogin:
    """Signs in to SuperOffice's login as one app's system user for one tenant.

    Args:
        system_user: the settings (tenant, secret, token, key file, login URL, certificate).
        session: a ``requests.Session`` to reuse connections; one is created if omitted.
        timeout: (connect, read) seconds of each call to the login.

    Raises:
        SettingsError: the private key or the certificate file cannot be used.
    """

    def __init__(self, system_user: SystemUser, *, session: requests.Session | None = None,
                 timeout: tuple[float, float] = defaults.CRM_TIMEOUT):
        self.system_user = system_user
        self.timeout = timeout
        self._session = session or CRMSession()
        self._key = load_private_key(system_user.private_key_file)
        self._certificate_key = (_certificate_key(system_user.token_certificate_file)
                                 if system_user.token_certificate_file else None)
        self._published_keys: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"SystemUserLogin({self.system_user!r})"

    @property
    def fingerprint(self) -> str:
        """A short hash of tenant, login, app secret, system user token and key: what the shared
        ticket and a remembered refusal belong to (a changed setting starts afresh)."""
        public = self._key.public_key().public_numbers()
        material = "|".join((self.system_user.context_identifier, self.system_user.login_url,
                             self.system_user.client_secret, self.system_user.system_user_token,
                             f"{public.n:x}"))
        return hashlib.sha256(material.encode()).hexdigest()[:16]

    def sign_in(self) -> Ticket:
        """Sign in once and return the ticket (one POST, and a GET of the published keys when
        no certificate file is set and they are not cached yet).

        Raises:
            SignInError: permanent and naming the setting when SuperOffice refused or its JWT
                does not validate; transient when the login cannot be reached or failed (5xx).
        """
        body = {
            "SignedSystemToken": sign_system_user_token(self.system_user.system_user_token,
                                                        self._key, now()),
            "ApplicationToken": self.system_user.client_secret,
            "ContextIdentifier": self.system_user.context_identifier,
            "ReturnTokenType": "JWT",
        }
        answer = self._post(body)
        if answer.get("IsSuccessful") is not True:
            reason = " ".join(str(answer.get("ErrorMessage") or "no reason given").split())[:200]
            setting = setting_for_refusal(reason)
            raise SignInError(f"SuperOffice refused the system user sign-in: {reason} — check "
                              f"{setting}", setting=setting, permanent=True, status=200)
        token = answer.get("Token")
        if not isinstance(token, str) or not token:
            raise SignInError("SuperOffice's sign-in answer has no Token", permanent=True,
                              setting=CERTIFICATE, status=200)
        claims = self.validate(token)
        ticket = claims.get(CLAIM + "ticket")
        if not isinstance(ticket, str) or not ticket:
            raise SignInError("SuperOffice's sign-in JWT carries no ticket claim",
                              permanent=True, setting=CERTIFICATE, status=200)
        log.info("superoffice.signed_in context=%s", self.system_user.context_identifier)
        return Ticket(value=ticket, api_url=_rest_base(claims.get(CLAIM + "webapi_url")))

    def validate(self, token: str) -> dict[str, Any]:
        """Validate a system user JWT and return its claims: RS256 signature, issuer
        "SuperOffice AS", audience ``spn:<serial>``, expiry, and the tenant's ``ctx``.

        Raises:
            SignInError: permanent, naming the certificate setting, when it does not validate;
                transient when the published keys cannot be fetched.
        """
        try:
            serial = jwt.decode(token, options={"verify_signature": False}).get(CLAIM + "serial")
            key = self._certificate_key or self._published_key(jwt.get_unverified_header(token))
            claims = jwt.decode(token, key, algorithms=["RS256"], issuer=ISSUER,
                                audience=f"spn:{serial}", leeway=60,
                                options={"require": ["iss", "aud"]})
        except jwt.PyJWTError as error:
            where = (CERTIFICATE if self._certificate_key else
                     "SUPEROFFICE_ENVIRONMENT / SUPEROFFICE_LOGIN_URL (or set " + CERTIFICATE + ")")
            raise SignInError(f"SuperOffice's sign-in JWT does not validate ({error}) — check "
                              f"{where}", setting=CERTIFICATE, permanent=True) from None
        if claims.get(CLAIM + "ctx") != self.system_user.context_identifier:
            raise SignInError("SuperOffice's sign-in JWT is for another tenant — check "
                              "SUPEROFFICE_CONTEXT_IDENTIFIER",
                              setting="SUPEROFFICE_CONTEXT_IDENTIFIER", permanent=True)
        return claims

    def _published_key(self, header: dict):
        """The environment's signing key the JWT's ``kid`` names, from
        ``{login}/login/.well-known/jwks`` (validate-security-tokens.md), fetched once per
        process and again for a key id not seen before.

        Raises:
            SignInError: (transient) the keys cannot be fetched.
            jwt.PyJWTError: no published key has that id.
        """
        kid = header.get("kid")
        if kid not in self._published_keys:
            url = self.system_user.login_url + JWKS_PATH
            try:
                response = self._session.get(url, timeout=self.timeout,
                                             headers=JSON_HEADERS)
                response.raise_for_status()
                key_set = jwt.PyJWKSet.from_dict(response.json())
            except (requests.exceptions.RequestException, ValueError, jwt.PyJWTError) as error:
                raise SignInError(f"SuperOffice's published token keys could not be fetched "
                                  f"from {url}: {type(error).__name__}") from None
            self._published_keys = {k.key_id: k.key for k in key_set.keys}
        try:
            return self._published_keys[kid]
        except KeyError:
            raise jwt.InvalidKeyError(f"no published key has the id {kid!r}") from None

    def _post(self, body: dict) -> dict:
        url = self.system_user.login_url + AUTHENTICATE_PATH
        try:
            response = self._session.post(url, json=body, timeout=self.timeout,
                                          allow_redirects=False,
                                          headers=JSON_HEADERS)
        except requests.exceptions.RequestException as error:
            raise SignInError(f"SuperOffice's login is unreachable: {type(error).__name__} "
                              f"({url})") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise SignInError(f"SuperOffice's login failed ({status}); signing in again later",
                              status=status)
        if status != 200:
            raise SignInError(f"SuperOffice's login answered {status} — check "
                              f"SUPEROFFICE_ENVIRONMENT / SUPEROFFICE_LOGIN_URL and "
                              f"SUPEROFFICE_CONTEXT_IDENTIFIER", status=status, permanent=True,
                              setting="SUPEROFFICE_LOGIN_URL")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise SignInError("SuperOffice's login answered 200 with a body that is not a JSON "
                              "object; signing in again later", status=200)
        return answer


def _certificate_key(path: Path):
    """The public key of a PEM (or DER) X.509 certificate file."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SettingsError(CERTIFICATE, f"cannot read {str(path)!r}: {error.strerror}") from None
    try:
        certificate = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
                       else x509.load_der_x509_certificate(data))
    except ValueError:
        raise SettingsError(CERTIFICATE, f"{str(path)!r} is not an X.509 certificate "
                                         f"(PEM or DER)") from None
    return certificate.public_key()


def _rest_base(webapi_url: Any) -> str | None:
    """``https://sod.superoffice.com/Cust1/api/`` → ``https://sod.superoffice.com/Cust1/api/v1``."""
    if not isinstance(webapi_url, str) or not webapi_url.startswith(("https://", "http://")):
        return None
    return webapi_url.rstrip("/") + "/v1"
