"""The CRM request budget every process shares: at most CRM_MAX_REQUESTS_PER_SECOND calls to
the CRM's API in any second, from all workers, web processes and commands on all machines
together, and one shared pause when the CRM asks for one (429 or 503 with Retry-After).

The count is a moving window kept in Redis by the ``limits`` library (the one Flask-Limiter
uses for the page's limits): a call takes a slot when fewer than the budget were sent in the
last second, else it waits in place until the oldest one leaves the window. Nothing is
counted per process, so adding workers never adds CRM calls.

Who goes first when calls wait (``Priority``): a person on their page, then the CRM's events
(onboarding, recording changes), then background work (backfill, reconciliation, exports).
A waiting call marks its priority in Redis for as long as it waits; calls of a lower priority
leave the next free slots to it. Nothing is reserved: background work uses the whole budget
when nobody else needs it.

SuperOffice documents no rate limit (docs/superoffice-notes.md, "Rate limits"); the budget is
the connector being a polite guest in a tenant its users work in, and what an installation
sizes its workers by.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import math
import time
from collections.abc import Callable, Iterator

import redis
from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from connector import defaults, keys
from connector.exceptions import CRMError


class Priority(enum.IntEnum):
    """Whose CRM calls go first when the budget is short (lower value first)."""

    INTERACTIVE = 0
    """A person is waiting: their page, their choices, a fresh link."""
    EVENTS = 1
    """The CRM's events: onboarding a new person, recording a CRM user's change."""
    BACKGROUND = 2
    """Backfill, reconciliation passes, bulk exports."""


_priority: contextvars.ContextVar[Priority] = contextvars.ContextVar(
    "crm_priority", default=Priority.EVENTS)


def current_priority() -> Priority:
    """The priority of the CRM calls made here now (EVENTS unless set)."""
    return _priority.get()


@contextlib.contextmanager
def crm_priority(priority: Priority) -> Iterator[None]:
    """Make the CRM calls inside the block with ``priority``."""
    token = _priority.set(priority)
    try:
        yield
    finally:
        _priority.reset(token)


_wait_limit: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "crm_wait_limit", default=None)


def serving_a_request() -> Callable[[], None]:
    """Mark the CRM calls of this context as made for someone waiting on a web page, until
    the function returned is called: INTERACTIVE, and waiting out at most
    CRM_WAIT_IN_A_REQUEST of a pause the CRM asked for (a longer one is answered, with its
    Retry-After, instead of holding the page)."""
    priority = _priority.set(Priority.INTERACTIVE)
    wait_limit = _wait_limit.set(defaults.CRM_WAIT_IN_A_REQUEST)

    def end() -> None:
        _wait_limit.reset(wait_limit)
        _priority.reset(priority)

    return end


def _longest_wait(configured: float) -> float:
    limit = _wait_limit.get()
    return configured if limit is None else min(configured, limit)


def plan_wait(now: float, paused_until: float, higher_waiting_until: float | None) -> float:
    """Seconds to wait before asking for a slot (0: ask now): while the CRM's pause lasts,
    and while a call of a higher priority waits for the next slot (a little past the time it
    expects it, so it takes the slot first; it clears its mark once it has)."""
    waits = [paused_until - now]
    if higher_waiting_until is not None:
        waits.append(max(higher_waiting_until - now, 0) + defaults.CRM_BUDGET_MIN_WAIT)
    return max(*waits, 0.0)


class CRMBudget:
    """The shared budget, kept in Redis.

    Args:
        connection: the Redis every process of the installation uses.
        per_second: the most CRM calls in any second (CRM_MAX_REQUESTS_PER_SECOND).
        longest_wait: the most seconds one call waits in place for the CRM's pause; a longer
            pause raises a transient CRMError, so the job goes back to the queue instead of
            holding a worker (CRM_WAIT_IN_PLACE).
        clock, sleep: wall-clock time (the window is shared between machines) and how to
            wait (tests pass their own).
    """

    def __init__(self, connection: redis.Redis, per_second: int, *,
                 longest_wait: float = defaults.CRM_WAIT_IN_PLACE,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        storage = RedisStorage("redis://", connection_pool=connection.connection_pool,
                               key_prefix=keys.CRM_BUDGET_PREFIX)
        self._limiter = MovingWindowRateLimiter(storage)
        self._window = RateLimitItemPerSecond(per_second)
        self._redis = connection
        self.per_second = per_second
        self._longest_wait = longest_wait
        self._clock = clock
        self._sleep = sleep
        self._keep_later = connection.register_script(_KEEP_LATER)
        self.waited = 0.0
        """Seconds this process's calls have waited for the budget or the CRM's pause."""

    def __repr__(self) -> str:
        return f"CRMBudget({self.per_second} per second)"

    @property
    def longest_wait(self) -> float:
        """Most seconds a call made here and now waits in place for the CRM's pause."""
        return _longest_wait(self._longest_wait)

    def take(self) -> None:
        """Wait until a call of the current priority may go to the CRM, and count it.

        Raises:
            CRMError: (transient, with ``retry_after``) the CRM's pause lasts longer than
                ``longest_wait``: the job should come back when it is over.
            redis.RedisError: the budget cannot be read; no call is made unaccounted.
        """
        priority = current_priority()
        higher = [keys.crm_budget_waiting(level) for level in Priority if level < priority]
        mark = keys.crm_budget_waiting(priority)
        marked = False
        while True:
            paused_until, *waiting = self._redis.mget([keys.CRM_BUDGET_PAUSE, *higher])
            now = self._clock()
            paused_until = float(paused_until or 0)
            if paused_until - now > self.longest_wait:
                remaining = paused_until - now
                raise CRMError(f"CRM asked every caller to pause for {remaining:.0f} s more; "
                               f"trying again then", status=429, retry_after=math.ceil(remaining))
            marks = [float(until) for until in waiting if until is not None]
            wait = plan_wait(now, paused_until, max(marks) if marks else None)
            if not wait:
                if self._limiter.hit(self._window, keys.CRM_BUDGET_WINDOW):
                    if marked:
                        self._redis.delete(mark)
                    return
                reset, _ = self._limiter.get_window_stats(self._window, keys.CRM_BUDGET_WINDOW)
                wait = max(reset - self._clock(), defaults.CRM_BUDGET_MIN_WAIT)
                if priority < Priority.BACKGROUND:
                    # Lower priorities wait while this lives; it outlives a dead caller by 1 s.
                    self._redis.set(mark, self._clock() + wait, px=math.ceil((wait + 1) * 1000))
                    marked = True
            self._sleep(wait)
            self.waited += wait

    def pause(self, seconds: float) -> None:
        """Pause every process's CRM calls for ``seconds`` from now (the CRM answered 429 or
        503 with this Retry-After). A pause only ever grows: a shorter one asked later does
        not end a longer one early."""
        until = self._clock() + seconds
        self._keep_later(keys=[keys.CRM_BUDGET_PAUSE],
                         args=[until, math.ceil(seconds * 1000) + _PAUSE_KEPT_AFTER_MS])

    def paused_for(self) -> float:
        """Seconds the CRM's pause still lasts (0 when there is none), for status."""
        paused_until = float(self._redis.get(keys.CRM_BUDGET_PAUSE) or 0)
        return max(paused_until - self._clock(), 0.0)


