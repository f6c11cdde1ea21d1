"""What one per-hit classification costs: µs per `classify()` for a mix of user agents.

    .venv/bin/python bench/classify_hit.py [--rounds 20000]

Two figures: *warm*, the steady state of a server (the user-agent readings are cached by string, and
mail clients and browsers repeat a few strings), and *cold*, each hit's user agent read afresh (the
cache cleared before every call: the first click of a new string). The redirect's own budget is
~50 µs of Python a click; classification must stay far below it.
"""

from __future__ import annotations

import argparse
import statistics
import time

from linkhub.core import useragent
from linkhub.core.classify import agents
from linkhub.core.classify.hits import Hit
from linkhub.core.classify.signals import classify

AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/154.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/26.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/154.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.1 "
    "Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:157.0) Gecko/20100101 Firefox/157.0",
    "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; .NET4.0E; "
    "Microsoft Outlook 16.0.5095; ms-office; MSOffice 16)",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/97.0.4692.99 "
    "Safari/537.36",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Barracuda Sentinel (EE)",
]


def hits() -> list[Hit]:
    out: list[Hit] = []
    for i, ua in enumerate(AGENTS):
        headers = {"user-agent": ua, "accept": "text/html"}
        if i % 3:
            headers["accept-language"] = "en-US,en;q=0.9"
        out.append(Hit(t=(i + 1) * 7_000, method="HEAD" if i % 5 == 4 else "GET", ip="203.0.113.7", headers=headers))
    return out


def per_call_us(batch: list[Hit], rounds: int, *, cold: bool) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        for hit in batch:
            if cold:
                agents.read.cache_clear()
            classify(hit)
    elapsed = time.perf_counter() - started
    if cold:
        # Take out the cost of the cache_clear() calls themselves.
        clear_start = time.perf_counter()
        for _ in range(rounds * len(batch)):
            agents.read.cache_clear()
        elapsed -= time.perf_counter() - clear_start
    return elapsed / (rounds * len(batch)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()
    started = time.perf_counter()
    useragent.load_rules()
    agents.load()
    print(f"patterns compiled in {(time.perf_counter() - started) * 1e3:.0f} ms "
          f"({len(agents.crawler_list().patterns)} crawler-user-agents patterns)")
    batch = hits()
    warm = [per_call_us(batch, args.rounds, cold=False) for _ in range(5)]
    cold = [per_call_us(batch, max(1, args.rounds // 20), cold=True) for _ in range(5)]
    print(f"{len(batch)} user agents, median of 5 runs")
    print(f"warm (cached readings): {statistics.median(warm):6.2f} µs per classify()")
    print(f"cold (every UA read):   {statistics.median(cold):6.2f} µs per classify()")


if __name__ == "__main__":
    main()
