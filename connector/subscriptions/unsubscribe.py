"""One-click unsubscribe from one subscription, for the links placed in mailings.

GET  /u/<token>   a page naming the subscription with a confirm button; changes nothing (mail
                  scanners and link previews open links before people do).
POST /u/<token>   unsubscribes: queues the job that clears the shipment type in the CRM and
                  answers 200 at once. RFC 8058 one-click: mailbox providers POST
                  ``List-Unsubscribe=One-Click`` from their own servers, without cookies or a
                  session, so this route is exempt from CSRF; the signed token is the proof.

A mailing carries, per recipient (README, "One-click unsubscribe")::

    List-Unsubscribe: <https://consent.example.com/u/<token>>
    List-Unsubscribe-Post: List-Unsubscribe=One-Click
"""

import hashlib
import logging
from datetime import datetime, timezone

import redis
from flask import Blueprint, make_response, render_template, request

from connector.consent import choose_language, pick_text
from connector.exceptions import TokenError
from connector.extensions import limiter, link_token
from connector.subscriptions.pending import SUBSCRIPTION_PREFIX
from connector.subscriptions.proof import protect_ip, trim_user_agent
from connector.subscriptions.texts import TEXTS
from connector.subscriptions.tokens import UnsubscribeSigner

bp = Blueprint("unsubscribe", __name__, template_folder="templates")
log = logging.getLogger(__name__)

ONE_CLICK_LIMIT = "10 per minute"
"""Per link, not per address: mailbox providers POST many people's unsubscribes from a few
addresses of their own."""


@bp.get("/u/<token>")
@limiter.limit(ONE_CLICK_LIMIT, key_func=link_token)
def confirm(token: str):
    """Show what the link unsubscribes from, with a button; changes nothing."""
    ctx, texts, language, subscription, failure = _open(token)
    if failure:
        return failure
    name = pick_text(subscription.name, language)
    return render_template("unsubscribe.html", t=texts, language=language, token=token,
                           title=texts["unsubscribe_title"],
                           text=texts["unsubscribe_text"].format(name=name))


@bp.post("/u/<token>")
@limiter.limit(ONE_CLICK_LIMIT, key_func=link_token)
def one_click(token: str):
    """Unsubscribe (RFC 8058 one-click POST, or the confirm button): queue and answer 200."""
    from workers.queues import enqueue_preferences

    ctx, texts, language, subscription, failure = _open(token)
    if failure:
        return failure
    link = ctx_signer(ctx).read(token)
    proof = {
        "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "token_id": "u-" + hashlib.sha256(token.encode()).hexdigest()[:12],
        "user_agent": trim_user_agent(request.headers.get("User-Agent")),
        "ip": protect_ip(request.remote_addr, ctx.settings.secret_keys[0]),
        "via": "one-click" if request.form.get("List-Unsubscribe") == "One-Click"
        else "unsubscribe link",
    }
    try:
        job = enqueue_preferences(ctx.redis, ctx.settings, link.person_id, {}, proof,
                                  {subscription.key: False},
                                  marks={SUBSCRIPTION_PREFIX + subscription.key: False})
    except redis.RedisError as error:
        log.error("unsubscribe.unavailable person_id=%s error=%s", link.person_id,
                  type(error).__name__)
        response = _message(texts, language, "unavailable", 503)
        response.headers["Retry-After"] = "30"
        return response
    log.info("unsubscribe.queued person_id=%s subscription=%s job_id=%s via=%s",
             link.person_id, subscription.key, job.id, proof["via"])
    name = pick_text(subscription.name, language)
    return make_response(render_template("message.html", t=texts, language=language,
                                         title=texts["unsubscribed_title"],
                                         text=texts["unsubscribed_text"].format(name=name),
                                         renew_token=None, button=None), 200)


def ctx_signer(ctx) -> UnsubscribeSigner:
    return UnsubscribeSigner(ctx.settings.secret_keys)


def _open(token: str):
    """(context, texts, language, subscription, None), or a page saying the link is invalid."""
    from connector.app import web_context

    ctx = web_context()
    config = ctx.config
    language = choose_language(config, request.values.get("lang") or
                               request.accept_languages.best_match(config.languages))
    texts = TEXTS.get(language, TEXTS["en"])
    try:
        link = ctx_signer(ctx).read(token)
    except TokenError:
        return ctx, texts, language, None, _message(texts, language, "invalid", 404)
    subscription = config.subscriptions.get(link.subscription)
    if subscription is None:  # the subscription was removed from the config since
        return ctx, texts, language, None, _message(texts, language, "invalid", 404)
    return ctx, texts, language, subscription, None


def _message(texts: dict, language: str, name: str, status: int):
    page = render_template("message.html", t=texts, title=texts[f"{name}_title"],
                           text=texts[f"{name}_text"], renew_token=None, button=None,
                           language=language)
    return make_response(page, status)
