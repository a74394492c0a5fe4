"""connector.metrics: what the counting functions write and what the collector serves, on an
in-memory stand-in for the few Redis commands they use (no server)."""

import math

import pytest
import redis
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from connector import metrics
from connector.metrics import (CRM_BUCKETS, RedisCollector, count_job, count_mail, count_webhook,
                               job_succeeded, observe_crm_call)


class FakePipeline:
    def __init__(self, store: "FakeRedis", transaction: bool):
        self.store, self.transaction, self.calls = store, transaction, []

    def __getattr__(self, name):
        def queue(*args):
            self.calls.append((name, args))
            return self
        return queue

    def execute(self):
        self.store.round_trips.append((self.transaction, [name for name, _ in self.calls]))
        if self.store.down:
            raise redis.ConnectionError("Connection refused")
        return [getattr(self.store, name)(*args) for name, args in self.calls]


class FakeRedis:
    """hashes, lists, sorted-set sizes and sets: the commands metrics.py sends, pipelined."""

    def __init__(self):
        self.hashes, self.lengths, self.sets, self.keys = {}, {}, {}, set()
        self.round_trips, self.down = [], False
        self.connection_pool = type("Pool", (), {})()

    def pipeline(self, transaction=True):
        return FakePipeline(self, transaction)

    def hincrby(self, key, field, amount):
        bucket = self.hashes.setdefault(key, {})
        bucket[field.encode()] = bucket.get(field.encode(), 0) + amount
        return bucket[field.encode()]

    hincrbyfloat = hincrby

    def hgetall(self, key):
        return {k: str(v).encode() for k, v in self.hashes.get(key, {}).items()}

    def smembers(self, key):
        return {m.encode() for m in self.sets.get(key, set())}

    def llen(self, key):
        return self.lengths.get(key, 0)

    zcard = llen

    def exists(self, *keys):
        return sum(1 for key in keys if (key.decode() if isinstance(key, bytes) else key)
                   in self.keys)


@pytest.fixture
def fake():
    return FakeRedis()


def scrape(connection, queue_names=("onboarding",)) -> dict:
    """Serve the collector as /metrics does and parse it back: {family name: family}."""
    text = generate_latest(RedisCollector(connection, queue_names)).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}, text


def samples(family, suffix="") -> dict:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples
            if s.name == family.name + suffix}


def test_webhook_counts_by_outcome_with_every_known_outcome_shown(fake):
    for outcome in ("received", "received", "received", "queued", "duplicate",
                    "rejected_signature"):
        count_webhook(fake, outcome)
    families, _ = scrape(fake)
    webhooks = samples(families["connector_webhooks"], "_total")
    assert webhooks[(("outcome", "received"),)] == 3
    assert webhooks[(("outcome", "queued"),)] == 1
    assert webhooks[(("outcome", "duplicate"),)] == 1
    assert webhooks[(("outcome", "rejected_signature"),)] == 1
    assert webhooks[(("outcome", "unavailable"),)] == 0  # shown before it ever happens
    assert set(dict(k)["outcome"] for k in webhooks) == set(metrics.WEBHOOK_OUTCOMES)


def test_job_crm_and_mail_counters_carry_their_labels(fake):
    count_job(fake, "onboarding", "succeeded")
    count_job(fake, "onboarding", "retried")
    count_job(fake, "onboarding", "retried")
    count_job(fake, "fresh link", "failed")
    observe_crm_call(fake, "GET", 200, 0.2)
    observe_crm_call(fake, "put", 204, 0.1)
    observe_crm_call(fake, "GET", None, 3.05)
    count_mail(fake, "sent")
    count_mail(fake, "sent")
    count_mail(fake, "failed")
    families, _ = scrape(fake)

    assert samples(families["connector_jobs"], "_total") == {
        (("outcome", "succeeded"), ("step", "onboarding")): 1,
        (("outcome", "retried"), ("step", "onboarding")): 2,
        (("outcome", "failed"), ("step", "fresh link")): 1,
    }
    assert samples(families["connector_crm_requests"], "_total") == {
        (("method", "GET"), ("status", "200")): 1,
        (("method", "PUT"), ("status", "204")): 1,
        (("method", "GET"), ("status", "error")): 1,
    }
    assert samples(families["connector_mails"], "_total") == {
        (("outcome", "sent"),): 2, (("outcome", "failed"),): 1}


def test_crm_latency_histogram_is_cumulative_with_the_fixed_buckets(fake):
    for seconds in (0.03, 0.3, 0.3, 0.05, 12.0):
        observe_crm_call(fake, "GET", 200, seconds)
    observe_crm_call(fake, "PUT", 204, 0.7)
    families, text = scrape(fake)
    histogram = families["connector_crm_request_seconds"]
    assert histogram.type == "histogram"
    get_buckets = {float(s.labels["le"]): s.value for s in histogram.samples
                   if s.name.endswith("_bucket") and s.labels["method"] == "GET"}
    assert get_buckets == {0.05: 2, 0.1: 2, 0.25: 2, 0.5: 4, 1.0: 4, 2.5: 4, 5.0: 4, 10.0: 4,
                           math.inf: 5}
    assert list(get_buckets)[:-1] == list(CRM_BUCKETS)
    by_method = {(s.name, s.labels["method"]): s.value for s in histogram.samples
                 if not s.name.endswith("_bucket")}
    assert by_method[("connector_crm_request_seconds_count", "GET")] == 5
    assert by_method[("connector_crm_request_seconds_sum", "GET")] == pytest.approx(12.68)
    assert by_method[("connector_crm_request_seconds_count", "PUT")] == 1
    assert 'connector_crm_request_seconds_bucket{le="0.5",method="PUT"} 0.0' in text
    assert 'connector_crm_request_seconds_bucket{le="1.0",method="PUT"} 1.0' in text


