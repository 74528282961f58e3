"""Describe how long ago a moment was, in words ("2 months, 5 days ago.").

The function names (``makeEpochTime``, ``convertToHumanReadable``,
``makeFancyDatetime``) follow the camelCase recipe this module originally
vendored, so existing callers keep working; the implementation is new.

Both naive and timezone-aware datetimes are accepted. A naive datetime is
taken to be local time, or UTC when ``utc=True`` is passed to
:func:`convertToHumanReadable`; an aware one is compared with the current time
in UTC, so its own timezone does not matter. Importing the module has no side
effects (in particular it does not configure logging).

Examples
--------
>>> from datetime import datetime, timedelta, timezone
>>> now = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
>>> convertToHumanReadable(now - timedelta(days=65, hours=5), now=now)
'2 months, 5 days ago.'
>>> convertToHumanReadable(now - timedelta(minutes=90), now=now)
'1 hour, 30 minutes ago.'
>>> convertToHumanReadable(now + timedelta(seconds=100), now=now)
'1 minute from now.'
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import TypedDict

__all__ = ["convertToHumanReadable", "makeEpochTime", "makeFancyDatetime"]

logger = logging.getLogger(__name__)

#: A month counts as this many days.
DAYS_PER_MONTH = 30
#: A year counts as this many days.
DAYS_PER_YEAR = 365


class FancyDatetime(TypedDict):
    """The dictionary returned by :func:`makeFancyDatetime`."""

    fancy_datetime: str
    seconds_since_epoch: int


def makeEpochTime(dt: datetime) -> int:
    """Return ``dt`` as whole seconds since the Unix epoch.

    Microseconds are dropped. A naive ``dt`` is interpreted as local time
    (as :func:`time.mktime` would); an aware one by its own offset.

    Parameters
    ----------
    dt : datetime.datetime
        The moment to convert.

    Returns
    -------
    int
        Seconds since 1970-01-01T00:00:00Z.
    """
    if not isinstance(dt, datetime):
        raise TypeError(f"expected a datetime.datetime, not {type(dt).__name__}")
    return int(dt.replace(microsecond=0).timestamp())


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def _describe(delta: timedelta) -> str:
    """Name the largest (at most two) units of a non-negative ``delta``."""
    days = delta.days
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    years, days = divmod(days, DAYS_PER_YEAR)
    months, days = divmod(days, DAYS_PER_MONTH)
    parts: list[str] = []
    if years:
        parts.append(_plural(years, "year"))
    if months:
        parts.append(_plural(months, "month"))
    # Each smaller unit is shown only next to the unit just above it, so at
    # most two units appear.
    if days and not years:
        parts.append(_plural(days, "day"))
    if hours and not (months or years):
        parts.append(_plural(hours, "hour"))
    if minutes and not (days or months or years):
        parts.append(_plural(minutes, "minute"))
    if not parts:
        parts.append(_plural(seconds, "second"))
    return ", ".join(parts)


def convertToHumanReadable(
    dt: datetime, utc: bool = False, *, now: datetime | None = None
) -> str:
    """Say how long ago ``dt`` was, e.g. ``'7 months, 22 days ago.'``.

    A month counts as 30 days and a year as 365. At most two units are
    shown: years and months, months and days, days and hours, or hours and
    minutes; seconds only when nothing larger applies. Counts are truncated,
    so 25.9 seconds is ``'25 seconds ago.'``. A moment in the future is
    described the same way but ends with ``' from now.'``.

    Parameters
    ----------
    dt : datetime.datetime
        The moment to describe, naive or timezone-aware.
    utc : bool, optional
        Whether a naive ``dt`` is in UTC (True) or local time (False, the
        default). Ignored for aware datetimes.
    now : datetime.datetime, optional
        The moment to measure from; the current time by default. It must be
        naive if ``dt`` is naive and aware if ``dt`` is aware.

    Returns
    -------
    str
        The description, ending with ``' ago.'`` or ``' from now.'``.
    """
    if not isinstance(dt, datetime):
        raise TypeError(f"expected a datetime.datetime, not {type(dt).__name__}")
    aware = dt.utcoffset() is not None
    if now is None:
        if aware:
            now = datetime.now(timezone.utc)
        elif utc:
            now = datetime.now(timezone.utc).replace(tzinfo=None)
        else:
            now = datetime.now()
    elif (now.utcoffset() is not None) != aware:
        raise ValueError("dt and now must both be naive or both be timezone-aware")
    delta = now - dt
    if delta < timedelta(0):
        return _describe(-delta) + " from now."
    return _describe(delta) + " ago."


def makeFancyDatetime(dt: datetime) -> FancyDatetime:
    """Return both the description and the epoch seconds of ``dt``.

    Parameters
    ----------
    dt : datetime.datetime
        The moment to describe, naive (local time) or timezone-aware.

    Returns
    -------
    dict
        ``{'fancy_datetime': convertToHumanReadable(dt),
        'seconds_since_epoch': makeEpochTime(dt)}``.
    """
    return {
        "fancy_datetime": convertToHumanReadable(dt),
        "seconds_since_epoch": makeEpochTime(dt),
    }


def test() -> None:
    """Log a few sample descriptions at INFO level on this module's logger.

    Kept from the original recipe as a quick demonstration; it configures no
    logging, so attach a handler to see the output.
    """
    now = datetime.now(timezone.utc)
    for delta in (
        timedelta(days=456),
        timedelta(days=232),
        timedelta(days=65, hours=5),
        timedelta(hours=12, minutes=30),
        timedelta(seconds=25),
    ):
        dt = now - delta
        logger.info("%s: %s", dt.isoformat(), makeFancyDatetime(dt))
