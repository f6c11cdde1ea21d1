"""The benches' reports: the machine, the noise, medians and ratios to the ceiling, Markdown tables."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from fleet import ROOT, log
from load import OPEN_CALL_TIMEOUT_S, MintResult, OpenMintResult, WrkResult, percentile

RESULTS = ROOT / "bench" / "results"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}×"


def medians(runs: Sequence[object], keys: Sequence[str]) -> dict[str, float]:
    """The median of each attribute `keys` over `runs`."""
    return {k: statistics.median(getattr(r, k) for r in runs) for k in keys}


def runs_row(label: str, values: list[float], fmt: str, goal: str = "") -> str:
    """| label | median | each run | goal |, every number formatted with `fmt`."""
    return (f"| {label} | {statistics.median(values):{fmt}} | {', '.join(f'{v:{fmt}}' for v in values)} |"
            + (f" {goal} |" if goal else " |"))


def now_utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def write(path: Path, text: str, *, append: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w") as out:
        out.write(text)
    log(f"wrote {path}")


# -- the machine and its noise --------------------------------------------------------------


def machine() -> list[str]:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    versions = []
    for dist in ("hypercorn", "starlette", "uvloop", "h11"):
        with contextlib.suppress(Exception):
            versions.append(f"{dist} {version(dist)}")
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    wrk_version = wrk_version.split(" Copyright")[0]
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores{mem} ({platform.system()} {platform.release()})",
        f"- Python {platform.python_version()} ({sys.executable}), SQLite {sqlite3.sqlite_version}",
        f"- {', '.join(versions)}; {wrk_version.strip()}",
        f"- {revision()}",
    ]


def revision() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "linkhub", "migrations"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return f"linkhub at {head}" + (" with uncommitted changes in linkhub/ or migrations/" if dirty else "")
    return "unknown revision"


def busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent not idle, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    self_, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Noise:
    """What else the machine did during a run: CPU other processes took, the load average at start."""

    began: float = field(default_factory=time.monotonic)
    busy0: float = field(default_factory=busy_cpu_seconds)
    own0: float = field(default_factory=own_cpu_seconds)
    load0: float = field(default_factory=lambda: os.getloadavg()[0])

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def others(self) -> float:
        return max((busy_cpu_seconds() - self.busy0) - (own_cpu_seconds() - self.own0), 0)


# -- bench/run.py's report ------------------------------------------------------------------


@dataclass
class Durability:
    """One linkhub's clicks after a graceful stop, against the 302s it answered."""

    name: str
    by_wrk: int
    by_server: int
    clicks: int
    unconfirmed: int
    per_commit: float | None
    db_mb: float
    wal_mb: float

    @property
    def matches(self) -> bool:
        return self.clicks == self.by_server and self.unconfirmed == 0


@dataclass
class Results:
    """Everything one bench/run.py measured."""

    labels: dict[str, str]  # configuration → its row's label, in the order they ran
    redirects: dict[str, list[WrkResult]]
    durability: list[Durability]
    closed: dict[str, list[MintResult]]  # "ceiling" and "big"
    open_loops: list[OpenMintResult]
    links_grown: int  # rows the links table gained during link replacement
    links_answered: int  # links the link-replacement calls were answered
    profile: str | None
    noise: Noise

    @property
    def ok(self) -> bool:
        return all(d.matches for d in self.durability) and self.links_grown == self.links_answered


def bench_report(args: argparse.Namespace, results: Results) -> str:
    elapsed, others = results.noise.elapsed(), results.noise.others()
    out = [f"## linkhub benchmark — {now_utc()}", "", *machine()]
    out.append(f"- Load generator and servers share the same {os.cpu_count()} cores: wrk -t{args.threads} "
               f"-c{args.connections}, {args.duration:g} s per run after a {args.warmup:g} s warm-up, "
               f"{args.repeats} interleaved runs per configuration, medians shown. "
               "Absolute numbers are this machine's; the ratios are what the goals are about.")
    out.append(f"- Noise: other processes used {others:.0f} CPU-seconds during the {elapsed:.0f} s run "
               f"({others / elapsed / (os.cpu_count() or 1):.0%} of the machine); load average at start "
               f"{results.noise.load0:.2f}.")
    out += redirect_section(args, results)
    out += durability_section(results)
    out += closed_loop_section(args, results)
    out += open_loop_section(args, results)
    if results.profile:
        out += ["", f"### Where the redirect time goes (py-spy, wrk -c{args.connections}, {args.duration:g} s each)",
                "", results.profile]
    out.append("")
    out.append(f"Total bench time {elapsed:.0f} s. Command: `{' '.join(['python', 'bench/run.py', *sys.argv[1:]])}`")
    return "\n".join(out) + "\n"


