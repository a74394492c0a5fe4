"""The person's page, reached through the signed link in their mails.

GET /p/<token>          shows what is recorded about them, why and from where, as the CRM
                        holds it now, with their choices still being saved; changes nothing
                        (mail scanners open links before people do).
POST /p/<token>         saves their choices (CSRF-protected): a job writes them to the CRM.
POST /p/<token>/renew   mails a fresh link, for an expired one; says the same either way.
POST /p/<token>/renew-consent
                        renews a consent (CSRF-protected): given again, to the text shown
                        now, which starts a lapsing consent's term anew.
POST /p/<token>/unsubscribe-all
                        one click (CSRF-protected): withdraws consent to every purpose with
                        subscriptions and unsubscribes from all of them.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import redis
import sqlalchemy.exc
from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from rq.job import Job, JobStatus
from werkzeug.exceptions import RequestEntityTooLarge

from connector import defaults, i18n, keys
from connector.consent import (ACTIVE, WITHDRAWN, ConsentConfig, Notice, Purpose, PurposeView,
                               consent_holds, describe_purposes, find_shipment_type, fold_key,
                               pick_text, resolve_subscription_choices)
from connector.crm.types import Person
from connector.exceptions import CRMError, PersonNotFoundError, TokenError
from connector.expiry import ExpiryDecision, decide_expiry, expiry_history
from connector.exports.formats import FORMATS, served
from connector.exports.report import own_report
from connector.links import LinkToken
from connector.pending import SUBSCRIPTION_PREFIX, pending_choices
from connector.queueing import enqueue_copy, enqueue_fresh_link, enqueue_preferences
from connector.evidence.ledger import last_known_consents
from connector.services import Services
from connector.times import now
from connector.web.context import get_services
from connector.web.extensions import limiter, link_token
from connector.web.person_pages import message_page, page_languages, request_proof

bp = Blueprint("person_page", __name__)
log = logging.getLogger(__name__)
LIMITS = defaults.PAGE_RATE_LIMITS


@dataclass(frozen=True)
class SubscriptionRow:
    """One subscription under its purpose: the CRM's selection or the pending choice."""

    key: str
    name: str
    description: str
    checked: bool
    pending: str | None


@dataclass(frozen=True)
class PageRow:
    """One purpose on the page: what the CRM holds and what the person may change.

    ``control`` is "consent" (on/off, requires consent), "objection" (allowed/objected) or
    None (nothing to change here). ``pending`` is "saving" or "failed" for a choice made on
    the page that is not in the CRM yet.
    """

    key: str
    view: PurposeView
    control: str | None
    checked: bool
    pending: str | None
    notice: Notice | None
    notice_text: str
    privacy_statement_url: str | None
    subscriptions: tuple[SubscriptionRow, ...] = ()
    agreed_version: str | None = None
    """The older consent text version the person's active consent rests on (the ledger's
    last word); None when it is the current one or unknown."""
    agreed_text: str = ""
    """That version's text, when the purposes file keeps it (``notice.earlier``)."""
    lapse: "ConsentLapse | None" = None
    """Until when the active consent holds, for a purpose whose consent lapses."""

    @property
    def renewable(self) -> bool:
        """Whether the page offers to renew the consent: it holds, and it is due for renewal
        or rests on an older text."""
        return (self.control == "consent" and self.view.status == ACTIVE and not self.pending
                and self.notice is not None
                and bool(self.agreed_version or (self.lapse and self.lapse.state)))

    @property
    def status(self) -> str:
        """The text key of the purpose's Status line: the change being saved, else the CRM's
        state (after a failed save too: the failure is said under it)."""
        if self.pending != "saving":
            return f"status_{self.view.status}"
        if self.control == "objection":  # ticked: allowed, so the objection is taken back
            return "saving_objection_withdrawn" if self.checked else "saving_objection"
        return "saving_consent" if self.checked else "saving_withdrawal"


@dataclass(frozen=True)
class ConsentLapse:
    """Until when a lapsing consent holds, and ``state``: "due" (the person is asked to renew
    it), "ended" (past its day, not yet recorded) or None."""

    valid_until: datetime
    state: str | None


