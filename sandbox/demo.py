"""``make demo``: the whole system on embedded defaults, checked from the outside.

1. Start the sandbox CRM, then the web process (gunicorn) and a worker, with Redis embedded
   and mail written to DATA_DIR/outbox. The connector signs in to the sandbox as a system
   user, as it does to SuperOffice Online (key pair and certificate in DATA_DIR/sandbox).
2. Register the connector's webhook in the CRM, as an operator would.
3. Create sample persons in the CRM (with and without email, one through the web form).
4. Wait until each has its consents written back and, when it has an email address, its
   confirmation mail; open the mail's link. Run ``consent-connector doctor`` and
   ``consent-connector ledger verify --all``. Print it all;
   exit 0 only if all of it happened.

With SERVE=1 everything keeps running afterwards, until Ctrl-C, and DATA_DIR/env holds the
settings the ``consent-connector`` command needs beside it (``source var/demo/env``). A demo
that runs already in the same DATA_DIR is left alone: the second one says so and exits.
"""

import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

import requests

from connector.redis_connection import (DEMO_PID_FILE, ensure_embedded_server, running_demo,
                                        stop_embedded_server)

ROOT = Path(__file__).resolve().parent.parent
TENANT = "Cust12345"
CONNECTOR_ASSOCIATE = 9
WEBFORM_TOKEN, WEBFORM_ASSOCIATE = "demo-webform-token", 42
USER_TOKEN, USER_ASSOCIATE = "demo-user-token", 7
TIMEOUT = 60.0


@dataclass(frozen=True)
class SamplePerson:
    first_name: str
    last_name: str
    email: str | None
    token: str
    language: str | None = None


SAMPLES = (
    SamplePerson("Ada", "Lovelace", "ada@example.org", USER_TOKEN),
    SamplePerson("Kari", "Nordmann", "kari@example.no", USER_TOKEN, language="Norwegian"),
    SamplePerson("Webform", "Visitor", "visitor@example.com", WEBFORM_TOKEN),
    SamplePerson("Nomail", "Person", None, USER_TOKEN),
)


