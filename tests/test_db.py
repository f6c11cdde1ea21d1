"""The database writer: group commit, merged work, failures kept to their own caller, deadlines."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from linkhub.store import db as db_module
from linkhub.store.db import Database, DatabaseClosed, StoreError, WriteTimeout, connect

# The writer's tests open SQLite files of their own (store.db.connect on a path): about SQLite itself.
pytestmark = pytest.mark.sqlite_file


@pytest.fixture
def path(tmp_path: Path) -> Path:
    conn = connect(tmp_path / "t.db")
    conn.execute("CREATE TABLE t (v INTEGER PRIMARY KEY)")
    conn.close()
    return tmp_path / "t.db"


def rows(path: Path) -> list[int]:
    conn = connect(path, readonly=True)
    try:
        return [row[0] for row in conn.execute("SELECT v FROM t ORDER BY v")]
    finally:
        conn.close()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def test_concurrent_adds_share_one_call_and_one_transaction(path: Path) -> None:
    calls: list[list[int]] = []
    gate = threading.Event()

    def block(conn: sqlite3.Connection) -> None:
        gate.wait(10)  # holds the writer so the adds below queue up together

    def insert_many(conn: sqlite3.Connection, values: list[int]) -> list[int]:
        calls.append(values)
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(v,) for v in values])
        return [v * 10 for v in values]

    async def main() -> list[int]:
        db = Database(path)
        db.start()
        first = asyncio.ensure_future(db.write(block))
        await asyncio.sleep(0)  # let the blocking job reach the writer first
        adds = [asyncio.ensure_future(db.add(insert_many, v)) for v in range(1, 6)]
        await asyncio.sleep(0)
        gate.set()
        await first
        results = await asyncio.gather(*adds)
        transactions = db.stats.transactions
        await db.close()
        assert transactions <= 2
        return results

    assert run(main()) == [10, 20, 30, 40, 50]
    assert sum(len(c) for c in calls) == 5 and len(calls) <= 2
    assert rows(path) == [1, 2, 3, 4, 5]


def test_a_failing_item_fails_only_its_own_caller(path: Path) -> None:
    def insert_many(conn: sqlite3.Connection, values: list[int]) -> list[None]:
        for v in values:
            if v == 3:
                raise ValueError("three is refused")
            conn.execute("INSERT INTO t (v) VALUES (?)", (v,))
        return [None] * len(values)

    async def main() -> list[object]:
        db = Database(path)
        db.start()
        results = await asyncio.gather(*(db.add(insert_many, v) for v in range(1, 6)), return_exceptions=True)
        await db.close()
        return results

    results = run(main())
    assert [type(r).__name__ for r in results] == ["NoneType", "NoneType", "ValueError", "NoneType", "NoneType"]
    assert rows(path) == [1, 2, 4, 5]


def test_sqlite_failures_reach_callers_as_store_errors_in_sqlites_words(path: Path, tmp_path: Path) -> None:
    """Opening, running, fetching and writing through the writer all fail with StoreError, SQLite's text kept."""
    with pytest.raises(StoreError, match="unable to open database file"):
        connect(tmp_path / "no such directory" / "t.db")
    conn = connect(path)
    try:
        with pytest.raises(StoreError, match="no such table: nowhere"):
            conn.execute("SELECT * FROM nowhere")
        with pytest.raises(StoreError, match="UNIQUE constraint failed"):
            conn.executemany("INSERT INTO t (v) VALUES (?)", [(1,), (1,)])
        conn.execute("INSERT INTO t (v) VALUES (2)")
        # The first row is stepped by execute; the second, malformed, only by the fetch or the loop.
        query = "SELECT json(CASE v WHEN 1 THEN '[]' ELSE '{' END) FROM t ORDER BY v"
        with pytest.raises(StoreError, match="malformed JSON"):
            conn.execute(query).fetchall()
        with pytest.raises(StoreError, match="malformed JSON"):
            list(conn.execute(query))
    finally:
        conn.close()

    async def main() -> None:
        db = Database(path)
        db.start()
        with pytest.raises(StoreError, match="UNIQUE constraint failed"):
            await db.write(lambda conn: conn.execute("INSERT INTO t (v) VALUES (3), (3)"))
        await db.close()

    run(main())
    assert rows(path) == [1, 2]


