"""Time in UTC, one way everywhere: aware datetimes inside, ISO 8601 in Redis and files,
``2026-11-29 05:50:33`` for people. A naive datetime (RQ keeps those, SuperOffice writes
those) is always read as UTC. Durations are written ``30d``, ``12h``, ``45m``, ``90s``, ``2w``.
"""

import re
from datetime import datetime, timedelta, timezone

READABLE_FORMAT = "%Y-%m-%d %H:%M:%S"

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(timezone.utc)


def utc(moment: datetime | None) -> datetime | None:
    """``moment`` in UTC: a naive one is taken as UTC, an aware one converted; None stays None."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def iso(moment: datetime | None, timespec: str = "seconds") -> str | None:
    """``2026-11-29T05:50:33+00:00`` (UTC); None stays None."""
    return utc(moment).isoformat(timespec=timespec) if moment is not None else None


def parse_iso(text: str | None) -> datetime | None:
    """An ISO 8601 time (``Z`` or an offset; none means UTC) as an aware UTC datetime; None
    when ``text`` is empty or not a time."""
    if not text:
        return None
    try:
        return utc(datetime.fromisoformat(str(text).strip().replace("Z", "+00:00")))
    except ValueError:
        return None


def readable(moment: datetime | str | None, missing: str = "-") -> str:
    """``2026-11-29 05:50:33`` (UTC) for people, from a datetime or an ISO text; ``missing``
    for None, and an unreadable text as it is."""
    if moment is None or moment == "":
        return missing
    parsed = parse_iso(moment) if isinstance(moment, str) else utc(moment)
    return parsed.strftime(READABLE_FORMAT) if parsed is not None else str(moment)


def parse_duration(text: str) -> timedelta:
    """Parse ``30d``, ``12h``, ``45m``, ``90s`` or ``2w`` (any case) into a timedelta.

    Raises:
        ValueError: anything else, with an example of what works.
    """
    match = _DURATION.match(text or "")
    if not match:
        raise ValueError(f"{text!r} is not a duration: use a number and a unit "
                         f"(s, m, h, d, w), e.g. 30d or 12h")
    return timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})
