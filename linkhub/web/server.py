"""`linkhub serve`: migrate, bind, and run the app on Hypercorn until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import gc
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from linkhub import store
from linkhub.core import useragent
from linkhub.core.classify import agents
from linkhub.core.classify import data as classify_data
from linkhub.settings import Settings
from linkhub.store import StoreError, describe_error
from linkhub.util import logs
from linkhub.web.app import LinkhubApp, create_app

log = logging.getLogger("linkhub.server")

# In-flight requests get this long to finish after SIGTERM; then queued writes are committed.
GRACEFUL_TIMEOUT_S = 10.0
# Hypercorn gets this much longer to close its connections and run the lifespan shutdown; then
# linkhub stops deliveries, commits the queued writes and exits without it: Hypercorn never
# closes a connection whose client has stopped reading its answer, and would wait for it for ever.
SHUTDOWN_MARGIN_S = 5.0
# Each time the database writer comes back from SQLite it needs the GIL, and waits until the
# event loop lets go of it: at most Python's switch interval, 5 ms by default, which made
# every commit wait behind a busy loop. 0.2 ms measured best (docs/performance.md).
SWITCH_INTERVAL_S = 0.0002
# CPython collects its youngest generation once 700 more container objects exist than it last
# counted. Under load the requests in flight alone hold about that many, so it ran every few
# requests (~500 times in 12 s at 2,500 redirects/s), walked those same live objects (~0.5 ms
# each time, ~2 % of the event loop) and found next to no garbage. At 10,000 it ran once.
GC_THRESHOLD = 10_000
# Hypercorn closes a connection that has sent no complete request head this long after it
# opened (or after its previous answer): the bound on slowly sent headers, and on idle keep-alive.
KEEP_ALIVE_TIMEOUT_S = 5.0
# A backstop for a connection that goes silent mid-request; a read that waits longer is cut.
# Longer than any handler takes to answer (a webhook verify call waits at most 60 s), because
# Hypercorn also cuts a connection whose client waits silently for a slow answer.
READ_TIMEOUT_S = 120


class StartupError(Exception):
    """`linkhub serve` cannot start; the message says why in one line, for stderr."""


def _bind(host: str, port: int, *, reuse_port: bool = False, listen: bool = True) -> socket.socket:
    # A name is resolved to its IPv4 address, as an IPv6 one is written with colons; '' is every interface.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host or None, port, family, socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: not even a valid host name
        raise StartupError(f"cannot listen on --host {host!r}: not an address of this machine nor a name "
                           f"that resolves ({exc})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # --workers: each worker listens on a socket of its own, on the same port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        # Listening before Hypercorn starts means early connections wait in the backlog, not fail.
        if listen:
            sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise StartupError(_bind_failure(host, port, exc)) from None
    return sock


def _bind_failure(host: str, port: int, exc: OSError) -> str:
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {where}: the port is in use by another process (choose another --port)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {host} is not an address of this machine (--host)"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: permission denied (ports below 1024 need privileges)"
    return f"cannot listen on {where}: {exc.strerror or exc}"


def hypercorn_config(sock: socket.socket) -> Config:
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    # Hypercorn's access log would copy every header (Authorization too) per request; --access-log is the app's.
    config.accesslog = None
    # Hypercorn's messages go through our logging set-up instead of a handler of its own.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = GRACEFUL_TIMEOUT_S
    config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT_S
    config.read_timeout = READ_TIMEOUT_S
    config.backlog = 1024
    config.include_server_header = False
    return config


def run(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT. Raises StartupError if the database or the address is unusable."""
    _prepare_database(settings.db)
    _warn_if_readable_by_others(settings.db)
    _warn_if_classifier_data_is_old(datetime.now(UTC).date())
    if settings.workers > 1:
        from linkhub.web import workers  # here: it imports this module

        workers.run(settings)
        return

    sock = _bind(settings.host, settings.port)
    if settings.port == 0:  # let the OS choose; short links must still name the real port
        settings = dataclasses.replace(settings, port=sock.getsockname()[1])
    try:
        app = create_app(settings)
    except ValueError as exc:  # the one setting checked by reading a file: --scanner-networks
        sock.close()
        raise StartupError(str(exc)) from None
    config = hypercorn_config(sock)
    _raise_file_limit()
    _tune_garbage_collector()
    url = f"http://{settings.host}:{settings.port}"

    def announce() -> None:
        # A record like any other (JSON with --log-format json), written at every level: scripts and
        # tests wait for "linkhub: serving on URL", the only place the port chosen for --port 0 is told.
        logging.getLogger(logs.READY).info("linkhub: serving on %s (database %s, short links %s/r/…)",
                                           url, store.shown(settings.db), settings.base_url,
                                           extra={"url": url, "database": store.shown(settings.db)})

    sys.setswitchinterval(SWITCH_INTERVAL_S)
    _run_loop(_serve(app, config, announce))


