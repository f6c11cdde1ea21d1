"""Serving on PostgreSQL: a psycopg 3 connection that behaves as the store's SQLite one, and its `Database`.

The domain functions (core/) are plain `f(conn, …)` written once: `PgConnection` gives them what
`store.db.Connection` gives them on SQLite, so the writer's group commit, its savepoints and every
statement the two dialects share run unchanged.

- **Placeholders.** linkhub's SQL uses SQLite's `?` and `:name`; they become psycopg's `%s` and
  `%(name)s` (a `%` of the SQL itself is doubled), outside quoted text and comments. That is a
  spelling, not a dialect: the statements that do differ are written out for each
  (`store.dialect.Sql`).
- **Values bound client-side** (psycopg's `ClientCursor`): a parameter is sent as a literal, so
  PostgreSQL types it from its context as SQLite would (`? IS NULL`, text into `jsonb`).
- **Values as SQLite gives them**: JSON columns come back as their text, a whole `numeric` (a
  `sum`) as an int, a boolean parameter is stored as 1 or 0 as SQLite stores it.
- **U+0000.** PostgreSQL's `text` and `jsonb` cannot hold the NUL character, which SQLite stores
  like any other and a sender may post; it is stored as U+FFFD, the replacement character, raw or
  JSON-escaped alike, as `linkhub copy-to` copies it.
- **Failures** are `StoreError`, the text PostgreSQL's first line, never the URL's password.

psycopg (and its pool) is imported only here and in store/postgresql.py, so a SQLite installation needs none of it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import psycopg
import regex
from psycopg import ClientCursor
from psycopg.adapt import Dumper, Loader
from psycopg.pq import TransactionStatus
from psycopg.types.string import StrDumperUnknown, TextLoader
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from linkhub.store.db import Database, StoreError, WriterStats, wake
from linkhub.store.postgresql import redact

log = logging.getLogger("linkhub.db")

# A statement that waits for a lock longer than this fails (then the caller's write fails, or it is
# retried as SQLite's busy timeout would have it): no request hangs on a stuck transaction elsewhere.
LOCK_TIMEOUT_MS = 5000
# The key of the advisory lock every write transaction holds (`PgConnection.begin`): one 64-bit key for
# "linkhub's writers" in this database, beside the migrations' (store/postgresql.py).
WRITE_LOCK = 0x6C696E6B68756232  # 'linkhub2'
CONNECT_TIMEOUT_S = 10
# The server's read connections per process (`PooledReader`): the event loop's one, and a few kept open
# for worker threads, up to the maximum in all while reads overlap. A worker thread's read waits this
# long for one to be free (or made, the server being back), then fails; the event loop's waits only
# for its own to be made again, and less long, since the whole loop waits with it.
READ_POOL_MIN = 1
READ_POOL_MAX = 10
READ_WAIT_S = 2.0
LOOP_READ_WAIT_S = 0.5

# One token of linkhub's SQL: quoted text and comments are copied, placeholders rewritten, `%` doubled.
_TOKENS = regex.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|::|:[A-Za-z_][A-Za-z0-9_]*|\?|%""")
# The NUL character, raw or as a JSON escape (an even run of backslashes before `\u0000` is text).
_NUL = regex.compile(r"\x00|(?<!\\)((?:\\\\)*)\\u0000")


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """linkhub's SQL (SQLite's `?` and `:name` placeholders) in psycopg's paramstyle."""

    def token(match: regex.Match[str]) -> str:
        text = match.group()
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        if text.startswith(":") and text != "::":
            return f"%({text[1:]})s"
        return text.replace("%", "%%") if text[0] in "'\"" else text

    return _TOKENS.sub(token, sql)


def without_nul(text: str) -> str:
    """The text with U+0000 as U+FFFD: raw, or JSON-escaped in a JSON document (linkhub's JSON values are
    objects and arrays; elsewhere the six characters `\\u0000` are text, and stay)."""
    if "\x00" not in text and ("\\u0000" not in text or text[:1] not in ("{", "[")):
        return text
    if text[:1] not in ("{", "["):
        return text.replace("\x00", "\ufffd")
    return _NUL.sub(lambda m: "\ufffd" if m.group() == "\x00" else m.group(1) + "\\ufffd", text)