def lapse_of(decision: ExpiryDecision, moment: datetime) -> ConsentLapse | None:
    """What the page says of a consent's term (expiry.decide_expiry's decision at
    ``moment``); None when it has none (the consent does not lapse, or does not hold)."""
    term = decision.term
    if term is None:
        return None
    valid_until = decision.lapses_on or term.ends
    if moment >= valid_until:
        return ConsentLapse(valid_until, "ended")
    due = term.remind_from is not None and moment >= term.remind_from
    return ConsentLapse(valid_until, "due" if due else None)


@bp.get("/p/<token>")
@limiter.limit(LIMITS["view"])
def show(token: str):
    """Show the person's purposes and consents, and the form to change them."""
    services = get_services()
    link, person, failure = _open(token, i18n.language_for(services.config,
                                                           request.args.get("lang")))
    if failure:
        return failure
    language = i18n.language_for(services.config, request.args.get("lang") or person.language)
    return _render_page(services, person, language, saved=request.args.get("saved") == "1")


@bp.post("/p/<token>")
@limiter.limit(LIMITS["save_per_address"])
@limiter.limit(LIMITS["save_per_link"], key_func=link_token)
def save(token: str):
    """Save the person's choices; a job writes them to the CRM. Then show the page again."""
    services = get_services()
    language = i18n.language_for(services.config, request.form.get("lang"))
    link, person, failure = _open(token, language)
    if failure:
        return failure
    changeable = {key: purpose for key, purpose in services.config.purposes.items()
                  if _control(purpose) and key in request.form.getlist("purpose")}
    if any(purpose.notice and request.form.get(f"notice:{key}") != purpose.notice.version
           for key, purpose in changeable.items()):
        return _render_page(services, person, language, notice_changed=True)
    try:
        rows = _rows(services, person, language)
    except redis.RedisError:
        return message_page(language, "unavailable", 503)
    shown = {row.key: row.checked for row in rows}
    shown_subscriptions = {sub.key: sub.checked for row in rows for sub in row.subscriptions}
    choices = {key: request.form.get(f"choice:{key}") == "on" for key in changeable}
    choices = {key: granted for key, granted in choices.items() if shown.get(key) != granted}
    subscriptions = {key: request.form.get(f"subscribe:{key}") == "on"
                     for key in request.form.getlist("subscription") if key in shown_subscriptions}
    subscriptions = {key: on for key, on in subscriptions.items()
                     if shown_subscriptions[key] != on}
    if not choices and not subscriptions:  # nothing differs from what the page showed
        return redirect(url_for(".show", token=token, lang=language, saved=1), code=303)
    proof = request_proof(link.token_id, **{f"notice:{key}": purpose.notice.version
                                            for key, purpose in changeable.items()
                                            if purpose.notice})
    job = _queue(services, person, choices, subscriptions, proof)
    if job is None:
        return message_page(language, "unavailable", 503)
    _wait_for(job)
    return redirect(url_for(".show", token=token, lang=language, saved=1), code=303)


@bp.post("/p/<token>/unsubscribe-all")
@limiter.limit(LIMITS["save_per_address"])
@limiter.limit(LIMITS["save_per_link"], key_func=link_token)
def unsubscribe_all(token: str):
    """One click: withdraw consent to every purpose that has subscriptions and unsubscribe
    from all of them (GDPR Art. 7(3): as easy as giving). CSRF-protected like saving."""
    services = get_services()
    language = i18n.language_for(services.config, request.form.get("lang"))
    link, person, failure = _open(token, language)
    if failure:
        return failure
    config = services.config
    purposes = {sub.purpose for sub in config.subscriptions.values()}
    choices = {key: False for key in purposes if consent_holds(config, person.consents, key)}
    subscriptions = {}
    for key, subscription in config.subscriptions.items():
        current = find_shipment_type(subscription, person.shipment_types)
        if current is not None and current.selected:
            subscriptions[key] = False
    if choices or subscriptions:
        job = _queue(services, person, choices, subscriptions, request_proof(link.token_id))
        if job is None:
            return message_page(language, "unavailable", 503)
        _wait_for(job)
    return redirect(url_for(".show", token=token, lang=language, saved=1), code=303)


