"""PostgreSQL's schema: the numbered SQL files of `linkhub/store/migrations/postgresql/`, applied on a server.

They carry the same numbers and names as SQLite's (`linkhub/store/migrations/`) and make the same tables,
views and columns in PostgreSQL's dialect; tests/test_postgresql_schema.py holds the two to that. Each
migration is applied once, in its own transaction with its row of `schema_migrations`, and every such
transaction first takes one transaction-level advisory lock, so processes that start at once (several
`serve` on several machines, a `migrate` beside them) take turns: the first applies a migration, the
others find it recorded and move on. A transaction-level lock (not a session one) is released by the
commit itself and is safe behind PgBouncer's transaction pooling.

psycopg 3 (the `postgresql` extra) is imported only when a PostgreSQL database is used, so a SQLite-only
installation needs none of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from linkhub.store import schema
from linkhub.store.schema import Migration
from linkhub.util.times import now_rfc3339

if TYPE_CHECKING:
    import psycopg

SCHEMES = ("postgresql://", "postgres://")
# The advisory lock every migrating transaction takes: one 64-bit key for "linkhub's schema" in this
# database (advisory keys are per database), chosen so no other application is likely to use it.
MIGRATION_LOCK = 0x6C696E6B68756231  # 'linkhub1'

_PACKAGE = "linkhub.store.migrations.postgresql"


class PostgresError(Exception):
    """PostgreSQL could not be reached or refused a statement; the text never holds the URL's password."""


def is_url(value: str) -> bool:
    """Whether --db names a PostgreSQL database (a URL) rather than a SQLite file (a path)."""
    return value.startswith(SCHEMES)


def redact(url: str) -> str:
    """The URL as it may be shown: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def available() -> list[Migration]:
    """Every PostgreSQL migration shipped with this version of linkhub, in order."""
    return schema.available(_PACKAGE)


def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection to the database of `url` (not in autocommit: every statement runs in a transaction)."""
    try:
        import psycopg
    except ImportError:
        raise PostgresError("PostgreSQL needs psycopg: pip install 'linkhub[postgresql]'") from None
    try:
        return psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as exc:
        raise PostgresError(f"cannot connect to {redact(url)}: {_first_line(exc)}") from None


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Apply the pending migrations, each in its own transaction under MIGRATION_LOCK, with its record.

    Returns one line per migration applied, for the caller to print or log; [] when the schema was
    up to date (or another process applied what was pending while this one waited for the lock).
    """
    import psycopg

    done = []
    for migration in available():
        try:
            with conn.transaction():
                # Waits for any other migrating transaction; the lock goes with this transaction's end.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
                )
                if conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s",
                                (migration.version,)).fetchone():
                    continue
                # No parameters: the file's statements go as one simple query, each in this transaction.
                conn.execute(migration.sql.encode())
                conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                             (migration.version, migration.name, now_rfc3339()))
        except psycopg.Error as exc:
            raise PostgresError(f"migration {migration.version:04d}_{migration.name} failed: "
                                f"{_first_line(exc)}") from None
        done.append(f"applied {migration.version:04d}_{migration.name}")
    return done


def migrate_url(url: str) -> list[str]:
    """`migrate` on a new connection to `url`, closed afterwards."""
    with connect(url) as conn:
        return migrate(conn)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
