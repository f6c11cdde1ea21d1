"""SQLite access: one writer thread with group commit, many readers.

Every write in the process goes through `Database.write` (or `Database.add`).
The writer thread takes whatever work is queued, runs it all in ONE transaction
(if a piece fails, the batch is run again with each piece in its own savepoint,
so one failure does not spoil its neighbours), commits once, and only then wakes
the callers. Concurrent redirects therefore share a commit instead of paying for
one each, and a caller that has been answered knows its rows are on disk.

Readers use their own connections (one per thread) and, thanks to WAL, never
wait for the writer. Checkpoints run in a thread of their own (see below).

Every SQLite failure on a connection from here reaches the caller as `StoreError`, so
nothing above the store needs to know that the store is SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger("linkhub.db")

T = TypeVar("T")

# How long a connection waits for another process's lock (the CLI, a migration)
# before giving up. Callers that are in a hurry put their own, shorter deadline
# on top with `write(..., timeout=...)`.
BUSY_TIMEOUT_MS = 5000
# Upper bound of work items in one transaction, so one commit cannot grow without limit.
MAX_BATCH = 2000
MMAP_BYTES = 256 * 1024 * 1024
CACHE_KIB = 64 * 1024
# Checkpoints (copying the WAL back into the database file, and the fsyncs that go with
# them) take ~20 ms per 1000 pages on this kind of disk. SQLite's automatic checkpoint runs
# inside the COMMIT that takes the WAL past 1000 pages, i.e. in the writer, and every click
# waiting for the next commit waited for it too. So the server's writer does no automatic
# checkpoints; a checkpointer thread with a connection of its own does them, PASSIVE, beside
# the writer, every CHECKPOINT_INTERVAL_S while there are new commits.
CHECKPOINT_INTERVAL_S = 0.1
CHECKPOINT_RETRY_S = 1.0
# A checkpoint beside a busy writer always ends a few commits short, and the WAL only starts
# over from its beginning once everything in it is checkpointed. So once the WAL holds
# RESTART_FRAMES pages, the checkpointer runs again until it is at most CATCH_UP_FRAMES
# behind, and then the writer finishes the job between two transactions: its next
# transaction starts the WAL over. That last checkpoint stalls the writer for a few ms to
# tens of ms, so it is rare (every few seconds at full load) and waits for a moment when
# no write is queued, unless the WAL has reached twice RESTART_FRAMES: a hard bound. The
# WAL file stays around 64 MiB (4 KiB pages), at most ~128 MiB; past WAL_SIZE_LIMIT it is
# truncated back when it starts over.
RESTART_FRAMES = 16384
CATCH_UP_FRAMES = 256
WAL_SIZE_LIMIT = 192 * 1024 * 1024
# How long a truncating checkpoint the server's writer runs (`Database.truncate_wal`, after an
# erasure) waits for readers still on old WAL frames: it holds up every write meanwhile, so briefly;
# the caller asks again.
TRUNCATE_BUSY_MS = 200


class StoreError(Exception):
    """A database operation failed (locked, full, damaged, a constraint…); the text is SQLite's."""


class WriteTimeout(Exception):
    """The write was not committed within the caller's deadline. It stays queued and may still commit."""


class DatabaseClosed(Exception):
    """The writer has stopped (closed, or failed itself); no more writes are accepted."""


# What "the store did not answer" is, for whoever turns it into a 503: a failed statement, a write
# not committed in time, a writer that has stopped.
UNAVAILABLE: tuple[type[Exception], ...] = (StoreError, WriteTimeout, DatabaseClosed)

class Row(Protocol):
    """A result row: by index, or by column name (`row["seq"]`, `dict(row)`); sqlite3.Row on SQLite."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...

    def keys(self) -> list[str]: ...


class Results(Protocol):
    """What a statement answers: its rows, and how many it changed."""

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchmany(self, size: int | None = 1) -> list[Any]: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection of the store, as the domain functions (core/) use it: SQLite's (`SqliteConnection`)
    or PostgreSQL's (`store.pg.PgConnection`). `dialect` names which, for the few statements written
    out for each (`store.dialect`)."""

    dialect: str
    rollbacks: int

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Any = (), /) -> Results: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Results: ...

    def begin(self) -> None:
        """Start a write transaction (SQLite: IMMEDIATE, taking the write lock now)."""

    def undo(self, savepoint: str | None = None) -> None: ...

    def close(self) -> None: ...


