#!/usr/bin/env python3
"""`linkhub serve` as it was before clicks were classified: the "without" side of bench/classify_cost.py.

    python bench/unclassified.py serve --db DB [serve's options]

Bench only, never a product setting: it replaces, in this process, the two things classification
added to the redirect, then runs linkhub's own command line unchanged:

- `Clicks.judge` builds the click event with the details a click had before verdicts (ip, user_agent,
  device, os, browser, bot, referer, and target when it differs): no window of hits, no reasons, no
  stored headers or method, no verdict changes of earlier clicks; `bot` is ua-parser's "Spider"
  device, as it was then;
- the link look-up reads the link's row alone, without counting the recipient's links (the count is
  answered as 0, which nothing reads without the classifier).

Everything else (the server, the look-up's batching, the writer, the outbox) is the product's own, so
the difference between the two servers is what classification costs.

To tell its parts apart, BENCH_KEEP (comma-separated) puts some back:
- `count`: the look-up counts the recipient's links, as the product's does;
- `classify`: each hit goes through the product's `Clicks.judge` (the window, every signal, the event
  with its verdict built), but the click stored keeps the details of before and no verdict change
  of an earlier click is written: the classifier's CPU without its writes.

BENCH_BURN_US=N spins the event loop for N µs in each hit's judging instead (in the server without
classification): what any N µs of CPU on the redirect path costs, classification or not.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import Any

import ua_parser

from linkhub.cli.main import cli
from linkhub.core import clicks
from linkhub.core.events import Event
from linkhub.core.useragent import describe
from linkhub.store import links
from linkhub.util.times import format_ms

# The look-up of before, but for the recipient's link count (a constant 0 keeps the row's shape).
_QUERY_WITHOUT_COUNT = (
    "SELECT json_group_array(json_array(l.code, l.account_id, l.target_url, l.original_url, l.mailing_id,"
    " l.prospect_id, l.prospect_email, l.created_at, 0, 0))"
    " FROM json_each(?) AS j JOIN links AS l ON l.code = j.value"
)


@functools.lru_cache(maxsize=8192)
def _spider(user_agent: str) -> bool:
    """What `details.bot` said before verdicts: ua-parser calls the device a "Spider"."""
    return bool(user_agent) and ua_parser.parse(user_agent).with_defaults().device.family == "Spider"


def _judge(self: clicks.Clicks, request: clicks.Request) -> clicks.ClickWrite:
    link = request.link
    client = describe(request.user_agent or "")
    now = format_ms(request.at_ms)
    details: dict[str, Any] = {
        "ip": request.ip,
        "user_agent": request.user_agent,
        "device": client.device,
        "os": client.os,
        "browser": client.browser,
        "bot": _spider(request.user_agent or ""),
        "referer": request.referer,
    }
    if link.target_url != link.original_url:
        details["target"] = link.target_url
    event = Event(id=request.event_id, account_id=link.account_id, type="click", occurred_at=now, received_at=now,
                  source="redirect", email=link.prospect_email, recipient_id=link.prospect_id,
                  mailing_id=link.mailing_id, url=link.original_url, code=request.code, details=details)
    return clicks.ClickWrite(event, [])


_classified_judge = clicks.Clicks.judge


def _judge_classified_unstored(self: clicks.Clicks, request: clicks.Request) -> clicks.ClickWrite:
    """`classify`: the product's judging, its verdict computed and dropped."""
    _classified_judge(self, request)
    return _judge(self, request)


def _burning(judge: Any, burn_s: float) -> Any:
    def burnt(*args: Any, **kwargs: Any) -> clicks.ClickWrite:
        until = time.perf_counter() + burn_s
        while time.perf_counter() < until:
            pass
        result: clicks.ClickWrite = judge(*args, **kwargs)
        return result
    return burnt


def main() -> None:
    keep = set(filter(None, os.environ.get("BENCH_KEEP", "").split(",")))
    if keep - {"count", "classify"}:
        raise SystemExit(f"BENCH_KEEP: unknown parts {sorted(keep - {'count', 'classify'})}")
    clicks.Clicks.judge = _judge_classified_unstored if "classify" in keep else _judge  # type: ignore[method-assign]
    if "count" not in keep:
        links._QUERY = _QUERY_WITHOUT_COUNT
    burn_us = float(os.environ.get("BENCH_BURN_US", "0"))
    if burn_us:
        clicks.Clicks.judge = _burning(clicks.Clicks.judge, burn_us / 1e6)  # type: ignore[method-assign]
    sys.argv[0] = "linkhub"
    cli()


if __name__ == "__main__":
    main()
