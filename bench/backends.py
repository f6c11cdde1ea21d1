"""SQLite and PostgreSQL side by side: redirects, link replacement and event delivery, 1 and 2 processes.

    python bench/backends.py [--duration 5] [--repeats 3] [--links 10000] [--events 5000]

Four servers run at once, each on its own database seeded alike (an account and `--links` links): on
SQLite `--workers 1` and `--workers 2` (one file each), on PostgreSQL one process and two (`--workers 2`:
two processes, each with its own writer, on one database). The PostgreSQL databases are copies of the
seeded SQLite file made by `linkhub copy-to`, on a throwaway cluster this script starts on 127.0.0.1
with PostgreSQL's default, durable settings (fsync, synchronous_commit on) and stops at the end.

Each of `--repeats` rounds runs, on every server in turn:
- redirects: wrk, GET /r/<a random code>, `--duration` s;
- link replacement: Outreach's signed POST, 8 senders in a closed loop, 10 links an email, `--duration` s;
- event delivery: `--events` events posted in batches of 500 to a server with one webhook (batches of
  100) on a receiver of its own; the rate is events ÷ (first POST → last event received).

The table gives each server's median over the rounds and the ratio to SQLite `--workers 1` paired by
round. Everything shares this machine's cores with the load generators and, for PostgreSQL, with the
database server itself: the figures compare the backends here, they do not show scaling with cores.
Prints a Markdown table and appends it to bench/results/backends.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec

import report
import seed
from fleet import ROOT, Fleet, log
from load import closed_loop, wrk

sys.path.append(str(ROOT / "tests"))
import pgserver  # tests/pgserver.py: the throwaway cluster

SERVERS = {"sqlite-1": ("sqlite", "1"), "sqlite-2": ("sqlite", "2"),
           "postgresql-1": ("postgresql", "1"), "postgresql-2": ("postgresql", "2")}
MEASURES = ("redirects/s", "link replacements/s", "events delivered/s")


@dataclass
class Runs:
    redirects: list[float] = field(default_factory=list)
    replacements: list[float] = field(default_factory=list)
    delivered: list[float] = field(default_factory=list)
    failures: int = 0

    def of(self, measure: str) -> list[float]:
        return {"redirects/s": self.redirects, "link replacements/s": self.replacements,
                "events delivered/s": self.delivered}[measure]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk and link-replacement run")
    parser.add_argument("--repeats", type=int, default=3, help="measured rounds")
    parser.add_argument("--links", type=int, default=10_000, help="links stored in each database")
    parser.add_argument("--events", type=int, default=5_000, help="events per delivery run")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--logs", type=Path, help="write each server's log into this folder when it stops")
    args = parser.parse_args()

    noise = report.Noise()
    runs = {name: Runs() for name in SERVERS}
    cluster = pgserver.start_cluster(durable=True)
    try:
        with tempfile.TemporaryDirectory(prefix="linkhub-backends-") as tmp, Fleet(args.logs) as fleet:
            seeded = Path(tmp) / "seed.db"
            account = seed.account(seeded)
            codes = seed.links(seeded, account.id, args.links)
            codes_file = seed.codes_file(Path(tmp) / "codes.txt", codes, 10_000)
            targets = {name: _database(cluster, seeded, Path(tmp), name, kind) for name, (kind, _) in SERVERS.items()}
            sinks = {name: fleet.sink(f"sink-{name}").url for name in SERVERS}
            for name, (_, workers) in SERVERS.items():
                server = fleet.linkhub(name, targets[name], "--workers", workers, "--allow-private-targets")
                _webhook(server.url, account.api_key, sinks[name])
            for name in SERVERS:  # warm-up: imports, caches, the first connections of every process
                wrk(fleet.started[name].url, codes_file, duration=1, connections=args.connections, threads=2)
            sent = dict.fromkeys(SERVERS, 0)
            for round_ in range(args.repeats):
                for name in SERVERS:
                    url = fleet.started[name].url
                    redirects = wrk(url, codes_file, duration=args.duration, connections=args.connections, threads=2)
                    replaced = closed_loop(url, account, senders=8, links=10, duration=args.duration)
                    delivered = _deliver(url, account.api_key, sinks[name], f"r{round_}", args.events, sent[name])
                    sent[name] += args.events
                    run = runs[name]
                    run.redirects.append(redirects.rps)
                    run.replacements.append(replaced.calls_per_s)
                    run.delivered.append(delivered)
                    run.failures += redirects.status_errors + redirects.socket_errors + replaced.failures
                    log(f"round {round_ + 1} {name}: {redirects.rps:,.0f} redirects/s, "
                        f"{replaced.calls_per_s:,.1f} replacements/s, {delivered:,.0f} events delivered/s")
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)

    text = render(args, runs, noise)
    print(text)
    report.write(report.RESULTS / "backends.md", text + "\n", append=True)
    return 0 if all(run.failures == 0 for run in runs.values()) else 1


def _database(cluster: pgserver.Cluster, seeded: Path, tmp: Path, name: str, kind: str) -> Path | str:
    """A copy of the seeded database for one server: a file, or a PostgreSQL database made by copy-to."""
    if kind == "sqlite":
        path = tmp / f"{name}.db"
        shutil.copy2(seeded, path)
        return path
    import psycopg

    database = name.replace("-", "_")
    with psycopg.connect(cluster.url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    url = cluster.url(database)
    subprocess.run([sys.executable, "-m", "linkhub", "copy-to", url, "--db", str(seeded), "--json"],
                   check=True, capture_output=True, timeout=600)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return url


def _webhook(url: str, api_key: str, receiver: str) -> None:
    answer = httpx.post(f"{url}/v1/webhooks", headers={"Authorization": f"Bearer {api_key}"}, timeout=30,
                        json={"url": receiver + "/hook", "batch_size": 100, "active": True})
    answer.raise_for_status()


def _deliver(url: str, api_key: str, receiver: str, prefix: str, events: int, before: int) -> float:
    """Post `events` events and wait for the receiver to have them all: events ÷ seconds, first POST to last."""
    bodies = [msgspec.json.encode([
        {"id": f"{prefix}-{n}-{i}", "type": "delivered", "occurred_at": "2026-11-23T09:15:02.481Z",
         "email": f"person{i}@example.com", "recipient_id": str(i), "mailing_id": "m-1"}
        for i in range(500)]) for n in range(events // 500)]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}",
                                             "Content-Type": "application/json"}, timeout=60) as client:
        started = time.time()
        for body in bodies:
            client.post("/v1/events", content=body).raise_for_status()
    deadline = time.monotonic() + 300
    while True:
        stats = httpx.get(receiver + "/stats", timeout=30).json()
        if stats["events"] >= before + events:
            return events / (stats["last"] - started)
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {stats['events'] - before} of {events} events arrived at {receiver}")
        time.sleep(0.05)  # polling another process's counter: a benchmark, not a test


def render(args: argparse.Namespace, runs: dict[str, Runs], noise: report.Noise) -> str:
    elapsed, others = noise.elapsed(), noise.others()
    out = [f"## SQLite and PostgreSQL, 1 and 2 processes — {report.now_utc()}", "", *report.machine(),
           f"- {args.links:,} links; {args.repeats} rounds; wrk {args.connections} connections for "
           f"{args.duration:g} s; link replacement: 8 senders, 10 links an email, {args.duration:g} s; delivery: "
           f"{args.events:,} events a run, webhook batches of 100; PostgreSQL {_pg_version()} on this machine, "
           f"default settings; other processes took {others / elapsed / (os.cpu_count() or 1):.0%} of the machine",
           "", "| server | " + " | ".join(MEASURES) + " |", "|---|" + "---:|" * len(MEASURES)]
    base = runs["sqlite-1"]
    for name, run in runs.items():
        cells = []
        for measure in MEASURES:
            values = run.of(measure)
            ratio = statistics.median(v / b for v, b in zip(values, base.of(measure), strict=True))
            cells.append(f"{statistics.median(values):,.0f}" + ("" if name == "sqlite-1" else f" ({ratio:.2f}×)"))
        kind, workers = SERVERS[name]
        label = f"{'SQLite' if kind == 'sqlite' else 'PostgreSQL'}, {workers} process{'es' if workers != '1' else ''}"
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out += ["", "Ratios: to SQLite with 1 process, paired by round (median). "
                f"Failed requests: {sum(run.failures for run in runs.values())}."]
    return "\n".join(out)


def _pg_version() -> str:
    bindir = pgserver.find_bindir()
    return bindir.parent.name if bindir is not None else "?"


if __name__ == "__main__":
    raise SystemExit(main())
