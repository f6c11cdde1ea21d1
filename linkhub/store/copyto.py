"""`linkhub copy-to`: a SQLite database copied into an empty PostgreSQL one, in committed chunks, resumably.

The target is migrated first (store/postgresql.py's runner), so both have the same tables and columns.
Every table is copied in an order that satisfies the target's foreign keys (parents first), in chunks
taken in primary-key order; each chunk is one COPY … FROM STDIN (psycopg's `cursor.copy`, the fast
path) in its own committed transaction. A copy that stops (killed, a lost connection, Ctrl-C) resumes
where it stopped: for each table it asks the target for its highest key (compared in byte order,
`COLLATE "C"`, which is SQLite's BINARY order for UTF-8 text) and reads the source's rows after it.
Keys and numbers are copied as they are (every event's `seq`, every outbox id); at the end every
identity sequence is set past the highest value in its column, so new rows never collide.

Which target may be written is decided by `copied_from`, copy-to's own one-row bookkeeping table (like
`schema_migrations` is the runner's): it names the source by a fingerprint of its erasure salt (random
per SQLite database, copied along, so the copy keeps pseudonymising erased addresses as before), and
says whether the copy finished. A target with no such row must hold no data; one with a row for the
same source, unfinished, is resumed; anything else is refused (a finished copy is never topped up:
rows changed since would not be, and a PostgreSQL server may already have numbered rows of its own).

The source is read in one read transaction, so the copy is of the moment it started even while a
server writes to the file (WAL keeps that snapshot; the server's checkpoints cannot pass it until the
copy ends). A resumed copy reads a new snapshot: rows copied before keep the state they had then.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from linkhub.store import db, postgresql, schema
from linkhub.util.times import now_rfc3339

if TYPE_CHECKING:
    import psycopg

# Held for the whole copy (a session lock): two copy-to into one database would interleave their chunks.
COPY_LOCK = 0x6C696E6B68756232  # 'linkhub2'
CHUNK_ROWS = 5000
# PostgreSQL's text cannot hold U+0000: it is copied as the replacement character.
NUL_STANDIN = "\ufffd"
# Tables that are not the source's data: the runner's record, copy-to's own.
OWN_TABLES = frozenset({"schema_migrations", "copied_from"})
# Made by a migration with a row of its own (the salt): overwritten with the source's, never counted as data.
SALT_TABLE = "erasure_salt"

_MARKER = ("CREATE TABLE IF NOT EXISTS copied_from ("
           " source_id TEXT PRIMARY KEY, source TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,"
           " row_counts JSONB)")


class CopyError(Exception):
    """The copy cannot start or went wrong; the text never holds the URL's password."""


@dataclass(frozen=True)
class Table:
    name: str
    columns: list[str]
    types: list[str]  # PostgreSQL's data_type of each column
    key: list[str]  # the primary key's columns
    identity: list[str]  # columns numbered by an identity sequence


@dataclass
class Result:
    resumed: bool
    # Per table, in copy order: rows in the source's snapshot, and rows this run copied.
    rows: dict[str, int] = field(default_factory=dict)
    copied: dict[str, int] = field(default_factory=dict)
    nul_replaced: int = 0  # values of this run that held U+0000, copied with NUL_STANDIN in its place


Progress = Callable[[str, int], None]  # (table, rows just committed), after each chunk


def copy_to(source: Path, url: str, *, chunk_rows: int = CHUNK_ROWS, on_start: Callable[[int, int], None] | None = None,
            progress: Progress | None = None) -> Result:
    """Copy the SQLite database at `source` into the PostgreSQL database of `url` (see the module's text).

    `on_start(total, done)` is called once the work is known (rows in the source, rows already in the
    target from an interrupted run), `progress` after each committed chunk.
    """
    import psycopg

    lite = db.connect(source, readonly=True)
    try:
        needed = schema.needed(lite)
        if needed:
            raise CopyError(f"{source} needs `linkhub migrate` first ({'; '.join(needed)})")
        # One read transaction, its snapshot taken by its first read: the moment the copy starts.
        lite.execute("BEGIN")
        lite.execute("SELECT count(*) FROM sqlite_master").fetchone()
        try:
            pg = postgresql.connect(url)
        except postgresql.PostgresError as exc:
            raise CopyError(str(exc)) from None
        try:
            try:
                postgresql.migrate(pg)
                return _copy(lite, pg, str(source), chunk_rows, on_start, progress)
            except psycopg.Error as exc:
                raise CopyError(f"PostgreSQL refused the copy: {_first_line(exc)}") from None
        finally:
            pg.close()
    except postgresql.PostgresError as exc:
        raise CopyError(str(exc)) from None
    finally:
        lite.close()


