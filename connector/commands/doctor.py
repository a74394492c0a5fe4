"""``consent-connector doctor``: check every outside part the connector needs, one line each.

A check is a function ``check(services) -> Check``; CHECKS lists them in order. A failed check
says what is wrong and which setting to fix; the command exits 1 when any failed. Nothing is
changed anywhere: no consent is written and no mail is sent.
"""

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import click
import redis
import requests
import sqlalchemy.exc

from connector import defaults, keys
from connector.commands import services_or_exit
from connector.config_diff import diff_config
from connector.exceptions import CRMError, MailError, SettingsError
from connector.redis_connection import decide_redis_problems, read_durability
from connector.services import Services
from connector.settings import EVERYTHING
from connector.superoffice.system_user import SystemUserLogin
from connector.support.jobs import workers_alive
from connector.times import readable

WEBHOOK_EVENT = "person.created"


@dataclass(frozen=True)
class Check:
    """The outcome of one check: ``fix`` names what to change when it failed."""

    ok: bool
    detail: str
    fix: str = ""


def sign_in_check(services: Services) -> Check:
    """Sign in to SuperOffice afresh as the system user (key, secret, token, the JWT's
    certificate); on-site, a fixed token has nothing to sign in with."""
    settings = services.settings
    system_user = settings.system_user
    if system_user is None:
        variable = ("SUPEROFFICE_ACCESS_TOKEN" if settings.superoffice_access_token
                    else "SUPEROFFICE_TICKET")
        return Check(True, f"a fixed {variable} (on-site); the API check tries it")
    try:
        login = SystemUserLogin(system_user)
        ticket = login.sign_in()
    except SettingsError as error:
        return Check(False, str(error), error.variable)
    except CRMError as error:
        return Check(False, str(error), error.setting or
                     "SUPEROFFICE_LOGIN_URL (SuperOffice's login did not answer)")
    # SuperOffice signs in again (an administrator re-approved the app, say): the processes
    # need not wait out the refusal they remember.
    try:
        forgotten = services.redis.delete(keys.sign_in_refused(login.fingerprint))
    except redis.RedisError:
        forgotten = 0  # the Redis check says what is wrong
    where = (f"certificate {system_user.token_certificate_file}"
             if system_user.token_certificate_file else "the environment's published keys")
    named = f"; the JWT names {ticket.api_url}" if ticket.api_url else ""
    forgot = "; the refusal the workers remembered is forgotten" if forgotten else ""
    return Check(True, f"system user of {system_user.context_identifier} at "
                       f"{system_user.login_url}: ticket issued, JWT valid ({where}){named}{forgot}")


def tenant_check(services: Services) -> Check:
    """Where the tenant is and whether it runs (SuperOffice's state API)."""
    try:
        state = services.crm.tenant_state()
    except CRMError as error:
        return Check(False, str(error), "SUPEROFFICE_ENVIRONMENT / SUPEROFFICE_LOGIN_URL")
    if state is None:
        return Check(True, f"fixed SUPEROFFICE_API_URL {services.settings.superoffice_api_url}")
    detail = (f"{state.context_identifier} {state.state} at {state.api_url} (state valid until "
              f"{readable(state.valid_until)} UTC)")
    if not state.is_running:
        return Check(False, detail + ": its API is not available now",
                     "nothing — wait for SuperOffice; jobs wait meanwhile")
    return Check(True, detail)


def api_check(services: Services) -> Check:
    """Ask the CRM who the connector is, and compare with SUPEROFFICE_ASSOCIATE_ID (the
    associate whose consent changes the connector does not take for a user's)."""
    try:
        principal = services.crm.current_principal()
    except CRMError as error:
        return Check(False, str(error), error.setting or "SUPEROFFICE_API_URL")
    configured = services.settings.associate_id
    if configured is None:
        return Check(False, f"the connector is associate {principal.associate_id}, but "
                                   f"SUPEROFFICE_ASSOCIATE_ID is unset: its own consent writes "
                                   f"would come back as a CRM user's changes",
                     f"SUPEROFFICE_ASSOCIATE_ID={principal.associate_id}")
    if configured != principal.associate_id:
        return Check(False, f"the connector is associate {principal.associate_id}, not "
                                   f"{configured}", f"SUPEROFFICE_ASSOCIATE_ID={principal.associate_id}")
    return Check(True, f"the connector is associate {principal.associate_id} "
                              f"(SUPEROFFICE_ASSOCIATE_ID)")