class Cursor(sqlite3.Cursor):
    """sqlite3's cursor, whose later steps (fetches) fail with StoreError too."""

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc


_execute = sqlite3.Cursor.execute
_executemany = sqlite3.Cursor.executemany
_executescript = sqlite3.Cursor.executescript


class SqliteConnection(sqlite3.Connection):
    """sqlite3's connection, failing with StoreError, and counting its rollbacks."""

    dialect = "sqlite"

    # How many times work was rolled back on this connection (`undo`): whatever a job remembered
    # from an earlier one (minting.mint's next link number) is stale once this changes.
    rollbacks = 0

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        cursor = self.cursor(Cursor)
        try:
            _execute(cursor, sql, parameters)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        return cursor

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor:
        cursor = self.cursor(Cursor)
        try:
            _executemany(cursor, sql, parameters)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        return cursor

    def executescript(self, sql_script: str, /) -> Cursor:
        cursor = self.cursor(Cursor)
        try:
            _executescript(cursor, sql_script)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        return cursor

    def begin(self) -> None:
        self.execute("BEGIN IMMEDIATE")

    def undo(self, savepoint: str | None = None) -> None:
        """Undo the transaction (or back to the savepoint)."""
        self.execute("ROLLBACK" if savepoint is None else f"ROLLBACK TO {savepoint}")
        self.rollbacks += 1


def describe_error(exc: Exception, path: str | Path | None = None) -> str:
    """One sentence for an operator about a failed SQLite call (a StoreError) on the database at `path`.

    SQLite's own texts ("unable to open database file") do not say which file, nor what to do.
    """
    where = str(path) if path is not None else "the database"
    text = str(exc)
    if where.startswith(("postgresql://", "postgres://")):
        from linkhub.store.postgresql import redact

        return text if text.startswith("cannot connect") else f"database error on {redact(where)}: {text}"
    if "locked" in text or "busy" in text:
        return f"{where} is locked by another process (a long write or a backup); try again in a moment"
    if "not a database" in text or "malformed" in text:
        return f"{where} is not a SQLite database, or it is damaged ({text}): restore it from a backup"
    if "readonly" in text or "read-only" in text:
        return f"{where} cannot be written ({text}): check the permissions of the file and its directory"
    if "unable to open" in text:
        return f"cannot open {where} ({text}): check that its directory exists and can be written"
    return f"database error on {where}: {text}"


def connect(path: str | Path, *, readonly: bool = False) -> SqliteConnection:
    """Open a connection with linkhub's settings (WAL, foreign keys, autocommit mode)."""
    _create_private(str(path))
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, factory=SqliteConnection)
    except sqlite3.Error as exc:
        raise StoreError(str(exc)) from exc
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    # Reads through the OS page cache without a read() per page, and a larger page cache:
    # the hot indexes of a big database stay in memory.
    conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        conn.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL syncs at checkpoints, not at each commit: a committed
        # transaction survives the process being killed (it is in the WAL, in the OS),
        # and only an OS crash or power cut can lose the last commits.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
    return conn


def truncate_wal(conn: SqliteConnection, *, busy_ms: int = BUSY_TIMEOUT_MS) -> bool:
    """Copy the whole WAL into the database file and truncate the WAL to 0 bytes, so no page of an
    earlier commit is left in it (an erasure's point). False if it could not within `busy_ms`: a
    reader still used old frames, or another connection held the write lock; the WAL is then as it was.
    Not inside a transaction."""
    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    try:
        busy, _frames, _copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except StoreError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return bool(busy == 0)


