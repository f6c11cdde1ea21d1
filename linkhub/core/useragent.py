"""User-agent strings to device / OS / browser, with ua-parser (the maintained uap-core rules)."""

from __future__ import annotations

import functools
from typing import NamedTuple

import ua_parser


class Client(NamedTuple):
    device: str | None
    os: str | None
    browser: str | None


def _version(family: str, *parts: str | None) -> str:
    numbers = [p for p in parts if p]
    return f"{family} {'.'.join(numbers)}" if numbers else family


def load_rules() -> None:
    """Load the parser's rules now (~0.16 s here) instead of during the first click's redirect."""
    ua_parser.parse("Mozilla/5.0")


# Mail clients and browsers repeat a small set of strings: a cache makes the parse almost free.
@functools.lru_cache(maxsize=8192)
def describe(user_agent: str) -> Client:
    if not user_agent:
        return Client(None, None, None)
    parsed = ua_parser.parse(user_agent).with_defaults()
    ua, os, device = parsed.user_agent, parsed.os, parsed.device
    return Client(
        device=device.family if device.family != "Other" else None,
        os=_version(os.family, os.major, os.minor) if os.family != "Other" else None,
        browser=_version(ua.family, ua.major, ua.minor) if ua.family != "Other" else None,
    )
