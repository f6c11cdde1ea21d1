"""`linkhub check`: is this database file whole, up to date, and is its queue moving?

It opens the file read-only (it never creates one, migrates or repairs it), so it is safe
beside a running server and on a copy taken from a backup.
"""

from __future__ import annotations

import sqlite3
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linkhub.store import schema
from linkhub.store.db import BUSY_TIMEOUT_MS, WAL_SIZE_LIMIT, SqliteConnection, StoreError, describe_error


class CheckError(Exception):
    """The file cannot be checked at all (missing, not SQLite, unreadable)."""


@dataclass
class Report:
    path: Path
    database_bytes: int
    wal_bytes: int
    journal_mode: str
    integrity_check: str  # "quick_check" or "integrity_check"
    integrity: list[str]  # ["ok"] when whole
    schema_version: int | None
    pending_migrations: list[str]
    unknown_migrations: list[int]  # applied by a newer linkhub
    queue: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def document(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "ok": self.ok, "database_bytes": self.database_bytes,
            "wal_bytes": self.wal_bytes, "journal_mode": self.journal_mode,
            "integrity": {"check": self.integrity_check, "result": self.integrity},
            "schema": {"version": self.schema_version, "pending": self.pending_migrations,
                       "unknown": self.unknown_migrations},
            "queue": self.queue, "problems": self.problems, "warnings": self.warnings,
        }


def check(path: Path, *, full: bool = False) -> Report:
    """Check the database at `path`; what is wrong is in `problems`, what looks risky in `warnings`.

    `full` runs SQLite's integrity_check and foreign_key_check (they read every page and
    index: minutes on a large file) instead of quick_check.
    """
    if path.is_dir():
        raise CheckError(f"{path} is a directory, not a database file (--db names the file)")
    if not path.is_file():
        raise CheckError(f"no database at {path}: `linkhub migrate --db {path}` creates one")
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, factory=SqliteConnection)
    except sqlite3.Error as exc:
        raise CheckError(describe_error(exc, path)) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return _check(conn, path, full)
    except StoreError as exc:
        raise CheckError(describe_error(exc, path)) from None
    finally:
        conn.close()


def _check(conn: SqliteConnection, path: Path, full: bool) -> Report:
    journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    wal = Path(f"{path}-wal")
    report = Report(
        path=path, database_bytes=path.stat().st_size, wal_bytes=wal.stat().st_size if wal.exists() else 0,
        journal_mode=journal_mode, integrity_check="integrity_check" if full else "quick_check", integrity=[],
        schema_version=None, pending_migrations=[], unknown_migrations=[], queue={},
    )
    _integrity(conn, report, full)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    _schema(conn, report)
    if "outbox" in tables:
        report.queue = _queue(conn)
        if report.queue["dead"]:
            report.warnings.append(f"{report.queue['dead']} dead deliveries: see `linkhub outbox status`")
    if report.wal_bytes > WAL_SIZE_LIMIT:
        report.warnings.append(f"the WAL is {report.wal_bytes:,} bytes, over the {WAL_SIZE_LIMIT:,} the server "
                               "keeps it to: a long-lived reader may be holding checkpoints back")
    for file in (path, wal, Path(f"{path}-shm")):
        if file.exists() and stat.S_IMODE(file.stat().st_mode) & 0o077:
            report.warnings.append(f"{file} has mode {stat.S_IMODE(file.stat().st_mode):04o}: other users can "
                                   "read its secrets; `chmod 600` it")
    return report


def _integrity(conn: SqliteConnection, report: Report, full: bool) -> None:
    try:
        report.integrity = [row[0] for row in conn.execute(f"PRAGMA {report.integrity_check}")]
        if full:
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                report.integrity.append(f"{len(broken)} rows refer to rows that do not exist "
                                        f"(first: table {broken[0][0]}, rowid {broken[0][1]})")
    except StoreError as exc:  # too damaged for the check itself to finish
        report.integrity = [str(exc)]
    if report.integrity != ["ok"]:
        report.problems.append(f"{report.integrity_check} failed: {'; '.join(report.integrity[:5])} — restore "
                               "a backup (docs/operations.md)")


def _schema(conn: SqliteConnection, report: Report) -> None:
    known = {m.version: m for m in schema.available()}
    applied = schema.recorded(conn)
    report.schema_version = max(applied) if applied else None
    report.pending_migrations = [f"{v:04d}_{m.name}" for v, m in sorted(known.items()) if v not in applied]
    report.unknown_migrations = sorted(applied - known.keys())
    if not applied:
        report.problems.append("no linkhub schema in this file: `linkhub migrate` creates it")
    elif report.pending_migrations:
        report.problems.append(f"{len(report.pending_migrations)} pending migrations "
                               f"({', '.join(report.pending_migrations)}): `linkhub migrate` or `linkhub serve` "
                               "applies them")
    if report.unknown_migrations:
        report.problems.append(f"migrations {report.unknown_migrations} are unknown to this linkhub: the file was "
                               "migrated by a newer version")


def _queue(conn: SqliteConnection) -> dict[str, Any]:
    counts = dict(conn.execute(
        "SELECT state, count(*) FROM outbox WHERE state IN ('pending', 'sending', 'dead') GROUP BY state"
    ).fetchall())
    oldest = conn.execute("SELECT min(queued_at) FROM outbox WHERE state IN ('pending', 'sending')").fetchone()[0]
    return {"pending": counts.get("pending", 0), "in_flight": counts.get("sending", 0),
            "dead": counts.get("dead", 0), "oldest_waiting_since": oldest}
