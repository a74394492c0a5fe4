"""The sandbox's request quota (sandbox/quota.py) on a fake clock: a burst of one second's
requests, then refusals with the wait until the next token, refilled as time passes; and the
command line's --quota."""

from __future__ import annotations

import pytest

from sandbox.__main__ import build_parser
from sandbox.quota import Quota


class FakeClock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_full_bucket_serves_one_seconds_worth_of_calls_at_once_then_refuses(clock):
    quota = Quota(5, clock=clock)
    answers = [quota.take()[0] for _ in range(8)]
    assert answers == [True] * 5 + [False] * 3
    assert (quota.served, quota.refused) == (5, 3)


def test_a_refusal_says_how_long_until_the_next_token(clock):
    quota = Quota(4, clock=clock)
    for _ in range(4):
        assert quota.take() == (True, 0)
    clock.advance(0.1)
    allowed, wait = quota.take()
    assert not allowed and wait == pytest.approx(0.15)


def test_a_refused_call_takes_no_token(clock):
    quota = Quota(2, clock=clock)
    quota.take(), quota.take()
    for _ in range(10):
        assert quota.take()[0] is False
    clock.advance(0.5)
    assert quota.take() == (True, 0)


def test_tokens_come_back_at_the_quotas_rate(clock):
    quota = Quota(10, clock=clock)
    for _ in range(10):
        quota.take()
    clock.advance(0.35)
    answers = [quota.take()[0] for _ in range(4)]
    assert answers == [True, True, True, False]


def test_an_idle_bucket_holds_no_more_than_one_seconds_worth(clock):
    quota = Quota(3, clock=clock)
    clock.advance(60)
    answers = [quota.take()[0] for _ in range(4)]
    assert answers == [True, True, True, False]


def test_a_quota_under_one_a_second_still_lets_one_call_through(clock):
    quota = Quota(0.5, clock=clock)
    assert quota.take() == (True, 0)
    assert quota.take() == (False, pytest.approx(2.0))
    clock.advance(2)
    assert quota.take() == (True, 0)


@pytest.mark.parametrize("per_second", [0, -1, float("nan"), float("inf"), "10", True, None])
def test_a_quota_must_be_a_positive_number(per_second):
    with pytest.raises(ValueError, match="per_second"):
        Quota(per_second)


def test_the_command_line_has_no_quota_unless_given_one(monkeypatch):
    monkeypatch.delenv("SANDBOX_QUOTA", raising=False)
    assert build_parser().parse_args([]).quota is None
    assert build_parser().parse_args(["--quota", "10"]).quota == 10
    monkeypatch.setenv("SANDBOX_QUOTA", "2.5")
    assert build_parser().parse_args([]).quota == 2.5


@pytest.mark.parametrize("text", ["0", "-3", "ten", "inf"])
def test_the_command_line_refuses_a_quota_that_is_not_a_positive_number(text, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--quota", text])
    assert "quota must be a positive number" in capsys.readouterr().err
