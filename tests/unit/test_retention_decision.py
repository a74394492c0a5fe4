"""decide_inactive and Duration: who has had no active purpose for longer than delete_after."""

from datetime import datetime, timezone

import pytest

from connector.consent import Duration
from connector.crm.types import ConsentRecord
from connector.retention import LONG_AGO, decide_inactive

UTC = timezone.utc
CUTOFF = datetime(2025, 1, 1, tzinfo=UTC)


def row(legal_basis, updated=None, registered=datetime(2024, 1, 1, tzinfo=UTC)):
    return ConsentRecord("STORE", legal_basis, "USER", registered=registered, updated=updated)


def test_a_person_whose_every_row_was_withdrawn_before_the_cutoff_is_inactive_since_the_last():
    rows = [row("WITHDRAWN", updated=datetime(2024, 3, 1, tzinfo=UTC)),
            row("withdrawn", updated=datetime(2024, 6, 1, tzinfo=UTC))]
    assert decide_inactive(rows, ["WITHDRAWN"], CUTOFF) == datetime(2024, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize("rows", [
    [],                                                                     # nothing dates them
    [row("WITHDRAWN"), row("61F")],                                         # one still active
    [row("WITHDRAWN", updated=datetime(2025, 2, 1, tzinfo=UTC))],           # not long enough
])
def test_an_active_row_no_rows_or_a_recent_withdrawal_keeps_a_person_off_the_report(rows):
    assert decide_inactive(rows, ["WITHDRAWN"], CUTOFF) is None


def test_a_withdrawn_row_without_any_date_counts_as_long_ago():
    assert decide_inactive([row("WITHDRAWN", registered=None)], ["WITHDRAWN"], CUTOFF) == LONG_AGO


@pytest.mark.parametrize("duration, moment, before", [
    (Duration(24, "months"), datetime(2026, 11, 30), datetime(2024, 11, 30)),
    (Duration(1, "months"), datetime(2026, 3, 31), datetime(2026, 2, 28)),
    (Duration(2, "years"), datetime(2028, 2, 29), datetime(2026, 2, 28)),
    (Duration(30, "days"), datetime(2026, 3, 1), datetime(2026, 1, 30)),
    (Duration(2, "weeks"), datetime(2026, 11, 30), datetime(2026, 11, 16)),
])
def test_a_duration_counts_back_by_the_calendar(duration, moment, before):
    assert duration.before(moment) == before