@contextlib.contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """One IMMEDIATE transaction on a connection of one's own (the CLI's): what a command checks
    and the change it guards commit together. (The server writes through `Database.write`.)"""
    conn.begin()
    try:
        yield conn
    except BaseException:
        conn.undo()
        raise
    conn.execute("COMMIT")


def _create_private(path: str) -> None:
    """Create a missing database file readable by its owner only (0600), before SQLite creates it
    with the umask's mode: it holds secrets, and SQLite gives its -wal and -shm files its mode."""
    if path in ("", ":memory:") or path.startswith("file:") or os.path.exists(path):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:  # it appeared meanwhile, or cannot be created: SQLite opens it or says why
        pass


@dataclass(eq=False)
class _Job(Generic[T]):
    # Either fn(conn) -> result, or many(conn, [item, …]) -> [result, …] for jobs that can be merged.
    fn: Callable[[Connection], T] | None
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    many: Callable[[Connection, list[Any]], list[T]] | None = None
    item: Any = None
    result: Any = None
    error: BaseException | None = None
    truncate: bool = False  # not a write: `truncate_wal` on the writer's connection, between transactions


@dataclass
class WriterStats:
    transactions: int = 0
    jobs: int = 0
    failed_commits: int = 0
    largest_batch: int = 0


_STOP = object()


