"""Events in, webhooks out: ingest rate, end-to-end delivery rate, and delivery lag.

    python bench/events.py [--repeats 3] [--events 50000] [--lag-seconds 20]

Every run starts a fresh `linkhub serve` on a fresh database and a receiver process
(bench/sink.py) on 127.0.0.1, and stops both. Prints a Markdown table (medians of the
repeats) and appends it to bench/results/events.md.

- ingest: POST /v1/events, batches of 1000, one client, back to back; with no webhook, and
  with one active webhook (its outbox rows written in the same transaction, deliveries
  running meanwhile).
- end to end: one webhook, batches of 100, `--events` events posted as fast as possible;
  the rate is events ÷ (first POST → last event received by the receiver).
- lag: a steady 1,000 events/s (100 every 100 ms) for `--lag-seconds`; for every event,
  time from its POST being answered (the event is stored) to its arrival at the receiver.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec

import report
import seed
from fleet import Fleet
from load import percentile


@contextmanager
def served() -> Iterator[tuple[str, httpx.Client]]:
    """A receiver, and a fresh server and account; yields (receiver URL, a client with the API key)."""
    with tempfile.TemporaryDirectory() as tmp, Fleet() as fleet:
        db = Path(tmp) / "bench.db"
        key = seed.account(db, "Bench", "s").api_key
        receiver = fleet.sink().url
        server = fleet.linkhub("linkhub", db, "--allow-private-targets")
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            yield receiver, client


def batch(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i}", "type": "click", "occurred_at": "2026-11-23T09:15:02.481Z",
             "email": f"person{i}@example.com", "recipient_id": str(i), "mailing_id": "m-1",
             "url": "https://example.com/pricing",
             "details": {"ip": "203.0.113.7", "device": "iPhone", "os": "iOS 17.0", "browser": "Mobile Safari 17.0"}}
            for i in range(count)]


# Bodies are encoded before the clock starts, with msgspec: the load generator shares the
# machine's two cores with linkhub and must cost as little as possible.
encode = msgspec.json.encode


def post(client: httpx.Client, body: bytes) -> None:
    client.post("/v1/events", content=body, headers={"Content-Type": "application/json"}).raise_for_status()


def add_webhook(client: httpx.Client, receiver: str) -> None:
    answer = client.post("/v1/webhooks", json={"url": receiver + "/hook", "batch_size": 100, "active": True})
    answer.raise_for_status()


def stats(receiver: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(receiver + "/stats", timeout=30).json()
    return answer


def wait_received(receiver: str, count: int, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = stats(receiver)
        if current["events"] >= count or time.monotonic() > deadline:
            return current
        time.sleep(0.2)  # polling a separate process's counter; not a test


def ingest_rate(events: int, with_webhook: bool) -> float:
    with served() as (receiver, client):
        if with_webhook:
            add_webhook(client, receiver)
        bodies = [encode(batch(f"b{n}", 1000)) for n in range(events // 1000)]
        started = time.perf_counter()
        for body in bodies:
            post(client, body)
        return events / (time.perf_counter() - started)


def end_to_end(events: int) -> tuple[float, float]:
    with served() as (receiver, client):
        add_webhook(client, receiver)
        bodies = [encode(batch(f"e{n}", 1000)) for n in range(events // 1000)]
        started = time.time()
        for body in bodies:
            post(client, body)
        done = wait_received(receiver, events)
    if done["events"] < events:
        raise RuntimeError(f"only {done['events']} of {events} events arrived")
    return events / (done["last"] - started), events / (done["last"] - done["first"])


def lag(seconds: int, rate: int = 1000, tick: float = 0.1) -> list[float]:
    per_tick = int(rate * tick)
    stored: dict[str, float] = {}
    with served() as (receiver, client):
        add_webhook(client, receiver)
        start = time.monotonic()
        for n in range(int(seconds / tick)):
            body = batch(f"l{n}", per_tick)
            post(client, encode(body))
            now = time.time()
            stored.update((event["id"], now) for event in body)
            pause = start + (n + 1) * tick - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing the load generator to a steady rate
        arrived = wait_received(receiver, len(stored))["arrivals"]
    missing = set(stored) - set(arrived)
    if missing:
        raise RuntimeError(f"{len(missing)} events never arrived")
    return [arrived[event_id] - at for event_id, at in stored.items()]


def table(args: argparse.Namespace, runs: dict[str, list[float]]) -> str:
    row = report.runs_row
    lag_label = "lag at a steady 1,000 events/s"
    return "\n".join([
        f"### Events and webhooks — {report.now_utc()}",
        "",
        f"{os.cpu_count()} cores shared by linkhub, the client and the receiver; medians of {args.repeats} "
        f"interleaved runs ({args.events:,} events per throughput run, {args.lag_seconds} s per lag run).",
        "",
        "| measure | median | runs | goal |",
        "|---|---:|---|---|",
        row("ingest, batches of 1000, no webhook (events/s)", runs["plain"], ",.0f", "≥ 20,000"),
        row("ingest, batches of 1000, one active webhook (events/s)", runs["hooked"], ",.0f", "≥ 20,000"),
        row("end to end, one webhook, batches of 100: first POST → last received (events/s)", runs["e2e"], ",.0f",
            "≥ 10,000"),
        row("delivery alone: first → last received (events/s)", runs["drain"], ",.0f"),
        row(f"{lag_label}, p50 (ms)", runs["lag_p50"], ".0f"),
        row(f"{lag_label}, p99 (ms)", runs["lag_p99"], ".0f", "≤ 1,000"),
        row(f"{lag_label}, max (ms)", runs["lag_max"], ".0f"),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--lag-seconds", type=int, default=20)
    args = parser.parse_args()

    runs: dict[str, list[float]] = {name: [] for name in
                                    ("plain", "hooked", "e2e", "drain", "lag_p50", "lag_p99", "lag_max")}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits every figure alike
        runs["plain"].append(ingest_rate(args.events, with_webhook=False))
        runs["hooked"].append(ingest_rate(args.events, with_webhook=True))
        total, delivery_only = end_to_end(args.events)
        runs["e2e"].append(total)
        runs["drain"].append(delivery_only)
        lags = lag(args.lag_seconds)
        runs["lag_p50"].append(percentile(lags, 50) * 1000)
        runs["lag_p99"].append(percentile(lags, 99) * 1000)
        runs["lag_max"].append(max(lags) * 1000)
    text = table(args, runs)
    print(text)
    report.write(report.RESULTS / "events.md", text + "\n\n", append=True)


if __name__ == "__main__":
    main()
