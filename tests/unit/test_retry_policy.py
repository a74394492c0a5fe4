"""workers.retry: the retry policy run as RQ's exception handler, on a fake job (no Redis)."""

import math
import sys
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import OperationalError

from connector.exceptions import CRMError, MailError, PersonNotFoundError, SettingsError
from workers import retry
from workers.retry import JITTER, apply_retry_policy, describe_failure

INTERVALS = [10, 60, 300, 900, 3600]


class FakeJob:
    """The attributes apply_retry_policy touches on an rq Job, and a save_meta that counts."""

    connection = None  # no Redis: the job counter in /metrics does nothing

    def __init__(self, retries_left=len(INTERVALS), intervals=INTERVALS, meta=None):
        self.meta = {"person_id": 1, "step": "onboarding", "attempts": []} if meta is None else meta
        self.retries_left = retries_left
        self.retry_intervals = list(intervals) if intervals is not None else None
        self.save_meta_calls = 0

    def save_meta(self):
        self.save_meta_calls += 1


def handle(job: FakeJob, error: BaseException) -> bool:
    try:
        raise error
    except BaseException:  # noqa: BLE001 - hand the handler what RQ would
        return apply_retry_policy(job, *sys.exc_info())


@pytest.fixture
def max_jitter(monkeypatch):
    calls = []

    def randint(low, high):
        calls.append((low, high))
        return high

    monkeypatch.setattr(retry.random, "randint", randint)
    return calls


@pytest.fixture
def no_jitter(monkeypatch):
    monkeypatch.setattr(retry.random, "randint", lambda low, high: low)


PERMANENT = [
    CRMError("CRM answered 400: unknown legal base", status=400, permanent=True),
    PersonNotFoundError(4711),
    MailError("SMTP 550: mailbox unavailable", permanent=True),
]
TRANSIENT = [
    CRMError("CRM answered 503", status=503),
    CRMError("CRM did not answer: timeout"),
    MailError("SMTP 451: try again later"),
]


# --- permanent errors ------------------------------------------------------------------------

@pytest.mark.parametrize("error", PERMANENT, ids=lambda e: type(e).__name__)
def test_permanent_error_stops_retrying_with_a_readable_reason(error):
    job = FakeJob(retries_left=3)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    assert handle(job, error) is True
    after = datetime.now(timezone.utc)
    assert job.retries_left == 0
    assert job.retry_intervals == INTERVALS  # nothing stretched for a job that will not retry
    assert job.meta["reason"] == str(error)
    (attempt,) = job.meta["attempts"]
    assert attempt["error"] == str(error)
    at = datetime.fromisoformat(attempt["at"])
    assert at.tzinfo is not None and at.utcoffset() == timedelta(0)
    assert before <= at <= after
    assert job.save_meta_calls == 1


def test_person_not_found_reason_names_the_person():
    job = FakeJob()
    handle(job, PersonNotFoundError(4711))
    assert "4711" in job.meta["reason"] and "404" in job.meta["reason"]


def test_permanent_error_on_the_last_retry_also_stops():
    job = FakeJob(retries_left=1)
    handle(job, PersonNotFoundError(1))
    assert job.retries_left == 0


# --- transient errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("error", TRANSIENT, ids=str)
@pytest.mark.parametrize("retries_left", [5, 3, 1])
def test_transient_error_keeps_retries_and_stretches_only_the_current_interval(
        error, retries_left, max_jitter):
    job = FakeJob(retries_left=retries_left)
    handle(job, error)
    index = len(INTERVALS) - retries_left
    assert job.retries_left == retries_left  # RQ itself counts the retry down
    expected = list(INTERVALS)
    expected[index] = INTERVALS[index] + int(INTERVALS[index] * JITTER)
    assert job.retry_intervals == expected
    assert max_jitter == [(0, int(INTERVALS[index] * JITTER))]
    assert job.meta["reason"] == str(error)
    assert job.save_meta_calls == 1


def test_jitter_is_at_least_the_configured_interval(no_jitter):
    job = FakeJob(retries_left=4)
    handle(job, CRMError("CRM answered 502", status=502))
    assert job.retry_intervals == INTERVALS


@pytest.mark.parametrize("seed", range(50))
def test_random_jitter_stays_within_ten_percent(seed):
    retry.random.seed(seed)
    retries_left = seed % len(INTERVALS) + 1
    job = FakeJob(retries_left=retries_left)
    handle(job, CRMError("CRM answered 503", status=503))
    index = len(INTERVALS) - retries_left
    assert INTERVALS[index] <= job.retry_intervals[index] <= INTERVALS[index] * (1 + JITTER)
    assert [v for i, v in enumerate(job.retry_intervals) if i != index] == [
        v for i, v in enumerate(INTERVALS) if i != index]


