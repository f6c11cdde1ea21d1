"""`bench/run.py --profile`: py-spy a server while wrk loads it, and the CPU each of its threads used."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fleet import Process
from load import WrkResult, wrk

PYSPY_INSTALL = f"{sys.executable} -m pip install py-spy"
RATE = 250  # samples per second


def pyspy_path() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each thread of `pid`, by thread id."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


@dataclass
class Profiled:
    raw: str
    wrk: WrkResult
    cpu: dict[str, float]  # CPU seconds per thread (named as py-spy names them) while wrk ran


def profile_run(server: Process, codes_file: Path, raw: Path, *, duration: float, connections: int,
                threads: int, clients: str = "one-address") -> Profiled:
    """py-spy `server` (all threads, idle excluded, without stopping it) into `raw` while wrk loads it."""
    pyspy = pyspy_path()
    assert pyspy is not None
    pid = server.proc.pid
    spy = subprocess.Popen([pyspy, "record", "--pid", str(pid), "--duration", f"{duration + 1.5:.0f}",
                            "--rate", str(RATE), "--format", "raw", "--output", str(raw), "--nonblocking",
                            "--threads"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # py-spy attaches
        before = thread_cpu(pid)
        result = wrk(server.url, codes_file, duration=duration, connections=connections, threads=threads,
                     clients=clients)
        after = thread_cpu(pid)
        _out, err = spy.communicate(timeout=duration + 60)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    if spy.returncode != 0 or not raw.exists():
        raise RuntimeError(f"py-spy failed ({spy.returncode}): {err.strip()[-800:]}")
    text = raw.read_text()
    names = {int(m[1]): m[2] for m in re.finditer(r"^thread \((\d+)\): ([^;]*);", text, re.MULTILINE)}
    cpu: dict[str, float] = collections.defaultdict(float)
    for tid, seconds_used in after.items():
        name = "MainThread" if tid == pid else names.get(tid, "other threads")
        cpu[name] += seconds_used - before.get(tid, 0.0)
    return Profiled(raw=text, wrk=result, cpu=cpu)


def profile_section(runs: dict[str, Profiled]) -> str:
    """The CPU table of each profiled server, then bench/profile_report.py's breakdown side by side."""
    from profile_report import side_by_side

    out = ["CPU per request measured from /proc (user + system time of each server thread while wrk ran; "
           "`linkhub-writer` is the group-commit thread):", "",
           "| server | req/s while profiled | main thread CPU µs/req | main thread busy | "
           "writer thread CPU µs/req | other threads CPU µs/req | whole process CPU µs/req |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for name, run in runs.items():
        n = run.wrk.requests or 1
        main = run.cpu.get("MainThread", 0.0)
        writer = run.cpu.get("linkhub-writer", 0.0)
        total = sum(run.cpu.values())
        busy = main / run.wrk.duration_s if run.wrk.duration_s else float("nan")
        out.append(f"| {name} | {run.wrk.rps:,.0f} | {main / n * 1e6:.0f} | {busy:.0%} of a core | "
                   f"{writer / n * 1e6:.0f} | {(total - main - writer) / n * 1e6:.0f} | {total / n * 1e6:.0f} |")
    out.append("")
    out.append(side_by_side({name: (run.raw, run.wrk.requests, run.wrk.duration_s) for name, run in runs.items()},
                            RATE))
    return "\n".join(out)