def test_a_missed_deadline_raises_but_the_write_still_commits(path: Path) -> None:
    gate = threading.Event()

    def slow(conn: sqlite3.Connection) -> None:
        gate.wait(10)
        conn.execute("INSERT INTO t (v) VALUES (7)")

    async def main() -> None:
        db = Database(path)
        db.start()
        with pytest.raises(WriteTimeout):
            await db.write(slow, timeout=0.05)
        gate.set()
        await db.close()  # close commits what is queued or running

    run(main())
    assert rows(path) == [7]


def test_close_commits_everything_queued(path: Path) -> None:
    async def main() -> None:
        db = Database(path)
        db.start()
        pending = [asyncio.ensure_future(db.write(lambda c, v=v: c.execute("INSERT INTO t (v) VALUES (?)", (v,))))
                   for v in range(100)]
        await asyncio.sleep(0)
        await db.close()
        await asyncio.gather(*pending)

    run(main())
    assert rows(path) == list(range(100))


def largest_wal_under_steady_writes(path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Write 3,000 rows in 600+ small transactions with a tiny WAL limit; the WAL file's largest size."""
    monkeypatch.setattr(db_module, "RESTART_FRAMES", 64)
    monkeypatch.setattr(db_module, "CATCH_UP_FRAMES", 16)
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL_S", 0.002)
    monkeypatch.setattr(db_module, "CHECKPOINT_RETRY_S", 0.01)
    values = list(range(1, 3001))
    wal = Path(f"{path}-wal")
    # The checkpointer is a thread of its own: on a loaded machine it can go unscheduled for as long
    # as the whole test takes, and then nothing checkpoints at all. Every 50 writes the test waits
    # (bounded) until it has run a round, so what is measured is the WAL's bound, not the scheduler.
    rounds = threading.Event()
    real_round = Database._checkpoint_round

    def counted_round(self: Database, conn: sqlite3.Connection, database_file: int) -> None:
        try:
            real_round(self, conn, database_file)
        finally:
            rounds.set()

    monkeypatch.setattr(Database, "_checkpoint_round", counted_round)

    async def main() -> int:
        db = Database(path)
        db.start()
        for start in range(0, len(values), 5):  # a few writes in flight: the writer is rarely idle
            await asyncio.gather(*(db.write(lambda c, v=v: c.execute("INSERT INTO t (v) VALUES (?)", (v,)))
                                   for v in values[start:start + 5]))
            if start % 50 == 45:
                await asyncio.to_thread(rounds.wait, 10)
                rounds.clear()
        size = wal.stat().st_size  # noqa: ASYNC240 - a WAL file never shrinks when it starts over: its largest size
        await db.close()
        return size

    largest = run(main())
    assert rows(path) == values
    return largest


# Each of the 600+ transactions appends at least one 4 KiB page: never starting over would make
# the WAL at least 2.4 MiB; starting over at 64 pages keeps it near 256 KiB.
WAL_BOUND = 1024 * 1024


def test_the_wal_starts_over_under_steady_writes(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints run beside the writer, yet the WAL keeps starting over instead of growing without end."""
    largest = largest_wal_under_steady_writes(path, monkeypatch)
    assert largest < WAL_BOUND, f"WAL grew to {largest} bytes"


def test_checkpoints_go_on_after_a_failure(path: Path, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    real_fdatasync = db_module.os.fdatasync
    failures = iter([OSError(28, "No space left on device")])

    def fdatasync_failing_once(fd: int) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        real_fdatasync(fd)

    monkeypatch.setattr(db_module.os, "fdatasync", fdatasync_failing_once)
    largest = largest_wal_under_steady_writes(path, monkeypatch)
    assert "checkpoint failed, trying again" in caplog.text
    assert largest < WAL_BOUND, f"WAL grew to {largest} bytes"


def test_when_the_writer_itself_fails_every_write_fails_at_once(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Database, conn: sqlite3.Connection, batch: list) -> None:
        raise RuntimeError("a bug in the writer")

    async def main() -> None:
        db = Database(path)
        db.start()
        monkeypatch.setattr(Database, "_commit_batch", broken)
        # The write in flight, then any later one: an error at once, not a wait for ever.
        with pytest.raises(DatabaseClosed, match="a bug in the writer"):
            await asyncio.wait_for(db.write(lambda conn: conn.execute("INSERT INTO t (v) VALUES (1)")), 5)
        with pytest.raises(DatabaseClosed, match="a bug in the writer"):
            await asyncio.wait_for(db.add(lambda conn, items: items, 2), 5)
        assert not db.writer_alive()  # what /healthz reports
        await asyncio.wait_for(db.close(), 5)

    run(main())
    assert rows(path) == []
