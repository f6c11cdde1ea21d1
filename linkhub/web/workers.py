"""`linkhub serve --workers N`: N server processes on one port and one database file.

The parent process migrates the database (server.run has, before it gets here), reserves the port
and forks the workers; each worker is a whole `linkhub serve` of its own (its writer thread with group
commit, its delivery loop and pruner under the shared leases, its graceful stop), listening on a
socket of its own bound to the same port with SO_REUSEPORT, so that the kernel spreads new
connections over the workers' accept queues. SQLite's WAL lock serialises the workers' commits.

Why not Hypercorn's own workers (`Config.workers`): they load the app from an import path in
processes started with `spawn`, share one listening socket, and stop every worker as soon as one
exits with an error (a SIGKILLed worker takes the others down). linkhub's stop sequence (refuse new
requests, bound the graceful period, commit what is queued, give the leases up) lives in `server._serve`,
which each worker runs as it is; and a worker that dies here is started again while the others serve.

The parent serves nothing itself. It forwards SIGTERM/SIGINT to the workers and waits for them to stop;
a worker that dies otherwise is started again (after a pause if it had only just started). Workers
are told to stop if the parent is killed (PR_SET_PDEATHSIG), so none is left serving unsupervised.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import select
import signal
import socket
import sys
import time
from types import FrameType

from linkhub import store
from linkhub.settings import Settings
from linkhub.util import logs
from linkhub.web import server
from linkhub.web.app import create_app

log = logging.getLogger("linkhub.workers")

# A worker that dies sooner than this after it started is started again only after RESTART_PAUSE_S:
# one that cannot run (its database gone) must not be restarted in a tight loop.
QUICK_DEATH_S = 5.0
RESTART_PAUSE_S = 1.0
# After SIGTERM each worker stops within its own bounds (server.GRACEFUL_TIMEOUT_S + SHUTDOWN_MARGIN_S);
# past this one, the parent kills those still running.
STOP_BOUND_S = server.GRACEFUL_TIMEOUT_S + server.SHUTDOWN_MARGIN_S + 10
# How often the parent looks at its workers when nothing else wakes it.
WATCH_INTERVAL_S = 0.5
# The exit code of a worker that could not start (server.StartupError): the parent gives up.
STARTUP_FAILED = 3
_PR_SET_PDEATHSIG = 1


@dataclasses.dataclass
class _Worker:
    index: int
    pid: int
    started: float
    ready: bool = False


def run(settings: Settings) -> None:
    """Run `settings.workers` workers until SIGTERM/SIGINT. Raises server.StartupError if they cannot start."""
    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        raise server.StartupError("--workers above 1 needs Linux (SO_REUSEPORT spreads connections over the "
                                  "workers); run separate processes on separate ports behind a proxy instead")
    # Bound but not listening: the port (the one the OS chose, for --port 0) stays linkhub's while
    # workers come and go, and no connection is ever queued on this socket.
    reserved = server._bind(settings.host, settings.port, reuse_port=True, listen=False)
    if settings.port == 0:
        settings = dataclasses.replace(settings, port=reserved.getsockname()[1])
    try:
        create_app(settings)  # what only building the app checks (--scanner-networks), before forking
    except ValueError as exc:
        reserved.close()
        raise server.StartupError(str(exc)) from None
    ready_read, ready_write = os.pipe()
    supervisor = _Supervisor(settings, ready_read, ready_write)
    try:
        supervisor.run()
    finally:
        reserved.close()
        os.close(ready_read)
        os.close(ready_write)


class _Supervisor:
    def __init__(self, settings: Settings, ready_read: int, ready_write: int) -> None:
        self.settings = settings
        self.ready_read = ready_read
        self.ready_write = ready_write
        self.workers: dict[int, _Worker] = {}  # by pid
        self.stopping = False
        self.stop_deadline = 0.0
        self.announced = False
        self.restarts: list[tuple[float, int]] = []  # (when, index) of workers to start again
        self.failed: str | None = None  # why the workers could not start

    def run(self) -> None:
        for index in range(self.settings.workers):
            self._fork(index)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        while self.workers or (self.restarts and not self.stopping):
            self._read_ready()
            self._reap()
            now = time.monotonic()
            for when, index in list(self.restarts):
                if when <= now and not self.stopping:
                    self.restarts.remove((when, index))
                    self._fork(index)
            if self.stopping and now >= self.stop_deadline:
                for pid in list(self.workers):
                    log.error("worker pid %d has not stopped %g s after the signal: killing it", pid, STOP_BOUND_S)
                    _signal(pid, signal.SIGKILL)
                self.stop_deadline = float("inf")
        if self.failed is not None:
            raise server.StartupError(self.failed)
        log.info("linkhub stopped")

    def _fork(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: it never returns into the supervisor's loop
            code = 1
            try:
                code = _worker(self.settings, index, self.ready_write, os.getppid())
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                logging.shutdown()
                os._exit(code)
        self.workers[pid] = _Worker(index, pid, time.monotonic())

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = time.monotonic() + STOP_BOUND_S
            log.info("stopping %d workers", len(self.workers))
        for pid in self.workers:
            _signal(pid, signal.SIGTERM)

    def _read_ready(self) -> None:
        """Wait up to WATCH_INTERVAL_S for a worker to say it serves (its pid, as text, and a newline)."""
        try:
            readable, _, _ = select.select([self.ready_read], [], [], WATCH_INTERVAL_S)
        except InterruptedError:  # pragma: no cover - Python retries select after a signal handler
            return
        if not readable:
            return
        for line in os.read(self.ready_read, 4096).decode().split():
            worker = self.workers.get(int(line))
            if worker is not None:
                worker.ready = True
        if not self.announced and len(self.workers) == self.settings.workers and all(
                w.ready for w in self.workers.values()):
            self.announced = True
            settings = self.settings
            url = f"http://{settings.host}:{settings.port}"
            logging.getLogger(logs.READY).info(
                "linkhub: serving on %s (database %s, short links %s/r/…, %d workers)", url,
                store.shown(settings.db), settings.base_url, settings.workers,
                extra={"url": url, "database": store.shown(settings.db),
                                                            "workers": settings.workers})

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                continue
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            if code == STARTUP_FAILED or (not self.announced and not worker.ready):
                # It could not start (the port, the database): the others will not either.
                log.error("worker %d (pid %d) %s before it served: stopping", worker.index, pid, how)
                self.failed = f"worker {worker.index} {how} before it served (its log says why)"
                self._on_signal(signal.SIGTERM, None)
                continue
            quick = time.monotonic() - worker.started < QUICK_DEATH_S
            log.error("worker %d (pid %d) %s; starting another%s", worker.index, pid, how,
                      f" in {RESTART_PAUSE_S:g} s" if quick else "")
            self.restarts.append((time.monotonic() + (RESTART_PAUSE_S if quick else 0), worker.index))


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:  # it has just exited
        pass


def _worker(settings: Settings, index: int, ready_write: int, parent: int) -> int:
    """One worker's life: a whole server on its own socket (same port); returns its exit code."""
    for signum in (signal.SIGTERM, signal.SIGINT):  # the supervisor's handlers came with the fork
        signal.signal(signum, signal.SIG_DFL)
    _stop_with_parent(parent)
    try:
        sock = server._bind(settings.host, settings.port, reuse_port=True)
        app = create_app(settings)
    except server.StartupError as exc:
        log.error("worker %d cannot start: %s", index, exc)
        return STARTUP_FAILED
    config = server.hypercorn_config(sock)
    server._raise_file_limit()
    server._tune_garbage_collector()

    def announce() -> None:
        log.info("worker %d (pid %d) serving", index, os.getpid())
        os.write(ready_write, f"{os.getpid()}\n".encode())

    sys.setswitchinterval(server.SWITCH_INTERVAL_S)
    server._run_loop(server._serve(app, config, announce))
    return 0


def _stop_with_parent(parent: int) -> None:
    """SIGTERM this worker when the supervisor dies (killed itself), so that no worker serves unsupervised."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc: the worker outlives a killed parent
        return
    if os.getppid() != parent:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
