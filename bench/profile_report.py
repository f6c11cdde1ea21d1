"""Turn py-spy's raw (collapsed-stack) output into a Markdown breakdown of a redirect run.

    py-spy record --pid PID --threads --nonblocking --rate 250 --format raw -o run.raw
    python bench/profile_report.py run.raw --requests N [--rate 250]

Samples are taken without --idle, so each one is ~1/rate s of a thread on (or waiting for)
a CPU. Each main-thread sample is charged to the frame nearest the leaf that belongs to a
known layer (linkhub, Hypercorn, h11, …); frames of asyncio and the standard library are
charged to the layer that called them, and samples with no such frame (the leaf is
uvloop's C loop itself) to "event loop". Dividing by the requests served gives µs of the
main thread per request, which compares servers directly (bench/run.py --profile).
"""

from __future__ import annotations

import argparse
import collections
import linecache
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?):(?P<line>\d+)\)$")
_THREAD = re.compile(r"^thread \(\d+\): (?P<name>.*)$")

EVENT_LOOP = "event loop: uvloop C code (epoll, socket reads, callback dispatch) + asyncio"


def _linkhub(path: str, module: str) -> bool:
    """Whether `path` is linkhub's `module` (e.g. "redirect.py"), whichever layer folder holds it."""
    return path.startswith("linkhub/") and (path == f"linkhub/{module}" or path.endswith(f"/{module}"))


# (category, predicate on (func, file)); checked for each frame from the leaf upwards, the
# first frame that matches any rule decides. Order among rules matters only within one frame.
Rule = Callable[[str, str], bool]
RULES: list[tuple[str, Rule]] = [
    ("linkhub: link lookup, batched SQLite SELECT (links.LinkLookup)", lambda f, p: _linkhub(p, "links.py")),
    ("linkhub: user-agent parsing (useragent.describe, lru-cached)", lambda f, p: _linkhub(p, "useragent.py")),
    ("linkhub: client IP (clientip.client_ip)", lambda f, p: _linkhub(p, "clientip.py")),
    ("linkhub: event id (ids.event_id → secrets)", lambda f, p: _linkhub(p, "ids.py")),
    ("linkhub: click timestamp (times.format_ms)", lambda f, p: _linkhub(p, "times.py")),
    ("linkhub: metrics (metrics.Metrics, prometheus_client counters and histograms)",
     lambda f, p: _linkhub(p, "metrics.py") or "/prometheus_client/" in p),
    ("linkhub: waking committed clicks (db._resolve, on the loop)",
     lambda f, p: _linkhub(p, "db.py") and f == "_resolve"),
    ("linkhub: queue click + await commit (db.Database.write: put, wait_for, shield)",
     lambda f, p: _linkhub(p, "db.py")),
    ("linkhub: _record_click own lines (headers loop, details dict, events.Event)",
     lambda f, p: _linkhub(p, "redirect.py") and f.endswith("_record_click")),
    ("linkhub: redirect._send own lines (content-length, ASGI dicts)",
     lambda f, p: _linkhub(p, "redirect.py") and f == "_send"),
    ("linkhub: RedirectApp.__call__ own lines (code regex check, headers)", lambda f, p: _linkhub(p, "redirect.py")),
    ("linkhub: LinkhubApp.__call__ dispatch (app.py)", lambda f, p: _linkhub(p, "app.py")),
    ("linkhub: classifier (core/classify: the window, signals, verdicts)",
     lambda f, p: p.startswith("linkhub/core/classify/")),
    ("linkhub: click event and its hit (clicks.Clicks.judge, clicks.click)", lambda f, p: _linkhub(p, "clicks.py")),
    ("linkhub: other", lambda f, p: p.startswith("linkhub/")),
    ("ceiling app (bench/ceiling.py own lines)", lambda f, p: p.endswith("ceiling.py")),
    ("starlette: routing, Request/Response objects", lambda f, p: p.startswith("starlette/")),
    ("hypercorn: Date header (wsgiref format_date_time)", lambda f, p: p.endswith("wsgiref/handlers.py")),
    ("h11", lambda f, p: p.startswith("h11/")),  # refined by _h11_category
    ("socket write (asyncio StreamWriter.write → uvloop transport)", lambda f, p: p.endswith("asyncio/streams.py")),
    ("hypercorn: TCPServer (read loop, idle timeouts)", lambda f, p: p.endswith("hypercorn/asyncio/tcp_server.py")),
    ("hypercorn: H11Protocol glue", lambda f, p: p.endswith("hypercorn/protocol/h11.py")),
    ("hypercorn: HTTPStream (ASGI scope, app_send)", lambda f, p: p.endswith("hypercorn/protocol/http_stream.py")),
    ("hypercorn: per-request task + ASGI plumbing", lambda f, p: p.startswith("hypercorn/")),
]


