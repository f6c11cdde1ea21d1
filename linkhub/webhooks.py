"""Webhook subscriptions: the stored model and reads shared by the API, the CLI and the delivery loop."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import msgspec

from . import formats

DEFAULT_BATCH_SIZE = 100
DEFAULT_MAX_AGE_S = 259_200  # three days, as Optimizely keeps undelivered events
DEFAULT_TIMEOUT_S = 10.0

_COLUMNS = (
    "id, account_id, url, types, format, auth, secret, batch_size, retry_policy, retry_interval_s,"
    " max_age_s, ordered, description, status, status_reason, created_at, updated_at"
)


@dataclass(frozen=True)
class Webhook:
    id: str
    account_id: str
    url: str
    types: tuple[str, ...]  # empty = every type
    format: str
    auth: dict[str, Any]  # {"type": "none" | "basic" | "bearer" | "header", …credentials}
    secret: str  # 'whsec_…'
    batch_size: int
    retry_policy: str  # 'exponential' | 'fixed'
    retry_interval_s: int | None
    max_age_s: int
    ordered: bool
    description: str | None
    status: str  # 'active' | 'inactive' | 'disabled'
    status_reason: str | None
    created_at: str
    updated_at: str

    def accepts(self, event_type: str) -> bool:
        """Whether an event of this type is queued for this webhook: subscribed, and expressible in its format."""
        return (not self.types or event_type in self.types) and event_type in formats.SUPPORTED_TYPES[self.format]

    def public(self) -> dict[str, Any]:
        """The webhook as the API shows it: never the signing secret nor the auth credentials."""
        return {
            "id": self.id,
            "url": self.url,
            "types": list(self.types),
            "format": self.format,
            "auth": {"type": self.auth.get("type", "none"),
                     **({"username": self.auth["username"]} if self.auth.get("type") == "basic" else {}),
                     **({"name": self.auth["name"]} if self.auth.get("type") == "header" else {})},
            "batch_size": self.batch_size,
            "retry": ({"policy": "fixed", "interval_s": self.retry_interval_s}
                      if self.retry_policy == "fixed" else {"policy": "exponential"}),
            "max_age_s": self.max_age_s,
            "ordered": self.ordered,
            "description": self.description,
            "status": self.status,
            "status_reason": self.status_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def from_row(row: sqlite3.Row) -> Webhook:
    values = dict(row)
    values["types"] = tuple(msgspec.json.decode(values["types"]))
    values["auth"] = msgspec.json.decode(values["auth"])
    values["ordered"] = bool(values["ordered"])
    return Webhook(**values)


def get(conn: sqlite3.Connection, webhook_id: str, account_id: str | None = None) -> Webhook | None:
    """The webhook, or None; with `account_id`, only if it belongs to that account."""
    sql = f"SELECT {_COLUMNS} FROM webhooks WHERE id = ?"
    params: tuple[str, ...] = (webhook_id,)
    if account_id is not None:
        sql += " AND account_id = ?"
        params += (account_id,)
    row = conn.execute(sql, params).fetchone()
    return from_row(row) if row is not None else None


def list_for(conn: sqlite3.Connection, account_id: str | None = None) -> list[Webhook]:
    if account_id is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM webhooks ORDER BY created_at, id")
    else:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM webhooks WHERE account_id = ? ORDER BY created_at, id",
                            (account_id,))
    return [from_row(row) for row in rows]


def active_for(conn: sqlite3.Connection, account_id: str) -> list[Webhook]:
    """The account's active webhooks: those that new events are queued for."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM webhooks WHERE account_id = ? AND status = 'active'", (account_id,))
    return [from_row(row) for row in rows]
