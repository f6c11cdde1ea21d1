"""Where a use case reads and writes: the server's `Database`, or the CLI's own connection, alike.

The server's writer thread owns every write of its process (group commit); the CLI is a process
of its own with one connection. A use case needs only `reader()` and `await write(fn)`, which
`linkhub.store.db.Database` has and `Direct` gives the CLI, so one code path serves both.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")


class Store(Protocol):
    def reader(self) -> sqlite3.Connection:
        """A connection to read from (outside any write)."""
        ...

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in one transaction; return its result once it is committed."""
        ...


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One IMMEDIATE transaction: what a command checks and the change it guards commit together."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class Direct:
    """A `Store` on one connection of the caller's: each write is one IMMEDIATE transaction on it.

    A running server's writer simply waits for it (busy timeout) and then sees it. The connection
    is opened on first use, so what a use case refuses before it reads (an invalid request, a
    refused target) leaves no database file behind and is not hidden by a missing one.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._conn: sqlite3.Connection | None = None

    def reader(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self.reader()
        with transaction(conn):
            return fn(conn)