class _Str(StrDumperUnknown):
    def dump(self, obj: str) -> bytes:
        return without_nul(obj).encode(self._encoding)


class _Bool(Dumper):
    # SQLite stores a boolean as 1 or 0, and linkhub's columns of flags are integers on both.
    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"

    def quote(self, obj: bool) -> bytes:
        return self.dump(obj)


class _Numeric(Loader):
    # A sum of integers is `numeric` in PostgreSQL, an integer in SQLite.
    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        value = Decimal(text)
        return int(value) if value == value.to_integral_value() and "." not in text else float(value)


class Row(Sequence[Any]):
    """A result row as sqlite3.Row is one: by index, by column name, `dict(row)`, `tuple(row)`."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: dict[str, int], values: tuple[Any, ...]) -> None:
        self._names = names
        self._values = values

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._names[key]]
            except KeyError:
                raise IndexError(f"no such column: {key}") from None
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def keys(self) -> list[str]:
        return list(self._names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return self._values == other._values and self._names == other._names
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._names, self._values, strict=True))!r})"


def _row_factory(cursor: Any) -> Any:
    names = {column.name: index for index, column in enumerate(cursor.description or ())}
    return lambda values: Row(names, values)


def _error(exc: psycopg.Error) -> StoreError:
    text = str(exc).strip()
    return StoreError(text.splitlines()[0] if text else type(exc).__name__)


class Cursor:
    """The answer of one statement: rows, `rowcount`; failures of its fetches are StoreError too."""

    lastrowid = None  # PostgreSQL has no rowid: a statement that needs its keys says RETURNING

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        count: int = self._cursor.rowcount
        return count

    @property
    def description(self) -> Any:
        return self._cursor.description

    def fetchone(self) -> Any:
        try:
            return self._cursor.fetchone() if self._cursor.description else None
        except psycopg.Error as exc:
            raise _error(exc) from exc

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return self._cursor.fetchmany(size or 1) if self._cursor.description else []
        except psycopg.Error as exc:
            raise _error(exc) from exc

    def fetchall(self) -> list[Any]:
        try:
            return self._cursor.fetchall() if self._cursor.description else []
        except psycopg.Error as exc:
            raise _error(exc) from exc

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection with `store.db.Connection`'s interface, in autocommit mode as SQLite's: a
    statement outside BEGIN … COMMIT is a transaction of its own."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self.rollbacks = 0
        # Set once a COMMIT has been sent: lost after that, the transaction may have been committed.
        self.committing = False

    @property
    def in_transaction(self) -> bool:
        # A lost connection has no transaction left to undo: the server rolled it back.
        return not self.broken and self._conn.info.transaction_status != TransactionStatus.IDLE

    @property
    def broken(self) -> bool:
        """Whether the connection was lost (the server restarted, a network cut): it is to be replaced."""
        return self._conn.broken or self._conn.closed

    @property
    def raw(self) -> psycopg.Connection[Any]:
        """psycopg's own connection, for what only PostgreSQL has (COPY, LISTEN)."""
        return self._conn

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        if sql == "COMMIT":
            self.committing = True
        cursor = self._conn.cursor()
        try:
            cursor.execute(translate(sql), _params(parameters))
        except psycopg.Error as exc:
            raise _error(exc) from exc
        return Cursor(cursor)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor:
        cursor = self._conn.cursor()
        try:
            cursor.executemany(translate(sql), [_params(p) for p in parameters])
        except psycopg.Error as exc:
            raise _error(exc) from exc
        return Cursor(cursor)

    def begin(self) -> None:
        """Begin a write transaction, and wait for every other linkhub write transaction on the database
        to end: PostgreSQL's twin of SQLite's BEGIN IMMEDIATE (one writer at a time, each process's
        writer committing a group of writes at once).

        It is what keeps the order linkhub promises. A sequence hands out its numbers before commit, so
        two transactions numbering events (or outbox rows) side by side could commit out of order, and a
        reader of `seq > cursor` (GET /v1/events, an export, an ordered webhook's next batch) could pass
        a number that commits later; one at a time, numbers are taken in commit order. And no two
        writers can wait for each other's row locks (a lease, a mailing, a link) in opposite orders:
        there is no deadlock for PostgreSQL to break by failing one. The lock is transaction-level:
        released by the commit or rollback itself, and safe behind PgBouncer's transaction pooling."""
        self.execute("BEGIN")
        self.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")

    def undo(self, savepoint: str | None = None) -> None:
        self.rollbacks += 1
        if not self.broken:
            self.execute("ROLLBACK" if savepoint is None else f"ROLLBACK TO {savepoint}")

    def close(self) -> None:
        self._conn.close()