class LocalBudget:
    """A budget for a client on its own (no Redis): no limit on calls, the CRM's pause kept
    in this process. Same interface as CRMBudget."""

    def __init__(self, *, longest_wait: float = defaults.CRM_WAIT_IN_PLACE,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self._longest_wait = longest_wait
        self._clock = clock
        self._sleep = sleep
        self._paused_until = 0.0
        self.waited = 0.0

    @property
    def longest_wait(self) -> float:
        """Most seconds a call made here and now waits in place for the CRM's pause."""
        return _longest_wait(self._longest_wait)

    def take(self) -> None:
        """Wait out the CRM's pause, if any (see CRMBudget.take)."""
        wait = self.paused_for()
        if wait > self.longest_wait:
            raise CRMError(f"CRM asked to pause for {wait:.0f} s more; trying again then",
                           status=429, retry_after=math.ceil(wait))
        if wait:
            self._sleep(wait)
            self.waited += wait

    def pause(self, seconds: float) -> None:
        """Pause this process's CRM calls for ``seconds`` (never shortening a pause)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def paused_for(self) -> float:
        """Seconds the pause still lasts."""
        return max(self._paused_until - self._clock(), 0.0)


_PAUSE_KEPT_AFTER_MS = 1000
"""The pause's key outlives the pause by this much, so a late reader still sees it end."""

_KEEP_LATER = """
local current = tonumber(redis.call('get', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
    redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
end
"""
"""Lua: set the pause's end unless a later one is already set (one atomic step)."""
