"""Exports: the events table and the `clicks` view read in seq order, page by page, as JSON Lines or CSV.

An export never holds more than one page in memory, and each page is one short query of its own
(keyset pagination: `seq > last ORDER BY seq LIMIT n`), so it runs in constant memory on any size
of database and never keeps a read snapshot open for long: a running server's checkpoints go on.

Every row carries its `seq`, and pages follow seq order, so an export stopped anywhere continues
exactly after the last complete row it wrote (`after=` that row's seq): no gap, no duplicate.
The export stops at the largest seq that existed when it began (`ceiling`), so on a busy server it
ends, and "everything up to seq N" is what it wrote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from linkhub.store import Connection, Row
from linkhub.store.dialect import is_postgresql

# Rows per query: large enough that the per-query cost vanishes, small enough that a page is a few MB
# and its read a few milliseconds.
PAGE_ROWS = 5000

Format = Literal["jsonl", "csv"]
FORMATS: tuple[str, ...] = ("jsonl", "csv")
Source = Literal["events", "clicks"]

# An event as the read API shows it (core.events.public), with its account: an export may span accounts.
EVENT_COLUMNS: tuple[str, ...] = (
    "seq", "account_id", "id", "type", "occurred_at", "received_at", "source", "email", "recipient_id",
    "mailing_id", "message_id", "url", "code", "details",
)
# The clicks view's columns that hold JSON text; JSON Lines shows them as JSON values, CSV as the text.
_CLICK_JSON = frozenset({"reasons"})

_encode = msgspec.json.Encoder().encode_lines


@dataclass(frozen=True)
class Query:
    """Which rows an export writes; None narrows nothing."""

    account_id: str | None = None
    types: tuple[str, ...] = ()  # events only; empty: every type
    since: str | None = None  # occurred_at, RFC 3339 UTC, inclusive
    until: str | None = None  # exclusive
    after: int = 0  # a seq: write only rows after it


@dataclass(frozen=True)
class Chunk:
    """One page, rendered: what to write, how many rows it holds, and how far the scan got."""

    data: bytes
    rows: int
    last_seq: int | None  # the seq of its last row; None for a chunk with no rows (the CSV header)
    scanned_to: int  # every seq up to this one has been read (written or filtered out)


# Page cache for an export's connection: a one-pass walk reads each page once, so a large cache (or the
# memory map linkhub's connections use) would only grow the process's resident size with the file.
_SCAN_CACHE_KIB = 2048


def for_scan(conn: Connection) -> None:
    """Set a connection of its own up for an export: no memory map and a small page cache, so its
    resident memory stays flat (with linkhub's defaults it grows with the file, up to ~320 MiB)."""
    if is_postgresql(conn):  # the server's shared buffers, not the process's memory
        return
    conn.execute("PRAGMA mmap_size = 0")
    conn.execute(f"PRAGMA cache_size = -{_SCAN_CACHE_KIB}")


def ceiling(conn: Connection) -> int:
    """The largest seq now stored (0: no events): where an export begun now ends. The rowid's
    maximum, so one B-tree descent, whatever the size of the table."""
    row = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    return int(row[0])


def _where(query: Query, source: Source, last: int, top: int, plus: str = "+") -> tuple[str, list[Any]]:
    # The unary `+` keeps SQLite from answering through the (account_id, …) indexes: they would
    # return the account's rows in another order, to be sorted again for every page. Walking the
    # table itself by seq (its rowid) reads each row once over the whole export, a page at a time.
    # PostgreSQL has no `+` for text (`plus` is then ""), and its planner weighs the order itself.
    where = ["seq > ?", "seq <= ?"]
    values: list[Any] = [last, top]
    if query.account_id is not None:
        where.append(f"{plus}account_id = ?")
        values.append(query.account_id)
    if source == "events" and query.types:
        where.append(f"{plus}type IN ({', '.join('?' * len(query.types))})")
        values.extend(query.types)
    if query.since is not None:
        where.append(f"{plus}occurred_at >= ?")
        values.append(query.since)
    if query.until is not None:
        where.append(f"{plus}occurred_at < ?")
        values.append(query.until)
    return " AND ".join(where), values


def sql(query: Query, source: Source, last: int, top: int, limit: int, *,
        postgresql: bool = False) -> tuple[str, list[Any]]:
    """One page's statement and parameters: the rows after `last` up to `top`, at most `limit`."""
    where, values = _where(query, source, last, top, "" if postgresql else "+")
    # The events' columns are named (their order is the export's); the view's are all of them, so a
    # column a later schema adds to `clicks` is exported without a change here.
    columns = ", ".join(EVENT_COLUMNS) if source == "events" else "*"
    return f"SELECT {columns} FROM {source} WHERE {where} ORDER BY seq LIMIT ?", [*values, limit]


def columns(conn: Connection, source: Source) -> tuple[str, ...]:
    """The export's columns, in order: EVENT_COLUMNS, or the `clicks` view's as the schema defines them."""
    if source == "events":
        return EVENT_COLUMNS
    if is_postgresql(conn):
        return tuple(column[0] for column in conn.execute("SELECT * FROM clicks LIMIT 0").description)
    return tuple(row["name"] for row in conn.execute("SELECT name FROM pragma_table_info('clicks') ORDER BY cid"))


def pages(conn: Connection, query: Query, source: Source, *, top: int,
          limit: int | None = None) -> Iterator[tuple[list[Row], int]]:
    """The matching rows after `query.after` up to seq `top`, a page (at most `limit` rows) at a time,
    each with the seq the scan has reached. Each page is its own query, fetched whole and finished
    before the caller sees it: no statement stays open between pages. `limit` defaults to PAGE_ROWS."""
    limit = limit or PAGE_ROWS
    last = query.after
    while last < top:
        statement, values = sql(query, source, last, top, limit, postgresql=is_postgresql(conn))
        rows = conn.execute(statement, values).fetchall()
        # A short page is the last one: the scan went through to `top`.
        scanned = rows[-1]["seq"] if len(rows) == limit else top
        if rows:
            yield rows, scanned
        last = scanned


def _json_value(text: Any) -> Any:
    """A column of JSON text as its value (the classifier's reasons); text that is not JSON (a value a
    sender posted) stays text."""
    if not isinstance(text, str):
        return text
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text


def render(rows: list[Row], names: tuple[str, ...], source: Source, fmt: Format) -> bytes:
    """A page of rows as JSON Lines (one object a line) or CSV rows (no header)."""
    if fmt == "jsonl":
        if source == "events":
            # details is stored as a JSON object already: spliced in as it is, not decoded and re-encoded.
            objects = [{**{name: row[name] for name in EVENT_COLUMNS[:-1]},
                        "details": msgspec.Raw(row["details"])} for row in rows]
        else:
            objects = [{name: _json_value(row[name]) if name in _CLICK_JSON else row[name] for name in names}
                       for row in rows]
        return _encode(objects)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(tuple(row) for row in rows)
    return out.getvalue().encode()


def header(names: tuple[str, ...]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(names)
    return out.getvalue().encode()


def stream(conn: Connection, query: Query, source: Source, fmt: Format, *, top: int,
           limit: int | None = None) -> Iterator[Chunk]:
    """The export as chunks to write in order: the CSV header first (CSV only), then one chunk a page."""
    names = columns(conn, source)
    if fmt == "csv":
        yield Chunk(header(names), 0, None, query.after)
    for rows, scanned in pages(conn, query, source, top=top, limit=limit):
        yield Chunk(render(rows, names, source, fmt), len(rows), rows[-1]["seq"], scanned)
