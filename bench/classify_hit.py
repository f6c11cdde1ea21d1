"""What one per-hit classification costs: µs per `classify()` for a mix of user agents.

    .venv/bin/python bench/classify_hit.py [--rounds 20000]
    .venv/bin/python bench/classify_hit.py --window [--emails 300000] [--rate 2000]

Two figures: *warm*, the steady state of a server (the user-agent readings are cached by string, and
mail clients and browsers repeat a few strings), and *cold*, each hit's user agent read afresh (the
cache cleared before every call: the first click of a new string). The redirect's own budget is
~50 µs of Python a click; classification must stay far below it.

`--window` times what the redirect calls for each click, `Clicks.judge()` (the hit built,
`Window.observe()` with the behaviour across hits, the click event built), on people-like hits as
bench/classify_cost.py sends them (an address of its own each, current browsers, links minted a day
before, spread over `--emails` emails of 3 links at `--rate` hits per simulated second) once the
window holds its steady state, with the garbage collector set as `linkhub serve` sets it: µs per hit,
and the part of it spent collecting.
"""

from __future__ import annotations

import argparse
import gc
import random
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


PEOPLE = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/154.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.1 "
    "Mobile/15E148 Safari/604.1",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17531; Pro)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:157.0) Gecko/20100101 Firefox/157.0",
]


def window(emails: int, rate: int, measured: int) -> None:
    from linkhub.core.classify.networks import Networks
    from linkhub.core.clicks import Clicks, Request
    from linkhub.store.links import Link
    from linkhub.util.times import format_ms

    start_ms = 1_796_000_000_000
    minted = format_ms(start_ms - 86_400_000)
    links = [Link(f"c{e}x{k}", "acct", f"https://www.example.com/post-{k}?m={e % 20}",
                  f"https://www.example.com/post-{k}?m={e % 20}", f"m{e % 20}", f"p{e // 20}",
                  f"prospect{e // 20}@example.org", minted, 3, start_ms - 86_400_000)
             for e in range(emails) for k in range(3)]
    clicks = Clicks(Networks.load(None), settle_s=120)
    rng = random.Random(1)
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000)  # as linkhub.web.server sets it
    spent = [0.0, 0.0]

    def timed(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            spent[1] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - spent[1]

    def hits(first: int, count: int) -> float:
        started = time.perf_counter()
        for i in range(first, first + count):
            link = links[rng.randrange(len(links))]
            a = (i * 2654435761) % 4194304
            clicks.judge(Request(link.code, link, f"lh_{i}", start_ms + i * 1000 // rate, "GET",
                                 f"100.{64 + a // 65536}.{a // 256 % 256}.{a % 256}", PEOPLE[i % len(PEOPLE)], None,
                                 {"accept-language": "en-US,en;q=0.9"}))
        return time.perf_counter() - started

    fill = 150_000  # past MAX_HELD (100,000): the window at its bound, as under sustained load
    hits(0, fill)
    gc.callbacks.append(timed)
    runs = []
    for r in range(5):
        spent[0] = 0.0
        elapsed = hits(fill + r * measured, measured)
        runs.append((elapsed / measured * 1e6, spent[0] / measured * 1e6))
    gc.callbacks.remove(timed)
    # Collections are rare and long: their mean, not their median, is their cost.
    us, gc_us = statistics.median(u for u, _ in runs), statistics.mean(g for _, g in runs)
    print(f"Clicks.judge(), {emails:,} emails at {rate}/s, window of {len(clicks.window):,} hits, median of 5 × "
          f"{measured:,}: {us:.1f} µs per hit, of which garbage collection {gc_us:.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--window", action="store_true", help="time Clicks.judge() with the window at steady state")
    parser.add_argument("--emails", type=int, default=300_000)
    parser.add_argument("--rate", type=int, default=2000, help="hits per simulated second (--window)")
    parser.add_argument("--measured", type=int, default=20_000, help="hits per timed run (--window)")
    args = parser.parse_args()
    started = time.perf_counter()
    useragent.load_rules()
    agents.load()
    print(f"patterns compiled in {(time.perf_counter() - started) * 1e3:.0f} ms "
          f"({len(agents.crawler_list().patterns)} crawler-user-agents patterns)")
    if args.window:
        window(args.emails, args.rate, args.measured)
        return
    batch = hits()
    warm = [per_call_us(batch, args.rounds, cold=False) for _ in range(5)]
    cold = [per_call_us(batch, max(1, args.rounds // 20), cold=True) for _ in range(5)]
    print(f"{len(batch)} user agents, median of 5 runs")
    print(f"warm (cached readings): {statistics.median(warm):6.2f} µs per classify()")
    print(f"cold (every UA read):   {statistics.median(cold):6.2f} µs per classify()")


if __name__ == "__main__":
    main()
