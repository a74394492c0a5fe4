"""The web process: ``create_app(settings)`` builds it; nothing runs at import time.

Gunicorn serves ``create_app_from_env()`` (see Procfile).
"""

import os
import sys
from dataclasses import dataclass

import redis
from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from connector import defaults
from connector.config import LiveConfig
from connector.consent import ConsentConfig
from connector.crm import CRMClient
from connector.crm.superoffice import client_from_settings
from connector.exceptions import ConfigError, SettingsError
from connector.extensions import csrf, limiter
from connector.logs import configure_logging
from connector.redis_connection import connect
from connector.settings import Settings
from connector.subscriptions.tokens import LinkSigner

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class WebContext:
    """The services the web process uses."""

    settings: Settings
    live_config: LiveConfig
    redis: redis.Redis
    crm: CRMClient
    links: LinkSigner

    @property
    def config(self) -> ConsentConfig:
        """The purposes config in force (an edited file is picked up without a restart)."""
        return self.live_config.current()


def web_context() -> WebContext:
    """Return the running app's services."""
    return current_app.extensions["connector"]


def create_app(settings: Settings, *, connection: redis.Redis | None = None,
               crm: CRMClient | None = None) -> Flask:
    """Build the web app.

    Args:
        settings: the validated settings (the purposes file is settings.consent_config).
        connection: a Redis client; connected from the settings when None.
        crm: a CRM client; SuperOffice from the settings when None.

    Raises:
        ConfigError: the purposes file is invalid.
    """
    from connector import admin, health, metrics
    from connector.exports import views as exports
    from connector.subscriptions import page, unsubscribe
    from connector.webhooks import receiver

    app = Flask(__name__)
    connection = connection or connect(settings)
    app.config.update(
        MAX_CONTENT_LENGTH=defaults.WEBHOOK_MAX_BYTES,
        SECRET_KEY=settings.secret_keys[0],  # signs the session cookie that carries CSRF state
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # the form lives as long as the page's link
        RATELIMIT_STORAGE_URI="redis://",
        RATELIMIT_STORAGE_OPTIONS={"connection_pool": connection.connection_pool},
        RATELIMIT_KEY_PREFIX="connector-limits",
    )
    app.extensions["connector"] = WebContext(
        settings=settings,
        live_config=LiveConfig(settings.consent_config),
        redis=connection,
        crm=crm or client_from_settings(settings, observe=metrics.crm_observer(connection)),
        links=LinkSigner(settings.secret_keys, settings.link_max_age_days),
    )
    if settings.trusted_proxy_count:
        count = settings.trusted_proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)
    csrf.init_app(app)
    csrf.exempt(receiver.bp)  # webhooks prove themselves by their signature
    csrf.exempt(unsubscribe.bp)  # RFC 8058 one-click POSTs come without cookies: the token proves
    limiter.init_app(app)
    app.register_blueprint(receiver.bp)
    app.register_blueprint(page.bp)
    app.register_blueprint(unsubscribe.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(exports.bp)
    app.register_error_handler(HTTPException, _http_error)
    app.after_request(_add_security_headers)
    return app


def create_app_from_env() -> Flask:
    """Build the app from environment variables, or exit with a message naming what is wrong."""
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    try:
        return create_app(Settings.from_env(os.environ))
    except (SettingsError, ConfigError) as error:
        print(f"consent-connector: cannot start:\n{error}", file=sys.stderr)
        raise SystemExit(2) from None


def _http_error(error: HTTPException):
    """Answer HTTP errors as JSON for machines (webhooks) and as short text for people."""
    if request.path.startswith("/webhooks/"):
        reason = error.name.lower().replace(" ", "_")
        return jsonify(error=reason, message=error.description), error.code
    return error


def _add_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