def test_index_is_clamped_when_more_retries_than_intervals(max_jitter):
    job = FakeJob(retries_left=7, intervals=[10, 20])
    handle(job, CRMError("CRM answered 503", status=503))
    assert job.retry_intervals == [11, 20]


@pytest.mark.parametrize("retry_after, expected", [(120, 120), (120.0, 120), (70.2, 71),
                                                    (3599.5, 3600)])
def test_retry_after_longer_than_the_interval_wins(retry_after, expected, max_jitter):
    job = FakeJob(retries_left=4)  # current interval: 60 s, 66 with full jitter
    handle(job, CRMError("CRM answered 429", status=429, retry_after=retry_after))
    assert job.retry_intervals[1] == expected
    assert job.retry_intervals[1] >= retry_after
    assert job.retries_left == 4


def test_retry_after_shorter_than_the_interval_keeps_the_interval(max_jitter):
    job = FakeJob(retries_left=4)
    handle(job, CRMError("CRM answered 429", status=429, retry_after=5))
    assert job.retry_intervals[1] == 66


def test_retry_after_is_rounded_up(no_jitter):
    job = FakeJob(retries_left=5, intervals=[1, 1, 1, 1, 1])
    handle(job, CRMError("CRM answered 503", status=503, retry_after=5.0001))
    assert job.retry_intervals[0] >= math.ceil(5.0001)


def test_jitter_of_a_small_interval_stays_within_ten_percent(max_jitter):
    job = FakeJob(retries_left=1, intervals=[5])
    handle(job, CRMError("CRM answered 503", status=503))
    assert job.retry_intervals[0] <= 5 * (1 + JITTER)


def test_no_retries_left_changes_no_interval():
    job = FakeJob(retries_left=0)
    handle(job, CRMError("CRM answered 503", status=503, retry_after=999))
    assert job.retries_left == 0
    assert job.retry_intervals == INTERVALS
    assert job.save_meta_calls == 1
    assert job.meta["reason"] == "CRM answered 503"


def test_job_without_retry_configured_is_left_alone():
    job = FakeJob(retries_left=None, intervals=None)
    handle(job, CRMError("CRM answered 503", status=503))
    assert job.retries_left is None and job.retry_intervals is None
    assert job.save_meta_calls == 1


# --- attempts and reasons -------------------------------------------------------------------

def test_attempts_accumulate_across_failures(max_jitter):
    job = FakeJob()
    handle(job, CRMError("CRM answered 503", status=503))
    handle(job, CRMError("CRM answered 502", status=502))
    assert [a["error"] for a in job.meta["attempts"]] == ["CRM answered 503", "CRM answered 502"]
    assert job.meta["reason"] == "CRM answered 502"
    assert job.save_meta_calls == 2


def test_attempts_list_is_created_when_meta_has_none():
    job = FakeJob(meta={})
    handle(job, PersonNotFoundError(3))
    assert len(job.meta["attempts"]) == 1


def test_unexpected_exception_is_retried_with_its_type_in_the_reason(max_jitter):
    job = FakeJob(retries_left=5)
    handle(job, KeyError("Emails"))
    assert job.meta["reason"].startswith("unexpected KeyError")
    assert "Emails" in job.meta["reason"]
    assert job.retries_left == 5
    assert job.retry_intervals[0] == 11
    assert job.save_meta_calls == 1


@pytest.mark.parametrize("error, expected", [
    (CRMError("CRM answered 400: bad key", permanent=True), "CRM answered 400: bad key"),
    (MailError("SMTP 451: later"), "SMTP 451: later"),
    (SettingsError("SECRET_KEY", "required but not set"), "SECRET_KEY: required but not set"),
    (KeyError("x"), "unexpected KeyError: 'x'"),
    (ValueError("bad"), "unexpected ValueError: bad"),
    (TimeoutError(), "unexpected TimeoutError: "),
    (CRMError(""), "unexpected CRMError: "),
    (OperationalError("INSERT INTO ledger_entries …", None,
                      Exception("connection to server at \"db\" failed: Connection refused")),
     "DATABASE_URL: the evidence database cannot be reached or opened: connection to server "
     "at \"db\" failed: Connection refused"),
])
def test_describe_failure(error, expected):
    assert describe_failure(error) == expected


def test_describe_failure_is_one_line_for_the_connectors_errors():
    assert "\n" not in describe_failure(PersonNotFoundError(12))