@bp.post("/p/<token>/renew-consent")
@limiter.limit(LIMITS["save_per_address"])
@limiter.limit(LIMITS["save_per_link"], key_func=link_token)
def renew_consent(token: str):
    """Renew a consent that holds: give it again, to the text the page shows now (its version
    is in the proof), which starts a lapsing consent's term anew. CSRF-protected like
    saving."""
    services = get_services()
    language = i18n.language_for(services.config, request.form.get("lang"))
    link, person, failure = _open(token, language)
    if failure:
        return failure
    key = request.form.get("purpose", "")
    purpose = services.config.purposes.get(key)
    if purpose is None or not purpose.requires_consent or purpose.notice is None:
        return message_page(language, "invalid", 404)
    if request.form.get(f"notice:{key}") != purpose.notice.version:
        return _render_page(services, person, language, notice_changed=True)
    if consent_holds(services.config, person.consents, key):
        proof = request_proof(link.token_id, **{f"notice:{key}": purpose.notice.version})
        job = _queue(services, person, {key: True}, {}, proof, renewals=[key])
        if job is None:
            return message_page(language, "unavailable", 503)
        _wait_for(job)
    return redirect(url_for(".show", token=token, lang=language, saved=1), code=303)


def _queue(services: Services, person: Person, choices: dict[str, bool],
           subscriptions: dict[str, bool], proof: dict[str, str],
           renewals: list[str] | None = None) -> Job | None:
    """Queue the job that writes the choices, and mark what it will change as being saved
    (with what the choices imply: consent for a subscription, unsubscribing when a purpose
    goes off). None when Redis did not take it."""
    implied, wanted = resolve_subscription_choices(services.config, person.consents,
                                                   person.shipment_types, choices, subscriptions)
    marks = {**implied, **{SUBSCRIPTION_PREFIX + key: on for key, on in wanted.items()}}
    try:
        job = enqueue_preferences(services.redis, services.settings, person.id, choices, proof,
                                  subscriptions, marks=marks, renewals=renewals)
    except redis.RedisError as error:
        log.error("page.save_unavailable person_id=%s error=%s", person.id, type(error).__name__)
        return None
    log.info("page.saved person_id=%s job_id=%s token_id=%s", person.id, job.id,
             proof.get("token_id"))
    return job


def _wait_for(job: Job) -> None:
    """Give the job up to PAGE_SAVE_WAIT seconds to end, so the page the person comes back to
    shows the result rather than "… being saved". RQ's result stream is read blocking a
    second at a time (under the web's Redis timeout); a failed attempt ends the wait too
    (the page then shows the retry as being saved)."""
    for _ in range(defaults.PAGE_SAVE_WAIT):
        try:
            if job.latest_result(timeout=1) is not None:
                return
        except redis.RedisError:
            return  # the page says "being saved" and reads Redis again, or answers 503


@bp.get("/p/<token>/export")
@limiter.limit(LIMITS["export_per_address"])
@limiter.limit(LIMITS["export_per_link"], key_func=link_token)
def export(token: str):
    """The person's own copy of their data (GDPR Art. 15, 20): their consents and history as
    .xlsx (``format=xlsx``, the default) or JSON, the export support staff would make. Reads
    only; the link's checks and a limit of its own apply."""
    services = get_services()
    language = i18n.language_for(services.config, request.args.get("lang"))
    fmt = request.args.get("format", "xlsx")
    if fmt not in FORMATS:
        return message_page(language, "invalid", 404)
    link, person, failure = _open(token, language)
    if failure:
        return failure
    try:
        entries = services.ledger.entries(person.id)
    except sqlalchemy.exc.SQLAlchemyError as error:
        log.error("page.export_unavailable person_id=%s error=%s", person.id,
                  type(error).__name__)
        return message_page(language, "unavailable", 503)
    report = own_report(services.config, person, entries, language=language,
                        connector_associate_id=services.settings.associate_id)
    log.info("page.exported person_id=%s token_id=%s format=%s", person.id, link.token_id, fmt)
    body, headers = served(report, fmt)
    return Response(body, 200, headers)


@bp.post("/p/<token>/export/mail")
@limiter.limit(LIMITS["save_per_address"])
@limiter.limit(LIMITS["save_per_link"], key_func=link_token)
def mail_copy(token: str):
    """Mail the person a copy of their data (the .xlsx export) to the address on record. The
    answer never tells whether there is one; at most one copy per person per
    COPY_MAIL_INTERVAL. CSRF-protected like saving."""
    services = get_services()
    language = i18n.language_for(services.config, request.form.get("lang"))
    link, failure = _read_link(token, language)
    if failure:
        return failure
    try:
        if services.redis.set(keys.copy_mail(link.person_id), "1", nx=True,
                              ex=defaults.COPY_MAIL_INTERVAL):
            job = enqueue_copy(services.redis, services.settings, link.person_id, language)
            log.info("page.copy_queued person_id=%s job_id=%s token_id=%s", link.person_id,
                     job.id, link.token_id)
    except redis.RedisError:
        return message_page(language, "unavailable", 503)
    return message_page(language, "copy_sent", 200)


