"""The servers a bench starts: linkhub, the ceiling and its plain-ASGI reference, the webhook receiver.

All are started with the tests' helper (tests/servers.py: the subprocess, its "serving on URL"
line, its stderr drained) and registered in one `Fleet`, which stops every one of them on exit.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CEILING = BENCH / "ceiling.py"
SINK = BENCH / "sink.py"
UNCLASSIFIED = BENCH / "unclassified.py"
START_TIMEOUT_S = 60  # a loaded 2-core machine can take a while to import and open a big database

sys.path.append(str(ROOT / "tests"))  # appended: bench's own modules (sink.py) keep their names
from servers import Process, Server, start_process, start_server  # noqa: E402  # tests/servers.py

_ANNOUNCED = re.compile(r"serving on (http://\S+)")  # "linkhub: …", "ceiling: …", "sink: …"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def metrics(server: Process) -> dict[str, float]:
    """linkhub's /metrics, one float per sample line."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def check_alive(server: Process, name: str) -> None:
    if server.proc.poll() is not None:
        raise RuntimeError(f"{name} died:\n" + "".join(server.log[-40:]))


class Fleet:
    """Every server one bench run starts; `stop_all` (or leaving the `with` block) stops them all.
    With a `logs` folder, each server's stderr is written there when it stops."""

    def __init__(self, logs: Path | None = None) -> None:
        self.logs = logs
        self.started: dict[str, Process] = {}

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop_all()

    def _add(self, name: str, server: Process) -> None:
        self.started[name] = server
        log(f"{name} on {server.url} (pid {server.proc.pid})")

    def linkhub(self, name: str, db_path: Path, *args: str, classified: bool = True,
                env: dict[str, str] | None = None) -> Server:
        """`linkhub serve` on `db_path`; with `classified=False`, bench/unclassified.py's variant of it
        (clicks stored as before verdicts: the "without" side of bench/classify_cost.py)."""
        if classified:
            server = start_server(db_path, *args, env=env, timeout=START_TIMEOUT_S)
        else:
            argv = [sys.executable, str(UNCLASSIFIED), "serve", "--db", str(db_path), "--port", "0", *args]
            started = start_process(argv, env=env, timeout=START_TIMEOUT_S)
            server = Server(proc=started.proc, url=started.url, log=started.log, _drain=started._drain,
                            db_path=db_path)
        self._add(name, server)
        return server

    def ceiling(self, name: str, codes_file: Path, *, asgi: bool = False) -> Process:
        """bench/ceiling.py: the bare Starlette app (or, with `asgi`, the plain ASGI callable)."""
        argv = [sys.executable, str(CEILING), "--codes", str(codes_file), *(["--asgi"] if asgi else [])]
        server = start_process(argv, ready=_ANNOUNCED, timeout=START_TIMEOUT_S)
        self._add(name, server)
        return server

    def sink(self, name: str = "sink") -> Process:
        """bench/sink.py: the webhook receiver, in a process of its own."""
        server = start_process([sys.executable, str(SINK)], ready=_ANNOUNCED, timeout=START_TIMEOUT_S)
        self._add(name, server)
        return server

    def stop(self, name: str, timeout: float = 20) -> int:
        """SIGTERM (graceful: linkhub commits queued clicks), then SIGKILL if it hangs."""
        server = self.started.pop(name)
        try:
            code = server.stop(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop within {timeout}s: killing it")
            code = server.stop(signal.SIGKILL)
        if self.logs is not None:
            (self.logs / f"{name}.log").write_text(server.output)
        return code

    def stop_all(self) -> None:
        for name in list(self.started):
            self.stop(name)


def run_guarded(prefix: str, keep: bool, body: Callable[[Path, Fleet], int]) -> int:
    """`body(workdir, fleet)` in a fresh work directory, with SIGTERM and SIGHUP ending it as Ctrl-C does:
    every server it started is stopped, and the directory removed unless `keep`."""

    def interrupted(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    fleet = Fleet(logs=workdir)
    try:
        return body(workdir, fleet)
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}): stopping every server started")
        return 130
    finally:
        fleet.stop_all()
        if keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
