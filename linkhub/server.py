"""`linkhub serve`: migrate, bind, and run the app on Hypercorn until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import signal
import socket
import sys

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from . import db, logs, outbox, schema, useragent
from .app import LinkhubApp, create_app
from .config import Settings

log = logging.getLogger("linkhub.server")

# In-flight requests get this long to finish after SIGTERM; then queued writes are committed.
GRACEFUL_TIMEOUT_S = 10.0
# Each time the database writer comes back from SQLite it needs the GIL, and waits until the
# event loop lets go of it: at most Python's switch interval, 5 ms by default, which made
# every commit wait behind a busy loop. 0.2 ms measured best (docs/performance.md).
SWITCH_INTERVAL_S = 0.0002
# CPython collects its youngest generation once 700 more container objects exist than it last
# counted. Under load the requests in flight alone hold about that many, so it ran every few
# requests (~500 times in 12 s at 2,500 redirects/s), walked those same live objects (~0.5 ms
# each time, ~2 % of the event loop) and found next to no garbage. At 10,000 it ran once.
GC_THRESHOLD = 10_000


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # Listening before Hypercorn starts means early connections wait in the backlog, not fail.
    sock.listen(1024)
    return sock


def hypercorn_config(sock: socket.socket) -> Config:
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    # Hypercorn's access log would copy every header (Authorization too) per request; --access-log is the app's.
    config.accesslog = None
    # Hypercorn's messages go through our logging set-up instead of a handler of its own.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = GRACEFUL_TIMEOUT_S
    config.backlog = 1024
    config.include_server_header = False
    return config


def run(settings: Settings) -> None:
    conn = db.connect(settings.db)
    try:
        for change in schema.migrate(conn):
            log.info("schema: %s", change)
        # Batches a killed process had in flight were never confirmed: send them again.
        released = outbox.release_claims(conn)
        if released:
            log.info("%d outbox rows of an interrupted run will be sent again", released)
    finally:
        conn.close()

    sock = _bind(settings.host, settings.port)
    if settings.port == 0:  # let the OS choose; short links must still name the real port
        settings = dataclasses.replace(settings, port=sock.getsockname()[1])
    app = create_app(settings)
    config = hypercorn_config(sock)
    _tune_garbage_collector()
    # A record like any other (JSON with --log-format json), written at every level: scripts and
    # tests wait for "linkhub: serving on URL", the only place the port chosen for --port 0 is told.
    url = f"http://{settings.host}:{settings.port}"
    logging.getLogger(logs.READY).info("linkhub: serving on %s (database %s, short links %s/r/…)",
                                       url, settings.db, settings.base_url,
                                       extra={"url": url, "database": str(settings.db)})
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    _run_loop(_serve(app, config))


def _tune_garbage_collector() -> None:
    """Prepare the garbage collector for a long-running server (docs/performance.md)."""
    useragent.load_rules()  # before the freeze, and not during the first click
    # What exists now (modules, the user-agent rules: ~42,000 objects) lives as long as the
    # process. Frozen, it is left out of every later collection: the full ones, every few
    # seconds under load, took 20-40 ms (a pause of the event loop and of every request in
    # flight) and now take 2-5 ms.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD)


async def _serve(app: object, config: Config) -> None:
    """Serve `app` until SIGTERM/SIGINT; a LinkhubApp is told first, so it refuses late requests."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def shut_down() -> None:
        if isinstance(app, LinkhubApp):
            app.begin_shutdown()
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, shut_down)
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    log.info("linkhub stopped")


def _run_loop(main: object) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed everywhere but Windows
        asyncio.run(main)  # type: ignore[arg-type]
    else:
        uvloop.run(main)  # type: ignore[arg-type]
