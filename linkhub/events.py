"""The event store: every email event, whoever reported it, in one `events` table."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

EVENT_TYPES = (
    "sent",
    "delivered",
    "undelivered",
    "open",
    "click",
    "bounce",
    "unsubscribe",
    "spamcomplaint",
    "subscription_changed",
)


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


_INSERT = (
    "INSERT INTO events (id, account_id, type, occurred_at, received_at, source, email, recipient_id,"
    " mailing_id, message_id, url, code, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (account_id, id) DO NOTHING"
)
_encode = msgspec.json.Encoder().encode
_decode_details = msgspec.json.Decoder(dict[str, Any]).decode

PUBLIC_COLUMNS = "seq, id, account_id, type, occurred_at, received_at, source, email, recipient_id, mailing_id," \
    " message_id, url, code, details"


def from_row(row: sqlite3.Row) -> Event:
    values = {key: row[key] for key in row.keys() if key in Event.__struct_fields__}
    values["details"] = _decode_details(row["details"])
    return Event(**values)


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


def insert(conn: sqlite3.Connection, event: Event) -> int | None:
    """Insert one event in the caller's transaction; its seq, or None if the account already has its id."""
    cursor = conn.execute(_INSERT, _params(event))
    return cursor.lastrowid if cursor.rowcount else None


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
    )