@bp.post("/p/<token>/renew")
@limiter.limit(LIMITS["renew_per_address"])
def renew(token: str):
    """Mail a fresh link to the address on record. The answer never tells whether there is
    one; at most one mail per person per FRESH_LINK_INTERVAL."""
    services = get_services()
    language = i18n.language_for(services.config, request.form.get("lang"))
    try:
        person_id = services.links.read(token).person_id
    except TokenError as error:
        person_id = error.person_id  # None when tampered: nothing to send
    try:
        if person_id and services.redis.set(keys.fresh_link(person_id), "1", nx=True,
                                            ex=defaults.FRESH_LINK_INTERVAL):
            enqueue_fresh_link(services.redis, services.settings, person_id)
            log.info("page.fresh_link_queued person_id=%s", person_id)
    except redis.RedisError:
        return message_page(language, "unavailable", 503)
    return message_page(language, "renew", 200)


@bp.app_errorhandler(CSRFError)
def form_expired(error):
    """The form's CSRF token is missing or old: ask the person to reload."""
    return message_page(i18n.language_for(get_services().config, request.form.get("lang")),
                        "form_expired", 400)


@bp.app_errorhandler(429)
def too_many(error):
    """A rate limit was hit: a page saying so."""
    try:
        language = request.values.get("lang")
    except RequestEntityTooLarge:  # reading a too large form here must not turn 429 into 500
        language = None
    response = message_page(i18n.language_for(get_services().config, language), "too_many", 429)
    response.headers["Retry-After"] = "60"
    return response


def _read_link(token: str, language: str) -> tuple[LinkToken | None, object]:
    """Check the link: (link, None), or (None, a page saying it expired, with the button for
    a fresh one, or that it is not valid)."""
    try:
        return get_services().links.read(token), None
    except TokenError as error:
        if error.expired:
            return None, message_page(language, "expired", 410, renew_token=token)
        return None, message_page(language, "invalid", 404)


def _open(token: str, language: str) -> tuple[LinkToken | None, Person | None, object]:
    """Check the link and read the person: (link, person, None), or a page saying why not."""
    link, failure = _read_link(token, language)
    if failure:
        return None, None, failure
    try:
        return link, get_services().crm.get_person(link.person_id), None
    except PersonNotFoundError:
        return None, None, message_page(language, "invalid", 404)
    except CRMError as error:
        log.warning("page.crm_unavailable person_id=%s error=%s", link.person_id, error)
        return None, None, message_page(language, "unavailable", 503)


def _render_page(services: Services, person: Person, language: str, *, saved: bool = False,
                 notice_changed: bool = False):
    config = services.config
    try:
        rows = _rows(services, person, language)
    except redis.RedisError:
        return message_page(language, "unavailable", 503)
    return render_template("person.html", person=person, rows=rows,
                           t=i18n.texts("page", language), r=i18n.texts("rights", language),
                           rights=i18n.RIGHTS, controller=config.controller, language=language,
                           languages=page_languages(config), saved=saved,
                           notice_changed=notice_changed, token=request.view_args["token"])


def _rows(services: Services, person: Person, language: str) -> list[PageRow]:
    """The page's rows: the CRM's state with the person's choices still being saved, the
    consent text versions the person agreed to and until when lapsing consents hold."""
    connection = services.redis
    pending = pending_choices(connection, person.id)
    failed_jobs = _failed_jobs(connection, {mark["job_id"] for mark in pending.values()})
    failed = {key for key, mark in pending.items() if mark["job_id"] in failed_jobs}
    entries = _ledger_of(services, person)
    known = last_known_consents(entries)
    agreed = {purpose: entry["notice_version"] for purpose, entry in known.items()
              if entry.get("notice_version")}
    return page_rows(services.config, person, language, pending, failed, agreed,
                     _lapses(services.config, person, known, entries, now()))


