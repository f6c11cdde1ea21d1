"""Helpers of the webhook delivery tests: the API calls they make, events, and waiting on state.

Webhooks are created through the REST API only (POST /v1/webhooks), as a user would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from conftest import Account, query

T = TypeVar("T")

# Retries within a second or so: the delivery tests never wait on the default policies.
FAST_RETRY = {"policy": "fixed", "interval_s": 1}
OCCURRED = "2026-03-02T10:{:02d}:{:02d}.{:03d}Z"


def bearer(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.api_key}"}


def create_webhook(client: httpx.Client, account: Account, url: str, **spec: Any) -> dict[str, Any]:
    """POST /v1/webhooks, active, retrying every second unless told otherwise; returns the answer (id, secret…)."""
    body = {"url": url, "active": True, "retry": FAST_RETRY, **spec}
    answer = client.post("/v1/webhooks", json=body, headers=bearer(account))
    assert answer.status_code == 201, answer.text
    document = answer.json()
    assert document["id"] and document["secret"].startswith("whsec_"), document
    return document


def get_webhook(client: httpx.Client, account: Account, webhook_id: str) -> dict[str, Any]:
    answer = client.get(f"/v1/webhooks/{webhook_id}", headers=bearer(account))
    assert answer.status_code == 200, answer.text
    return answer.json()


def deliveries(client: httpx.Client, account: Account, webhook_id: str) -> list[dict[str, Any]]:
    """GET /v1/webhooks/{id}/deliveries, oldest first."""
    answer = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=bearer(account))
    assert answer.status_code == 200, answer.text
    return list(reversed(answer.json()["deliveries"]))


def event(event_id: str, type_: str = "open", n: int = 0, **fields: Any) -> dict[str, Any]:
    """One event in linkhub's ingest schema; `n` makes occurred_at increase with it."""
    body: dict[str, Any] = {
        "id": event_id,
        "type": type_,
        "occurred_at": OCCURRED.format(n // 60000 % 60, n // 1000 % 60, n % 1000),
        "email": "jo@example.com",
        "recipient_id": "r-42",
        "mailing_id": "m-7",
        "message_id": "msg-9",
    }
    body.update(fields)
    return body


def events(prefix: str, count: int, type_: str = "open") -> list[dict[str, Any]]:
    return [event(f"{prefix}-{i}", type_, i) for i in range(count)]


def post_events(client: httpx.Client, account: Account, batch: list[dict[str, Any]],
                expect: int | None = 202) -> httpx.Response:
    answer = client.post("/v1/events", json=batch, headers=bearer(account))
    if expect is not None:
        assert answer.status_code == expect, answer.text
    return answer


def wait_until(check: Callable[[], T], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll `check()` (a database or API read) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last: {value!r})")
        time.sleep(0.05)  # the poll period of a condition wait, not a guess at how long something takes


def outbox(db_path: Path, webhook_id: str) -> list[dict[str, Any]]:
    """The webhook's outbox rows in queue order, with their event's id and type."""
    rows = query(
        db_path,
        "SELECT o.*, e.id AS event_id, e.type AS event_type FROM outbox o JOIN events e ON e.seq = o.event_seq"
        " WHERE o.webhook_id = ? ORDER BY o.id",
        (webhook_id,),
    )
    return [dict(row) for row in rows]


def states(db_path: Path, webhook_id: str) -> list[str]:
    return [row["state"] for row in outbox(db_path, webhook_id)]


def all_in(db_path: Path, webhook_id: str, state: str, count: int) -> Callable[[], bool]:
    """A check for wait_until: the webhook has exactly `count` outbox rows, all in `state`."""
    return lambda: states(db_path, webhook_id) == [state] * count


def ids_of(batch: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in batch]


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)
