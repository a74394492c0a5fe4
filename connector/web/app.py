"""The web process: ``create_app(settings)`` builds it; nothing runs at import time.

Gunicorn serves ``create_app_from_env()`` (see Procfile).
"""

import os
import sys

import redis
from flask import Flask, g, jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from connector import defaults, keys
from connector.crm.budget import serving_a_request
from connector.crm.types import CRMClient
from connector.evidence.database import unreachable_reason
from connector.exceptions import ConfigError, SchemaBehindError, SettingsError
from connector.logs import configure_logging
from connector.services import build_services
from connector.settings import Settings
from connector.web import admin, exports, health, page, unsubscribe, webhooks
from connector.web.context import EXTENSION
from connector.web.extensions import csrf, limiter

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


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
    app = Flask(__name__)
    services = build_services(settings, connection=connection, crm=crm)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app,
                                        {webhooks.MOUNT: webhooks.WebhookReceiver(services)})
    app.config.update(
        MAX_CONTENT_LENGTH=defaults.WEBHOOK_MAX_BYTES,
        SECRET_KEY=settings.secret_keys[0],  # signs the session cookie that carries CSRF state
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # the form lives as long as the page's link
        RATELIMIT_STORAGE_URI="redis://",
        RATELIMIT_STORAGE_OPTIONS={"connection_pool": services.redis.connection_pool},
        RATELIMIT_KEY_PREFIX=keys.RATE_LIMIT_PREFIX,
    )
    app.extensions[EXTENSION] = services
    if settings.trusted_proxy_count:
        count = settings.trusted_proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)
    csrf.init_app(app)
    csrf.exempt(unsubscribe.bp)  # RFC 8058 one-click POSTs come without cookies: the token proves
    limiter.init_app(app)
    app.register_blueprint(page.bp)
    app.register_blueprint(unsubscribe.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(exports.bp)
    app.after_request(_add_security_headers)
    app.register_error_handler(HTTPException, _json_error_on_json_routes)
    # A CRM call made while answering a request is for someone waiting on a page: it goes
    # before the workers' calls when the CRM budget is short (connector.crm.budget).
    app.before_request(_serve_crm_calls_as_interactive)
    app.teardown_request(_end_interactive_crm_calls)
    return app


def _serve_crm_calls_as_interactive() -> None:
    g.end_crm_request = serving_a_request()


def _end_interactive_crm_calls(_error: BaseException | None) -> None:
    g.pop("end_crm_request", lambda: None)()


def create_app_from_env() -> Flask:
    """Build the app from environment variables, or exit with a message naming what is wrong."""
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    try:
        return create_app(Settings.from_env(os.environ))
    except (SettingsError, ConfigError, SchemaBehindError) as error:
        print(f"consent-connector: cannot start:\n{error}", file=sys.stderr)
        raise SystemExit(2) from None
    except OperationalError as error:
        print(f"consent-connector: cannot start:\n{unreachable_reason(error)}", file=sys.stderr)
        raise SystemExit(2) from None


def _json_error_on_json_routes(error: HTTPException):
    """An HTTP error (404, 400, 405 …) as JSON, ``{"error": "not_found", "message": …}``,
    where the caller reads JSON: a route that answers JSON (``format=json``, a ``.json``
    address, the health checks) or a client that asks for it (Accept); the HTML error page
    elsewhere."""
    wanted = request.accept_mimetypes
    if (request.args.get("format") == "json" or request.path.endswith(".json")
            or request.path in ("/healthz", "/readyz", "/metrics")
            or wanted.best == "application/json"
            or wanted["application/json"] > wanted["text/html"]):
        return jsonify(error=error.name.lower().replace(" ", "_"),
                       message=error.description), error.code
    return error


def _add_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
