"""UTC timestamps as linkhub stores them: RFC 3339 text with milliseconds and a Z."""

from __future__ import annotations

import calendar
import functools
import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def now_rfc3339() -> str:
    return format_ms(time.time_ns() // 1_000_000)


def format_ms(epoch_ms: int) -> str:
    seconds, ms = divmod(epoch_ms, 1000)
    return f"{_second(seconds)}.{ms:03d}Z"


@functools.lru_cache(maxsize=4)
def _second(epoch_s: int) -> str:
    # Every click is stamped: format each second once, not once per click.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s))


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with an explicit offset; return it in UTC. Raises ValueError."""
    if not isinstance(text, str) or len(text) < 20 or text[10] not in "Tt ":
        raise ValueError("expected an RFC 3339 timestamp such as 2026-11-23T09:15:02Z")
    parsed = datetime.fromisoformat(text.replace("z", "Z"))
    if parsed.tzinfo is None:
        raise ValueError("timestamp needs a UTC offset or Z")
    return parsed.astimezone(UTC)


def to_rfc3339(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return format_ms(calendar.timegm(moment.utctimetuple()) * 1000 + moment.microsecond // 1000)


def rfc3339_to_ms(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 timestamp. Raises ValueError.

    Sub-millisecond digits are dropped (floor), as `to_rfc3339` drops them, so
    `format_ms(rfc3339_to_ms(t)) == to_rfc3339(parse_rfc3339(t))`.
    """
    # timedelta // timedelta is exact integer arithmetic: no float rounding at any date.
    return (parse_rfc3339(text) - _EPOCH) // _ONE_MS


def format_naive_s(epoch_ms: int) -> str:
    """UTC to the second with no zone designator, 'YYYY-MM-DDTHH:MM:SS' (eSputnik's activityDateTime)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_ms // 1000))
