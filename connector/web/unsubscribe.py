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

import redis
from flask import Blueprint, render_template, request

from connector import i18n
from connector.consent import Subscription, pick_text
from connector.exceptions import TokenError
from connector.links import UnsubscribeToken
from connector.pending import SUBSCRIPTION_PREFIX
from connector.queueing import enqueue_preferences
from connector.web.context import get_services
from connector.web.extensions import limiter, link_token
from connector.web.person_pages import message_page, request_proof

bp = Blueprint("unsubscribe", __name__)
log = logging.getLogger(__name__)

ONE_CLICK_LIMIT = "10 per minute"
"""Per link, not per address: mailbox providers POST many people's unsubscribes from a few
addresses of their own."""


@bp.get("/u/<token>")
@limiter.limit(ONE_CLICK_LIMIT, key_func=link_token)
def confirm(token: str):
    """Show what the link unsubscribes from, with a button; changes nothing."""
    language = _language()
    link, subscription, failure = _read(token, language)
    if failure:
        return failure
    texts = i18n.texts("page", language)
    name = pick_text(subscription.name, language)
    return render_template("unsubscribe.html", t=texts, language=language, token=token,
                           title=texts["unsubscribe_title"],
                           text=texts["unsubscribe_text"].format(name=name))


@bp.post("/u/<token>")
@limiter.limit(ONE_CLICK_LIMIT, key_func=link_token)
def one_click(token: str):
    """Unsubscribe (RFC 8058 one-click POST, or the confirm button): queue and answer 200."""
    language = _language()
    link, subscription, failure = _read(token, language)
    if failure:
        return failure
    services = get_services()
    proof = request_proof("u-" + hashlib.sha256(token.encode()).hexdigest()[:12],
                          via="one-click" if request.form.get("List-Unsubscribe") == "One-Click"
                          else "unsubscribe link")
    try:
        job = enqueue_preferences(services.redis, services.settings, link.person_id, {}, proof,
                                  {subscription.key: False},
                                  marks={SUBSCRIPTION_PREFIX + subscription.key: False})
    except redis.RedisError as error:
        log.error("unsubscribe.unavailable person_id=%s error=%s", link.person_id,
                  type(error).__name__)
        response = message_page(language, "unavailable", 503)
        response.headers["Retry-After"] = "30"
        return response
    log.info("unsubscribe.queued person_id=%s subscription=%s job_id=%s via=%s",
             link.person_id, subscription.key, job.id, proof["via"])
    return message_page(language, "unsubscribed", 200,
                        name=pick_text(subscription.name, language))


def _language() -> str:
    """The link names no language: the browser's, among the configured ones."""
    config = get_services().config
    return i18n.language_for(config, request.values.get("lang") or
                             request.accept_languages.best_match(config.languages))


def _read(token: str, language: str
          ) -> tuple[UnsubscribeToken | None, Subscription | None, object]:
    """Check the token and find its subscription: (link, subscription, None), or a page saying
    the link is invalid."""
    services = get_services()
    try:
        link = services.unsubscribe_links.read(token)
    except TokenError:
        return None, None, message_page(language, "invalid", 404)
    subscription = services.config.subscriptions.get(link.subscription)
    if subscription is None:  # the subscription was removed from the config since
        return None, None, message_page(language, "invalid", 404)
    return link, subscription, None
