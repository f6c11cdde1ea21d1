"""The event store: every email event, whoever reported it, in one `events` table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import msgspec

from linkhub.core import mailings
from linkhub.core.classify.verdict import VerdictName
from linkhub.store import Connection, Row, dialect

# The canonical types, in their canonical order: the type for validation, the tuple for everything else.
EventType = Literal[
    "sent", "delivered", "undelivered", "open", "click", "bounce", "unsubscribe", "spamcomplaint",
    "subscription_changed",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
# The classifier's four verdicts on a click, in their canonical order (docs/classification.md).
VERDICTS: tuple[str, ...] = get_args(VerdictName)


class Event(msgspec.Struct, kw_only=True):
    """One event as stored. Times are RFC 3339 UTC text."""

    id: str
    account_id: str
    type: str
    occurred_at: str
    received_at: str
    source: str
    email: str | None = None
    recipient_id: str | None = None
    mailing_id: str | None = None
    message_id: str | None = None
    url: str | None = None
    code: str | None = None
    details: dict[str, Any] = msgspec.field(default_factory=dict)


_INSERT_HEAD = (
    "INSERT INTO events (id, account_id, type, occurred_at, received_at, source, email, recipient_id,"
    " mailing_id, message_id, url, code, details, verdict, via) VALUES "
)
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_TAIL = " ON CONFLICT (account_id, id) DO NOTHING"
_encode = msgspec.json.Encoder().encode
_decode_details = msgspec.json.Decoder(dict[str, Any]).decode

PUBLIC_COLUMNS = ("seq, id, account_id, type, occurred_at, received_at, source, email, recipient_id, mailing_id,"
                  " message_id, url, code, details")


def from_row(row: Row) -> Event:
    # keys(), not the Row itself: iterating a Row (and `in` on it) gives its values, not its column names.
    values = {key: row[key] for key in row.keys() if key in Event.__struct_fields__}  # noqa: SIM118
    values["details"] = _decode_details(row["details"])
    return Event(**values)


def verdict_of(details: dict[str, Any]) -> str:
    """A click's verdict as webhooks judge and show it: `details.verdict` when it is one of VERDICTS,
    `unknown` otherwise.

    Clicks recorded by `/r/` always carry one. A click a sender posted (`POST /v1/events`) may carry
    none, or a value of its own that is no verdict; either way nothing says what clicked, which is
    what `unknown` means. `outbox._VERDICT` is the same rule in SQL.
    """
    verdict = details.get("verdict")
    return verdict if isinstance(verdict, str) and verdict in VERDICTS else "unknown"


def public(event: Event, seq: int) -> dict[str, Any]:
    """An event as the read API shows it; `seq` lets a client resume (?cursor=seq) after the last page."""
    return {
        "seq": seq,
        "id": event.id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "received_at": event.received_at,
        "source": event.source,
        "email": event.email,
        "recipient_id": event.recipient_id,
        "mailing_id": event.mailing_id,
        "message_id": event.message_id,
        "url": event.url,
        "code": event.code,
        "details": event.details,
    }


# An address whatever its case (ASCII, as SQLite's NOCASE folds it, and PostgreSQL's lower() in the C
# locale): each dialect's comparison is the one its events_by_email index is on.
SAME_EMAIL = dialect.Sql(sqlite="email = ? COLLATE NOCASE", postgresql="lower(email) = lower(?)")


@dataclass(frozen=True)
class Filters:
    """What a read narrows an account's events to; None narrows nothing."""

    type: str | None = None
    mailing_id: str | None = None
    email: str | None = None  # whatever its case
    since: str | None = None  # RFC 3339 UTC, inclusive
    until: str | None = None  # exclusive
    after: int | None = None  # a seq: the cursor a previous page ended with


@dataclass(frozen=True)
class Page:
    events: list[tuple[int, Event]]  # (seq, event), in seq order
    next_cursor: int | None  # None: nothing after this page


def page(conn: Connection, account_id: str, filters: Filters, limit: int) -> Page:
    """Up to `limit` of the account's events that pass `filters`, oldest (lowest seq) first."""
    where = ["account_id = ?"]
    values: list[Any] = [account_id]
    for clause, value in (
        ("type = ?", filters.type),
        ("mailing_id = ?", filters.mailing_id),
        # Addresses match whatever their case; the events_by_email index compares the same way.
        (SAME_EMAIL.on(conn), filters.email),
        ("occurred_at >= ?", filters.since),
        ("occurred_at < ?", filters.until),
        ("seq > ?", filters.after),
    ):
        if value is not None:
            where.append(clause)
            values.append(value)
    rows = conn.execute(f"SELECT {PUBLIC_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
                        (*values, limit + 1)).fetchall()
    shown = rows[:limit]
    return Page([(row["seq"], from_row(row)) for row in shown], shown[-1]["seq"] if len(rows) > limit else None)