def _params(parameters: Any) -> Any:
    if isinstance(parameters, Mapping):
        return dict(parameters)
    return tuple(parameters)


# psycopg's connection arguments for linkhub's connections: autocommit as SQLite's (a statement outside
# BEGIN … COMMIT is a transaction of its own), values bound client-side, rows as SQLite's.
_ARGUMENTS: dict[str, Any] = {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S,
                              "cursor_factory": ClientCursor, "row_factory": _row_factory}


def _set_up(conn: psycopg.Connection[Any], *, readonly: bool) -> None:
    conn.adapters.register_dumper(str, _Str)
    conn.adapters.register_dumper(bool, _Bool)
    for name in ("json", "jsonb"):
        conn.adapters.register_loader(name, TextLoader)
    conn.adapters.register_loader("numeric", _Numeric)
    conn.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
    # Times are compared as linkhub's UTC text; the session's own zone matters only to now().
    conn.execute("SET TIME ZONE 'UTC'")
    if readonly:
        conn.execute("SET default_transaction_read_only = on")


def connect(url: str, *, readonly: bool = False) -> PgConnection:
    """A connection to `url` with linkhub's settings; StoreError (never the password) if it cannot be had."""
    try:
        conn = psycopg.connect(url, **_ARGUMENTS)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to {redact(url)}: {_error(exc)}") from None
    _set_up(conn, readonly=readonly)
    return PgConnection(conn)


class _Fetched:
    """A read's answer, fetched whole before its connection went back to the pool."""

    lastrowid = None

    def __init__(self, rows: list[Any], rowcount: int, description: Any) -> None:
        self._rows = iter(rows)
        self.rowcount = rowcount
        self.description = description

    def fetchone(self) -> Any:
        return next(self._rows, None)

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        return list(itertools.islice(self._rows, size or 1))

    def fetchall(self) -> list[Any]:
        return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return self._rows


class _Lost(Exception):
    """A read met a connection the server had dropped."""


