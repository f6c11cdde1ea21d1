#!/usr/bin/env python3
"""linkhub's benchmark: one command, one Markdown table (also written to bench/results/latest.md).

    .venv/bin/python bench/run.py            # or: bash bench/run
    .venv/bin/python bench/run.py --duration 5 --repeats 2      # quicker, noisier
    .venv/bin/python bench/run.py --profile  # also py-spy the redirect path under load

What it measures, side by side in one run:

* Redirects, GET /r/<code> with wrk at 64 connections, each request a random existing code
  (bench/redirect.lua picks among up to 10k codes, with a handful of real user agents):
    - the ceiling: bench/ceiling.py, a bare Starlette app on the same Hypercorn/uvloop set-up
      as `linkhub serve`, answering 302 from a Python dict;
    - linkhub with 10 thousand links stored;
    - linkhub with 1 million links stored;
    - (reference only) bench/ceiling.py --asgi: a plain ASGI callable, Hypercorn's floor.
  Configurations are run interleaved (ceiling, 10k, 1M, asgi, ceiling, …) after one warm-up
  each, and medians reported. After the runs every linkhub server is stopped gracefully and
  its click rows are counted against the 302s it answered.
* Link replacement, POST /outreach/{account}/links: 50-link emails from 32 concurrent senders
  (a raw-socket asyncio client, keep-alive, one connection per sender), each call a new
  (mailing, prospect) so every link is minted; p50/p99 and links minted per second. Its runs are
  interleaved with the same load on bench/ceiling.py, which answers in shape only (no signature,
  nothing stored): the stack's ceiling for these calls. That closed
  loop measures saturation (latency ≈ senders ÷ throughput), so it is followed by an open loop
  at each --mint-rates offered load (default 50,100,150 calls/s): the 32 senders start calls on a
  fixed schedule whatever the answers, latency counted from each call's scheduled start.

Every server started here is stopped before the script exits, on error or Ctrl-C too.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import load
import report
import seed
import spy
from fleet import ROOT, Fleet, Process, Server, check_alive, log, metrics, run_guarded

WRK_INSTALL = "apt-get install -y wrk"
LUA_CODES = 10_000  # codes the load generator chooses among


@dataclass
class Database:
    name: str  # "small" or "big"
    path: Path
    account: seed.Account
    codes_file: Path  # a sample of its codes, for wrk


@dataclass
class Config:
    """One redirect configuration: a server and the codes wrk requests from it."""

    name: str  # "ceiling", "small", "big" or "asgi"
    server: Process
    codes_file: Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per configuration (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per configuration (default 3)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--big", type=int, default=1_000_000, help="links stored in the big database")
    parser.add_argument("--small", type=int, default=10_000, help="links stored in the small database")
    parser.add_argument("--senders", type=int, default=32, help="concurrent link-replacement senders")
    parser.add_argument("--links-per-email", type=int, default=50)
    parser.add_argument("--mint-duration", type=float, default=None,
                        help="seconds per link-replacement run (default: --duration)")
    parser.add_argument("--mint-rates", default="50,100,150",
                        help="offered link-replacement calls/s for the open-loop runs, comma-separated "
                             "(default 50,100,150; one run of --mint-duration each)")
    parser.add_argument("--no-asgi-floor", action="store_true", help="skip the plain-ASGI reference row")
    parser.add_argument("--profile", action="store_true",
                        help="after the runs, py-spy the ceiling and linkhub (big db) under wrk; breakdown appended")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (databases, logs)")
    parser.add_argument("--output", type=Path, default=report.RESULTS / "latest.md")
    args = parser.parse_args()
    try:
        args.mint_rates = [float(r) for r in args.mint_rates.split(",") if r.strip()]
    except ValueError:
        parser.error(f"--mint-rates: comma-separated numbers expected, got {args.mint_rates!r}")
    if any(r <= 0 for r in args.mint_rates):
        parser.error("--mint-rates: every rate must be > 0")
    args.mint_duration = args.mint_duration or args.duration
    return args


def labels(args: argparse.Namespace) -> dict[str, str]:
    return {
        "ceiling": "ceiling: bare Starlette, dict lookup",
        "small": f"linkhub, {args.small:,} links stored",
        "big": f"linkhub, {args.big:,} links stored",
        "asgi": "(reference) plain ASGI callable, dict lookup",
    }


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        print(f"bench: wrk is not installed. Install it with:\n\n    {WRK_INSTALL}\n", file=sys.stderr)
        return 2
    if args.profile and spy.pyspy_path() is None:
        print(f"bench: --profile needs py-spy. Install it with:\n\n    {spy.PYSPY_INSTALL}\n", file=sys.stderr)
        return 2

    return run_guarded("linkhub-bench-", args.keep, lambda workdir, fleet: run(args, workdir, fleet))


def run(args: argparse.Namespace, workdir: Path, fleet: Fleet) -> int:
    noise = report.Noise()
    dbs = {name: seed_database(workdir, name, links) for name, links in (("small", args.small), ("big", args.big))}
    configs, linkhubs = start_servers(args, fleet, dbs)
    redirects, wrk_redirects = redirect_runs(args, configs)
    profile = profile_runs(args, configs, wrk_redirects, workdir) if args.profile else None
    # Writer statistics now, before link replacement adds transactions of its own.
    writer_stats = {name: metrics(server) for name, server in linkhubs.items()}
    closed, open_loops, grown, answered = link_replacement(args, configs[0].server, linkhubs["big"], dbs["big"])
    durability = [stop_and_count(fleet, name, server, wrk_redirects[name], writer_stats[name])
                  for name, server in linkhubs.items()]
    fleet.stop_all()
    results = report.Results(labels={c.name: labels(args)[c.name] for c in configs}, redirects=redirects,
                             durability=durability, closed=closed, open_loops=open_loops, links_grown=grown,
                             links_answered=answered, profile=profile, noise=noise)
    table = report.bench_report(args, results)
    print(table)
    report.write(args.output, table)
    return 0 if results.ok else 1


def seed_database(workdir: Path, name: str, links: int) -> Database:
    """A fresh database with one account and `links` links, seeded before any server opens it."""
    path = workdir / f"{name}.db"
    started = time.perf_counter()
    account = seed.account(path)
    codes = seed.links(path, account.id, links)
    codes_file = seed.codes_file(workdir / f"{name}.codes", codes, LUA_CODES)
    log(f"seeded {links:,} links into {path.name} in {time.perf_counter() - started:.1f}s "
        f"({path.stat().st_size / 1e6:.0f} MB)")
    return Database(name=name, path=path, account=account, codes_file=codes_file)


def start_servers(args: argparse.Namespace, fleet: Fleet,
                  dbs: dict[str, Database]) -> tuple[list[Config], dict[str, Server]]:
    """All up at once (idle ones cost nothing), then loaded one at a time; the ceiling first."""
    if args.profile:
        from profile_report import snapshot_sources

        snapshot_sources(ROOT)  # the code the servers load now, for the profile's line texts
    small_codes = dbs["small"].codes_file
    configs = [Config("ceiling", fleet.ceiling("ceiling", small_codes), small_codes)]
    linkhubs: dict[str, Server] = {}
    for name, db in dbs.items():
        linkhubs[name] = fleet.linkhub(f"linkhub-{name}", db.path)
        configs.append(Config(name, linkhubs[name], db.codes_file))
    if not args.no_asgi_floor:
        configs.append(Config("asgi", fleet.ceiling("asgi-floor", small_codes, asgi=True), small_codes))
    return configs, linkhubs


def redirect_runs(args: argparse.Namespace,
                  configs: list[Config]) -> tuple[dict[str, list[load.WrkResult]], collections.Counter[str]]:
    """A warm-up each, then `--repeats` rounds of one run per configuration (interleaved)."""
    results: dict[str, list[load.WrkResult]] = collections.defaultdict(list)
    redirects: collections.Counter[str] = collections.Counter()  # every 302 wrk counted, warm-ups too
    for c in configs:
        warm = load.wrk(c.server.url, c.codes_file, duration=args.warmup, connections=args.connections,
                        threads=args.threads)
        redirects[c.name] += warm.redirects
        log(f"warm-up {c.name:8s} {warm.rps:8.0f} req/s")
    for repeat in range(args.repeats):
        for c in configs:
            check_alive(c.server, c.name)
            result = load.wrk(c.server.url, c.codes_file, duration=args.duration, connections=args.connections,
                              threads=args.threads)
            results[c.name].append(result)
            redirects[c.name] += result.redirects
            log(f"run {repeat + 1}/{args.repeats} {c.name:8s} {result.rps:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                f"p99 {result.p99_ms:6.2f} ms  non-3xx {result.status_errors}  socket errors {result.socket_errors}")
    return results, redirects


def profile_runs(args: argparse.Namespace, configs: list[Config], redirects: collections.Counter[str],
                 workdir: Path) -> str:
    """The ceiling and linkhub (big db), one at a time, nothing else running, under py-spy."""
    profiled: dict[str, spy.Profiled] = {}
    for c in configs:
        if c.name in ("ceiling", "big"):
            log(f"profiling {c.name} under wrk with py-spy")
            profiled[labels(args)[c.name]] = prof = spy.profile_run(
                c.server, c.codes_file, workdir / f"{c.name}.pyspy.raw", duration=args.duration,
                connections=args.connections, threads=args.threads)
            redirects[c.name] += prof.wrk.redirects
    return spy.profile_section(profiled)


def link_replacement(args: argparse.Namespace, ceiling: Process, linkhub: Server,
                     db: Database) -> tuple[dict[str, list[load.MintResult]], list[load.OpenMintResult], int, int]:
    """On the big database (a realistic, large unique index): the closed loop interleaved with the same
    load on the ceiling (the machine's speed of the moment moves both alike, so their ratio says what
    linkhub's own work costs), then the open loop at each offered rate. Returns both, and the links the
    table gained and the links answered (which must match)."""
    count_links = "SELECT count(*) FROM links"
    before = seed.count(db.path, count_links)
    # The ceiling ignores the signature: the big database's account signs for both.
    servers = {"ceiling": ceiling, "big": linkhub}
    shape = {"senders": args.senders, "links": args.links_per_email}
    warm_mint = load.closed_loop(linkhub.url, db.account, **shape, duration=min(2.0, args.mint_duration))
    warm_ceiling = load.closed_loop(ceiling.url, db.account, **shape, duration=min(2.0, args.mint_duration))
    log(f"warm-up link replacement: {warm_mint.calls_per_s:.0f} calls/s (ceiling {warm_ceiling.calls_per_s:.0f})")
    closed: dict[str, list[load.MintResult]] = collections.defaultdict(list)
    for repeat in range(args.repeats):
        for name, server in servers.items():
            r = load.closed_loop(server.url, db.account, **shape, duration=args.mint_duration)
            closed[name].append(r)
            log(f"link replacement {repeat + 1}/{args.repeats} {name:8s}: {r.calls} calls, p50 {r.p50_ms:.1f} ms, "
                f"p99 {r.p99_ms:.1f} ms, {r.links_per_s:.0f} links/s, failures {r.failures}")
    open_loops: list[load.OpenMintResult] = []
    for rate in args.mint_rates:
        check_alive(linkhub, "linkhub-big")
        o = load.open_loop(linkhub.url, db.account, **shape, rate=rate, duration=args.mint_duration)
        open_loops.append(o)
        log(f"link replacement at {rate:g} calls/s offered: {o.calls_per_s:.0f} achieved, p50 {o.p50_ms:.1f} ms, "
            f"p99 {o.p99_ms:.1f} ms, max {o.max_ms:.1f} ms, failures {o.failures}, connections {o.connections}, "
            f"client write lag p99 {load.percentile(o.start_lag_ms, 99):.1f} ms")
    answered = sum(m.links for m in [warm_mint, *closed["big"]]) + sum(o.links for o in open_loops)
    return closed, open_loops, seed.count(db.path, count_links) - before, answered


def stop_and_count(fleet: Fleet, name: str, server: Server, by_wrk: int,
                   writer_stats: dict[str, float]) -> report.Durability:
    """Stop one linkhub gracefully, then count its click rows against the 302s it answered."""
    m = metrics(server)
    commits = writer_stats.get("linkhub_write_transactions_total", 0)
    wal_path = Path(f"{server.db_path}-wal")
    wal_mb = wal_path.stat().st_size / 1e6 if wal_path.exists() else 0.0  # before the stop checkpoints it
    db_mb = server.db_path.stat().st_size / 1e6
    code = fleet.stop(f"linkhub-{name}")
    if code != 0:
        log(f"linkhub-{name} exited with {code} on SIGTERM")
    return report.Durability(
        name=name, by_wrk=by_wrk, by_server=int(m.get("linkhub_redirects_total", 0)),
        clicks=seed.count(server.db_path, "SELECT count(*) FROM events WHERE type = 'click'"),
        unconfirmed=int(m.get("linkhub_clicks_unconfirmed_total", 0)),
        per_commit=writer_stats.get("linkhub_write_jobs_total", 0) / commits if commits else None,
        db_mb=db_mb, wal_mb=wal_mb)


if __name__ == "__main__":
    sys.exit(main())