class Database:
    """The process's gateway to one SQLite file: the `Store` (linkhub.store) the server runs on."""

    def __init__(self, path: str | Path, *, on_commit: Callable[[float], None] | None = None) -> None:
        self.path = str(path)
        self.stats = WriterStats()
        # Called in the writer thread with each committed transaction's duration in seconds.
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._closed = False
        # Why the writer thread itself failed, if it did (a bug: failed writes are caught batch by batch).
        self._crashed: str | None = None
        self._stop_checkpoints = threading.Event()
        # Plain attributes shared by the two threads: single reads and writes of them are atomic.
        self._committed_since_checkpoint = False
        self._catch_up = 0  # > 0: WAL pages when the checkpointer asked the writer to finish a checkpoint
        self._local = threading.local()

    # -- readers -------------------------------------------------------------

    def reader(self) -> Any:
        """This thread's read-only connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=True)
            self._local.conn = conn
        return conn

    def ping(self) -> None:
        """Read the schema's own table on this thread's reader: raises StoreError if the database does not answer."""
        self.reader().execute("SELECT count(*) FROM schema_migrations").fetchone()

    # -- the writer ----------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        conn = self._open_writer()
        self._thread = threading.Thread(target=self._run, args=(conn,), name="linkhub-writer", daemon=True)
        self._thread.start()
        self._start_checkpointer()

    def _open_writer(self) -> Any:
        conn = connect(self.path)
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        return conn

    def _start_checkpointer(self) -> None:
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, args=(connect(self.path),),
                                              name="linkhub-checkpointer", daemon=True)
        self._checkpointer.start()

    def _finish(self, conn: Any) -> None:
        # Everything committed is copied into the database file before the writer goes, so
        # that file alone, copied after a stop, holds every event.
        _checkpoint(conn)
        conn.close()

    async def write(self, fn: Callable[[Connection], T], *, timeout: float | None = None) -> T:
        """Run `fn(conn)` inside the writer's next transaction; return once it is committed.

        Raises `WriteTimeout` if the commit has not happened within `timeout`
        seconds; the work is not withdrawn and may still commit later.
        """
        loop = asyncio.get_running_loop()
        return await self._submit(_Job(fn=fn, future=loop.create_future(), loop=loop), timeout)

    async def add(self, many: Callable[[Connection, list[Any]], list[T]], item: Any, *,
                  timeout: float | None = None) -> T:
        """Like `write`, for work that merges: queued items with the same `many` function are
        handed to ONE call, `many(conn, [item, …])`, which returns one result per item.

        Concurrent clicks become one multi-row INSERT instead of one statement each.
        """
        loop = asyncio.get_running_loop()
        return await self._submit(_Job(fn=None, future=loop.create_future(), loop=loop, many=many, item=item),
                                  timeout)

    async def _submit(self, job: _Job[T], timeout: float | None) -> T:
        if self._crashed is not None:
            raise DatabaseClosed(self._crashed)
        if self._closed:
            raise DatabaseClosed("the database writer is closed")
        loop = job.loop
        self._queue.put(job)
        if self._crashed is not None:  # it failed meanwhile and will never take this job
            self._fail_queued()
        if timeout is None:
            return await job.future
        # One timer that fails the caller's future; the writer still runs the job and, finding
        # the future already done, only reports a late failure (cheaper than wait_for + shield).
        deadline = loop.call_later(timeout, _expire, job.future, timeout)
        try:
            return await job.future
        finally:
            deadline.cancel()

    async def truncate_wal(self) -> bool:
        """Run `truncate_wal` on the writer's own connection, between two of its transactions (the only
        place where no write of this process is in the way), waiting at most TRUNCATE_BUSY_MS for readers.
        False if they held it: ask again."""
        loop = asyncio.get_running_loop()
        result: bool = await self._submit(_Job(fn=None, future=loop.create_future(), loop=loop, truncate=True), None)
        return result

    def writer_alive(self) -> bool:
        return self._crashed is None and self._thread is not None and self._thread.is_alive()

    async def close(self) -> None:
        """Commit everything queued so far, then stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread is None:
            return
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def _run(self, conn: Connection) -> None:
        unanswered: list[_Job[Any]] = []
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                unanswered = batch
                truncates = [job for job in batch if job.truncate]
                if truncates:
                    batch = [job for job in batch if not job.truncate]
                if batch:
                    self._commit_batch(conn, batch)
                if truncates:
                    self._truncate(conn, truncates)
                unanswered = []
                if self._catch_up and (self._queue.empty() or self._catch_up >= 2 * RESTART_FRAMES):
                    self._catch_up = 0
                    _checkpoint(conn)
                if stop:
                    return
        except BaseException as exc:
            # Not a failed write but a fault of the writer itself. Every caller waiting, and every
            # later one, hears it at once (a 503, a redirect without its click), instead of hanging
            # until its deadline or for ever; /healthz reports the writer down.
            log.critical("the database writer stopped: %r; nothing more can be stored until restart", exc,
                         exc_info=True)
            self._crashed = f"the database writer stopped: {exc!r}"
            self._fail(unanswered)
            self._fail_queued()
        finally:
            self._finish(conn)

    def _fail_queued(self) -> None:
        jobs: list[_Job[Any]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Job):
                jobs.append(item)
        self._fail(jobs)

    def _fail(self, jobs: list[_Job[Any]]) -> None:
        for job in jobs:
            job.error = DatabaseClosed(self._crashed)
        wake(jobs)

    def _truncate(self, conn: Any, jobs: list[_Job[Any]]) -> None:
        try:
            done = truncate_wal(conn, busy_ms=TRUNCATE_BUSY_MS)
        except StoreError as exc:
            for job in jobs:
                job.error = exc
        else:
            for job in jobs:
                job.result = done
        wake(jobs)

    def _checkpoint_loop(self, conn: Connection) -> None:
        database_file = os.open(self.path, os.O_RDONLY)
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_INTERVAL_S):
                if not self._committed_since_checkpoint:
                    continue
                self._committed_since_checkpoint = False
                try:
                    self._checkpoint_round(conn, database_file)
                except (StoreError, OSError) as exc:  # disk full, I/O error…: the commits are safe in the WAL
                    log.error("checkpoint failed, trying again in %.0f s: %s", CHECKPOINT_RETRY_S, exc)
                    self._committed_since_checkpoint = True
                    self._stop_checkpoints.wait(CHECKPOINT_RETRY_S)
        finally:
            os.close(database_file)
            conn.close()

    def _checkpoint_round(self, conn: Connection, database_file: int) -> None:
        previous = None
        while not self._stop_checkpoints.is_set():
            _busy, wal_frames, checkpointed = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            # SQLite syncs the database file only when a checkpoint reaches the end of the WAL,
            # which one beside a busy writer rarely does; the one that finally does (the
            # writer's, before the WAL starts over) would then flush everything copied since:
            # 100-280 ms with 1M links here. Synced here, it has a few pages left.
            os.fdatasync(database_file)
            if wal_frames < RESTART_FRAMES:
                return
            if wal_frames - checkpointed <= CATCH_UP_FRAMES or wal_frames >= 2 * RESTART_FRAMES:
                self._catch_up = wal_frames
                return
            if checkpointed == previous:  # held back by a reader: try again later
                return
            previous = checkpointed

    def _commit_batch(self, conn: Connection, batch: list[_Job[Any]]) -> None:
        self._transact(conn, batch)
        wake(batch)

    def _transact(self, conn: Connection, batch: list[_Job[Any]]) -> None:
        """Run the batch in one transaction and commit it; each job keeps its result or its error."""
        started = time.perf_counter()
        try:
            if not self._run_jobs(conn, batch, isolated=False):
                # A job failed: undo the whole transaction and run the batch again with a
                # savepoint around each job, so only the failing one is refused. Jobs are
                # functions of the connection alone, so running them twice is safe.
                self._run_jobs(conn, batch, isolated=True)
            conn.execute("COMMIT")
        except Exception as exc:
            # BEGIN or COMMIT failed (database locked past the busy timeout, disk full…):
            # nothing of this batch is stored, and every caller hears so.
            log.error("write transaction of %d jobs failed: %s", len(batch), exc)
            self.stats.failed_commits += 1
            if conn.in_transaction:
                conn.undo()
            for job in batch:
                job.error = exc
        else:
            self._committed_since_checkpoint = True
            self.stats.transactions += 1
            self.stats.jobs += len(batch)
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
            if self._on_commit is not None:
                self._on_commit(time.perf_counter() - started)


    @staticmethod
    def _run_jobs(conn: Connection, batch: list[_Job[Any]], *, isolated: bool) -> bool:
        """Run the batch in a new transaction.

        Not isolated: consecutive mergeable jobs share one call; stop and roll back at the
        first failure (returns False). Isolated: each job alone, in a savepoint, so a
        failure is kept by the job that caused it.
        """
        conn.begin()
        groups = [[job] for job in batch] if isolated else _merge(batch)
        for group in groups:
            if isolated:
                conn.execute("SAVEPOINT job")
            try:
                _call(conn, group)
            except Exception as exc:
                if not isolated:
                    conn.undo()
                    return False
                conn.undo("job")
                group[0].error = exc
            if isolated:
                conn.execute("RELEASE job")
        return True