def _prepare_database(path: Path | str) -> None:
    """Migrate the database, or say in one line why it cannot be used.

    Batches a killed process had in flight are not touched here: another process may be serving on
    the same file (a restart that overlaps the old process, `--workers`, a second server). They go
    back to the queue when their webhook's lease is taken over, once the dead holder's has expired.
    """
    if not store.is_url(path):
        _check_database_path(Path(path))
    try:
        conn = store.connect(path)
        try:
            for change in store.migrate(conn):
                log.info("schema: %s", change)
        finally:
            conn.close()
    except StoreError as exc:
        raise StartupError(describe_error(exc, path)) from None
    except RuntimeError as exc:  # a migration failed
        raise StartupError(f"cannot migrate {store.shown(path)}: {exc}") from None


def _check_database_path(path: Path) -> None:
    """The faults SQLite would report only as 'unable to open database file'."""
    directory = path.parent
    if path.is_dir():
        raise StartupError(f"{path} is a directory, not a database file (--db names the file)")
    if not directory.is_dir():
        raise StartupError(f"no directory {directory} for the database {path.name}: create it first (--db)")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StartupError(f"{path} is read-only (its permissions or its file system): the server writes to it")
    # New files (the database itself, its -wal and -shm) are created beside it.
    needed = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if not p.exists()]
    if needed and not os.access(directory, os.W_OK | os.X_OK):
        raise StartupError(f"cannot create {needed[0].name} in {directory}: the directory is read-only (its "
                           f"permissions or its file system; SQLite keeps {path.name}-wal and {path.name}-shm "
                           "beside the database)")


def _warn_if_readable_by_others(path: Path | str) -> None:
    """The database holds secrets: say so if it (or its WAL) is open to other users. It is left as it is."""
    if store.is_url(path):
        return
    for file in (Path(path), Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = file.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            log.warning("%s has mode %04o: other users can read its Outreach secrets and webhook credentials; "
                        "`chmod 600` it", file, mode)


def _warn_if_classifier_data_is_old(today: date) -> None:
    """Shipped network lists age as vendors renumber: say which are past `STALE_AFTER_DAYS` (one line)."""
    stale = classify_data.stale_lists(today)
    if stale:
        log.warning("click classifier data older than %d days: %s; upgrade linkhub, or add current ranges with "
                    "--scanner-networks (see `linkhub classify data`)", classify_data.STALE_AFTER_DAYS,
                    ", ".join(f"{info.label} ({info.age_days(today)} days)" for info in stale))


def _raise_file_limit() -> None:
    """Every connection holds a file descriptor: allow as many as the hard limit does (systemd
    starts services with a soft limit of 1024, which a few hundred slow clients would exhaust)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as exc:  # a sandbox that forbids it: serve within the soft limit
        log.warning("open-file limit stays at %d (could not raise it to %d: %s)", soft, hard, exc)
    else:
        log.info("open-file limit raised from %d to %d", soft, hard)


def _tune_garbage_collector() -> None:
    """Prepare the garbage collector for a long-running server (docs/performance.md)."""
    useragent.load_rules()  # before the freeze, and not during the first click
    agents.load()  # the crawler list (~130 ms): likewise
    # What exists now (modules, the user-agent rules: ~42,000 objects) lives as long as the
    # process. Frozen, it is left out of every later collection: the full ones, every few
    # seconds under load, took 20-40 ms (a pause of the event loop and of every request in
    # flight) and now take 2-5 ms.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD)


async def _serve(app: object, config: Config, announce: Callable[[], None]) -> None:
    """Serve `app` until SIGTERM/SIGINT; a LinkhubApp is told first, so it refuses late requests.

    `announce` runs once the signals are handled: a SIGTERM sent as soon as it appears
    (by a supervisor, a test) stops the server gracefully instead of killing it.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def shut_down() -> None:
        if isinstance(app, LinkhubApp):
            app.begin_shutdown()
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, shut_down)
    announce()
    serving = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    signalled = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, signalled}, return_when=asyncio.FIRST_COMPLETED)
    signalled.cancel()
    if not serving.done():
        await asyncio.wait({serving}, timeout=GRACEFUL_TIMEOUT_S + SHUTDOWN_MARGIN_S)
    if not serving.done() and isinstance(app, LinkhubApp):
        log.warning("Hypercorn has not stopped %g s after the signal (a connection it cannot close, such as "
                    "a client that stopped reading its answer): stopping without it",
                    GRACEFUL_TIMEOUT_S + SHUTDOWN_MARGIN_S)
        await app.close()
        log.info("linkhub stopped")
        _exit_now()
    await serving
    log.info("linkhub stopped")


def _exit_now() -> None:
    """Exit 0 at once. The stuck connection's task never ends, and leaving the event loop would wait for it."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _run_loop(main: object) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed everywhere but Windows
        asyncio.run(main)  # type: ignore[arg-type]
    else:
        uvloop.run(main)  # type: ignore[arg-type]