def main() -> int:
    """Run the demo; return the exit code."""
    data_dir = Path(os.environ.get("DATA_DIR") or ROOT / "var" / "demo").resolve()
    serve = os.environ.get("SERVE", "") not in ("", "0")
    running = running_demo(data_dir)
    if running is not None:
        print(f"A demo is running in {data_dir} (process {running}); its data stays. Stop it "
              f"with Ctrl-C where it runs (or `kill {running}`), or start another one beside "
              f"it with DATA_DIR=var/demo2 make demo.", file=sys.stderr)
        return 2
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    (data_dir / DEMO_PID_FILE).write_text(str(os.getpid()))
    crm_port = int(os.environ.get("CRM_PORT") or _free_port())
    web_port = int(os.environ.get("PORT") or _free_port())
    crm_root = f"http://127.0.0.1:{crm_port}"
    web_root = f"http://127.0.0.1:{web_port}"
    webhook_secret = secrets.token_urlsafe(24)
    admin_token = secrets.token_urlsafe(18)
    system_user_token = f"consent-connector-{secrets.token_hex(4)}"
    client_secret = secrets.token_hex(16)
    sandbox_dir = data_dir / "sandbox"

    env = {
        **os.environ,
        "SUPEROFFICE_CONTEXT_IDENTIFIER": TENANT,
        "SUPEROFFICE_LOGIN_URL": crm_root,
        "SUPEROFFICE_CLIENT_SECRET": client_secret,
        "SUPEROFFICE_SYSTEM_USER_TOKEN": system_user_token,
        "SUPEROFFICE_PRIVATE_KEY_FILE": str(sandbox_dir / "app-private-key.pem"),
        "SUPEROFFICE_TOKEN_CERTIFICATE_FILE": str(sandbox_dir / "superoffice-token-certificate.pem"),
        "SUPEROFFICE_WEBHOOK_SECRET": webhook_secret,
        "SUPEROFFICE_ASSOCIATE_ID": str(CONNECTOR_ASSOCIATE),
        "MAIL_FROM": "privacy@example.com",
        "PUBLIC_BASE_URL": web_root,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "ADMIN_TOKEN": admin_token,
        "DATA_DIR": str(data_dir),
        "RETRY_INTERVALS": "2,5,10",
    }
    for unset in ("REDIS_URL", "SMTP_URL", "SUPEROFFICE_API_URL", "SUPEROFFICE_ACCESS_TOKEN",
                  "SUPEROFFICE_TICKET"):  # the demo runs on embedded defaults
        env.pop(unset, None)

    print(f"Demo data in {data_dir}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop cleanly under a supervisor too
    # Ctrl-C stops it, also when it was started from a shell that ignores SIGINT for jobs in
    # the background (then `kill -INT` is its Ctrl-C).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ensure_embedded_server(data_dir)
    processes = []
    try:
        processes.append(_start("sandbox CRM", [
            sys.executable, "-m", "sandbox", "--port", str(crm_port), "--data-dir",
            str(sandbox_dir), "--system-user", f"{system_user_token}={CONNECTOR_ASSOCIATE}",
            "--client-secret", client_secret, "--token", f"{WEBFORM_TOKEN}={WEBFORM_ASSOCIATE}",
            "--token", f"{USER_TOKEN}={USER_ASSOCIATE}"], env, data_dir))
        _wait_for_http(f"{crm_root}/", "sandbox CRM")  # its key files exist from here on
        processes.append(_start("web", [sys.executable, "-m", "gunicorn", "--preload", "--bind",
                                f"127.0.0.1:{web_port}", "--workers", "2",
                                "connector.web.app:create_app_from_env()"], env, data_dir))
        processes.append(_start("worker", [sys.executable, "-m", "connector", "worker"],
                                env, data_dir))
        _wait_for_http(f"{web_root}/readyz", "web")

        crm = requests.Session()
        crm.headers["Accept"] = "application/json"
        _register_webhook(crm, crm_root, web_root, webhook_secret)
        ok = _create_and_check(crm, crm_root, data_dir / "outbox")
        ok = _sign_ins_and_doctor(crm_root, env) and ok
        ok = _command(env, "ledger", "verify", "--all") and ok
        print("\nDemo OK: every person got their consents, doctor found nothing wrong and the "
              "consent ledger verifies" if ok else "\nDEMO FAILED")
        if serve and ok:
            env_file = write_env_file(data_dir, {
                **{name: env[name] for name in DEMO_SETTINGS},
                "CONSENT_CONFIG": str(Path(env.get("CONSENT_CONFIG")
                                           or ROOT / "config" / "purposes.yaml").absolute())})
            _print_urls(crm_root, web_root, data_dir, admin_token, env_file)
            signal.pause()
        elif ok:
            print("\nEverything has stopped again, so the links above no longer open. "
                  "`make demo SERVE=1` keeps it all running.")
        return 0 if ok else 1
    except (DemoError, requests.RequestException) as error:
        print(f"\nDEMO FAILED: {error}\nLogs are in {data_dir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
        stop_embedded_server(data_dir)
        (data_dir / DEMO_PID_FILE).unlink(missing_ok=True)
        (data_dir / ENV_FILE).unlink(missing_ok=True)


class DemoError(Exception):
    """Something the demo expected did not happen."""


def _start(name: str, command: list[str], env: dict, data_dir: Path) -> subprocess.Popen:
    log = open(data_dir / f"{name.split()[0]}.log", "w")
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    print(f"started {name} (pid {process.pid}, log {log.name})")
    return process


def _wait_for_http(url: str, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise DemoError(f"{what} did not come up at {url}")


def _api(crm_root: str, path: str) -> str:
    return f"{crm_root}/{TENANT}/api/v1/{path}"


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _register_webhook(crm: requests.Session, crm_root: str, web_root: str, secret: str) -> None:
    response = crm.post(_api(crm_root, "Webhook"), headers=_auth(USER_TOKEN), timeout=15, json={
        "Name": "consent-connector", "State": "Active",
        "Events": ["person.created", "person.consented", "person.unconsented",
                   "person.deleted"],
        "TargetUrl": f"{web_root}/webhooks/superoffice", "Secret": secret, "Type": "webhook"})
    if response.status_code != 200:
        raise DemoError(f"webhook registration failed: {response.status_code} {response.text}")
    print(f"registered webhook → {web_root}/webhooks/superoffice (test event answered 200)")


def _create_and_check(crm: requests.Session, crm_root: str, outbox: Path) -> bool:
    created = []
    for sample in SAMPLES:
        body = {"Firstname": sample.first_name, "Lastname": sample.last_name,
                "Emails": [{"Value": sample.email}] if sample.email else []}
        if sample.language:
            body["CustomerLanguage"] = {"Value": sample.language}
        response = crm.post(_api(crm_root, "Person"), json=body, headers=_auth(sample.token),
                            timeout=10)
        if response.status_code != 200:
            raise DemoError(f"creating a person failed: {response.status_code} {response.text}")
        created.append((sample, response.json()["PersonId"]))

    all_ok = True
    for sample, person_id in created:
        consents = _wait_for_consents(crm, crm_root, person_id)
        mail = _wait_for_mail(outbox, sample.email) if sample.email else None
        all_ok &= _report(crm_root, sample, person_id, consents, mail)
    return all_ok


def _sign_ins_and_doctor(crm_root: str, env: dict) -> bool:
    """Say how the connector signed in, then run ``consent-connector doctor``."""
    sign_ins = requests.get(f"{crm_root}/__sandbox/sign-ins", timeout=10).json()
    good = sum(1 for attempt in sign_ins if attempt["successful"])
    print(f"\nThe connector signed in as a system user {good} time(s) "
          f"({len(sign_ins) - good} refused); web and worker share the ticket.")
    return _command(env, "doctor")


def _command(env: dict, *args: str) -> bool:
    """Run and print ``consent-connector ARGS``; True when it exits 0."""
    print(f"\n$ consent-connector {' '.join(args)}")
    result = subprocess.run([sys.executable, "-m", "connector", *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=TIMEOUT)
    print((result.stdout + result.stderr).rstrip())
    return result.returncode == 0


def _wait_for_consents(crm: requests.Session, crm_root: str, person_id: int) -> list[dict]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        response = crm.get(_api(crm_root, f"Person/{person_id}/Consent"),
                           headers=_auth(USER_TOKEN), timeout=10)
        if response.status_code == 200 and response.json():
            return response.json()
        time.sleep(0.2)
    return []


def _wait_for_mail(outbox: Path, address: str):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for path in sorted(outbox.glob("*.eml")):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            if message["To"] == address:
                return path, message
        time.sleep(0.2)
    return None


def _report(crm_root: str, sample: SamplePerson, person_id: int, consents: list[dict],
            mail) -> bool:
    print(f"\nPerson {person_id} ({sample.first_name} {sample.last_name}, "
          f"{sample.email or 'no email'}) — card: {crm_root}/{TENANT}/person/{person_id}")
    if not consents:
        print("  ✗ no consents written back")
        return False
    for row in consents:
        print(f"  consent {row['ConsentPurposeKey']:<10} legal basis {row['LegalBaseKey']:<9} "
              f"source {row['ConsentSourceKey']:<8} by associate {row['RegisteredAssociateId']}")
        print(f"          comment: {row['Comment']}")
    if sample.email is None:
        print("  no mail: the person has no email address (as expected)")
        return True
    if mail is None:
        print("  ✗ no confirmation mail in the outbox")
        return False
    path, message = mail
    text = message.get_body(("plain",)).get_content()
    link = re.search(r"https?://\S+/p/[\w.-]+", text)
    print(f"  mail    {message['Subject']!r} ({message['Content-Language']}) → {path}")
    if not link:
        print("  ✗ the mail has no personal link")
        return False
    page = requests.get(link.group(0), timeout=10)
    print(f"  link    {link.group(0)}")
    print(f"          opens: HTTP {page.status_code}")
    return page.status_code == 200


def _print_urls(crm_root: str, web_root: str, data_dir: Path, admin_token: str,
                env_file: Path) -> None:
    body = '{"Firstname": "New", "Lastname": "Person", "Emails": [{"Value": "new@example.org"}]}'
    print(f"""
Everything keeps running (SERVE=1). Open:
  CRM person cards   {crm_root}/
  connector health   {web_root}/readyz
  admin (support)    {web_root}/admin/   user: any, password: {admin_token}
  mails (outbox)     {data_dir / 'outbox'}
  personal pages     the links printed above
Use the consent-connector command beside it, in another terminal:
  source {_shown(env_file)}
  consent-connector status
Create more persons in the CRM with:
  curl -X POST {_api(crm_root, 'Person')} -H 'Authorization: Bearer {USER_TOKEN}' -H 'Content-Type: application/json' -d '{body}'
Stop with Ctrl-C.""", flush=True)


ENV_FILE = "env"
"""In DATA_DIR while a demo runs with SERVE=1: its settings."""

DEMO_SETTINGS = ("SUPEROFFICE_CONTEXT_IDENTIFIER", "SUPEROFFICE_LOGIN_URL",
                 "SUPEROFFICE_CLIENT_SECRET", "SUPEROFFICE_SYSTEM_USER_TOKEN",
                 "SUPEROFFICE_PRIVATE_KEY_FILE", "SUPEROFFICE_TOKEN_CERTIFICATE_FILE",
                 "SUPEROFFICE_WEBHOOK_SECRET", "SUPEROFFICE_ASSOCIATE_ID", "MAIL_FROM",
                 "PUBLIC_BASE_URL", "SECRET_KEY", "ADMIN_TOKEN", "DATA_DIR", "RETRY_INTERVALS")
"""The settings the demo gives its processes, written to DATA_DIR/env for the command line
(Redis, the evidence database and the outbox follow from DATA_DIR)."""


def write_env_file(data_dir: Path, settings: dict[str, str]) -> Path:
    """Write ``settings`` as ``export NAME=value`` lines to DATA_DIR/env (readable by its owner
    only: it holds the demo's secrets), with the folder of the ``consent-connector`` command
    first on PATH, and return its path."""
    path = data_dir / ENV_FILE
    path.touch(mode=0o600)
    commands = Path(sys.executable).parent  # where the consent-connector command is installed
    path.write_text("# The running demo's settings: source this file to use consent-connector "
                    "beside it.\n" + "".join(f"export {name}={shlex.quote(value)}\n"
                                              for name, value in settings.items())
                    + f'export PATH={shlex.quote(str(commands))}:"$PATH"\n')
    return path


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it is inside it (as a person types it)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
