"""Wake-ups between processes on one PostgreSQL database: LISTEN/NOTIFY on one channel.

A process that committed outbox rows wakes its own deliverer in-process (`Deliverer.wake`); the
others learn of the rows from a `NOTIFY` it sends *after* the commit, on a connection of its own
(never inside the writer's transaction: a transaction that has notified takes a database-wide lock
at commit, which every click's commit would then queue behind). Each process LISTENs on one more
connection and wakes its deliverer when another process notifies; the deliverer's poll stays the
backstop, for a notification that is lost with its connection, or a process that cannot listen.

Both connections are psycopg's `AsyncConnection`, waited on by the event loop that runs the
deliverer: a notification becomes a call on that loop with no thread to hand it over, and stopping
is a task cancelled. They read nothing and hold no transaction open.

The payload is the sender's name (its lease owner), not the webhooks: a woken deliverer reads which
webhooks have work, and which of their leases it holds or may take, in the same pass whatever it was
told, so the names would save it nothing; and one payload lets the listener drop its own process's
notifications (that process woke itself already). Notifications sent while one is on its way are
folded into the next, so a burst of clicks costs one NOTIFY per round trip (and at most one per
SEND_SPACING_S), not one per click.

SQLite has nothing of this: processes on one file (`serve --workers N`) find each other's rows by the poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from linkhub.store.db import Connection

log = logging.getLogger("linkhub.wakeups")

CHANNEL = "linkhub_outbox"
# A lost or refused connection is tried again after this, doubling up to the cap (the poll goes on meanwhile).
RETRY_FIRST_S = 0.5
RETRY_CAP_S = 30.0
CONNECT_TIMEOUT_S = 10
# A NOTIFY the database does not answer within this is given up (the poll is the backstop).
SEND_TIMEOUT_S = 5.0
# The least time between two NOTIFYs of one process (rows committed meanwhile go with the next).
SEND_SPACING_S = 0.01
# A listening connection that heard nothing for this long is asked a `SELECT 1`, to find one cut silently.
IDLE_CHECK_S = 60.0


def url_of(db: object) -> str | None:
    """The PostgreSQL URL `db` (a Store) serves, or None for SQLite (or a store of a test's own)."""
    url = getattr(db, "url", None)
    return url if isinstance(url, str) and url.startswith(("postgresql://", "postgres://")) else None


def notify(conn: Connection, sender: str = "cli") -> None:
    """Tell every listening process that outbox rows were committed (a command's replay, say).

    Call it after the commit, outside a transaction; on SQLite it does nothing."""
    if conn.dialect == "postgresql" and not conn.in_transaction:
        conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, sender))


def _said(exc: BaseException) -> str:
    """An error in one line: psycopg's first line names the server (host, port), never a password."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Wakeups:
    """This process's side: `announce()` after a commit that queued rows; `on_wake(True)` is called (on the
    event loop) when another process announced, `on_wake(False)` when LISTEN has just been put in force
    (rows may have been announced while nobody listened: look once)."""

    def __init__(self, url: str, *, name: str, on_wake: Callable[[bool], None]) -> None:
        self.url = url
        self.name = name
        self._on_wake = on_wake
        self._tasks: list[asyncio.Task[None]] = []
        self._pending = asyncio.Event()
        self.listening = asyncio.Event()  # set while LISTEN is in force
        self.connections = 0  # LISTEN connections made (more than one: it reconnected)
        self.failures = 0  # connections lost, or attempts refused
        self.received = 0  # notifications from other processes that woke this one

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="linkhub-wakeups-listen"),
                       asyncio.create_task(self._send(), name="linkhub-wakeups-send")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def announce(self) -> None:
        """Outbox rows were committed: other processes are told soon (one NOTIFY for a burst)."""
        self._pending.set()

    async def _connect(self, role: str) -> Any:
        import psycopg  # only on PostgreSQL, as store/pg.py

        return await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                                     application_name=f"linkhub {role}")

    async def _listen(self) -> None:
        import psycopg

        delay = RETRY_FIRST_S
        said = False  # one line per outage, not one per attempt
        while True:
            conn = None
            try:
                conn = await self._connect("listen")
                await conn.execute(f"LISTEN {CHANNEL}")
                self.connections += 1
                self.listening.set()
                if said:
                    log.info("listening for other processes' wake-ups again")
                said = False
                delay = RETRY_FIRST_S
                # Rows may have been announced while no one listened: look once now.
                self._on_wake(False)
                while True:
                    async for note in conn.notifies(timeout=IDLE_CHECK_S):
                        if note.payload != self.name:
                            self.received += 1
                            self._on_wake(True)
                    # Quiet for a while: a connection cut without a word (a firewall's idle timeout)
                    # would wait for ever, so ask the server something.
                    async with asyncio.timeout(SEND_TIMEOUT_S):
                        await conn.execute("SELECT 1")
            except (psycopg.Error, OSError, TimeoutError) as exc:
                self.listening.clear()
                self.failures += 1
                if not said:
                    log.warning("no wake-ups from other processes (%s): trying again with back-off; new rows are "
                                "still found by the poll", _said(exc))
                    said = True
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_CAP_S)

    async def _send(self) -> None:
        import psycopg

        conn = None
        try:
            while True:
                await self._pending.wait()
                # Cleared before the NOTIFY goes: rows committed while it is on its way are announced by the next.
                self._pending.clear()
                try:
                    if conn is None or conn.closed:
                        conn = await self._connect("notify")
                    async with asyncio.timeout(SEND_TIMEOUT_S):
                        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self.name))
                    # Every listener runs a pass for each NOTIFY: a busy process says so at most this often.
                    await asyncio.sleep(SEND_SPACING_S)
                except (psycopg.Error, OSError, TimeoutError) as exc:
                    # Not retried: the other processes' poll finds the rows within a second anyway.
                    log.debug("wake-up not sent to other processes: %s", _said(exc))
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await conn.close()
                    conn = None
                    await asyncio.sleep(RETRY_FIRST_S)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