def consent_lists_check(services: Services) -> Check:
    """The CRM has every purpose, legal basis and source the purposes file uses (config diff)."""
    try:
        lists = services.crm.consent_lists()
    except CRMError as error:
        return Check(False, f"could not read them: {error}",
                     error.setting or "the CRM's lists (consent-connector config diff)")
    differences = diff_config(services.config, lists)
    problems = [d.message for d in differences if d.problem]
    if problems:
        return Check(False, f"{len(problems)} problem(s), first: {problems[0]}",
                     f"{services.live_config.path} or the CRM's lists (consent-connector config diff)")
    return Check(True, f"{services.live_config.path} matches the CRM's lists "
                                        f"({len(differences)} note(s): consent-connector config diff)")


def webhooks_check(services: Services) -> Check:
    """A webhook sends person.created to this connector and is Active."""
    try:
        hooks = services.crm.list_webhooks()
    except CRMError as error:
        if error.status == 403:
            return Check(False, "the CRM refused to list webhooks (403)",
                         "ask SuperOffice to grant the app the Webhook API")
        return Check(False, f"could not list them: {error}",
                     error.setting or "SUPEROFFICE_API_URL")
    target = services.settings.public_base_url
    ours = [h for h in hooks if WEBHOOK_EVENT in h.events and h.target_url.startswith(target)]
    listing = ", ".join(f"#{h.id} {h.state}" for h in ours)
    if not ours:
        return Check(False, f"none sends {WEBHOOK_EVENT} to {target}",
                     "register it (README, \"Registering the webhook\")")
    if not any(h.state == "Active" for h in ours):
        return Check(False, f"{listing}: none is Active",
                     f"PATCH Webhook/{ours[0].id} with {{\"State\": \"Active\"}}")
    return Check(True, f"{listing} → {target}")


def smtp_check(services: Services) -> Check:
    """A session with the mail server: connect, EHLO, STARTTLS, login; no mail is sent."""
    mailer = services.mailer
    if mailer.server is None:
        return Check(True, f"no SMTP_URL: mails are written to {mailer.outbox_dir}")
    where = f"{mailer.server.host}:{mailer.server.port} ({mailer.server.security})"
    try:
        mailer.check()
    except MailError as error:
        return Check(False, str(error), "SMTP_URL")
    login = " and login" if mailer.server.username else ""
    return Check(True, f"{where}: EHLO{login} OK, no mail sent")


def redis_check(services: Services) -> Check:
    """Redis answers, keeps what it is given (noeviction) and persists it."""
    try:
        memory, persistence, saves = read_durability(services.redis)
    except redis.RedisError as error:
        return Check(False, f"unreachable ({type(error).__name__})", "REDIS_URL")
    problems = decide_redis_problems(memory, persistence, saves)
    if problems:
        return Check(False, "; ".join(problems),
                     "the Redis server's config (README, \"Running Redis\")")
    return Check(True, f"maxmemory-policy {memory.get('maxmemory_policy')}, "
                                f"persistence {_persistence(persistence, saves)}")


def database_check(services: Services) -> Check:
    """The evidence database answers (its schema is this code's, or doctor would not have
    started: services_or_exit names ``db upgrade``)."""
    database = services.database
    try:
        current, _ = database.revisions()
        entries = services.ledger.count()
    except sqlalchemy.exc.SQLAlchemyError as error:
        return Check(False, f"{database.where}: unreachable ({type(error).__name__})",
                     "DATABASE_URL")
    where = (f"embedded SQLite {database.url.database} (one machine only: set DATABASE_URL to "
             f"PostgreSQL to run workers on several)" if services.settings.database_embedded
             else database.where)
    return Check(True, f"{where}: schema {current}, {entries} ledger entries")


