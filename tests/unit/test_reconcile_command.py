"""``consent-connector reconcile``: what --since accepts and how a pass's summary reads."""

from datetime import datetime, timedelta, timezone

import pytest

from connector.commands.reconcile import parse_since, summary_lines
from connector.support.status_report import backfill_line
from connector.reconcile import plan_progress

UTC = timezone.utc
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("text, expected", [
    ("30m", NOW - timedelta(minutes=30)),
    ("2h", NOW - timedelta(hours=2)),
    ("3d", NOW - timedelta(days=3)),
    ("1w", NOW - timedelta(weeks=1)),
    (" 2H ", NOW - timedelta(hours=2)),
    ("2026-11-01T00:00", datetime(2026, 11, 1, tzinfo=UTC)),
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ("2026-11-01T01:30+01:00", datetime(2026, 11, 1, 0, 30, tzinfo=UTC)),
])
def test_since_is_a_utc_date_time_or_a_duration_back_from_now(text, expected):
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2h30m", "-2h", "", "2026-13-01"])
def test_anything_else_is_refused_with_an_example(text):
    with pytest.raises(ValueError, match="like 30m, 2h, 3d or 1w"):
        parse_since(text, now=NOW)


def summary(**changes):
    base = {"trigger": "manual", "mode": "watermark", "dry_run": False,
            "listed_after": "2026-11-29T11:40:00+00:00", "started_at": "2026-11-29T12:00:00+00:00",
            "listed": 3, "already_onboarded": 1, "queued": 2, "queued_ids": [7, 9],
            "already_queued": 0, "deferred": 0, "waited": 0.0,
            "watermark_before": "2026-11-29T11:45:00+00:00",
            "watermark": "2026-11-29T11:58:10+00:00", "watermark_moved": True}
    return base | changes


def test_summary_says_where_the_pass_started_what_it_queued_and_the_new_watermark():
    assert summary_lines(summary()) == [
        "Reconciliation: persons registered or updated after 2026-11-29 11:40:00 UTC "
        "(the watermark, minus 5 min overlap)",
        "  listed             3 persons",
        "  already onboarded  1",
        "  queued             2 onboarding job(s): person 7, 9",
        "  watermark          2026-11-29 11:58:10 UTC (moved: the next pass starts there, minus 5 min)",
    ]


def test_summary_of_a_dry_run_backfill_with_waits_and_many_persons():
    lines = summary_lines(summary(mode="all persons", listed_after=None, dry_run=True,
                                  queued=120, queued_ids=list(range(1, 51)), waited=2.0,
                                  already_queued=3, watermark_moved=False))

    assert lines[0] == "Reconciliation (dry run: nothing queued): every person in the CRM (--all)"
    assert "  would queue        120 onboarding job(s): person 1, 2," in lines[3]
    assert lines[3].endswith("49, 50, …")
    assert "  already queued     3 (jobs of an earlier pass)" in lines
    assert "  waited             2 s (for the CRM request budget and the CRM's Retry-After)" in lines
    assert lines[-1].endswith("(unchanged)")


def test_a_backfills_progress_says_how_many_are_done_how_fast_and_how_long_is_left():
    started = datetime(2026, 11, 30, 4, 0, tzinfo=timezone.utc)
    progress = plan_progress(50_000, remaining=44_000, failed=10, started=started,
                             at=started + timedelta(minutes=60))

    assert (progress["done"], progress["per_minute"]) == (5_990, pytest.approx(99.83, abs=0.01))
    assert backfill_line(progress).endswith("5,990 of 50,000 persons onboarded since "
                                            "2026-11-30 04:00:00 UTC, 44,000 left, 10 failed; "
                                            "100/min, about 7.3 h to go")


def test_a_backfill_with_nothing_left_is_finished_and_one_not_started_has_no_rate():
    started = datetime(2026, 11, 30, 4, 0, tzinfo=timezone.utc)
    assert backfill_line(plan_progress(3, 0, 0, started, started)).endswith("(finished)")
    assert backfill_line(plan_progress(3, 3, 0, started, started)).endswith("(none done yet)")


def test_a_backfills_rate_is_the_pace_of_its_latest_onboardings_not_its_average():
    started = datetime(2026, 11, 30, 4, 0, tzinfo=timezone.utc)
    at = started + timedelta(minutes=60)
    # Idle for 50 minutes (no worker), then 100 onboardings in the last 10 minutes.
    busy = [at - timedelta(seconds=6 * n) for n in range(100)]
    progress = plan_progress(5_000, remaining=4_900, failed=0, started=started, at=at,
                             recent=busy)
    assert progress["per_minute"] == pytest.approx(100 / 9.9, rel=0.01)

    # 100 onboardings in the first minute, then the workers stopped 59 minutes ago.
    stalled = [started + timedelta(seconds=0.6 * n) for n in range(100)]
    progress = plan_progress(5_000, remaining=4_900, failed=0, started=started, at=at,
                             recent=stalled)
    assert progress["per_minute"] == pytest.approx(100 / 60, rel=0.01)

    # Finishes of an earlier backfill do not count: the average since it started does.
    earlier = [started - timedelta(minutes=n) for n in range(1, 100)]
    progress = plan_progress(5_000, remaining=4_900, failed=0, started=started, at=at,
                             recent=earlier)
    assert progress["per_minute"] == pytest.approx(100 / 60, rel=0.01)


def test_a_big_backfills_summary_groups_its_thousands():
    lines = summary_lines(summary(listed=50_000, already_onboarded=1_200, queued=48_800,
                                  queued_ids=[]))
    assert "  listed             50,000 persons" in lines
    assert "  already onboarded  1,200" in lines
    assert "  queued             48,800" in lines