@dataclass
class Profile:
    samples: int = 0
    by_thread: collections.Counter[str] = field(default_factory=collections.Counter)
    main_categories: collections.Counter[str] = field(default_factory=collections.Counter)
    main_lines: collections.Counter[tuple[str, str, int]] = field(default_factory=collections.Counter)
    writer_lines: collections.Counter[tuple[str, str, int]] = field(default_factory=collections.Counter)
    writer_functions: collections.Counter[str] = field(default_factory=collections.Counter)


def _parse_frame(text: str) -> tuple[str, str, int] | None:
    match = _FRAME.match(text.strip())
    if not match:
        return None
    return match["func"], match["file"], int(match["line"])


_H11_PARSE = ("Connection.next_event", "Connection.receive_data", "Connection._extract_next_receive_event",
              "Request.__init__", "_decode_header_lines", "_obsolete_line_fold", "ReceiveBuffer.maybe_extract_lines",
              "maybe_read_from_IDLE_client", "maybe_read_from_SEND_BODY_client")
_H11_BUILD = ("Connection.send", "Connection.send_with_data_passthrough", "_ResponseBase.__init__",
              "Response.__init__", "InformationalResponse.__init__", "Data.__init__", "EndOfMessage.__init__")


def _h11_category(outermost: str) -> str:
    """h11 is charged by its entry point: where Hypercorn called into it."""
    if outermost in _H11_PARSE:
        return "h11: parse request (Connection.next_event / receive_data)"
    if outermost in _H11_BUILD:
        return "h11: build + validate response (Response(), Connection.send)"
    return "h11: other (state machine, keep-alive cycle, header checks)"


def _category(frames: list[tuple[str, str, int]]) -> str:
    # Only what runs inside the event loop counts: drop `linkhub serve`'s own start-up frames.
    for i in range(len(frames) - 1, -1, -1):
        if frames[i][1].endswith("asyncio/runners.py"):
            frames = frames[i + 1 :]
            break
    for index in range(len(frames) - 1, -1, -1):
        func, path, _line = frames[index]
        for name, rule in RULES:
            if rule(func, path):
                if name != "h11":
                    return name
                outermost = func
                for up_func, up_path, _ in reversed(frames[:index]):
                    if up_path.startswith("h11/"):
                        outermost = up_func
                    elif not _stdlib(up_path):
                        break
                return _h11_category(outermost)
    return EVENT_LOOP


def _stdlib(path: str) -> bool:
    return not any(path.startswith(p) for p in ("linkhub/", "hypercorn/", "h11/", "starlette/", "bench/")) \
        and not path.endswith("ceiling.py")


def parse(raw: str) -> Profile:
    prof = Profile()
    for raw_line in raw.splitlines():
        line = raw_line.rstrip()
        if not line:
            continue
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        parts = stack.split(";")
        thread = "?"
        match = _THREAD.match(parts[0])
        if match:
            thread = match["name"]
            parts = parts[1:]
        frames = [f for f in (_parse_frame(p) for p in parts) if f is not None]
        prof.samples += count
        prof.by_thread[thread] += count
        if thread == "MainThread":
            prof.main_categories[_category(frames)] += count
            if frames:
                prof.main_lines[frames[-1]] += count
        elif frames:
            prof.writer_lines[frames[-1]] += count
            for func, path, _ in reversed(frames):
                if path.startswith("linkhub/"):
                    prof.writer_functions[f"{path}:{func}"] += count
                    break
    return prof


# Source as it was when the servers started (bench/run.py snapshots linkhub/ then): the
# tree may be edited while the bench runs, and py-spy's line numbers are the loaded code's.
SOURCES: dict[str, list[str]] = {}


def snapshot_sources(root: Path, package: str = "linkhub") -> None:
    for file in (root / package).rglob("*.py"):
        SOURCES[str(file.relative_to(root))] = file.read_text(encoding="utf-8", errors="replace").splitlines()


def _source(path: str, line: int) -> str:
    if path in SOURCES:
        lines = SOURCES[path]
        return lines[line - 1].strip() if 0 < line <= len(lines) else ""
    roots = [Path(__file__).resolve().parent.parent, *(Path(p) for p in sys.path if p)]
    for root in roots:
        candidate = root / path
        if candidate.is_file():
            return linecache.getline(str(candidate), line).strip()
    return ""


def _us(count: int, rate: float, requests: int) -> float:
    return count / rate / requests * 1e6 if requests else float("nan")


Parsed = dict[str, tuple[Profile, int, float]]  # name → (profile, requests served, seconds sampled)


