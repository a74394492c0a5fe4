"""Who may use the admin area (/admin/...): support staff holding ADMIN_TOKEN, sent as
``Authorization: Bearer <token>`` or as the password of HTTP basic auth (any user name), which
a browser asks for. Without ADMIN_TOKEN the admin area does not exist (404). Over plain HTTP
it answers only on loopback: elsewhere the token would cross the network readable."""

import hmac

from flask import Response, abort, request

from connector.web.context import get_services


def admin_allowed(admin_token: str | None) -> bool:
    """True when the request carries ``admin_token``; False otherwise."""
    if not admin_token:
        return False
    given = request.authorization.password if request.authorization else None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        given = header.removeprefix("Bearer ").strip()
    return given is not None and hmac.compare_digest(given.encode(), admin_token.encode())


def check_admin() -> None:
    """Abort the request unless it comes from an admin (for before_request hooks)."""
    token = get_services().settings.admin_token
    if not token:
        abort(404)
    if not request.is_secure and request.remote_addr not in ("127.0.0.1", "::1"):
        abort(403, "the admin area needs HTTPS")
    if not admin_allowed(token):
        abort(Response("admin credentials required", 401,
                       {"WWW-Authenticate": 'Basic realm="consent-connector admin"'}))


def admin_actor() -> str:
    """Who is acting in the admin area, for the ledger and exports: the basic-auth user name
    the browser sent, else "admin" (bearer token)."""
    auth = request.authorization
    name = auth.username if auth is not None and auth.type == "basic" else None
    return f"{name} (admin page)" if name else "admin (ADMIN_TOKEN)"