def test_every_family_has_help_and_its_type(fake):
    count_job(fake, "onboarding", "succeeded")
    observe_crm_call(fake, "GET", 200, 0.2)
    families, text = scrape(fake)
    expected = {"connector_webhooks": "counter", "connector_jobs": "counter",
                "connector_crm_requests": "counter", "connector_crm_request_seconds": "histogram",
                "connector_mails": "counter", "connector_queue_jobs": "gauge",
                "connector_workers": "gauge"}
    assert {name: family.type for name, family in families.items()} == expected
    for name, family in families.items():
        assert len(family.documentation) > 20, name
        assert f"# HELP {name}" in text


def test_one_atomic_round_trip_per_observation(fake):
    count_webhook(fake, "queued")
    observe_crm_call(fake, "GET", 200, 0.2)
    count_job(fake, "onboarding", "failed")
    assert fake.round_trips == [
        (True, ["hincrby"]),
        (True, ["hincrby", "hincrby", "hincrbyfloat"]),
        (True, ["hincrby"]),
    ]
    assert all(key.startswith("connector:metrics:") for key in fake.hashes)


def test_unknown_label_values_become_other_and_never_reach_the_output(fake):
    count_webhook(fake, "ada@example.com")
    count_job(fake, "Person 12: Ada Lovelace <ada@example.com>", "succeeded")
    count_job(fake, "onboarding", "exploded")
    observe_crm_call(fake, "BREW", 999, 0.1)
    count_mail(fake, "bounced to ada@example.com")
    families, text = scrape(fake)
    assert "ada" not in text.lower() and "@" not in text
    assert samples(families["connector_webhooks"], "_total")[(("outcome", "other"),)] == 1
    assert samples(families["connector_jobs"], "_total") == {
        (("outcome", "succeeded"), ("step", "other")): 1,
        (("outcome", "other"), ("step", "onboarding")): 1}
    assert samples(families["connector_crm_requests"], "_total") == {
        (("method", "other"), ("status", "error")): 1}


def test_queue_depths_and_live_workers_come_from_rq_keys(fake):
    fake.sets["rq:queues"] = {"rq:queue:onboarding", "rq:queue:reconcile"}
    fake.lengths.update({"rq:queue:onboarding": 7, "rq:scheduled:onboarding": 3,
                         "rq:wip:onboarding": 2, "rq:failed:onboarding": 5,
                         "rq:queue:reconcile": 1})
    fake.sets["rq:workers"] = {"rq:worker:a", "rq:worker:b", "rq:worker:gone"}
    fake.keys = {"rq:worker:a", "rq:worker:b"}  # the third stopped heartbeating
    families, _ = scrape(fake, queue_names=("preferences", "onboarding"))
    depths = {(s.labels["queue"], s.labels["state"]): s.value
              for s in families["connector_queue_jobs"].samples}
    assert depths == {
        ("preferences", "queued"): 0, ("preferences", "scheduled"): 0,
        ("preferences", "started"): 0, ("preferences", "failed"): 0,
        ("onboarding", "queued"): 7, ("onboarding", "scheduled"): 3,
        ("onboarding", "started"): 2, ("onboarding", "failed"): 5,
        ("reconcile", "queued"): 1, ("reconcile", "scheduled"): 0,
        ("reconcile", "started"): 0, ("reconcile", "failed"): 0,
    }
    assert families["connector_workers"].samples[0].value == 2


def test_a_redis_error_is_swallowed_and_redis_is_left_alone_for_a_while(fake, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(metrics.time, "monotonic", lambda: clock[0])
    fake.down = True
    count_webhook(fake, "received")
    observe_crm_call(fake, "GET", None, 10.0)
    count_job(fake, "onboarding", "failed")
    count_mail(fake, "failed")
    assert len(fake.round_trips) == 1  # the rest were dropped without waiting for Redis

    fake.down = False
    clock[0] += metrics.QUIET_AFTER_ERROR + 0.1
    count_webhook(fake, "queued")
    families, _ = scrape(fake)
    assert samples(families["connector_webhooks"], "_total")[(("outcome", "queued"),)] == 1


def test_the_collector_raises_when_redis_is_down(fake):
    fake.down = True
    with pytest.raises(redis.RedisError):
        scrape(fake)


def test_job_succeeded_is_an_rq_success_callback_counting_the_step(fake):
    job = type("Job", (), {"meta": {"step": "preferences", "person_id": 5}})()
    job_succeeded(job, fake, {"written": []})
    families, _ = scrape(fake)
    assert samples(families["connector_jobs"], "_total") == {
        (("outcome", "succeeded"), ("step", "preferences")): 1}