def _copy(lite: db.Connection, pg: psycopg.Connection[tuple[Any, ...]], name: str, chunk_rows: int,
          on_start: Callable[[int, int], None] | None, progress: Progress | None) -> Result:
    if not pg.execute("SELECT pg_try_advisory_lock(%s)", (COPY_LOCK,)).fetchone()[0]:  # type: ignore[index]
        pg.rollback()
        raise CopyError("another linkhub copy-to is writing to this database")
    pg.commit()
    # The lock is the session's: it goes when copy_to closes the connection, however the copy ends.
    tables = _tables(pg)
    _same_tables(lite, tables)
    salt = _salt(lite)
    source_id = hashlib.sha256(salt).hexdigest()
    resumed = _claim(pg, tables, source_id, name, salt)
    result = Result(resumed=resumed)
    replaced = [0]
    for table in tables:
        result.rows[table.name] = int(lite.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0])
    done = sum(_count(pg, t.name) for t in tables if t.name != SALT_TABLE)
    pg.commit()
    if on_start is not None:
        on_start(sum(n for t, n in result.rows.items() if t != SALT_TABLE), done)
    for table in tables:
        if table.name != SALT_TABLE:
            result.copied[table.name] = _copy_table(lite, pg, table, chunk_rows, progress, replaced)
    result.nul_replaced = replaced[0]
    for table in tables:
        for column in table.identity:
            _reset_identity(pg, table.name, column)
    with pg.transaction():
        pg.execute("UPDATE copied_from SET finished_at = %s, row_counts = %s WHERE source_id = %s",
                   (now_rfc3339(), json.dumps(result.rows), source_id))
    return result


def _tables(pg: psycopg.Connection[tuple[Any, ...]]) -> list[Table]:
    """The target's tables (not its views, not OWN_TABLES), parents before the tables that reference them."""
    names = [str(r[0]) for r in pg.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        " AND table_type = 'BASE TABLE' ORDER BY table_name")]
    names = [n for n in names if n not in OWN_TABLES]
    parents: dict[str, set[str]] = {n: set() for n in names}
    for child, parent in pg.execute(
            "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c"
            " JOIN pg_namespace s ON s.oid = c.connamespace WHERE c.contype = 'f' AND s.nspname = 'public'"):
        if child in parents and parent != child:
            parents[str(child)].add(str(parent))
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and parents[n] <= set(ordered)]
        if not ready:
            raise CopyError(f"the foreign keys of {sorted(set(names) - set(ordered))} form a cycle")
        ordered.extend(ready)
    tables = []
    for name in ordered:
        columns = pg.execute("SELECT column_name, data_type, is_identity FROM information_schema.columns"
                             " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
                             (name,)).fetchall()
        key = [str(r[0]) for r in pg.execute(
            "SELECT a.attname FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
            " WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n", (name,))]
        if not key:
            raise CopyError(f"table {name} has no primary key to copy it in order by")
        tables.append(Table(name, [str(c[0]) for c in columns], [str(c[1]) for c in columns], key,
                            [str(c[0]) for c in columns if c[2] == "YES"]))
    pg.commit()
    return tables


def _same_tables(lite: db.Connection, tables: list[Table]) -> None:
    source = {str(r[0]) for r in lite.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")} - OWN_TABLES
    target = {t.name for t in tables}
    if source != target:
        raise CopyError(f"the two databases have different tables (only in SQLite: {sorted(source - target)}; "
                        f"only in PostgreSQL: {sorted(target - source)}): is this linkhub older than the database?")
    for table in tables:
        columns = [str(r[0]) for r in lite.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table.name,))]
        if sorted(columns) != sorted(table.columns):
            raise CopyError(f"table {table.name} has different columns on SQLite ({', '.join(columns)}) "
                            f"and PostgreSQL ({', '.join(table.columns)})")


def _salt(lite: db.Connection) -> bytes:
    row = lite.execute(f"SELECT salt FROM {SALT_TABLE} WHERE id = 1").fetchone()
    if row is None:
        raise CopyError("the SQLite database has no erasure salt: run `linkhub check` on it")
    return bytes(row[0])


def _claim(pg: psycopg.Connection[tuple[Any, ...]], tables: list[Table], source_id: str, name: str,
           salt: bytes) -> bool:
    """Make the target this source's copy, or find it already is (a resume: True); refuse anything else."""
    with pg.transaction():
        pg.execute(_MARKER)
        marks = pg.execute("SELECT source_id, source, started_at, finished_at FROM copied_from").fetchall()
        for mark_id, mark_source, started, finished in marks:
            if mark_id != source_id:
                raise CopyError(f"the target already holds a copy of another SQLite database ({mark_source}, "
                                f"started {started}): copy into a new, empty database")
            if finished is not None:
                raise CopyError(f"the target already holds a finished copy of this database ({mark_source}, "
                                f"finished {finished}): copy into a new, empty database to copy it again")
        if marks:
            return True
        holding = [t.name for t in tables if t.name != SALT_TABLE and _count(pg, t.name, limit=1)]
        if holding:
            raise CopyError(f"the target is not empty (rows in {', '.join(holding)}) and was not filled by "
                            "linkhub copy-to: copy into a new, empty database")
        pg.execute(f"DELETE FROM {SALT_TABLE}")
        pg.execute(f"INSERT INTO {SALT_TABLE} (id, salt) VALUES (1, %s)", (salt,))
        pg.execute("INSERT INTO copied_from (source_id, source, started_at) VALUES (%s, %s, %s)",
                   (source_id, name, now_rfc3339()))
    return False


