"""A real `linkhub serve` subprocess on a free port: used by the tests' fixtures and by bench/."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

_READY = re.compile(r"linkhub: serving on (http://\S+)")
START_TIMEOUT_S = 30


@dataclass(kw_only=True)
class Process:
    """One running server subprocess, found listening at `url`; its stderr lines are in `log`."""

    proc: subprocess.Popen[str]
    url: str
    log: list[str] = field(default_factory=list)
    _drain: threading.Thread | None = None

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, follow_redirects=False, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send `sig` and wait for the process to exit; returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        if self._drain is not None:
            self._drain.join(timeout=timeout)
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    @property
    def output(self) -> str:
        return "".join(self.log)


@dataclass(kw_only=True)
class Server(Process):
    """One running `linkhub serve` subprocess."""

    db_path: Path


def start_server(db_path: Path, *args: str, env: dict[str, str] | None = None,
                 timeout: float = START_TIMEOUT_S) -> Server:
    """Start `linkhub serve --port 0` and return once it listens (it prints its URL then)."""
    argv = [sys.executable, "-m", "linkhub", "serve", "--db", str(db_path), "--port", "0", *args]
    started = start_process(argv, env=env, timeout=timeout)
    return Server(proc=started.proc, url=started.url, log=started.log, _drain=started._drain, db_path=db_path)


def start_process(argv: list[str], *, ready: re.Pattern[str] = _READY, env: dict[str, str] | None = None,
                  timeout: float = START_TIMEOUT_S) -> Process:
    """Start `argv` and return once it prints `ready` (its URL in group 1) on stderr: linkhub, or one
    of bench/'s servers; its stderr is read on (into `log`) so that a full pipe never blocks it."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    assert proc.stderr is not None
    log: list[str] = []
    ready_event = threading.Event()
    found: list[str] = []

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            match = ready.search(line)
            if match and not found:
                found.append(match[1])
                ready_event.set()
        ready_event.set()  # the process ended: stop waiting

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        if not ready_event.wait(timeout) or not found:
            raise RuntimeError(f"{' '.join(argv)} did not start:\n" + "".join(log))
    except BaseException:  # Ctrl-C while waiting too: never leave it running unowned
        proc.kill()
        proc.wait()
        raise
    return Process(proc=proc, url=found[0], log=log, _drain=thread)
