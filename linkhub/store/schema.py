"""Schema migrations: the numbered SQL files of `linkhub/store/migrations/`, applied in order, each once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from linkhub.store.db import SqliteConnection as Connection
from linkhub.store.db import StoreError
from linkhub.util.times import now_rfc3339

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available(package: str = "linkhub.store.migrations") -> list[Migration]:
    """Every migration shipped with this version of linkhub, in order: SQLite's, or the dialect's of
    `package` (linkhub.store.migrations.postgresql), numbered the same."""
    found = []
    for entry in resources.files(package).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations of {package} share a number: {versions}")
    return found


def applied(conn: Connection) -> set[int]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def pending(conn: Connection) -> list[Migration]:
    done = applied(conn)
    return [m for m in available() if m.version not in done]


# Columns that an early build added to a migration after it had landed, by editing its file.
# A database migrated before the edit lacks them, and a new migration adding them would fail on
# every database created after it, so each is added here only where it is missing. This list
# is closed: schema changes are new numbered migrations.
_COLUMNS_ADDED_BY_EDITS = [
    (2, "webhooks", "timeout_s", "INTEGER NOT NULL DEFAULT 10 CHECK (timeout_s BETWEEN 1 AND 60)"),
]


def migrate(conn: Connection) -> list[str]:
    """Apply pending migrations, each in its own transaction with its record, then the repairs.

    Returns one line per change made, for the caller to print or log.
    """
    done = []
    for migration in pending(conn):
        # executescript cannot take parameters; the name comes from our own file name pattern.
        script = (
            "BEGIN IMMEDIATE;\n"
            f"{migration.sql}\n;\n"
            f"INSERT INTO schema_migrations (version, name, applied_at) "
            f"VALUES ({migration.version}, '{migration.name}', '{now_rfc3339()}');\n"
            "COMMIT;"
        )
        try:
            conn.executescript(script)
        except StoreError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if migration.version in applied(conn):  # another process got there first
                continue
            raise RuntimeError(f"migration {migration.version:04d}_{migration.name} failed: {exc}") from exc
        done.append(f"applied {migration.version:04d}_{migration.name}")
    return done + _add_missing_columns(conn)


def _add_missing_columns(conn: Connection) -> list[str]:
    done = []
    versions = applied(conn)
    for version, table, column, definition in _COLUMNS_ADDED_BY_EDITS:
        if version not in versions or _has_column(conn, table, column):
            continue
        try:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        except StoreError as exc:
            if _has_column(conn, table, column):  # another process got there first
                continue
            raise RuntimeError(f"adding {table}.{column} failed: {exc}") from exc
        done.append(f"added {table}.{column}, missing from a database migrated before version {version} gained it")
    return done


def _has_column(conn: Connection, table: str, column: str) -> bool:
    return any(row[0] == column for row in conn.execute("SELECT name FROM pragma_table_info(?)", (table,)))


def recorded(conn: Connection) -> set[int]:
    """The versions applied, read without writing (`applied` creates the log table): empty if there is none."""
    has_log = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")} if has_log else set()


def needed(conn: Connection) -> list[str]:
    """What `migrate` would do, found without writing anything (for read-only callers); [] if nothing."""
    done = recorded(conn)
    todo = [f"{m.version:04d}_{m.name} is pending" for m in available() if m.version not in done]
    todo += [f"{table}.{column} is missing" for version, table, column, _ in _COLUMNS_ADDED_BY_EDITS
             if version in done and not _has_column(conn, table, column)]
    return todo
