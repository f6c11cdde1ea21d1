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


@dataclass
class Server:
    """One running `linkhub serve` subprocess."""

    proc: subprocess.Popen[str]
    url: str
    db_path: Path
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


def start_server(db_path: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    """Start `linkhub serve --port 0` and return once it listens (it prints its URL then)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "linkhub", "serve", "--db", str(db_path), "--port", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stderr is not None
    log: list[str] = []
    ready = threading.Event()
    found: list[str] = []

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            match = _READY.search(line)
            if match and not found:
                found.append(match[1])
                ready.set()
        ready.set()  # the process ended: stop waiting

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    if not ready.wait(START_TIMEOUT_S) or not found:
        proc.kill()
        proc.wait()
        raise RuntimeError("linkhub did not start:\n" + "".join(log))
    return Server(proc=proc, url=found[0], db_path=db_path, log=log, _drain=thread)