class PooledReader:
    """The server's reads on PostgreSQL: each statement on a connection lent by a bounded pool.

    A read outside a transaction is a snapshot of its own on a connection of its own (as on SQLite's
    per-thread readers), so lending a connection per statement changes no answer; and any number of
    threads read on at most `READ_POOL_MAX` connections. The event loop's reads (a redirect's look-up,
    an API key, the deliverer's) are lent one of their own, which they never wait for (they run one at
    a time): slow reads in worker threads (reports, exports) holding every other connection never hold
    up a redirect. A statement that meets a connection the server dropped (a restart, a failover) has
    its pool test the others, then runs once more on a good one: a read is safe to repeat, and the
    request that asked is served rather than refused."""

    dialect = "postgresql"
    rollbacks = 0
    in_transaction = False

    def __init__(self, url: str) -> None:
        self._url = url
        self._loop = self._open(1, 1, LOOP_READ_WAIT_S, "linkhub-loop-reader")
        self._threads = self._open(READ_POOL_MIN, READ_POOL_MAX - 1, READ_WAIT_S, "linkhub-readers")

    def _open(self, least: int, most: int, wait_s: float, name: str) -> ConnectionPool[Any]:
        # reconnect_timeout: a pool that cannot connect tries again after 1 s, 2 s, 4 s… up to it, then
        # gives up until a read asks again. Kept short, so that a server back after a long outage is
        # connected to at the next read, not at the end of a back-off of minutes.
        return ConnectionPool(self._url, kwargs=_ARGUMENTS, min_size=least, max_size=most, timeout=wait_s,
                              reconnect_timeout=READ_WAIT_S, configure=functools.partial(_set_up, readonly=True),
                              name=name, open=True)

    def execute(self, sql: str, parameters: Any = (), /) -> _Fetched:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pool = self._threads
        else:
            pool = self._loop
        try:
            return self._read(pool, sql, parameters)
        except _Lost:
            pool.check()
        try:
            return self._read(pool, sql, parameters)
        except _Lost as exc:
            raise StoreError(str(exc)) from None

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> _Fetched:
        raise StoreError("a reader does not write")

    def begin(self) -> None:
        raise StoreError("a reader does not write")

    def undo(self, savepoint: str | None = None) -> None:
        raise StoreError("a reader does not write")

    def close(self) -> None:
        self._loop.close()
        self._threads.close()

    def _read(self, pool: ConnectionPool[Any], sql: str, parameters: Any) -> _Fetched:
        try:
            conn = pool.getconn()
        except PoolTimeout:
            raise StoreError(f"no connection to {redact(self._url)} within {pool.timeout:g}s") from None
        except PoolClosed:
            raise StoreError("the database is closed") from None
        try:
            cursor = conn.cursor()
            cursor.execute(translate(sql), _params(parameters))
            return _Fetched(cursor.fetchall() if cursor.description else [], cursor.rowcount, cursor.description)
        except psycopg.Error as exc:
            if conn.broken:
                raise _Lost(_error(exc)) from None
            raise _error(exc) from exc
        finally:
            pool.putconn(conn)


class PgDatabase(Database):
    """The `Store` on PostgreSQL: the same writer thread and group commit as on SQLite (`Database`), on
    psycopg connections; reads on a bounded pool. No checkpoints: PostgreSQL keeps its own WAL."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.url = url
        self.path = redact(url)
        self.stats = WriterStats()
        self._reader: PooledReader | None = None
        self._reader_lock = threading.Lock()

    def reader(self) -> Any:
        """The reads' connection, whichever thread reads (its pool is opened on first use)."""
        if self._reader is None:
            with self._reader_lock:
                if self._reader is None:
                    self._reader = PooledReader(self.url)
        return self._reader

    def _open_writer(self) -> Any:
        self._writer = connect(self.url)
        return self._writer

    def _commit_batch(self, conn: Any, batch: list[Any]) -> None:
        # A lost connection (PostgreSQL restarted, a failover) is made again. A batch that lost it before
        # its COMMIT was sent stored nothing, so it runs once more on the new one: the clicks of that
        # moment are not lost. One that lost it during its COMMIT may have been stored; its callers hear
        # of the failure (a 503), as for any failed commit. While no connection can be made, every batch
        # fails at once.
        for attempt in (1, 2):
            if self._writer.broken:
                self._writer.close()
                try:
                    self._writer = connect(self.url)
                except StoreError as exc:
                    self.stats.failed_commits += 1
                    for job in batch:
                        job.error = exc
                    break
                log.warning("the database writer's connection was lost and is made again")
            self._writer.committing = False
            self._transact(self._writer, batch)
            if attempt == 2 or not self._writer.broken or self._writer.committing:
                break
            for job in batch:
                job.error = None
        wake(batch)

    def _start_checkpointer(self) -> None:
        return None

    def _finish(self, conn: Any) -> None:
        self._writer.close()
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()  # a read from now on fails (StoreError), as a closed writer's write does

    async def truncate_wal(self) -> bool:
        # PostgreSQL's WAL is recycled by the server itself; nothing of the erased rows is copied to it
        # by linkhub but the deletions. See docs/privacy.md.
        return True