def _count(pg: psycopg.Connection[tuple[Any, ...]], table: str, limit: int | None = None) -> int:
    inner = f"SELECT 1 FROM {table}" + (f" LIMIT {limit}" if limit else "")
    row = pg.execute(f"SELECT count(*) FROM ({inner}) AS t").fetchone()
    return int(row[0]) if row else 0


def _copy_table(lite: db.Connection, pg: psycopg.Connection[tuple[Any, ...]], table: Table, chunk_rows: int,
                progress: Progress | None, replaced: list[int]) -> int:
    key_sql = ", ".join(table.key)
    text_key = {c for c, t in zip(table.columns, table.types, strict=True) if t == "text"}
    order_pg = ", ".join(f'{c} COLLATE "C" DESC' if c in text_key else f"{c} DESC" for c in table.key)
    last = pg.execute(f"SELECT {key_sql} FROM {table.name} ORDER BY {order_pg} LIMIT 1").fetchone()
    pg.commit()
    columns_sql = ", ".join(table.columns)
    convert = [_Converter(t, replaced) for t in table.types]
    copied = 0
    while True:
        if last is None:
            where, params = "", ()
        else:
            marks = ", ".join("?" for _ in table.key)
            where, params = f"WHERE ({key_sql}) > ({marks})", tuple(last)
        rows = lite.execute(f"SELECT {columns_sql} FROM {table.name} {where} ORDER BY {key_sql} LIMIT ?",
                            (*params, chunk_rows)).fetchall()
        if not rows:
            return copied
        with pg.transaction(), pg.cursor().copy(f"COPY {table.name} ({columns_sql}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([f(v) for f, v in zip(convert, row, strict=True)])
        copied += len(rows)
        at = [table.columns.index(c) for c in table.key]
        last = tuple(rows[-1][i] for i in at)
        if progress is not None:
            progress(table.name, len(rows))


class _Converter:
    """What a SQLite value becomes for a column of one PostgreSQL type (COPY's text form does the rest: a
    JSON text is parsed into jsonb by the server, bytes are escaped as bytea).

    PostgreSQL's text and jsonb cannot hold the character U+0000, which SQLite stores as any other (a
    sender may post it): it becomes U+FFFD, the replacement character, and `replaced` counts the values
    so changed, for the closing line to say.
    """

    def __init__(self, pg_type: str, replaced: list[int]) -> None:
        self.pg_type = pg_type
        self.replaced = replaced

    def __call__(self, value: Any) -> Any:
        if value is None:
            return None
        if self.pg_type == "boolean":
            return bool(value)
        if self.pg_type == "bytea":
            return bytes(value) if isinstance(value, bytes | bytearray) else str(value).encode()
        if self.pg_type == "jsonb" and isinstance(value, str) and "\\u0000" in value:
            return self._json_without_nul(value)
        if self.pg_type in ("text", "jsonb"):
            if isinstance(value, bytes | bytearray):
                value = bytes(value).decode("utf-8", "replace")
            elif not isinstance(value, str):
                return str(value)
            if "\x00" in value:
                self.replaced[0] += 1
                return value.replace("\x00", NUL_STANDIN)
        return value

    def _json_without_nul(self, text: str) -> str:
        # Through the parsed document: the six characters `\u0000` may also be an escaped backslash's tail.
        def clean(node: Any) -> Any:
            if isinstance(node, str):
                return node.replace("\x00", NUL_STANDIN)
            if isinstance(node, list):
                return [clean(item) for item in node]
            if isinstance(node, dict):
                return {clean(key): clean(item) for key, item in node.items()}
            return node

        document = json.loads(text)
        cleaned = clean(document)
        if cleaned != document:
            self.replaced[0] += 1
        return json.dumps(cleaned, ensure_ascii=False, separators=(",", ":"))


def _reset_identity(pg: psycopg.Connection[tuple[Any, ...]], table: str, column: str) -> None:
    # The next number is past the highest copied (or 1 for an empty table): no new row takes a copied one's.
    with pg.transaction():
        pg.execute(f"SELECT setval(pg_get_serial_sequence(%s, %s), coalesce(max({column}), 0) + 1, false)"
                   f" FROM {table}", (table, column))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