def side_by_side(profiles: dict[str, tuple[str, int, float]], rate: float, top: int = 15) -> str:
    """profiles: name → (raw py-spy text, requests served while sampled, seconds sampled under load).
    The LAST one is the subject (linkhub): its lines are listed; the others are compared."""
    parsed = {name: (parse(raw), requests, seconds) for name, (raw, requests, seconds) in profiles.items()}
    subject = list(parsed)[-1]
    out = _threads(parsed, rate) + _layers(parsed, subject, rate) + _hot_lines(parsed, subject, rate, top)
    return "\n".join(out)


def _threads(parsed: Parsed, rate: float) -> list[str]:
    names = list(parsed)
    out = [f"Sampled with `py-spy record --threads --nonblocking --rate {rate:g} --format raw` (idle excluded). "
           "µs/req = main-thread samples ÷ rate ÷ requests served while sampled.", "",
           "| | " + " | ".join(names) + " |",
           "|---|" + "---:|" * len(names),
           "| requests served while sampled | " + " | ".join(f"{parsed[n][1]:,}" for n in names) + " |",
           "| req/s during the profile | " + " | ".join(
               f"{parsed[n][1] / parsed[n][2]:,.0f}" if parsed[n][2] else "-" for n in names) + " |"]
    for thread in ("MainThread", "linkhub-writer"):
        cells = []
        for n in names:
            p, requests, seconds = parsed[n]
            cnt = p.by_thread.get(thread, 0)
            busy = cnt / rate / seconds if seconds else float("nan")
            cells.append(f"{_us(cnt, rate, requests):.0f} µs/req ({busy:.0%} of a core)" if cnt else "-")
        out.append(f"| {thread} busy | " + " | ".join(cells) + " |")
    return out


def _layers(parsed: Parsed, subject: str, rate: float) -> list[str]:
    names = list(parsed)
    sp = parsed[subject][0]
    out = ["", "Main thread (the event loop: it is the bottleneck), by layer; µs per request, and share of "
           f"{subject}'s main thread:", "",
           "| layer | " + " | ".join(f"{n} µs/req" for n in names) + f" | {subject} share |",
           "|---|" + "---:|" * (len(names) + 1)]
    cats = sorted({c for p, _, _ in parsed.values() for c in p.main_categories},
                  key=lambda c: -sp.main_categories.get(c, 0))
    main_total = sp.by_thread.get("MainThread", 0) or 1
    for cat in cats:
        cells = [f"{_us(p.main_categories.get(cat, 0), rate, requests):.1f}" for p, requests, _ in parsed.values()]
        out.append(f"| {cat} | " + " | ".join(cells) + f" | {sp.main_categories.get(cat, 0) / main_total:.1%} |")
    totals = [f"**{_us(p.by_thread.get('MainThread', 0), rate, requests):.1f}**" for p, requests, _ in parsed.values()]
    out.append("| **total main thread** | " + " | ".join(totals) + " | 100% |")
    return out


def _line_rows(lines: collections.Counter[tuple[str, str, int]], total: int, rate: float, requests: int,
               top: int) -> list[str]:
    return [f"| {cnt / total:.1%} | {_us(cnt, rate, requests):.1f} | `{path}:{line}` {func} | "
            f"`{_source(path, line)[:90]}` |" for (func, path, line), cnt in lines.most_common(top)]


def _hot_lines(parsed: Parsed, subject: str, rate: float, top: int) -> list[str]:
    sp, s_requests, _ = parsed[subject]
    main_total = sp.by_thread.get("MainThread", 0) or 1
    out = ["", f"{subject}: hottest main-thread lines (self time, the leaf frame of each sample):", "",
           "| share | µs/req | where | line |", "|---:|---:|---|---|",
           *_line_rows(sp.main_lines, main_total, rate, s_requests, top)]
    writer_total = sum(sp.writer_lines.values())
    if writer_total:
        out += ["", f"{subject}: writer thread (group commit; runs beside the loop and competes for the GIL "
                "and the 2 cores), hottest lines:", "",
                "| share of writer | µs/req | where | line |", "|---:|---:|---|---|",
                *_line_rows(sp.writer_lines, writer_total, rate, s_requests, 10)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("raw", type=Path, nargs="+", help="py-spy raw files (NAME=PATH to label them)")
    parser.add_argument("--requests", type=int, nargs="+", required=True, help="requests served in each")
    parser.add_argument("--seconds", type=float, nargs="+", help="seconds under load in each")
    parser.add_argument("--rate", type=float, default=250)
    args = parser.parse_args()
    profiles = {}
    for i, item in enumerate(args.raw):
        name, _, path = str(item).rpartition("=")
        profiles[name or Path(path).stem] = (Path(path).read_text(), args.requests[i],
                                             args.seconds[i] if args.seconds else 0.0)
    print(side_by_side(profiles, args.rate))


if __name__ == "__main__":
    main()
