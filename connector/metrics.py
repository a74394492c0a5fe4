"""Prometheus metrics, counted in Redis so every web and worker process on every machine adds
to the same figures; the web serves them at GET /metrics (connector.web.health).

Counting: each observation is one pipelined round trip of HINCRBY/HINCRBYFLOAT on a hash
(a worker's job holds its counts for one round trip at its end: ``counted_together``)
under ``connector:metrics:*`` (one hash per metric, one field per label combination,
label values joined by ``|``). Serving: a custom collector reads those hashes, and the
queue depths and live workers from RQ's own keys, at scrape time; nothing is kept in the
process (no prometheus multiprocess directory).

The public functions never raise because of Redis: a metric must never break a webhook or
a job. A Redis error is logged at debug and, for a few seconds, further counts on the same
connection pool are dropped instead of waiting for Redis again (the web process would
otherwise wait out a socket timeout per metric during an outage).

/metrics is open. It shows only counters and gauges with the labels below, never an id,
name or address: label values come from fixed sets (unknown ones become ``other``).
"""

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial

import redis
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)
from prometheus_client.utils import floatToGoString
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.worker_registration import REDIS_WORKER_KEYS

from connector.keys import METRICS_PREFIX, QUEUE_NAMES

log = logging.getLogger(__name__)

WEBHOOKS = METRICS_PREFIX + "webhooks_total"
JOBS = METRICS_PREFIX + "jobs_total"
CRM_REQUESTS = METRICS_PREFIX + "crm_requests_total"
CRM_SECONDS = METRICS_PREFIX + "crm_request_seconds"
MAILS = METRICS_PREFIX + "mails_total"

WEBHOOK_OUTCOMES = ("received", "queued", "duplicate", "ignored", "stale", "test",
                    "rejected_signature",
                    "rejected_json", "rejected_schema", "rejected_too_large", "unavailable")
"""Outcomes of POST /webhooks/superoffice. ``received`` counts every request that reached the
receiver; each then ends in exactly one of the others (``test`` is SuperOffice's
registration test)."""

