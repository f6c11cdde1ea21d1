"""Open pixels beside redirects: `GET /o/<code>` and `GET /r/<code>` on one server, in one run.

    python bench/pixels.py [--duration 5] [--repeats 3] [--codes 10000] [--connections 64]

One server (`--trusted-proxies 127.0.0.1/32`) on a database seeded with an account, `--codes` links
(one per email) and `--codes` open pixels (one per message). The wrk runs alternate between the
two paths, `--repeats` rounds after a warm-up each, every request as a person's (an X-Forwarded-For
of its own, a current browser or mail client): both paths judge the hit, commit its event (a
click, an open) and only then answer (302 / the GIF). The table gives medians, each run, and the
ratio of the two paths' runs in each round. After a graceful stop, the opens and clicks stored are
counted against the answers wrk got: at least as many, and at most one more per connection and
run (the request in flight when wrk stopped). Prints a Markdown table and appends it to
bench/results/pixels.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import report
import seed
from fleet import Fleet, log
from load import WrkResult, wrk

PATHS = {"redirect": ("/r/", "click"), "pixel": ("/o/", "open")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="measured rounds (each: one run per path)")
    parser.add_argument("--codes", type=int, default=10_000, help="links, and pixels, stored in the database")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    args = parser.parse_args()

    noise = report.Noise()
    runs: dict[str, list[WrkResult]] = {name: [] for name in PATHS}
    answered: dict[str, int] = dict.fromkeys(PATHS, 0)
    with tempfile.TemporaryDirectory(prefix="linkhub-pixels-") as tmp, Fleet() as fleet:
        db = Path(tmp) / "pixels.db"
        account = seed.account(db)
        # One link per email, as one pixel per message: neither path sees one email's hits pile up.
        links = seed.links(db, account.id, args.codes, per_email=1)
        files = {"redirect": seed.codes_file(Path(tmp) / "links.txt", links, 10_000),
                 "pixel": seed.codes_file(Path(tmp) / "pixels.txt", seed.pixels(db, account.id, args.codes), 10_000)}
        fleet.linkhub("server", db, "--trusted-proxies", "127.0.0.1/32")
        url = fleet.started["server"].url

        def run(name: str, duration: float) -> WrkResult:
            result = wrk(url, files[name], duration=duration, connections=args.connections, threads=args.threads,
                         clients="people", prefix=PATHS[name][0])
            answered[name] += result.redirects
            return result

        for name in PATHS:  # warm-up: imports, caches, the first connections
            run(name, 1)
        for round_ in range(args.repeats):
            for name in PATHS:
                result = run(name, args.duration)
                runs[name].append(result)
                log(f"round {round_ + 1} {name}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms, "
                    f"{result.status_errors} errors, {result.socket_errors} socket errors")
        fleet.stop("server")
        stored = {name: seed.count(db, "SELECT count(*) FROM events WHERE type = ?", kind)
                  for name, (_, kind) in PATHS.items()}

    text = render(args, runs, answered, stored, noise)
    print(text)
    report.write(report.RESULTS / "pixels.md", text + "\n", append=True)
    return 0 if all(consistent(args, stored[name], answered[name]) for name in PATHS) else 1


def consistent(args: argparse.Namespace, stored: int, answered: int) -> bool:
    """Every answer had its event committed; beyond those, at most the requests cut off as each run ended."""
    return answered <= stored <= answered + args.connections * (args.repeats + 1)


def render(args: argparse.Namespace, runs: dict[str, list[WrkResult]], answered: dict[str, int],
           stored: dict[str, int], noise: report.Noise) -> str:
    elapsed, others = noise.elapsed(), noise.others()
    out = [f"## linkhub open pixels beside redirects — {report.now_utc()}", "", *report.machine(),
           f"- {args.codes:,} links and {args.codes:,} pixels; people's hits (an X-Forwarded-For each); wrk "
           f"{args.connections} connections, {args.threads} threads, {args.repeats} rounds of {args.duration:g} s per "
           f"path after a 1 s warm-up; other processes took {others / elapsed / (os.cpu_count() or 1):.0%} "
           "of the machine",
           "", "| path | req/s (median) | each run | p50 ms | p99 ms | events stored, answers (+ cut off) |",
           "|---|---:|---|---:|---:|---|"]
    for name, results in runs.items():
        rps = [r.rps for r in results]
        prefix, kind = PATHS[name]
        out.append(f"| `GET {prefix}<code>` | {statistics.median(rps):,.0f} | {', '.join(f'{v:,.0f}' for v in rps)} | "
                   f"{statistics.median(r.p50_ms for r in results):.1f} | "
                   f"{statistics.median(r.p99_ms for r in results):.1f} | "
                   f"{stored[name]:,} {kind}s, {answered[name]:,} (+{stored[name] - answered[name]}) "
                   f"{'✅' if consistent(args, stored[name], answered[name]) else '❌'} |")
    paired = [pixel.rps / redirect.rps for redirect, pixel in zip(runs["redirect"], runs["pixel"], strict=True)]
    out += ["", f"/o/ ÷ /r/, paired by round: median {statistics.median(paired):.2f}× "
                f"(range {min(paired):.2f}–{max(paired):.2f}×)."]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
