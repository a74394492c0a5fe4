"""Key material of the sandbox's system user flow, kept as files so a restart keeps it.

Two RSA key pairs live in one directory:

* the *application's* key pair. SuperOffice hands a partner the private key when the app is
  registered (docs/en/api/authentication/online/auth-application/sign-system-user-token.md:
  "You have your private key file (obtained after application registration)"); the app signs
  its system user token with it and SuperOffice verifies with the public half. The sandbox
  writes the private key both as PKCS#8 PEM and in .NET's RSA XML format, the format
  SuperOffice delivers it in.
* SuperOffice's own *token-signing* key pair with a self-signed certificate; the JWT that a
  sign-in answers with is signed with it (docs/en/api/authentication/online/
  validate-security-tokens.md: validate with the public certificate or the JWKS).
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

APP_PRIVATE_KEY_PEM = "app-private-key.pem"
APP_PRIVATE_KEY_XML = "app-private-key.xml"
TOKEN_SIGNING_KEY_PEM = "superoffice-token-key.pem"
TOKEN_CERTIFICATE_PEM = "superoffice-token-certificate.pem"

CERTIFICATE_NAME = "SuperOffice sandbox federated login"
CERTIFICATE_YEARS = 10
KEY_BITS = 2048
PUBLIC_EXPONENT = 65537


def new_private_key() -> rsa.RSAPrivateKey:
    """Return a fresh RSA 2048 private key."""
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)


def private_key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """Return ``key`` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _xml_number(value: int) -> str:
    """Base64 of the big-endian unsigned bytes of ``value`` (no leading zero bytes)."""
    return base64.b64encode(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")).decode("ascii")


def private_key_xml(key: rsa.RSAPrivateKey) -> str:
    """Return ``key`` in .NET's RSA XML format (``RSACryptoServiceProvider.ToXmlString(true)``)."""
    numbers = key.private_numbers()
    public = numbers.public_numbers
    parts = (("Modulus", public.n), ("Exponent", public.e), ("P", numbers.p), ("Q", numbers.q),
             ("DP", numbers.dmp1), ("DQ", numbers.dmq1), ("InverseQ", numbers.iqmp),
             ("D", numbers.d))
    body = "".join(f"<{name}>{_xml_number(value)}</{name}>" for name, value in parts)
    return f"<RSAKeyValue>{body}</RSAKeyValue>"


def self_signed_certificate(key: rsa.RSAPrivateKey, common_name: str = CERTIFICATE_NAME,
                            years: int = CERTIFICATE_YEARS) -> x509.Certificate:
    """Return a self-signed X.509 certificate for ``key``, valid from now for ``years``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def _b64url_number(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _write(path: Path, data: bytes, private: bool) -> None:
    """Write ``data`` to ``path``; private keys get mode 0600 from the moment they exist."""
    mode = 0o600 if private else 0o644
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA private key")
        return key
    key = new_private_key()
    _write(path, private_key_pem(key), private=True)
    return key


def _load_or_create_certificate(path: Path, key: rsa.RSAPrivateKey) -> x509.Certificate:
    if path.exists():
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        if certificate.public_key().public_numbers() == key.public_key().public_numbers():
            return certificate
    certificate = self_signed_certificate(key)
    _write(path, certificate.public_bytes(serialization.Encoding.PEM), private=False)
    return certificate


def load_or_create_secret(path: Path, make) -> str:
    """Return the text in ``path``; when the file is missing, write ``make()`` there (mode 0600)
    first, so a restart with the same directory gets the same value."""
    path = Path(path)
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, value.encode("utf-8") + b"\n", private=True)
    return value


@dataclass(frozen=True)
class SandboxKeys:
    """The application's key pair and SuperOffice's token-signing key and certificate."""

    directory: Path
    app_private_key: rsa.RSAPrivateKey
    token_signing_key: rsa.RSAPrivateKey
    token_certificate: x509.Certificate

    @classmethod
    def load_or_create(cls, directory: Path) -> SandboxKeys:
        """Read the key files in ``directory``, making (and writing) any that are missing."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        app_key = _load_or_create_key(directory / APP_PRIVATE_KEY_PEM)
        xml_path = directory / APP_PRIVATE_KEY_XML
        xml = private_key_xml(app_key)
        if not xml_path.exists() or xml_path.read_text(encoding="ascii") != xml:
            _write(xml_path, xml.encode("ascii"), private=True)
        token_key = _load_or_create_key(directory / TOKEN_SIGNING_KEY_PEM)
        certificate = _load_or_create_certificate(directory / TOKEN_CERTIFICATE_PEM, token_key)
        return cls(directory, app_key, token_key, certificate)

    @property
    def app_private_key_file(self) -> Path:
        """The application's private key, PKCS#8 PEM (what a partner signs with)."""
        return self.directory / APP_PRIVATE_KEY_PEM

    @property
    def app_private_key_xml_file(self) -> Path:
        """The same private key in .NET's RSA XML format."""
        return self.directory / APP_PRIVATE_KEY_XML

    @property
    def token_certificate_file(self) -> Path:
        """SuperOffice's token-signing certificate, PEM (what a partner validates JWTs with)."""
        return self.directory / TOKEN_CERTIFICATE_PEM

    @property
    def app_public_key(self) -> rsa.RSAPublicKey:
        """The public half of the application's key: it verifies signed system user tokens."""
        return self.app_private_key.public_key()

    @property
    def certificate_der(self) -> bytes:
        """The token-signing certificate's DER bytes."""
        return self.token_certificate.public_bytes(serialization.Encoding.DER)

    @property
    def kid(self) -> str:
        """The key id in JWT headers and the JWKS: hex SHA-1 thumbprint of the certificate."""
        return hashlib.sha1(self.certificate_der).hexdigest().upper()

    def jwk(self) -> dict:
        """Return the token-signing key as a JSON Web Key with its certificate chain (x5c)."""
        public = self.token_signing_key.public_key().public_numbers()
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                "n": _b64url_number(public.n), "e": _b64url_number(public.e),
                "x5c": [base64.b64encode(self.certificate_der).decode("ascii")],
                "x5t": base64.urlsafe_b64encode(
                    hashlib.sha1(self.certificate_der).digest()).rstrip(b"=").decode("ascii")}
