"""Operator endpoints: /healthz (the process answers) and /readyz (it can do its work)."""

import redis
from flask import Blueprint, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Redis answers, so webhooks can be queued; 503 otherwise."""
    from connector.app import web_context

    try:
        web_context().redis.ping()
    except redis.RedisError:
        return jsonify(status="unavailable", redis="unreachable"), 503
    return jsonify(status="ok", redis="ok")