def workers_check(services: Services) -> Check:
    """At least one worker sent a heartbeat in the last WORKER_SILENCE seconds."""
    try:
        alive = workers_alive(services.redis)
    except redis.RedisError as error:
        return Check(False, f"Redis unreachable ({type(error).__name__})", "REDIS_URL")
    if not alive:
        return Check(False, f"no worker has sent a heartbeat in {defaults.WORKER_SILENCE} s: "
                            f"jobs wait", "start `consent-connector worker` (Procfile: worker)")
    return Check(True, f"{alive} alive (a heartbeat in the last {defaults.WORKER_SILENCE} s)")


def public_url_check(services: Services) -> Check:
    """PUBLIC_BASE_URL reaches this connector's web process (the links in mails use it)."""
    url = services.settings.public_base_url + "/healthz"
    try:
        response = requests.get(url, timeout=defaults.CRM_TIMEOUT, allow_redirects=False)
    except requests.exceptions.RequestException as error:
        return Check(False, f"{url}: {type(error).__name__}", "PUBLIC_BASE_URL")
    body = response.json() if "json" in response.headers.get("Content-Type", "") else None
    if response.status_code != 200 or not isinstance(body, dict) or body.get("status") != "ok":
        return Check(False, f"{url} answered {response.status_code}, not the "
                                          f"connector's health check", "PUBLIC_BASE_URL")
    return Check(True, f"{url} answers")


CHECKS: list[tuple[str, Callable[[Services], Check]]] = [
    ("sign-in", sign_in_check), ("tenant", tenant_check), ("API", api_check),
    ("consent lists", consent_lists_check), ("webhooks", webhooks_check),
    ("SMTP", smtp_check), ("Redis", redis_check), ("database", database_check),
    ("workers", workers_check),
    ("public URL", public_url_check)]
"""The checks ``doctor`` runs, by the name it prints, in order."""

NEEDS_SIGN_IN = (api_check, consent_lists_check, webhooks_check)
"""Checks that call the CRM's API: not run after a failed sign-in (they would only repeat it)."""


def run_checks(services: Services) -> list[tuple[str, Check]]:
    """Run CHECKS in order; the API checks only when the sign-in passed."""
    results: list[tuple[str, Check]] = []
    for name, check in CHECKS:
        sign_in = results[0][1] if results else None
        if check in NEEDS_SIGN_IN and sign_in is not None and not sign_in.ok:
            results.append((name, Check(False, "not checked: the sign-in failed", sign_in.fix)))
        else:
            results.append((name, check(services)))
    return results


@click.command()
def doctor():
    """Check that every outside part works: signs in to SuperOffice, reads the tenant's state,
    asks who the connector is, compares the purposes file with the CRM's lists, lists the
    webhooks, opens an SMTP session (no mail), checks Redis's memory policy and persistence,
    the evidence database and its schema, that a worker is alive and that PUBLIC_BASE_URL
    answers. One line per check; exits 1 if any failed."""
    services = services_or_exit(uses=EVERYTHING)  # it checks every part
    results = run_checks(services)
    width = max(len(name) for name, _ in results)
    for name, result in results:
        click.echo(f"{'✓' if result.ok else '✗'} {name:<{width}}  {result.detail}")
        if not result.ok:
            click.echo(f"  {'':<{width}}  → fix: {result.fix}")
    failed = sum(not result.ok for _, result in results)
    click.echo(f"{len(results) - failed} of {len(results)} checks passed.")
    sys.exit(1 if failed else 0)


def _persistence(persistence: Mapping, saves: str | None) -> str:
    parts = ["AOF"] if persistence.get("aof_enabled") else []
    if saves:
        parts.append(f"RDB ({saves})")
    return " and ".join(parts) or "unknown"
