"""The store: the SQLite file, its one writer thread, migrations, the hot-path link look-up, backup and check.

Nothing above this layer imports `sqlite3`. The server reaches the database through a `Store`
(`Database` is the one implementation), a command of the CLI through `connect` and `transaction`;
the SQL itself is in core/, in plain functions of a `Connection`; and every database failure
arrives as `StoreError` (see `UNAVAILABLE` for what a request may meet).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from linkhub.store.db import (
    UNAVAILABLE,
    Connection,
    Database,
    DatabaseClosed,
    Row,
    StoreError,
    WriterStats,
    WriteTimeout,
    connect,
    describe_error,
    transaction,
    truncate_wal,
)

__all__ = ["UNAVAILABLE", "Connection", "Database", "DatabaseClosed", "Row", "Store", "StoreError", "WriteTimeout",
           "WriterStats", "connect", "describe_error", "transaction", "truncate_wal"]

T = TypeVar("T")


class Store(Protocol):
    """What the server uses of its database; a second backend implements this (and serves
    `links.LinkLookup`, the redirect's batched look-up, from its `reader`)."""

    stats: WriterStats

    def start(self) -> None: ...

    async def close(self) -> None:
        """Commit what is queued, then stop accepting writes."""

    async def write(self, fn: Callable[[Connection], T], *, timeout: float | None = None) -> T:
        """Run `fn(conn)` in the writer's next transaction, shared with other writes (group commit),
        each replayed alone in a savepoint if one fails; return once committed. Past `timeout`
        raise WriteTimeout, without withdrawing the work; DatabaseClosed once the writer is gone."""

    async def add(self, many: Callable[[Connection, list[Any]], list[T]], item: Any, *,
                  timeout: float | None = None) -> T:
        """`write` for work that merges: queued items of one `many` go to one `many(conn, items)` call."""

    def reader(self) -> Connection:
        """This thread's read-only connection: never waits for the writer."""

    def ping(self) -> None:
        """Raise StoreError if the database does not answer a read."""

    def writer_alive(self) -> bool: ...

    async def truncate_wal(self) -> bool:
        """Copy the WAL into the database file and truncate it (between two of the writer's transactions):
        False if readers on old frames held it for too long; ask again."""