JOB_OUTCOMES = ("succeeded", "retried", "failed")
MAIL_OUTCOMES = ("sent", "failed")
HTTP_METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS")
CRM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the CRM latency histogram; +Inf is added."""

QUEUE_STATES = ("queued", "scheduled", "started", "failed")
OTHER = "other"
QUIET_AFTER_ERROR = 5.0
"""Seconds during which counts are dropped after Redis failed on the same connection pool."""

_STEP = re.compile(r"[a-z][a-z0-9 _-]{0,39}")
_SEPARATOR = "|"

# -- counting (called from web and worker processes) -------------------------------------


def count_webhook(connection: redis.Redis, *outcomes: str) -> None:
    """Count one webhook request under each of ``outcomes`` (see WEBHOOK_OUTCOMES), in one
    round trip: the receiver counts ``received`` and how the request ended together."""
    _increment(connection, [(WEBHOOKS, _choice(outcome, WEBHOOK_OUTCOMES, "outcome"), 1)
                            for outcome in outcomes])


REJECTION_WINDOW_MINUTES = 60
"""How far back ``status`` looks for webhook requests with a bad signature."""


def count_signature_rejection(connection: redis.Redis, at: float | None = None) -> None:
    """Count a webhook request whose signature matched no secret in the minute it came
    (one key per minute, gone after the window), for ``status`` to say when the CRM and
    SUPEROFFICE_WEBHOOK_SECRET disagree. Never raises."""
    key = rejected_signatures_key(int((at or time.time()) // 60))
    try:
        with connection.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, (REJECTION_WINDOW_MINUTES + 1) * 60)
            pipe.execute()
    except redis.RedisError as error:
        log.debug("metrics.dropped reason=%s", type(error).__name__)


def signature_rejections(connection: redis.Redis,
                         at: float | None = None) -> tuple[int, float | None]:
    """How many webhook requests had a bad signature in the last REJECTION_WINDOW_MINUTES,
    and the start of the minute the latest came in (a Unix time; None when none did).

    Raises:
        redis.RedisError: Redis cannot be read.
    """
    minute = int((at or time.time()) // 60)
    counts = connection.mget([rejected_signatures_key(minute - ago)
                              for ago in range(REJECTION_WINDOW_MINUTES)])
    total = sum(int(count) for count in counts if count)
    latest = next((ago for ago, count in enumerate(counts) if count), None)
    return total, None if latest is None else (minute - latest) * 60.0


def rejected_signatures_key(minute: int) -> str:
    """The counter of bad signatures in one minute (minutes since the epoch)."""
    return f"{METRICS_PREFIX}rejected-signatures:{minute}"


def count_job(connection: redis.Redis, step: str, outcome: str) -> None:
    """Count one job attempt's end: ``succeeded``, ``retried`` or ``failed`` (for good).

    Args:
        step: the job's ``meta["step"]`` (onboarding, preferences, fresh link …).
    """
    field = _field(_step(step), _choice(outcome, JOB_OUTCOMES, "outcome"))
    _increment(connection, [(JOBS, field, 1)])


def observe_crm_call(connection: redis.Redis, method: str, status: int | None,
                     seconds: float) -> None:
    """Count one CRM HTTP call and its duration.

    Args:
        method: the HTTP method.
        status: the HTTP status, or None when no answer came (timeout, refused, …).
        seconds: how long the call took.
    """
    method = _choice(str(method).upper(), HTTP_METHODS, "method")
    status_label = str(status) if isinstance(status, int) and 100 <= status <= 599 else "error"
    seconds = max(float(seconds), 0.0)
    bound = next((b for b in CRM_BUCKETS if seconds <= b), None)
    _increment(connection, [
        (CRM_REQUESTS, _field(method, status_label), 1),
        (CRM_SECONDS, _field(method, _le(bound)), 1),
        (CRM_SECONDS, _field(method, "sum"), seconds),
    ])


def count_mail(connection: redis.Redis, outcome: str) -> None:
    """Count one confirmation mail delivery: ``sent`` (server or outbox took it) or ``failed``
    (this attempt; a retry that then succeeds counts ``sent`` too)."""
    _increment(connection, [(MAILS, _choice(outcome, MAIL_OUTCOMES, "outcome"), 1)])


def crm_observer(connection: redis.Redis) -> Callable[[str, int | None, float], None]:
    """Return ``observe(method, status, seconds)`` bound to ``connection``, for a CRM client."""
    return partial(observe_crm_call, connection)


def job_succeeded(job, connection: redis.Redis, result, *args, **kwargs) -> None:
    """RQ success callback (``on_success=Callback(job_succeeded)``): count the job."""
    count_job(connection, (job.meta or {}).get("step") or OTHER, "succeeded")


@contextmanager
def counted_together(connection: redis.Redis) -> Iterator[None]:
    """Hold the counts made in the block (in this thread or task) and apply them in one round
    trip when it ends: a worker counts a job's CRM calls, mail and outcome at the job's end,
    not one round trip each. Counts of a process killed in the block are lost (metrics are
    counts, not evidence)."""
    held: list[tuple[str, str, float]] = []
    token = _HELD.set(held)
    try:
        yield
    finally:
        _HELD.reset(token)
        _increment(connection, held)


_HELD: ContextVar[list[tuple[str, str, float]] | None] = ContextVar("metrics_held",
                                                                     default=None)


def _increment(connection: redis.Redis, updates: list[tuple[str, str, float]]) -> None:
    """Apply the increments in one round trip, atomically (or hold them for the end of
    ``counted_together``); swallow and log Redis errors."""
    held = _HELD.get()
    if held is not None:
        held.extend(updates)
        return
    if connection is None or not updates:
        return
    pool = getattr(connection, "connection_pool", None)
    quiet_until = getattr(pool, "_connector_metrics_quiet_until", 0.0)
    if quiet_until and time.monotonic() < quiet_until:
        return
    try:
        pipe = connection.pipeline(transaction=True)
        for key, field, amount in updates:
            if isinstance(amount, int):
                pipe.hincrby(key, field, amount)
            else:
                pipe.hincrbyfloat(key, field, amount)
        pipe.execute()
    except redis.RedisError as error:
        log.debug("metrics.dropped reason=%s", type(error).__name__)
        if pool is not None:
            pool._connector_metrics_quiet_until = time.monotonic() + QUIET_AFTER_ERROR


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value in allowed:
        return value
    log.warning("metrics.unknown_label label=%s", what)  # the value itself is never logged
    return OTHER


def _step(step: str) -> str:
    step = str(step).strip().lower()
    if _STEP.fullmatch(step):
        return step
    log.warning("metrics.unknown_label label=step")
    return OTHER


def _field(*labels: str) -> str:
    return _SEPARATOR.join(labels)


def _le(bound: float | None) -> str:
    return "le=+Inf" if bound is None else f"le={bound:g}"


# -- serving -------------------------------------------------------------------------------


class RedisCollector:
    """A prometheus_client collector that reads the counts and RQ's queues from Redis.

    ``collect()`` raises redis.RedisError when Redis does not answer.
    """

    def __init__(self, connection: redis.Redis, queue_names: Iterable[str] = QUEUE_NAMES):
        self.connection = connection
        self.queue_names = queue_names

    def collect(self):
        # 1. Which queues exist and which workers registered (one round trip).
        first = self.connection.pipeline(transaction=False)
        first.smembers(Queue.redis_queues_keys)
        first.smembers(REDIS_WORKER_KEYS)
        queue_keys, worker_keys = first.execute()
        names = list(self.queue_names)
        prefix = Queue.redis_queue_namespace_prefix
        for key in sorted(k.decode() if isinstance(k, bytes) else k for k in queue_keys):
            name = key[len(prefix):] if key.startswith(prefix) else key
            if name not in names:
                names.append(name)

        # 2. Counts, queue lengths, registries and live workers (one round trip).
        second = self.connection.pipeline(transaction=False)
        for key in (WEBHOOKS, JOBS, CRM_REQUESTS, CRM_SECONDS, MAILS):
            second.hgetall(key)
        for name in names:
            queue = Queue(name, connection=self.connection)
            second.llen(queue.key)
            for registry in (ScheduledJobRegistry, StartedJobRegistry, FailedJobRegistry):
                second.zcard(registry(queue=queue).key)
        if worker_keys:
            second.exists(*worker_keys)  # a worker's key expires when it stops heartbeating
        results = second.execute()
        webhooks, jobs, crm_requests, crm_seconds, mails = (_decode(h) for h in results[:5])
        depths = results[5:5 + 4 * len(names)]
        workers = results[-1] if worker_keys else 0

        yield _counter("connector_webhooks", "Webhook requests by outcome: received counts "
                       "every request, each then ends in one of the other outcomes.",
                       ("outcome",), webhooks, WEBHOOK_OUTCOMES)
        yield _counter("connector_jobs", "Job attempts by step and how they ended: succeeded, "
                       "retried (a retry is scheduled) or failed (for good).",
                       ("step", "outcome"), jobs)
        yield _counter("connector_crm_requests", "CRM API calls by HTTP method and status "
                       "(error: no answer).", ("method", "status"), crm_requests)
        yield _histogram("connector_crm_request_seconds", "Duration of CRM API calls in "
                         "seconds, by HTTP method.", crm_seconds)
        yield _counter("connector_mails", "Confirmation mail deliveries: sent (the mail server "
                       "or the outbox took it) or failed (the attempt failed; the job may retry "
                       "it).", ("outcome",), mails, MAIL_OUTCOMES)

        queue_jobs = GaugeMetricFamily("connector_queue_jobs", "Jobs per queue and state, read "
                                       "live from RQ: queued (waiting), scheduled (retries "
                                       "waiting for their time), started (running), failed "
                                       "(kept for support).", labels=("queue", "state"))
        for index, name in enumerate(names):
            for offset, state in enumerate(QUEUE_STATES):
                queue_jobs.add_metric((name, state), depths[4 * index + offset])
        yield queue_jobs
        yield GaugeMetricFamily("connector_workers", "RQ worker processes alive (registered "
                                "and heartbeating).", value=workers)


def _decode(raw: dict) -> dict[str, float]:
    return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}


def _counter(name: str, documentation: str, labels: tuple[str, ...], values: dict[str, float],
             always: tuple[str, ...] = ()) -> CounterMetricFamily:
    """A counter family from a hash; ``always`` lists single-label values shown even at 0."""
    family = CounterMetricFamily(name, documentation, labels=labels)
    values = {**{value: 0.0 for value in always}, **values}
    for field in sorted(values):
        label_values = field.split(_SEPARATOR)
        if len(label_values) == len(labels):
            family.add_metric(label_values, values[field])
    return family


def _histogram(name: str, documentation: str, values: dict[str, float]) -> HistogramMetricFamily:
    """A histogram by method from per-bucket (non-cumulative) counts and sums."""
    family = HistogramMetricFamily(name, documentation, labels=("method",))
    methods = sorted({field.split(_SEPARATOR, 1)[0] for field in values})
    for method in methods:
        cumulative, buckets = 0.0, []
        for bound in (*CRM_BUCKETS, None):
            cumulative += values.get(_field(method, _le(bound)), 0.0)
            buckets.append(("+Inf" if bound is None else floatToGoString(bound), cumulative))
        family.add_metric((method,), buckets, values.get(_field(method, "sum"), 0.0))
    return family
