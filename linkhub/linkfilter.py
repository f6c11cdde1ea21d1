"""The account's link filter: a PCRE-style pattern matched against a link's original URL.

Outreach documents its filter as Perl-compatible, so we use the `regex` package
(closer to PCRE than `re`) and give every match a timeout: a pattern with
catastrophic backtracking must never stall the server.
"""

from __future__ import annotations

import functools
import logging

import regex

log = logging.getLogger("linkhub.filter")

# Per-URL budget. A link that cannot be decided in this time is left out (Outreach keeps
# the original), which is the safe answer.
MATCH_TIMEOUT_S = 0.02


class InvalidFilter(ValueError):
    """The pattern does not compile."""


@functools.lru_cache(maxsize=256)
def compile_filter(pattern: str) -> regex.Pattern[str]:
    try:
        return regex.compile(pattern)
    except (regex.error, ValueError, OverflowError) as exc:
        raise InvalidFilter(f"invalid link filter {pattern!r}: {exc}") from None


def validate(pattern: str) -> str:
    compile_filter(pattern)
    return pattern


def matches(pattern: str, url: str, *, timeout: float = MATCH_TIMEOUT_S) -> bool | None:
    """True/False for a match; None when the match ran out of time (treat as no match)."""
    try:
        return compile_filter(pattern).search(url, timeout=timeout) is not None
    except TimeoutError:
        log.warning("link filter timed out after %.0f ms; link left out: pattern=%r url=%r",
                    timeout * 1000, pattern, url[:200])
        return None