def _redirect_ratios(name: str, m: dict[str, float], ceil: dict[str, float]) -> tuple[str, str]:
    if name in ("small", "big"):
        tput, p99 = m["rps"] / ceil["rps"], m["p99_ms"] / ceil["p99_ms"]
        return f"{fmt_ratio(tput)} {'✅' if tput >= 0.85 else '❌'}", f"{fmt_ratio(p99)} {'✅' if p99 <= 1.5 else '❌'}"
    if name == "ceiling":
        return "1.00×", "1.00×"
    return fmt_ratio(m["rps"] / ceil["rps"]), fmt_ratio(m["p99_ms"] / ceil["p99_ms"])


def redirect_section(args: argparse.Namespace, results: Results) -> list[str]:
    runs = results.redirects
    med = {name: medians(rs, ("rps", "p50_ms", "p99_ms")) for name, rs in runs.items()}
    out = ["", f"### Redirects: GET /r/<code>, {args.connections} connections, random existing code per request", "",
           "| server | req/s | p50 ms | p99 ms | req/s ÷ ceiling (goal ≥ 0.85) | p99 ÷ ceiling (goal ≤ 1.5) | "
           "each run ÷ the ceiling's run of its round: median (range) | req/s of each run |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, label in results.labels.items():
        m = med[name]
        tput_s, p99_s = _redirect_ratios(name, m, med["ceiling"])
        # The machine's speed drifts during a run; a run and the ceiling's run of the same round
        # saw nearly the same machine, so their ratio shows the drift that the medians hide.
        paired = [r.rps / c.rps for r, c in zip(runs[name], runs["ceiling"], strict=True)]
        paired_s = f"{fmt_ratio(statistics.median(paired))} ({min(paired):.2f}–{max(paired):.2f})"
        out.append(f"| {label} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | "
                   f"{tput_s} | {p99_s} | {paired_s} | {', '.join(f'{r.rps:.0f}' for r in runs[name])} |")
    if "small" in med and "big" in med:
        change = med["big"]["rps"] / med["small"]["rps"] - 1
        out += ["", f"{args.big:,} vs {args.small:,} links stored: throughput {change:+.1%} "
                "(goal: no measurable drop; compare with the run-to-run spread above)."]
    errors = {name: (sum(r.status_errors for r in rs), sum(r.socket_errors for r in rs)) for name, rs in runs.items()}
    if any(e != (0, 0) for e in errors.values()):
        out += ["", "Errors (non-2xx/3xx responses / socket errors): "
                + ", ".join(f"{n} {e[0]}/{e[1]}" for n, e in errors.items())]
    return out


def durability_section(results: Results) -> list[str]:
    out = ["", "### Durability: click rows vs 302s answered (every run incl. warm-ups, counted after a graceful stop)",
           "", "| linkhub | 302s counted by wrk | 302s answered (server's count) | click rows in db | equal? | "
           "answered before commit | clicks per commit | db / WAL file at the end |",
           "|---|---:|---:|---:|---|---:|---:|---:|"]
    for d in results.durability:
        ok = d.matches and d.by_wrk <= d.by_server
        out.append(f"| {results.labels[d.name].removeprefix('linkhub, ')} | {d.by_wrk:,} | {d.by_server:,} | "
                   f"{d.clicks:,} | {'✅ yes' if ok else '❌ NO'} | {d.unconfirmed} | "
                   f"{'-' if d.per_commit is None else f'{d.per_commit:.1f}'} | "
                   f"{d.db_mb:,.0f} MB / {d.wal_mb:,.0f} MB |")
    out += ["", "wrk stops counting at its deadline, so it misses the answers still in flight then (≤ 1 per "
            "connection per run); the server's count (`linkhub_redirects_total`) and the rows must match "
            "exactly, with 0 redirects answered before their click was committed "
            "(`linkhub_clicks_unconfirmed_total`). Clicks per commit: writer jobs ÷ transactions before link "
            "replacement ran. The WAL's size is taken before the stop (which checkpoints it away)."]
    return out


def _closed_loop_row(name: str, label: str, runs: list[MintResult], m: dict[str, float],
                     ceiling: dict[str, float]) -> str:
    if name == "ceiling":
        label, p99_s, links_s = "ceiling (unsigned, nothing stored)", f"{m['p99_ms']:.1f}", "-"
        ratios = "1.00× | 1.00×"
    else:
        links_s = f"{m['links_per_s']:,.0f}"
        p99_s = f"{m['p99_ms']:.1f} {'✅' if m['p99_ms'] <= 50 else '❌'}"
        ratios = (f"{fmt_ratio(m['calls_per_s'] / ceiling['calls_per_s'])} | "
                  f"{fmt_ratio(m['p99_ms'] / ceiling['p99_ms'])}")
    return (f"| {label} | {sum(r.calls for r in runs):,} | {sum(r.failures for r in runs)} | "
            f"{m['p50_ms']:.1f} | {p99_s} | {m['calls_per_s']:,.0f} | {links_s} | {ratios} | "
            f"{', '.join(f'{r.p99_ms:.1f}' for r in runs)} |")


def closed_loop_section(args: argparse.Namespace, results: Results) -> list[str]:
    out = ["", f"### Link replacement: {args.links_per_email}-link emails, {args.senders} concurrent senders, "
           f"every link new (on the {args.big:,}-link database)", "",
           "| server | calls | failed | p50 ms | p99 ms (goal ≤ 50) | calls/s | links minted/s | "
           "calls/s ÷ ceiling | p99 ÷ ceiling | p99 of each run |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    med = {name: medians(runs, ("p50_ms", "p99_ms", "calls_per_s", "links_per_s"))
           for name, runs in results.closed.items()}
    out += [_closed_loop_row(name, results.labels[name], runs, med[name], med["ceiling"])
            for name, runs in results.closed.items()]
    calls_s = med["big"]["calls_per_s"]
    out += ["", f"Each sender sends its next email as soon as the last is answered (closed loop), so latency ≈ "
            f"{args.senders} ÷ calls/s = {args.senders / calls_s * 1000:.0f} ms by Little's law: p99 ≤ 50 ms here "
            f"needs ≥ {args.senders / 0.05:.0f} calls/s, i.e. ≤ {0.05 / args.senders * 1e6:.0f} µs of server "
            "time per 50-link call. The ceiling is bench/ceiling.py answering the same calls in shape only "
            "(body parsed, a made-up short link per `data` value; no signature, filter or database) on the same "
            "Hypercorn set-up: what receiving the email and sending the answer cost on this machine now."]
    return out


def open_loop_section(args: argparse.Namespace, results: Results) -> list[str]:
    loops = results.open_loops
    out = ["", f"### Link replacement at a fixed offered load: {args.senders} senders, each starting one "
           f"{args.links_per_email}-link email every {args.senders} ÷ rate seconds (open loop)", "",
           "| offered calls/s | achieved calls/s | links minted/s | p50 ms | p99 ms (goal ≤ 50) | max ms | failures |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    out += [f"| {o.offered_per_s:,g} | {o.calls_per_s:,.0f} | {o.links_per_s:,.0f} | {o.p50_ms:.1f} | "
            f"{o.p99_ms:.1f} {'✅' if o.p99_ms <= 50 else '❌'} | {o.max_ms:.1f} | {o.failures} |" for o in loops]
    out += ["", "The closed loop above measures saturation (its latency is just senders ÷ throughput), while this "
            "open loop keeps sending on schedule whatever the answers, as Outreach does, so its latencies are "
            "what Outreach would see at that traffic."]
    out.append(f"One {args.mint_duration:g} s run per rate, after the closed-loop runs; sender i starts its k-th "
               f"call at i/rate + k·{args.senders}/rate s (arrivals evenly spread), on an idle keep-alive connection "
               "of its own or a new one if all its connections are busy; latency is counted from the scheduled "
               "start, so queueing (in the server or the client) is included; achieved = calls answered 200 ÷ time "
               "from the first scheduled start to the last answer; a call with no answer (connection error, or none "
               f"within {OPEN_CALL_TIMEOUT_S:g} s) counts as a failure, not in the latencies. Connections used per "
               "rate: " + ", ".join(f"{o.offered_per_s:g}/s → {o.connections}" for o in loops)
               + "; client write lag p99 (scheduled start → request written): "
               + ", ".join(f"{percentile(o.start_lag_ms, 99):.1f} ms" for o in loops) + ".")
    grown, answered = results.links_grown, results.links_answered
    out.append(f"Links table grew by {grown:,}; {answered:,} links were answered "
               f"({'match ✅' if grown == answered else 'MISMATCH ❌'}).")
    return out
