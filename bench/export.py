"""Export rows per second: `linkhub events export` and `linkhub clicks export`, JSON Lines and CSV.

    python bench/export.py [--events 200000] [--repeats 3]

Builds a temporary database of `--events` events (a fifth of them clicks with a verdict, as `/r/`
records them) with the event store's own insert (`core.events.insert_many`, 5,000 a transaction),
then runs each export as a process of its own (`python -m linkhub …`, start-up included) with stdout
to /dev/null, and prints a Markdown table: the median of the repeats, rows per second, and the
process's peak resident memory (which does not grow with `--events`: the export streams).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from linkhub.core.events import Event, insert_many
from linkhub.store.db import connect, transaction

import seed

TYPES = ("sent", "delivered", "open", "click", "open")
_BATCH = 5000


def _event(account_id: str, i: int) -> Event:
    type_ = TYPES[i % len(TYPES)]
    details: dict[str, object] = {}
    if type_ == "click":
        details = {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
                   "device": "iPhone", "os": "iOS 17.0", "browser": "Mobile Safari 17.0",
                   "target": f"https://example.com/pricing?utm_source=m{i % 20}", "method": "GET",
                   "verdict": "human", "score": 12, "classifier": "bench",
                   "reasons": [{"code": "ua_browser", "weight": -20, "evidence": "Mobile Safari"}]}
    return Event(id=f"e-{i}", account_id=account_id, type=type_,
                 occurred_at=f"2026-11-{1 + i % 28:02d}T09:{i % 60:02d}:{i % 60:02d}.000Z",
                 received_at="2026-11-30T00:00:00.000Z", source="redirect" if type_ == "click" else "api",
                 email=f"person{i % 50000}@example.com", recipient_id=str(i % 50000), mailing_id=f"m-{i % 20}",
                 message_id=f"msg-{i}", url="https://example.com/pricing" if type_ == "click" else None,
                 code=f"c{i}" if type_ == "click" else None, details=details)


def build(db: Path, count: int) -> None:
    account_id = seed.account(db).id
    conn = connect(db)
    try:
        for start in range(0, count, _BATCH):
            with transaction(conn):
                insert_many(conn, [_event(account_id, i) for i in range(start, min(start + _BATCH, count))])
    finally:
        conn.close()


def run(db: Path, *args: str) -> tuple[float, int, int]:
    """Seconds, rows (from the closing line) and peak RSS (KiB) of one export to /dev/null."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "linkhub", *args, "--json", "--db", str(db)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    said = process.stderr.read()
    # wait4: this child's own rusage (RUSAGE_CHILDREN would be the largest of every child so far).
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"linkhub {' '.join(args)} failed: {said}")
    return seconds, json.loads(said)["rows"], usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)  # the database only, into this file
    options = parser.parse_args()
    if options.build:
        build(options.build, options.events)
        return
    cases = [("events", "jsonl"), ("events", "csv"), ("clicks", "jsonl"), ("clicks", "csv")]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "export.db"
        started = time.perf_counter()
        # In a process of its own: a child forked from a process that built the database would start with
        # its memory, and the peak RSS measured would be the builder's.
        subprocess.run([sys.executable, __file__, "--build", str(db), "--events", str(options.events)], check=True)
        print(f"built {options.events:,} events in {time.perf_counter() - started:.1f} s "
              f"({os.path.getsize(db) / 2**20:.0f} MiB)", file=sys.stderr)
        lines = ["| export | format | rows | seconds (median) | rows/s | peak RSS |", "|---|---|---:|---:|---:|---:|"]
        for source, fmt in cases:
            times, counted, peaks = [], 0, []
            for _ in range(options.repeats):
                seconds, counted, peak = run(db, source, "export", "--format", fmt)
                times.append(seconds)
                peaks.append(peak)
            median = statistics.median(times)
            shown_peak = f"{max(peaks) / 1024:.0f} MiB"
            lines.append(f"| {source} | {fmt} | {counted:,} | {median:.2f} | {counted / median:,.0f} | {shown_peak} |")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
