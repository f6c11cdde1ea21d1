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
)
_encode = msgspec.json.Encoder().encode


def insert(conn: sqlite3.Connection, event: Event) -> int:
    """Store one event (inside the caller's transaction); return its seq."""
    cursor = conn.execute(
        _INSERT,
        (
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
        ),
    )
    return cursor.lastrowid  # type: ignore[return-value]
