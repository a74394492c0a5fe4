"""Operator endpoints, open and without personal data:

- ``GET /healthz``: the process answers (always 200).
- ``GET /readyz``: it can do its work: Redis answers (webhooks can be queued), the evidence
  database answers and a purposes config is in force. 200 ``{"status": "ok", "redis": "ok",
  "database": "ok", "config": "ok", "config_version": "<first 12 hex digits of the SHA-256 of
  the file in force>", "redis_durability": "ok"}``, else 503 with what is wrong in ``redis`` /
  ``database`` / ``config``. ``redis_durability`` names a Redis that may evict or does not
  persist (accepted webhooks would be lost with it) without failing the check: the process
  can work, and the operator should fix it. ``GET /readyz?workers=1`` also needs a worker
  that sent a heartbeat in the last WORKER_SILENCE seconds (``"workers": "2 alive"``).

An edit of the purposes file that was refused leaves the last good config in force: the
process stays ready (200) and says so in ``config_file``, e.g.
``"config_file": "version 3f2a… on disk was refused (see the log); 9c1e… is in force"``.
- ``GET /metrics``: Prometheus text (connector.metrics), the counts of every process.
"""

import logging

import redis
import sqlalchemy.exc
from flask import Blueprint, Response, jsonify, request
from prometheus_client.exposition import choose_encoder

from connector import defaults
from connector.config import config_version
from connector.metrics import RedisCollector
from connector.redis_connection import decide_redis_problems, read_durability
from connector.support.jobs import workers_alive
from connector.web.context import get_services

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Redis and the evidence database answer and a purposes config is in force; 503 naming
    what is wrong otherwise. With ``?workers=1``, also at least one worker sent a heartbeat
    in the last minute."""
    services = get_services()
    body: dict[str, str] = {}
    try:
        problems = decide_redis_problems(*read_durability(services.redis))
        body["redis"] = "ok"
        body["redis_durability"] = "; ".join(problems) or "ok"
    except redis.RedisError as error:
        body["redis"] = f"unreachable ({type(error).__name__})"
    try:
        services.database.ping()
        body["database"] = "ok"
    except sqlalchemy.exc.SQLAlchemyError as error:
        body["database"] = f"unreachable ({type(error).__name__})"

    # A config is always in force (the process does not start without one); an edit since
    # the last look is validated now, and a refused one is reported next to it.
    live = services.live_config
    live.refresh()
    body["config"] = "ok"
    body["config_version"] = live.version
    on_disk = config_version(live.path)
    if on_disk == "unreadable":
        body["config_file"] = f"{live.path} cannot be read; {live.version} is in force"
    elif on_disk != live.version:
        body["config_file"] = (f"version {on_disk} on disk was refused (see the log); "
                               f"{live.version} is in force")

    ready = body["redis"] == body["database"] == body["config"] == "ok"
    if request.args.get("workers") == "1" and body["redis"] == "ok":
        alive = workers_alive(services.redis)
        body["workers"] = (f"{alive} alive" if alive else
                           f"none has sent a heartbeat in {defaults.WORKER_SILENCE} s: jobs wait")
        ready = ready and alive > 0
    return jsonify(status="ok" if ready else "unavailable", **body), 200 if ready else 503


@bp.get("/metrics")
def metrics():
    """Prometheus scrape endpoint (no authentication: counts only, no personal data)."""
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    try:
        body = encoder(RedisCollector(get_services().redis))
    except redis.RedisError as error:
        log.warning("metrics.unavailable reason=%s", type(error).__name__)
        return Response(f"redis unreachable ({type(error).__name__})\n", status=503,
                        mimetype="text/plain", headers={"Retry-After": "15"})
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