def _checkpoint(conn: Connection) -> None:
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except StoreError as exc:  # the next one may succeed; the data is safe in the WAL meanwhile
        log.error("checkpoint failed: %s", exc)


def _merge(batch: list[_Job[Any]]) -> list[list[_Job[Any]]]:
    """Consecutive jobs with the same `many` function form one group; others stay alone."""
    groups: list[list[_Job[Any]]] = []
    for job in batch:
        if job.many is not None and groups and groups[-1][0].many is job.many:
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups


def _call(conn: Connection, group: list[_Job[Any]]) -> None:
    for job in group:
        job.error = None
    first = group[0]
    if first.many is None:
        assert first.fn is not None
        first.result = first.fn(conn)
        return
    results = first.many(conn, [job.item for job in group])
    for job, result in zip(group, results, strict=True):
        job.result = result


def _expire(future: asyncio.Future[Any], timeout: float) -> None:
    if not future.done():
        future.set_exception(WriteTimeout(f"not committed within {timeout:.3f}s"))


def wake(batch: list[_Job[Any]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
    for job in batch:
        by_loop.setdefault(job.loop, []).append(job)
    for loop, jobs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, jobs)
        except RuntimeError:  # that loop is closed; nobody is waiting any more
            pass


def _resolve(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        if job.future.done():
            if job.error is not None and not job.future.cancelled():
                # The caller stopped waiting at its deadline: say here that the write finally failed.
                log.error("a write that missed its deadline has failed: %s", job.error)
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)
