"""Flask extensions, created here and bound to the app in create_app (the factory pattern):
CSRF protection for the page's forms (Flask-WTF) and rate limits kept in Redis
(Flask-Limiter)."""

from flask import request
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect


def client_address() -> str:
    """The client's IP address (behind TRUSTED_PROXY_COUNT proxies, ProxyFix has set it)."""
    return request.remote_addr or "unknown"


def link_token() -> str:
    """The personal link's token, so limits apply per link as well as per address."""
    return f"link:{(request.view_args or {}).get('token', '')}"


csrf = CSRFProtect()
limiter = Limiter(key_func=client_address, swallow_errors=True)
