"""When a CRM call waits before asking the shared budget for a slot (connector.crm.budget)."""

import pytest

from connector.crm.budget import (LocalBudget, Priority, current_priority, plan_wait,
                                  serving_a_request)
from connector.defaults import CRM_BUDGET_MIN_WAIT, CRM_WAIT_IN_A_REQUEST


def test_a_call_asks_at_once_when_nothing_is_paused_and_nobody_goes_before_it():
    assert plan_wait(100.0, paused_until=0.0, higher_waiting_until=None) == 0


def test_a_call_waits_out_what_is_left_of_the_crms_pause():
    assert plan_wait(100.0, paused_until=103.5, higher_waiting_until=None) == 3.5


def test_a_call_waits_until_just_after_a_higher_priority_call_took_its_slot():
    assert plan_wait(100.0, 0.0, higher_waiting_until=100.4) == pytest.approx(
        0.4 + CRM_BUDGET_MIN_WAIT)


def test_a_higher_priority_call_past_its_time_still_goes_first():
    assert plan_wait(100.0, 0.0, higher_waiting_until=99.0) == CRM_BUDGET_MIN_WAIT


def test_the_longer_of_pause_and_priority_wins():
    assert plan_wait(100.0, paused_until=102.0, higher_waiting_until=100.5) == 2.0


def test_a_web_request_makes_its_calls_interactive_and_short_waiting_only_until_it_ends():
    budget = LocalBudget(longest_wait=30)
    end = serving_a_request()
    assert (current_priority(), budget.longest_wait) == (Priority.INTERACTIVE,
                                                         CRM_WAIT_IN_A_REQUEST)
    end()
    assert (current_priority(), budget.longest_wait) == (Priority.EVENTS, 30)
