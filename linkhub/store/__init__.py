"""The store: the SQLite file, its one writer thread, migrations, the hot-path link look-up, backup and check.

Nothing above this layer imports `sqlite3`. The server reaches the database through a `Store`
(`Database` is the one implementation), a command of the CLI through `connect` and `transaction`;
the SQL itself is in core/, in plain functions of a `Connection`; and every database failure
arrives as `StoreError` (see `UNAVAILABLE` for what a request may meet).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
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
    describe_error,
    transaction,
    truncate_wal,
)

__all__ = ["UNAVAILABLE", "Connection", "Database", "DatabaseClosed", "Row", "Store", "StoreError", "WriteTimeout",
           "WriterStats", "connect", "describe_error", "is_url", "migrate", "needed", "open_database", "shown",
           "transaction", "truncate_wal"]

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


def is_url(target: str | Path) -> bool:
    """Whether a --db value names a PostgreSQL database (a postgresql:// URL) rather than a SQLite file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def shown(target: str | Path) -> str:
    """A --db value as messages may show it: a URL without its password."""
    if is_url(target):
        from linkhub.store.postgresql import redact

        return redact(str(target))
    return str(target)


def connect(target: str | Path, *, readonly: bool = False) -> Connection:
    """A connection of one's own (the CLI's, a test's) to the SQLite file or PostgreSQL database `target`."""
    if is_url(target):
        from linkhub.store import pg

        return pg.connect(str(target), readonly=readonly)
    from linkhub.store import db

    return db.connect(target, readonly=readonly)


def open_database(target: str | Path, *, on_commit: Callable[[float], None] | None = None) -> Database:
    """The server's `Store` on `target`: `Database` on a SQLite file, `pg.PgDatabase` on a PostgreSQL URL."""
    if is_url(target):
        from linkhub.store import pg

        return pg.PgDatabase(str(target), on_commit=on_commit)
    return Database(target, on_commit=on_commit)


def migrate(conn: Connection) -> list[str]:
    """Apply the pending migrations of the connection's dialect; one line per migration applied."""
    if conn.dialect == "postgresql":
        from linkhub.store import pg, postgresql

        assert isinstance(conn, pg.PgConnection)
        try:
            return postgresql.migrate(conn.raw)
        except postgresql.PostgresError as exc:
            raise RuntimeError(str(exc)) from None
    from linkhub.store import db, schema

    assert isinstance(conn, db.SqliteConnection)
    return schema.migrate(conn)


def needed(conn: Connection) -> list[str]:
    """What `migrate` would do, without doing it: [] when the schema is up to date."""
    if conn.dialect == "postgresql":
        from linkhub.store import postgresql

        done = {row[0] for row in conn.execute(
            "SELECT version FROM schema_migrations")} if _has_migrations_table(conn) else set()
        return [f"{m.version:04d}_{m.name} is pending" for m in postgresql.available() if m.version not in done]
    from linkhub.store import db, schema

    assert isinstance(conn, db.SqliteConnection)
    return schema.needed(conn)


def _has_migrations_table(conn: Connection) -> bool:
    return bool(conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0])
