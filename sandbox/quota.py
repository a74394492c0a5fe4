"""The tenant's request quota: a token bucket the sandbox's API gatekeeper takes from.

SuperOffice publishes no rate limit (../shared/reference/superoffice.md: "No documented rate
limit was found"), so this models a typical API limiter instead: a bucket holding one second's
worth of requests (at least one), refilled continuously at ``per_second`` tokens a second; each
call takes a token, a call that finds none is refused and takes nothing. It is off unless asked
for (``create_sandbox_app(quota=...)``, ``python -m sandbox --quota``, ``PUT /__sandbox/quota``),
so tests and benchmarks can check that the connector never exceeds a CRM's limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class Quota:
    """A token bucket of ``per_second`` requests a second, with a one-second burst.

    ``served`` and ``refused`` count the calls :meth:`take` let through and refused.
    ``clock`` gives monotonic seconds (tests pass a fake one).
    """

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic):
        """Start with a full bucket.

        Raises:
            ValueError: ``per_second`` is not a positive, finite number.
        """
        if isinstance(per_second, bool) or not isinstance(per_second, (int, float)):
            raise ValueError(f"per_second must be a number of requests a second, "
                             f"got {per_second!r}")
        if not (math.isfinite(per_second) and per_second > 0):
            raise ValueError(f"per_second must be a positive number, got {per_second!r}")
        self.per_second = per_second
        self.capacity = max(1.0, float(per_second))
        self.served = 0
        self.refused = 0
        self._clock = clock
        self._tokens = self.capacity
        self._filled_at = clock()
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, float]:
        """Take one token: ``(True, 0)``, or ``(False, seconds until a token is available)``
        when the bucket is empty (nothing is taken then)."""
        with self._lock:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1
                self.served += 1
                return True, 0
            self.refused += 1
            return False, (1 - self._tokens) / self.per_second

    def _refill(self) -> None:
        """Add the tokens earned since the last refill, up to the capacity."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._filled_at) * self.per_second)
        self._filled_at = now