def _ledger_of(services: Services, person: Person) -> list[Mapping[str, str]]:
    """The person's ledger entries; none when the evidence database cannot be read now (the
    page then says nothing of versions and terms)."""
    try:
        return services.ledger.entries(person.id)
    except sqlalchemy.exc.SQLAlchemyError as error:
        log.warning("page.ledger_unavailable person_id=%s error=%s", person.id,
                    type(error).__name__)
        return []


def _lapses(config: ConsentConfig, person: Person, known: Mapping[str, Mapping[str, str]],
            entries: list[Mapping[str, str]], moment: datetime) -> dict[str, ConsentLapse]:
    """Purpose key → until when its consent holds, for each lapsing consent that holds."""
    rows = {fold_key(record.purpose): record for record in person.consents}
    lapses = {}
    for key, purpose in config.purposes.items():
        row = rows.get(fold_key(purpose.crm_key))
        decision = decide_expiry(config, purpose, row, known.get(row.purpose) if row else None,
                                 expiry_history(entries, purpose), moment)
        lapse = lapse_of(decision, moment)
        if lapse is not None:
            lapses[key] = lapse
    return lapses


def page_rows(config: ConsentConfig, person: Person, language: str,
              pending: dict[str, dict], failed: set[str],
              agreed: Mapping[str, str] | None = None,
              lapses: Mapping[str, ConsentLapse] | None = None) -> list[PageRow]:
    """Pair each purpose's CRM state with what the person may change and what is pending,
    and, for a consent given to an older text (``agreed``: purpose CRM key → version), that
    version and its text; ``lapses``: purpose key → until when its consent holds."""
    agreed, lapses = agreed or {}, lapses or {}
    rows = []
    for view in describe_purposes(config, person.consents, language):
        key = view.key
        purpose = config.purposes.get(key)
        control = _control(purpose) if purpose else None
        mark = pending.get(key)
        if mark and key not in failed:
            checked = mark["granted"]
        elif control == "objection":  # allowed until the person objects, even with no row yet
            checked = view.status != WITHDRAWN
        else:
            checked = view.status == ACTIVE
        agreed_version = (agreed.get(view.crm_key) if control == "consent"
                          and view.status == ACTIVE else None)
        if purpose is None or purpose.notice is None or agreed_version == purpose.notice.version:
            agreed_version = None
        rows.append(PageRow(
            agreed_version=agreed_version,
            lapse=lapses.get(key) if control == "consent" and view.status == ACTIVE else None,
            agreed_text=pick_text(purpose.notice.earlier.get(agreed_version, {}), language)
            if agreed_version else "",
            key=key, view=view, control=control, checked=checked,
            pending=("failed" if key in failed else "saving") if mark else None,
            notice=purpose.notice if purpose else None,
            notice_text=pick_text(purpose.notice.text, language) if purpose and purpose.notice
            else "",
            privacy_statement_url=purpose.privacy_statement_url if purpose else None,
            subscriptions=tuple(_subscription_rows(config, person, language, key, pending,
                                                   failed)) if purpose else ()))
    return rows


def _subscription_rows(config: ConsentConfig, person: Person, language: str, purpose_key: str,
                       pending: dict[str, dict], failed: set[str]) -> list[SubscriptionRow]:
    """The subscriptions under a purpose that the person's CRM record offers (a shipment type
    the person does not have is not shown), ticked as the CRM or a pending choice has them."""
    rows = []
    for key, subscription in config.subscriptions.items():
        if subscription.purpose != purpose_key:
            continue
        current = find_shipment_type(subscription, person.shipment_types)
        if current is None:
            continue
        mark = pending.get(SUBSCRIPTION_PREFIX + key)
        is_failed = SUBSCRIPTION_PREFIX + key in failed
        rows.append(SubscriptionRow(
            key=key, name=pick_text(subscription.name, language),
            description=pick_text(subscription.description, language),
            checked=mark["granted"] if mark and not is_failed else current.selected,
            pending=("failed" if is_failed else "saving") if mark else None))
    return rows


def _control(purpose: Purpose) -> str | None:
    if purpose.requires_consent:
        return "consent"
    if purpose.allow_objection:
        return "objection"
    return None


def _failed_jobs(connection: redis.Redis, job_ids: set[str]) -> set[str]:
    """Which of the jobs have failed, in one round trip (a job that is gone has not)."""
    jobs = Job.fetch_many(list(job_ids), connection=connection) if job_ids else []
    return {job.id for job in jobs if job and job.get_status(refresh=False) == JobStatus.FAILED}
