"""The system user sign-in's wire format: key files, the signed token, the Authenticate call
and the JWT's validation (docs/en/api/authentication/online/auth-application/)."""

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import pytest
import requests
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from connector.exceptions import SettingsError, SignInError
from connector.settings import SystemUser
from connector.superoffice.system_user import (AUTHENTICATE_PATH, CLAIM, JWKS_PATH,
                                               SystemUserLogin, load_private_key,
                                               setting_for_refusal, sign_system_user_token)

LOGIN = "https://sod.superoffice.com"
CONTEXT = "Cust12345"
SERIAL = "1801550193"
SYSTEM_USER_TOKEN = "Consent Connector-8k8Q7DmBgo"
UTC = timezone.utc


def int_b64(number: int) -> str:
    return base64.b64encode(number.to_bytes((number.bit_length() + 7) // 8, "big")).decode()


@pytest.fixture(scope="module")
def app_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def superoffice_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def files(tmp_path, app_key, superoffice_key):
    pem = tmp_path / "app.pem"
    pem.write_bytes(app_key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    numbers = app_key.private_numbers()
    xml = tmp_path / "app.xml"
    xml.write_text(
        "<RSAKeyValue>"
        f"<Modulus>{int_b64(numbers.public_numbers.n)}</Modulus>"
        f"<Exponent>{int_b64(numbers.public_numbers.e)}</Exponent>"
        f"<P>{int_b64(numbers.p)}</P><Q>{int_b64(numbers.q)}</Q>"
        f"<DP>{int_b64(numbers.dmp1)}</DP><DQ>{int_b64(numbers.dmq1)}</DQ>"
        f"<InverseQ>{int_b64(numbers.iqmp)}</InverseQ><D>{int_b64(numbers.d)}</D>"
        "</RSAKeyValue>")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SuperOffice test")])
    when = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(superoffice_key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(when - timedelta(days=1))
                   .not_valid_after(when + timedelta(days=30))
                   .sign(superoffice_key, hashes.SHA256()))
    cert = tmp_path / "superoffice.crt"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return {"pem": pem, "xml": xml, "cert": cert}


def system_user(files, key="pem", certificate=True) -> SystemUser:
    return SystemUser(context_identifier=CONTEXT, client_secret="client-secret",
                      system_user_token=SYSTEM_USER_TOKEN, private_key_file=files[key],
                      login_url=LOGIN,
                      token_certificate_file=files["cert"] if certificate else None)


def issued_jwt(key, **changes) -> str:
    issued = int(datetime.now(UTC).timestamp())
    claims = {"iss": "SuperOffice AS", "aud": f"spn:{SERIAL}", "iat": issued, "nbf": issued,
              "exp": issued + 300, CLAIM + "serial": SERIAL, CLAIM + "ctx": CONTEXT,
              CLAIM + "ticket": "7T:a-fresh-ticket",
              CLAIM + "webapi_url": f"https://sod2.superoffice.com/{CONTEXT}/api/"}
    claims.update(changes)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key,
                      algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
def login_server():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def test_the_signed_token_is_token_dot_utc_minute_dot_base64_pkcs1_sha256_signature(app_key):
    signed = sign_system_user_token(SYSTEM_USER_TOKEN, app_key,
                                    datetime(2026, 11, 29, 7, 5, 59, tzinfo=UTC))

    token, minute, signature = signed.rsplit(".", 2)
    assert (token, minute) == (SYSTEM_USER_TOKEN, "202611290705")
    app_key.public_key().verify(base64.b64decode(signature), f"{token}.{minute}".encode(),
                                padding.PKCS1v15(), hashes.SHA256())


def test_a_pem_and_an_rsa_xml_key_file_give_the_same_key(files):
    pem, xml = load_private_key(files["pem"]), load_private_key(files["xml"])
    assert pem.private_numbers() == xml.private_numbers()


@pytest.mark.parametrize("content", [b"", b"not a key", b"<RSAKeyValue><Modulus>AQAB</Modulus>"
                                     b"</RSAKeyValue>", b"<Other/>"])
def test_an_unusable_key_file_names_the_setting(tmp_path, content):
    path = tmp_path / "key"
    path.write_bytes(content)
    with pytest.raises(SettingsError) as caught:
        load_private_key(path)
    assert caught.value.variable == "SUPEROFFICE_PRIVATE_KEY_FILE"


def test_a_sign_in_posts_the_documented_body_and_returns_the_ticket_and_api_url(
        files, superoffice_key, app_key, login_server):
    login_server.post(LOGIN + AUTHENTICATE_PATH, json={
        "IsSuccessful": True, "Token": issued_jwt(superoffice_key), "ErrorMessage": None})

    ticket = SystemUserLogin(system_user(files, key="xml")).sign_in()

    assert ticket.value == "7T:a-fresh-ticket"
    assert ticket.api_url == f"https://sod2.superoffice.com/{CONTEXT}/api/v1"
    body = json.loads(login_server.calls[0].request.body)
    assert set(body) == {"SignedSystemToken", "ApplicationToken", "ContextIdentifier",
                         "ReturnTokenType"}
    assert (body["ApplicationToken"], body["ContextIdentifier"], body["ReturnTokenType"]) == (
        "client-secret", CONTEXT, "JWT")
    token, minute, signature = body["SignedSystemToken"].rsplit(".", 2)
    assert token == SYSTEM_USER_TOKEN
    app_key.public_key().verify(base64.b64decode(signature), f"{token}.{minute}".encode(),
                                padding.PKCS1v15(), hashes.SHA256())
    assert "7T:a-fresh-ticket" not in repr(ticket)


def test_without_a_certificate_file_the_environments_published_keys_validate(
        files, superoffice_key, login_server):
    public = jwt.algorithms.RSAAlgorithm.to_jwk(superoffice_key.public_key(), as_dict=True)
    login_server.get(LOGIN + JWKS_PATH, json={"keys": [{**public, "kid": "k1", "use": "sig"}]})
    login_server.post(LOGIN + AUTHENTICATE_PATH, json={
        "IsSuccessful": True, "Token": issued_jwt(superoffice_key), "ErrorMessage": None})

    assert SystemUserLogin(system_user(files, certificate=False)).sign_in().value


@pytest.mark.parametrize("message, setting", [
    ("Unknown or revoked system user token", "SUPEROFFICE_SYSTEM_USER_TOKEN"),
    ("Invalid application token", "SUPEROFFICE_CLIENT_SECRET"),
    ("Signature verification failed", "SUPEROFFICE_PRIVATE_KEY_FILE"),
    ("Unknown context identifier", "SUPEROFFICE_CONTEXT_IDENTIFIER"),
    (None, "SUPEROFFICE_SYSTEM_USER_TOKEN"),
])
def test_a_refused_sign_in_is_permanent_and_names_the_setting(files, login_server, message,
                                                              setting):
    login_server.post(LOGIN + AUTHENTICATE_PATH,
                      json={"IsSuccessful": False, "Token": None, "ErrorMessage": message})

    with pytest.raises(SignInError) as caught:
        SystemUserLogin(system_user(files)).sign_in()

    assert caught.value.permanent and caught.value.setting == setting
    assert setting in str(caught.value)
    assert setting_for_refusal(message or "") == setting


@pytest.mark.parametrize("changes", [
    {"iss": "Someone else"}, {"aud": "spn:999"}, {"exp": 1_000_000, "iat": 999_000,
                                                   "nbf": 999_000},
    {CLAIM + "ctx": "Cust99999"}, {CLAIM + "ticket": None},
])
def test_a_jwt_that_does_not_validate_is_refused_permanently(files, superoffice_key,
                                                             login_server, changes):
    login_server.post(LOGIN + AUTHENTICATE_PATH, json={
        "IsSuccessful": True, "Token": issued_jwt(superoffice_key, **changes)})

    with pytest.raises(SignInError) as caught:
        SystemUserLogin(system_user(files)).sign_in()

    assert caught.value.permanent


def test_a_jwt_signed_by_another_key_is_refused(files, app_key, login_server):
    login_server.post(LOGIN + AUTHENTICATE_PATH, json={
        "IsSuccessful": True, "Token": issued_jwt(app_key)})

    with pytest.raises(SignInError) as caught:
        SystemUserLogin(system_user(files)).sign_in()

    assert caught.value.permanent
    assert "SUPEROFFICE_TOKEN_CERTIFICATE_FILE" in str(caught.value)


@pytest.mark.parametrize("answer", [{"status": 503}, {"status": 500}, {"status": 429},
                                    {"body": "<html>maintenance</html>"},
                                    {"body": requests.exceptions.ConnectionError("refused")}])
def test_a_login_that_is_down_is_transient(files, login_server, answer):
    login_server.post(LOGIN + AUTHENTICATE_PATH, **answer)

    with pytest.raises(SignInError) as caught:
        SystemUserLogin(system_user(files)).sign_in()

    assert not caught.value.permanent


def test_a_login_answering_404_names_the_login_settings(files, login_server):
    login_server.post(LOGIN + AUTHENTICATE_PATH, status=404)

    with pytest.raises(SignInError) as caught:
        SystemUserLogin(system_user(files)).sign_in()

    assert caught.value.permanent and "SUPEROFFICE_LOGIN_URL" in str(caught.value)


def test_the_fingerprint_changes_with_every_setting_that_makes_the_ticket(files, tmp_path):
    base = SystemUserLogin(system_user(files))
    other_key = tmp_path / "other.pem"
    other_key.write_bytes(rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    variants = [
        SystemUser(**{**system_user(files).__dict__, "client_secret": "other"}),
        SystemUser(**{**system_user(files).__dict__, "system_user_token": "App-other"}),
        SystemUser(**{**system_user(files).__dict__, "context_identifier": "Cust2"}),
        SystemUser(**{**system_user(files).__dict__, "private_key_file": Path(other_key)}),
    ]
    prints = {SystemUserLogin(variant).fingerprint for variant in variants}
    assert base.fingerprint not in prints and len(prints) == len(variants)
    assert SystemUserLogin(system_user(files, key="xml")).fingerprint == base.fingerprint
