#!/usr/bin/env python3
"""What classifying each click costs the redirect: linkhub with and without classification, side by side.

    .venv/bin/python bench/classify_cost.py                       # ≈ 6 minutes
    .venv/bin/python bench/classify_cost.py --duration 5 --repeats 3 --big 200000   # quicker
    .venv/bin/python bench/classify_cost.py --clients one-address # every click from one address
    .venv/bin/python bench/classify_cost.py --tree before=/tmp/linkhub-before      # + another source tree

Servers, all up at once and loaded one at a time with wrk (64 connections, a random existing code per
request, bench/redirect.lua), in interleaved rounds after one warm-up each:

- the ceiling (bench/ceiling.py), as in bench/run.py;
- per database (10 thousand and 1 million links, each server on its own copy):
  *with*: `linkhub serve` as it is; *without*: bench/unclassified.py, the same server with the click
  stored as before verdicts (no window, no reasons, no link count); per `--part`, that server with
  some of it put back (`count`: the link count; `classify`: the classifier's work, its results not
  stored), which splits the cost; and, per `--tree NAME=DIR`,
  `linkhub serve` from another source tree (a checkout of another commit: PYTHONPATH=DIR), to
  measure a change beside the code before it.

Every linkhub runs with `--trusted-proxies 127.0.0.1/32`. `--clients people` (the default) gives each
request an X-Forwarded-For of its own address and an Accept-Language, as people's clicks arrive;
`--clients one-address` sends them all from 127.0.0.1 without Accept-Language (as bench/run.py does):
one client clicking for thousands of recipients, which the classifier calls a bot and keeps re-scoring
— a burst-heavy load, reported as such.

The configurations of one database run in alternating order (with, without, …; then …, without,
with), so neither side always runs first. Reported: medians of req/s, p50, p99, the server's CPU per
request (all its threads, from /proc), each run's ratio to the ceiling's run of its round, and the
with ÷ without ratio of each round (runs seconds apart) — its median is the cost of classification.
After the runs each server is stopped gracefully and its clicks counted, with their verdicts, the
verdict changes recorded and the mean size of a click's `details`.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import load
import report
import seed
import spy
from fleet import ROOT, Fleet, Process, Server, check_alive, log, metrics, run_guarded

TRUSTED = ("--trusted-proxies", "127.0.0.1/32")


@dataclass
class Config:
    name: str  # "ceiling", "10k with", "10k without", "10k NAME", …
    server: Process
    codes_file: Path
    db: str | None = None  # "10k" / "1M" label of its database; None for the ceiling
    runs: list[load.WrkResult] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # server CPU per request, each run


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per configuration (default 3)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--small", type=int, default=10_000, help="links stored in the small database")
    parser.add_argument("--big", type=int, default=1_000_000, help="links stored in the big database (0: none)")
    parser.add_argument("--links-per-email", type=int, default=3,
                        help="links seeded per email (default 3: a sales email's few links)")
    parser.add_argument("--codes", type=int, default=0,
                        help="codes wrk chooses among, a random sample (default 0: every link's)")
    parser.add_argument("--clients", choices=("people", "one-address"), default="people",
                        help="where the clicks come from (default people: an address each)")
    parser.add_argument("--part", action="append", default=[], choices=("count", "classify", "count+classify"),
                        help="also run the 'without' server with these parts of classification put back "
                             "(bench/unclassified.py's BENCH_KEEP; repeatable)")
    parser.add_argument("--burn", action="append", default=[], type=int, metavar="US",
                        help="also run the 'without' server spinning US µs on each hit (repeatable): what that "
                             "much CPU on the redirect path costs, whatever spends it")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                        help="also run `linkhub serve` from the source tree DIR (repeatable)")
    parser.add_argument("--profile", action="store_true",
                        help="after the rounds, py-spy the big database's with and without servers under wrk "
                             "(pip install py-spy); the breakdown is appended")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (databases, logs)")
    parser.add_argument("--output", type=Path, default=report.RESULTS / "classify_cost.md",
                        help="appended to (default bench/results/classify_cost.md)")
    args = parser.parse_args()
    trees: dict[str, Path] = {}
    for spec in args.tree:
        name, sep, path = spec.partition("=")
        if not sep or not name or not (Path(path) / "linkhub" / "__init__.py").exists():
            parser.error(f"--tree {spec!r}: NAME=DIR expected, DIR holding linkhub/")
        trees[name] = Path(path).resolve()
    args.trees = trees
    return args


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed. Install it with:\n\n    apt-get install -y wrk\n", file=sys.stderr)
        return 2

    return run_guarded("linkhub-classify-cost-", args.keep, lambda workdir, fleet: run(args, workdir, fleet))


def _label(links: int) -> str:
    return f"{links // 1_000_000}M" if links >= 1_000_000 and links % 1_000_000 == 0 else f"{links // 1000}k"


def run(args: argparse.Namespace, workdir: Path, fleet: Fleet) -> int:
    noise = report.Noise()
    if args.profile:
        from profile_report import snapshot_sources

        snapshot_sources(ROOT)  # the code the servers load now, for the profile's line texts
    sides = ["with", "without", *(f"without+{part}" for part in args.part), *(f"without+burn{us}" for us in args.burn),
             *args.trees]
    configs: list[Config] = []
    ceiling_codes: Path | None = None
    servers: list[tuple[Config, Path]] = []
    for links in [n for n in (args.small, args.big) if n > 0]:
        db = _label(links)
        base = workdir / f"{db}.db"
        started = time.perf_counter()
        account = seed.account(base)
        # Minted a day ago: people click hours or days after the email was sent (scanners within seconds).
        minted = seed.links(base, account.id, links, per_email=args.links_per_email, age_s=86_400)
        codes = seed.codes_file(workdir / f"{db}.codes", minted, args.codes or len(minted))
        ceiling_codes = ceiling_codes or codes
        log(f"seeded {links:,} links in {time.perf_counter() - started:.1f}s ({base.stat().st_size / 1e6:.0f} MB)")
        for side in sides:
            path = workdir / f"{db}-{side}.db"
            shutil.copyfile(base, path)
            servers.append((Config(f"{db} {side}", _start(fleet, f"{db}-{side}", path, side, args), codes, db), path))
        base.unlink()
    assert ceiling_codes is not None
    ceiling = Config("ceiling", fleet.ceiling("ceiling", ceiling_codes), ceiling_codes)
    configs = [ceiling, *(c for c, _ in servers)]

    for c in configs:
        warm = load.wrk(c.server.url, c.codes_file, duration=args.warmup, connections=args.connections,
                        threads=args.threads, clients=args.clients)
        log(f"warm-up {c.name:14s} {warm.rps:8.0f} req/s")
    linkhubs = [c for c in configs if c.db is not None]
    for repeat in range(args.repeats):
        # Alternate the order of each database's sides round by round: neither always runs first.
        order = [ceiling, *(linkhubs if repeat % 2 == 0 else _reversed_per_db(linkhubs))]
        for c in order:
            check_alive(c.server, c.name)
            before = sum(spy.thread_cpu(c.server.proc.pid).values())
            result = load.wrk(c.server.url, c.codes_file, duration=args.duration, connections=args.connections,
                              threads=args.threads, clients=args.clients)
            cpu = sum(spy.thread_cpu(c.server.proc.pid).values()) - before
            c.runs.append(result)
            c.cpu_us.append(cpu / max(result.requests, 1) * 1e6)
            log(f"round {repeat + 1}/{args.repeats} {c.name:14s} {result.rps:8.0f} req/s  p50 {result.p50_ms:6.2f} ms"
                f"  p99 {result.p99_ms:6.2f} ms  cpu {c.cpu_us[-1]:5.0f} µs/req  non-3xx {result.status_errors}"
                f"  socket errors {result.socket_errors}")

    profile = ""
    if args.profile:
        profiled: dict[str, spy.Profiled] = {}
        big = linkhubs[-1].db
        # "with" last: profile_report lists the hottest lines of the last one.
        for c in sorted(linkhubs, key=lambda c: c.name.split(" ", 1)[1] == "with"):
            if c.db == big and c.name.split(" ", 1)[1] in ("with", "without"):
                log(f"profiling {c.name} under wrk with py-spy")
                profiled[c.name] = spy.profile_run(c.server, c.codes_file, workdir / f"{c.name}.raw".replace(" ", "-"),
                                                   duration=args.duration, connections=args.connections,
                                                   threads=args.threads, clients=args.clients)
        profile = spy.profile_section(profiled)
    stored = {c.name: _stop_and_read(fleet, c, path) for c, path in servers}
    fleet.stop_all()
    text = _report(args, ceiling, linkhubs, stored, noise) + profile
    print(text)
    report.write(args.output, text, append=True)
    return 0


def _start(fleet: Fleet, name: str, path: Path, side: str, args: argparse.Namespace) -> Server:
    if side == "with":
        return fleet.linkhub(name, path, *TRUSTED)
    if side.startswith("without+burn"):
        return fleet.linkhub(name, path, *TRUSTED, classified=False, env={"BENCH_BURN_US": side[len("without+burn"):]})
    if side.startswith("without"):
        keep = side.partition("+")[2].replace("+", ",")
        return fleet.linkhub(name, path, *TRUSTED, classified=False, env={"BENCH_KEEP": keep})
    return fleet.linkhub(name, path, *TRUSTED, env={"PYTHONPATH": str(args.trees[side])})


def _reversed_per_db(configs: list[Config]) -> list[Config]:
    by_db: dict[str | None, list[Config]] = collections.defaultdict(list)
    for c in configs:
        by_db[c.db].append(c)
    return [c for group in by_db.values() for c in reversed(group)]


@dataclass
class Stored:
    clicks: int
    verdicts: dict[str, int]
    changes: int
    details_bytes: float
    per_commit: float | None


def _stop_and_read(fleet: Fleet, c: Config, path: Path) -> Stored:
    m = metrics(c.server)
    commits = m.get("linkhub_write_transactions_total", 0)
    per_commit = m.get("linkhub_write_jobs_total", 0) / commits if commits else None
    fleet.stop(c.name.replace(" ", "-"))
    count = seed.count
    clicks = count(path, "SELECT count(*) FROM events WHERE type = 'click'")
    details = count(path, "SELECT coalesce(sum(length(details)), 0) FROM events WHERE type = 'click'")
    verdicts: dict[str, int] = {}
    for verdict in ("human", "unknown", "scanner", "bot"):
        n = count(path, "SELECT count(*) FROM events WHERE type = 'click' AND json_extract(details, '$.verdict') = ?",
                  verdict)
        if n:
            verdicts[verdict] = n
    changes = count(path, "SELECT count(*) FROM verdict_changes")
    return Stored(clicks, verdicts, changes, details / clicks if clicks else 0.0, per_commit)


def _report(args: argparse.Namespace, ceiling: Config, linkhubs: list[Config], stored: dict[str, Stored],
            noise: report.Noise) -> str:
    load_name = ("people: an X-Forwarded-For address per request, Accept-Language" if args.clients == "people"
                 else "one address (127.0.0.1) for every request, no Accept-Language: burst-heavy")
    lines = [
        f"## Classification's cost to redirects — {report.now_utc()}",
        "",
        *report.machine(),
        f"- `bench/classify_cost.py --duration {args.duration} --repeats {args.repeats} --small {args.small} "
        f"--big {args.big} --links-per-email {args.links_per_email} --codes {args.codes} "
        f"--clients {args.clients}`" + "".join(f" `--part {n}`" for n in args.part)
        + "".join(f" `--burn {n}`" for n in args.burn)
        + "".join(f" `--tree {n}`" for n in args.trees),
        f"- clients: {load_name}; other processes took {noise.others() / noise.elapsed() * 100:.0f} % of one core",
        "",
        "| server | req/s | p50 ms | p99 ms | server CPU µs/req | ÷ ceiling, paired median (range) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    ceil_rps = [r.rps for r in ceiling.runs]
    for c in [ceiling, *linkhubs]:
        m = report.medians(c.runs, ["rps", "p50_ms", "p99_ms"])
        paired = [r.rps / base for r, base in zip(c.runs, ceil_rps, strict=True)] \
            if c is not ceiling else [1.0]
        lines.append(f"| {c.name} | {m['rps']:,.0f} | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} | "
                     f"{statistics.median(c.cpu_us):.0f} | {statistics.median(paired):.2f}× "
                     f"({min(paired):.2f}–{max(paired):.2f}) |")
    lines += ["", "| database | side ÷ without, req/s per round: median (range) | server CPU per request, "
                  "median: side minus without |", "|---|---:|---:|"]
    by_db: dict[str | None, dict[str, Config]] = collections.defaultdict(dict)
    for c in linkhubs:
        by_db[c.db][c.name.split(" ", 1)[1]] = c
    for db, sides in by_db.items():
        without = sides["without"]
        for side, c in sides.items():
            if side == "without":
                continue
            ratios = [a.rps / b.rps for a, b in zip(c.runs, without.runs, strict=True)]
            extra = statistics.median(c.cpu_us) - statistics.median(without.cpu_us)
            lines.append(f"| {db} {side} | {statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f}) "
                         f"| {extra:+.0f} µs |")
    lines += ["", "| server | clicks stored | verdicts | verdict changes | details, mean bytes | clicks per commit |",
              "|---|---:|---|---:|---:|---:|"]
    for name, s in stored.items():
        verdicts = ", ".join(f"{k} {v:,}" for k, v in s.verdicts.items()) or "–"
        per_commit = f"{s.per_commit:.1f}" if s.per_commit is not None else "–"
        lines.append(f"| {name} | {s.clicks:,} | {verdicts} | {s.changes:,} | {s.details_bytes:.0f} | {per_commit} |")
    return "\n".join(lines) + "\n\n"


if __name__ == "__main__":
    sys.exit(main())
