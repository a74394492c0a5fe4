"""The sandbox's system user flow over real HTTP: a signed system user token is exchanged for a
JWT at /Login/api/PartnerSystemUser/Authenticate, the JWT validates with the certificate file
and the JWKS, and its ticket opens the tenant's API with the client secret as SO-AppToken.
Also the ticket lifetimes, the sandbox controls for tickets and system users, and the CLI."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from xml.etree import ElementTree

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.server import connector_settings, create_sandbox_app, run_in_thread, stop_server

ROOT = Path(__file__).resolve().parents[2]
TENANT = "Cust12345"
SYSTEM_USER = "Consent Connector-pzqc70604i"
OTHER_SYSTEM_USER = "Other App-8k8Q7DmBgo"
CLIENT_SECRET = "client-secret-0123456789"
SERIAL_AUDIENCE = "spn:1801550193"
CLAIM = "http://schemes.superoffice.net/identity/"


# ---------------------------------------------------------------- helpers
class Sandbox:
    """A sandbox served over HTTP, with its connector settings and app private key."""

    def __init__(self, data_dir: Path, **options):
        options.setdefault("system_users", {SYSTEM_USER: 9, OTHER_SYSTEM_USER: 42})
        options.setdefault("client_secret", CLIENT_SECRET)
        self.app = create_sandbox_app(TENANT, {"static-token": 7}, data_dir=data_dir, **options)
        self.server, self.base = run_in_thread(self.app)
        self.settings = connector_settings(self.app, self.base)
        pem = Path(self.settings["SUPEROFFICE_PRIVATE_KEY_FILE"]).read_bytes()
        self.private_key = serialization.load_pem_private_key(pem, password=None)

    def authenticate(self, **overrides) -> requests.Response:
        body = {"SignedSystemToken": sign(SYSTEM_USER, self.private_key),
                "ApplicationToken": CLIENT_SECRET, "ContextIdentifier": TENANT,
                "ReturnTokenType": "JWT", **overrides}
        return requests.post(f"{self.base}/Login/api/PartnerSystemUser/Authenticate", json=body,
                             timeout=10)

    def ticket(self, system_user: str = SYSTEM_USER) -> str:
        answer = self.authenticate(SignedSystemToken=sign(system_user, self.private_key)).json()
        assert answer["IsSuccessful"], answer
        return jwt.decode(answer["Token"], options={"verify_signature": False})[CLAIM + "ticket"]

    def call(self, ticket: str, path: str = "List/LegalBase/Items", app_token: str | None = CLIENT_SECRET,
             method: str = "GET", **kwargs) -> requests.Response:
        headers = {"Authorization": f"SOTicket {ticket}"}
        if app_token is not None:
            headers["SO-AppToken"] = app_token
        return requests.request(method, f"{self.base}/{TENANT}/api/v1/{path}", headers=headers,
                                timeout=10, **kwargs)

    def control(self, path: str, **kwargs) -> requests.Response:
        return requests.post(f"{self.base}/__sandbox/{path}", timeout=5, **kwargs)

    def sign_ins(self) -> list[dict]:
        return requests.get(f"{self.base}/__sandbox/sign-ins", timeout=5).json()

    def close(self):
        stop_server(self.server)


def sign(system_user: str, private_key: rsa.RSAPrivateKey, when: datetime | None = None) -> str:
    """Sign a system user token as sign-system-user-token.md shows it."""
    stamp = (when or datetime.now(timezone.utc)).strftime("%Y%m%d%H%M")
    signature = private_key.sign(f"{system_user}.{stamp}".encode("utf-8"), padding.PKCS1v15(),
                                 hashes.SHA256())
    return f"{system_user}.{stamp}.{base64.b64encode(signature).decode('ascii')}"


def key_from_xml(path: Path) -> rsa.RSAPrivateKey:
    """Read a .NET RSA XML private key, as a partner given that file would."""
    fields = {node.tag: int.from_bytes(base64.b64decode(node.text), "big")
              for node in ElementTree.parse(path).getroot()}
    public = rsa.RSAPublicNumbers(fields["Exponent"], fields["Modulus"])
    return rsa.RSAPrivateNumbers(fields["P"], fields["Q"], fields["D"], fields["DP"], fields["DQ"],
                                 fields["InverseQ"], public).private_key()


@pytest.fixture
def sandbox(tmp_path):
    running = Sandbox(tmp_path / "keys")
    yield running
    running.close()


# ---------------------------------------------------------------- sign-in
def test_a_correctly_signed_token_gets_a_jwt_that_validates_with_the_certificate_file(sandbox):
    response = sandbox.authenticate()
    assert response.status_code == 200
    answer = response.json()
    assert answer["IsSuccessful"] is True and answer["ErrorMessage"] is None
    certificate = x509.load_pem_x509_certificate(
        Path(sandbox.settings["SUPEROFFICE_TOKEN_CERTIFICATE_FILE"]).read_bytes())
    claims = jwt.decode(answer["Token"], certificate.public_key(), algorithms=["RS256"],
                        audience=SERIAL_AUDIENCE, issuer="SuperOffice AS")
    assert claims["exp"] - claims["iat"] == 300 and claims["nbf"] == claims["iat"]
    assert abs(claims["iat"] - time.time()) < 10
    assert claims[CLAIM + "ctx"] == TENANT and claims[CLAIM + "serial"] == "1801550193"
    assert claims[CLAIM + "system_token"] == SYSTEM_USER and claims[CLAIM + "associateid"] == "9"
    assert claims[CLAIM + "ticket"].startswith("7T:")
    assert claims[CLAIM + "webapi_url"] == f"{sandbox.base}/{TENANT}/api/"
    assert claims[CLAIM + "netserver_url"] == f"{sandbox.base}/{TENANT}/Remote/Services88/"
    assert claims[CLAIM + "is_administrator"] == "False"
    assert not [name for name in claims if "email" in name or "name" in name]


def test_the_jwt_validates_with_the_jwks_and_names_its_key_in_the_header(sandbox):
    token = sandbox.authenticate().json()["Token"]
    keys = requests.get(f"{sandbox.base}/login/.well-known/jwks", timeout=5).json()["keys"]
    assert len(keys) == 1 and {"kty": "RSA", "use": "sig", "alg": "RS256"}.items() <= keys[0].items()
    assert "=" not in keys[0]["n"] + keys[0]["e"]
    assert jwt.get_unverified_header(token)["kid"] == keys[0]["kid"]
    signing_key = jwt.PyJWKClient(f"{sandbox.base}/login/.well-known/jwks").get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=SERIAL_AUDIENCE,
                        issuer="SuperOffice AS")
    assert claims[CLAIM + "ctx"] == TENANT
    x5c = x509.load_der_x509_certificate(base64.b64decode(keys[0]["x5c"][0]))
    assert x5c.public_bytes(serialization.Encoding.PEM) == Path(
        sandbox.settings["SUPEROFFICE_TOKEN_CERTIFICATE_FILE"]).read_bytes()


def test_a_token_signed_with_the_xml_private_key_is_accepted(sandbox):
    xml_key = key_from_xml(Path(sandbox.settings["SUPEROFFICE_PRIVATE_KEY_FILE"]).with_suffix(".xml"))
    answer = sandbox.authenticate(SignedSystemToken=sign(SYSTEM_USER, xml_key)).json()
    assert answer["IsSuccessful"] is True


def test_the_ticket_opens_the_api_as_soticket_with_the_client_secret_as_app_token(sandbox):
    ticket = sandbox.ticket()
    assert sandbox.call(ticket).status_code == 200
    created = sandbox.call(ticket, "Person", method="POST", json={"Firstname": "Ada"})
    assert created.status_code == 200 and created.json()["CreatedBy"]["AssociateId"] == 9
    without = sandbox.call(ticket, app_token=None)
    wrong = sandbox.call(ticket, app_token="not-the-secret")
    latin = sandbox.call(ticket, app_token="secret-\xe6")
    assert without.status_code == wrong.status_code == latin.status_code == 401
    assert "SO-AppToken" in without.json()["Error"]
    unknown = sandbox.call("7T:never-issued")
    assert unknown.status_code == 401 and unknown.json()["Error"] == "Invalid or expired credentials"


def test_the_static_tokens_keep_working_beside_tickets(sandbox):
    response = requests.get(f"{sandbox.base}/{TENANT}/api/v1/List/LegalBase/Items", timeout=5,
                            headers={"Authorization": "Bearer static-token"})
    assert response.status_code == 200


def test_each_sign_in_gets_a_ticket_of_its_own(sandbox):
    first, second = sandbox.ticket(), sandbox.ticket()
    assert first != second
    assert sandbox.call(first).status_code == sandbox.call(second).status_code == 200


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(minutes=minutes)


@pytest.mark.parametrize("overrides, reason", [
    ({"ContextIdentifier": "Cust99999"}, "Unknown ContextIdentifier 'Cust99999'"),
    ({"ApplicationToken": "wrong"}, "ApplicationToken is not this application's client secret"),
    ({"ApplicationToken": "hemmelighet-æøå"}, "ApplicationToken is not this application's client secret"),
    ({"ReturnTokenType": "SAML"}, "ReturnTokenType must be 'JWT'"),
    ({"SignedSystemToken": "no-dots-at-all"}, "SignedSystemToken must be"),
    ({"SignedSystemToken": "Nobody-123.202601011200.c2ln"}, "Unknown system user token"),
    ({"SignedSystemToken": f"{SYSTEM_USER}.2026-01-01.c2ln"}, "is not UTC yyyyMMddHHmm"),
    ({"SignedSystemToken": f"{SYSTEM_USER}.202613011200.c2ln"}, "is not UTC yyyyMMddHHmm"),
    ({"SignedSystemToken": SYSTEM_USER + ".{now}.not base64!"}, "not base64"),
])
def test_each_refusal_answers_200_with_its_reason_and_no_token(sandbox, overrides, reason):
    now = datetime.now(timezone.utc).strftime("%Y%m%d%H%M")
    response = sandbox.authenticate(**{name: value.replace("{now}", now) for name, value in overrides.items()})
    assert response.status_code == 200
    answer = response.json()
    assert answer["IsSuccessful"] is False and answer["Token"] is None
    assert reason in answer["ErrorMessage"]
    assert sandbox.sign_ins()[-1]["successful"] is False
    assert reason in sandbox.sign_ins()[-1]["error"]


@pytest.mark.parametrize("minutes", [11, -11])
def test_a_signature_older_or_newer_than_ten_minutes_is_refused(sandbox, minutes):
    signed = sign(SYSTEM_USER, sandbox.private_key, minutes_ago(minutes))
    answer = sandbox.authenticate(SignedSystemToken=signed).json()
    assert answer["IsSuccessful"] is False and "more than 10 minutes" in answer["ErrorMessage"]


def test_a_signature_nine_minutes_old_is_still_accepted(sandbox):
    answer = sandbox.authenticate(SignedSystemToken=sign(SYSTEM_USER, sandbox.private_key,
                                                         minutes_ago(9))).json()
    assert answer["IsSuccessful"] is True


def test_a_signature_made_with_another_key_or_over_another_text_is_refused(sandbox):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    foreign = sandbox.authenticate(SignedSystemToken=sign(SYSTEM_USER, stranger)).json()
    assert foreign["IsSuccessful"] is False and "does not verify" in foreign["ErrorMessage"]
    token, stamp, signature = sign(OTHER_SYSTEM_USER, sandbox.private_key).rsplit(".", 2)
    swapped = sandbox.authenticate(SignedSystemToken=f"{SYSTEM_USER}.{stamp}.{signature}").json()
    assert swapped["IsSuccessful"] is False and "does not verify" in swapped["ErrorMessage"]


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"'])
def test_a_body_that_is_not_a_json_object_answers_400(sandbox, body):
    response = requests.post(f"{sandbox.base}/Login/api/PartnerSystemUser/Authenticate", data=body,
                             headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 400 and "Error" in response.json()


def test_every_attempt_is_logged_and_reset_clears_the_log(sandbox):
    sandbox.authenticate()
    sandbox.authenticate(ApplicationToken="wrong")
    log = sandbox.sign_ins()
    assert [(entry["successful"], entry["error"]) for entry in log] == [
        (True, None), (False, "ApplicationToken is not this application's client secret")]
    assert all(abs(entry["time"] - time.time()) < 10 for entry in log)
    assert sandbox.control("reset").status_code == 204
    assert sandbox.sign_ins() == []


# ---------------------------------------------------------------- ticket lifetime
def test_a_fixed_lifetime_ticket_lapses_even_while_used(tmp_path):
    sandbox = Sandbox(tmp_path, ticket_ttl=1, ticket_sliding=False)
    try:
        ticket = sandbox.ticket()
        assert sandbox.call(ticket).status_code == 200
        time.sleep(0.6)
        assert sandbox.call(ticket).status_code == 200
        time.sleep(0.6)
        lapsed = sandbox.call(ticket)
        assert lapsed.status_code == 401 and lapsed.json()["Error"] == "Invalid or expired credentials"
        assert lapsed.headers["WWW-Authenticate"] == "Bearer"
    finally:
        sandbox.close()


def test_a_sliding_ticket_stays_alive_while_used_and_lapses_when_idle(tmp_path):
    sandbox = Sandbox(tmp_path, ticket_ttl=0.8, ticket_sliding=True)
    try:
        ticket = sandbox.ticket()
        for _ in range(4):  # 1.6 s in all, twice the lifetime
            time.sleep(0.4)
            assert sandbox.call(ticket).status_code == 200
        time.sleep(1.0)
        assert sandbox.call(ticket).status_code == 401
    finally:
        sandbox.close()


# ---------------------------------------------------------------- controls
def test_expiring_tickets_makes_every_ticket_lapse_and_a_new_sign_in_works(sandbox):
    first, second = sandbox.ticket(), sandbox.ticket(OTHER_SYSTEM_USER)
    assert sandbox.control("tickets/expire").status_code == 200
    assert sandbox.call(first).status_code == sandbox.call(second).status_code == 401
    assert sandbox.call(sandbox.ticket()).status_code == 200


def test_revoking_one_system_user_refuses_its_sign_ins_and_lapses_its_tickets(sandbox):
    mine, other = sandbox.ticket(), sandbox.ticket(OTHER_SYSTEM_USER)
    assert sandbox.control("system-users/revoke", json={"token": SYSTEM_USER}).status_code == 200
    assert sandbox.call(mine).status_code == 401
    assert sandbox.call(other).status_code == 200
    answer = sandbox.authenticate().json()
    assert answer["IsSuccessful"] is False and "revoked" in answer["ErrorMessage"]
    assert sandbox.control("system-users/revoke", json={"token": "Nobody-1"}).status_code == 404


def test_revoking_without_a_token_revokes_every_system_user_until_reset(sandbox):
    other = sandbox.ticket(OTHER_SYSTEM_USER)
    assert sandbox.control("system-users/revoke").status_code == 200
    assert sandbox.call(other).status_code == 401
    assert sandbox.authenticate().json()["IsSuccessful"] is False
    sandbox.control("reset")
    assert sandbox.call(other).status_code == 401  # the revocation made it lapse for good
    assert sandbox.call(sandbox.ticket()).status_code == 200


def test_a_reset_keeps_the_tickets_issued_so_a_running_connector_stays_signed_in(sandbox):
    ticket = sandbox.ticket()
    sandbox.control("reset")
    assert sandbox.call(ticket).status_code == 200


def test_a_restart_with_the_same_data_dir_keeps_the_keys(tmp_path):
    first = Sandbox(tmp_path)
    jwks = requests.get(f"{first.base}/login/.well-known/jwks", timeout=5).json()
    first.close()
    second = Sandbox(tmp_path)
    try:
        assert requests.get(f"{second.base}/login/.well-known/jwks", timeout=5).json() == jwks
        assert second.authenticate(SignedSystemToken=sign(SYSTEM_USER, first.private_key)).json()[
            "IsSuccessful"] is True
    finally:
        second.close()


# ---------------------------------------------------------------- who am I
def test_the_current_principal_is_the_system_user_for_a_ticket_and_the_user_for_a_token(sandbox):
    by_ticket = sandbox.call(sandbox.ticket(), "User/currentPrincipal")
    assert by_ticket.status_code == 200
    principal = by_ticket.json()
    assert (principal["AssociateId"], principal["UserType"]) == (9, "SystemAssociate")
    assert principal["DatabaseContextIdentifier"] == TENANT
    by_token = requests.get(f"{sandbox.base}/{TENANT}/api/v1/User/currentPrincipal", timeout=5,
                            headers={"Authorization": "Bearer static-token"}).json()
    assert (by_token["AssociateId"], by_token["UserType"]) == (7, "InternalAssociate")

# ---------------------------------------------------------------- command line
def start_cli(data_dir: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """Start ``python -m sandbox`` on a free port; return it and the settings it printed."""
    process = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", "0", "--data-dir",
                                str(data_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    listening = process.stdout.readline()
    assert "listening on http://127.0.0.1:" in listening, listening
    settings = dict(process.stdout.readline().strip().split("=", 1) for _ in range(6))
    return process, settings


def stop_cli(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
    process.stdout.close()


def test_the_command_line_prints_settings_a_connector_can_sign_in_with_and_keeps_them(tmp_path):
    process, settings = start_cli(tmp_path / "sandbox")
    try:
        assert set(settings) == {"SUPEROFFICE_CONTEXT_IDENTIFIER", "SUPEROFFICE_LOGIN_URL",
                                 "SUPEROFFICE_CLIENT_SECRET", "SUPEROFFICE_SYSTEM_USER_TOKEN",
                                 "SUPEROFFICE_PRIVATE_KEY_FILE", "SUPEROFFICE_TOKEN_CERTIFICATE_FILE"}
        assert settings["SUPEROFFICE_SYSTEM_USER_TOKEN"].startswith("consent-connector-")
        key = serialization.load_pem_private_key(
            Path(settings["SUPEROFFICE_PRIVATE_KEY_FILE"]).read_bytes(), password=None)
        answer = requests.post(
            f"{settings['SUPEROFFICE_LOGIN_URL']}/Login/api/PartnerSystemUser/Authenticate", timeout=10,
            json={"SignedSystemToken": sign(settings["SUPEROFFICE_SYSTEM_USER_TOKEN"], key),
                  "ApplicationToken": settings["SUPEROFFICE_CLIENT_SECRET"],
                  "ContextIdentifier": settings["SUPEROFFICE_CONTEXT_IDENTIFIER"],
                  "ReturnTokenType": "JWT"}).json()
        assert answer["IsSuccessful"] is True
        claims = jwt.decode(answer["Token"], options={"verify_signature": False})
        assert claims[CLAIM + "associateid"] == "9"
    finally:
        stop_cli(process)
    again, settings_again = start_cli(tmp_path / "sandbox")
    stop_cli(again)
    unchanged = ("SUPEROFFICE_CLIENT_SECRET", "SUPEROFFICE_SYSTEM_USER_TOKEN",
                 "SUPEROFFICE_PRIVATE_KEY_FILE", "SUPEROFFICE_TOKEN_CERTIFICATE_FILE")
    assert {name: settings_again[name] for name in unchanged} == {name: settings[name] for name in unchanged}