# Rows per INSERT statement: 15 parameters each, far below SQLite's 32766.
_ROWS_PER_STATEMENT = 500


def insert_many(conn: Connection, batch: list[Event]) -> list[int | None]:
    """Insert events in the caller's transaction, skipping ids the account already has.

    Returns each event's seq, or None for a duplicate. Within the batch, the first of two
    events with the same id is the one stored. Seqs commit in the order they are handed out,
    on PostgreSQL too: one write transaction at a time (`store.pg.PgConnection.begin`).

    No RETURNING: the sqlite3 module steps once per returned row and releases the GIL at
    every step, and in the server each release can hand the GIL to the event loop and back.
    A plain multi-row INSERT is one step; the seqs follow from it, because SQLite gives a
    new row of an INTEGER PRIMARY KEY table the largest seq so far plus one, so the rows
    one statement inserts have consecutive seqs ending at `lastrowid`.
    """
    seqs: list[int | None] = []
    postgresql = dialect.is_postgresql(conn)
    for start in range(0, len(batch), _ROWS_PER_STATEMENT):
        chunk = batch[start : start + _ROWS_PER_STATEMENT]
        if postgresql:
            seqs.extend(_insert_on_postgresql(conn, chunk))
            continue
        values: list[Any] = []
        for event in chunk:
            values.extend(_params(event))
        cursor = conn.execute(_INSERT_HEAD + ",".join([_ROW] * len(chunk)) + _INSERT_TAIL, values)
        inserted, last = cursor.rowcount, cursor.lastrowid
        assert last is not None
        if inserted == len(chunk):  # the usual case: no duplicates
            seqs.extend(range(last - inserted + 1, last + 1))
        elif inserted == 0:
            seqs.extend([None] * len(chunk))
        else:  # which ones were new: ask for the ids in the new seq range
            new = {(row[0], row[1]): row[2] for row in conn.execute(
                "SELECT account_id, id, seq FROM events WHERE seq BETWEEN ? AND ?", (last - inserted + 1, last))}
            seqs.extend(new.pop((event.account_id, event.id), None) for event in chunk)
    mailings.began(conn, [(event.account_id, event.mailing_id, event.occurred_at)
                          for event, seq in zip(batch, seqs, strict=True) if seq is not None and event.mailing_id])
    return seqs


# PostgreSQL's insert: the chunk is one JSON parameter, an array of rows in _params' order (psycopg binds
# 7,500 separate values in ~0.5 s, one JSON text in well under 1 ms), inserted in its order, and the rows
# stored say their numbers (no rowid there).
_PG_INSERT = (
    "INSERT INTO events (id, account_id, type, occurred_at, received_at, source, email, recipient_id,"
    " mailing_id, message_id, url, code, details, verdict, via)"
    " SELECT r ->> 0, r ->> 1, r ->> 2, r ->> 3, r ->> 4, r ->> 5, r ->> 6, r ->> 7, r ->> 8, r ->> 9, r ->> 10,"
    " r ->> 11, r -> 12, r ->> 13, r ->> 14"
    " FROM jsonb_array_elements(CAST(? AS jsonb)) WITH ORDINALITY AS j(r, n) ORDER BY j.n"
    " ON CONFLICT (account_id, id) DO NOTHING RETURNING account_id, id, seq"
)


def _insert_on_postgresql(conn: Connection, chunk: list[Event]) -> list[int | None]:
    rows = []
    for event in chunk:
        row = list(_params(event))
        row[12] = msgspec.Raw(_encode(event.details))  # details as JSON itself, not as a string of it
        rows.append(row)
    new = {(row[0], row[1]): row[2] for row in conn.execute(_PG_INSERT, (_encode(rows).decode(),)).fetchall()}
    return [new.pop((event.account_id, event.id), None) for event in chunk]


def _params(event: Event) -> tuple[Any, ...]:
    return (
        event.id,
        event.account_id,
        event.type,
        event.occurred_at,
        event.received_at,
        event.source,
        event.email,
        event.recipient_id,
        event.mailing_id,
        event.message_id,
        event.url,
        event.code,
        _encode(event.details).decode(),
        # The verdict and via columns: copies of what details says, for the reporting index.
        event.details.get("verdict") if event.type in _JUDGED else None,
        _via(event),
    )


def _via(event: Event) -> str | None:
    """An open's fetcher when it was not the reader's mail client (migration 0010's `via`)."""
    if event.type != "open":
        return None
    if event.details.get("apple_mpp") is True:
        return "apple_mpp"
    return "proxy" if event.details.get("proxy") else None


_JUDGED = frozenset({"click", "open"})
