"""UTC timestamps as linkhub stores them: RFC 3339 text with milliseconds and a Z."""

from __future__ import annotations

import calendar
import functools
import re
import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# The stored form has a four-digit year, so that times sort as text and every format
# renderer can read them: the range of what linkhub accepts, in UTC.
MIN_YEAR, MAX_YEAR = 1000, 9999
RANGE_TEXT = "1000-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z"
EARLIEST, LATEST = "1000-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z"
_EXAMPLE = "2026-11-23T09:15:02Z"
# RFC 3339 `date-time` (with the space separator it allows, and any number of fraction
# digits); fromisoformat alone also takes ISO 8601 forms such as week dates or "+0100".
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


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
    """Parse an RFC 3339 timestamp with an explicit offset; return it in UTC.

    Raises ValueError, with a message fit for the caller, for anything else and for a time
    outside MIN_YEAR..MAX_YEAR once in UTC (which is also every time that overflows there).
    """
    if not isinstance(text, str) or not _RFC3339.fullmatch(text):
        shown = repr(text) if isinstance(text, str) and len(text) <= 64 else "the value"
        raise ValueError(f"{shown} is not an RFC 3339 timestamp such as {_EXAMPLE} (with Z or a UTC offset)")
    date_part, rest = text[:10], text[11:].replace("z", "Z")
    try:
        parsed = datetime.fromisoformat(f"{date_part}T{rest}")
    except ValueError as exc:  # a month 13, a 25th hour, a February 30th, an offset +24:00
        raise ValueError(f"{text!r} is not a valid time: {exc}") from None
    return _in_range(parsed, text)


def _in_range(moment: datetime, shown: str) -> datetime:
    """`moment` in UTC, if its year there is one linkhub stores. Raises ValueError."""
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-05:00 is past year 9999 in UTC
        utc = None
    if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise ValueError(f"{shown!r} is outside the supported range ({RANGE_TEXT}, in UTC)")
    return utc


def to_rfc3339(moment: datetime) -> str:
    """The stored form, `YYYY-MM-DDTHH:MM:SS.mmmZ`. Raises ValueError outside MIN_YEAR..MAX_YEAR."""
    moment = _in_range(moment, moment.isoformat())
    return format_ms(calendar.timegm(moment.utctimetuple()) * 1000 + moment.microsecond // 1000)


def clamped_later(seconds: float) -> str:
    """Now plus `seconds` (negative: ago) in the stored form, held to EARLIEST..LATEST.

    For cut-offs and due times: a max_age_s of millennia means "never", not an error.
    """
    try:
        return to_rfc3339(datetime.now(UTC) + timedelta(seconds=seconds))
    except (OverflowError, ValueError):
        return EARLIEST if seconds < 0 else LATEST


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
