"""Redirect throughput with `linkhub serve --workers 1` and `--workers 2`, in one run.

    python bench/workers.py [--duration 5] [--repeats 3] [--links 10000] [--connections 64]

Both servers run on copies of one seeded database (an account and `--links` links), side by side;
the wrk runs (GET /r/<a random code>, as bench/run.py's) alternate between them, `--repeats`
rounds after a warm-up each, and the table gives medians, each run, and the ratio of the two
servers' runs in each round. After a graceful stop of both, the clicks stored are counted
against the 302s wrk was answered: every redirect answered committed its click first, whichever
worker answered it, so there are at least as many clicks; and at most one more per connection and
wrk run (the request each connection had in flight when wrk stopped, whose click committed but
whose 302 wrk no longer read).

On a machine with fewer cores than workers plus the load generator (2 cores: wrk and two workers,
each worker an event loop, a writer thread and a checkpointer), the second worker competes with wrk
and with the first for the same cores: the figures show what the second worker costs or gains
there, not how linkhub scales with cores. Prints a Markdown table and appends it to
bench/results/workers.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

import report
import seed
from fleet import Fleet, log
from load import WrkResult, wrk

SERVERS = {"workers-1": "1", "workers-2": "2"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="measured rounds (each: one run per server)")
    parser.add_argument("--links", type=int, default=10_000, help="links stored in the database")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    args = parser.parse_args()

    noise = report.Noise()
    runs: dict[str, list[WrkResult]] = {name: [] for name in SERVERS}
    answered: dict[str, int] = dict.fromkeys(SERVERS, 0)
    with tempfile.TemporaryDirectory(prefix="linkhub-workers-") as tmp, Fleet() as fleet:
        seeded = Path(tmp) / "seed.db"
        account = seed.account(seeded)
        codes = seed.links(seeded, account.id, args.links)
        codes_file = seed.codes_file(Path(tmp) / "codes.txt", codes, 10_000)
        dbs = {}
        for name, workers in SERVERS.items():
            dbs[name] = Path(tmp) / f"{name}.db"
            shutil.copy2(seeded, dbs[name])
            fleet.linkhub(name, dbs[name], "--workers", workers)
        for name in SERVERS:  # warm-up: imports, caches, the first connections
            answered[name] += wrk(fleet.started[name].url, codes_file, duration=1, connections=args.connections,
                                  threads=args.threads).redirects
        for round_ in range(args.repeats):
            for name in SERVERS:
                result = wrk(fleet.started[name].url, codes_file, duration=args.duration,
                             connections=args.connections, threads=args.threads)
                runs[name].append(result)
                answered[name] += result.redirects
                log(f"round {round_ + 1} {name}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms, "
                    f"{result.status_errors} errors, {result.socket_errors} socket errors")
        for name in SERVERS:
            fleet.stop(name)
        clicks = {name: seed.count(dbs[name], "SELECT count(*) FROM events WHERE type = 'click'") for name in SERVERS}

    text = render(args, runs, answered, clicks, noise)
    print(text)
    report.write(report.RESULTS / "workers.md", text + "\n", append=True)
    return 0 if all(consistent(args, clicks[name], answered[name]) for name in SERVERS) else 1


def consistent(args: argparse.Namespace, clicks: int, answered: int) -> bool:
    """Every 302 had its click committed; beyond those, at most the requests cut off as each wrk run ended."""
    return answered <= clicks <= answered + args.connections * (args.repeats + 1)


def render(args: argparse.Namespace, runs: dict[str, list[WrkResult]], answered: dict[str, int],
           clicks: dict[str, int], noise: report.Noise) -> str:
    elapsed, others = noise.elapsed(), noise.others()
    out = [f"## linkhub --workers — {report.now_utc()}", "", *report.machine(),
           f"- {args.links:,} links; wrk {args.connections} connections, {args.threads} threads, "
           f"{args.repeats} rounds of {args.duration:g} s per server after a 1 s warm-up; other processes took "
           f"{others / elapsed / (os.cpu_count() or 1):.0%} of the machine", "",
           "| server | req/s (median) | each run | p50 ms | p99 ms | clicks stored, 302s answered (+ cut off) |",
           "|---|---:|---|---:|---:|---|"]
    for name, results in runs.items():
        rps = [r.rps for r in results]
        out.append(f"| `--workers {SERVERS[name]}` | {statistics.median(rps):,.0f} | "
                   f"{', '.join(f'{v:,.0f}' for v in rps)} | {statistics.median(r.p50_ms for r in results):.1f} | "
                   f"{statistics.median(r.p99_ms for r in results):.1f} | "
                   f"{clicks[name]:,}, {answered[name]:,} (+{clicks[name] - answered[name]}) "
                   f"{'✅' if consistent(args, clicks[name], answered[name]) else '❌'} |")
    paired = [two.rps / one.rps for one, two in zip(runs["workers-1"], runs["workers-2"], strict=True)]
    out += ["", f"2 workers ÷ 1, paired by round: median {statistics.median(paired):.2f}× "
                f"(range {min(paired):.2f}–{max(paired):.2f}×)."]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
