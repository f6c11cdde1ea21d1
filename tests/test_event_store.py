"""Storing events: seqs, duplicates, and which webhooks each stored event is queued for."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linkhub.core import accounts, formats, outbox
from linkhub.core import events as event_store
from linkhub.core import webhooks as webhook_store
from linkhub.store import Connection, connect

from conftest import ON_POSTGRESQL
from delivery_support import bearer, post_events


@pytest.fixture
def conn(db_path: Path | str) -> Iterator[Connection]:
    conn = connect(db_path)
    yield conn
    conn.close()


def event(account_id: str, event_id: str, event_type: str = "open") -> event_store.Event:
    now = "2026-11-23T05:00:00.000Z"
    return event_store.Event(id=event_id, account_id=account_id, type=event_type, occurred_at=now,
                             received_at=now, source="api", email="a@example.com")


def add_webhook(conn: Connection, account_id: str, fmt: str, types: list[str], status: str = "active"
                ) -> webhook_store.Webhook:
    spec = webhook_store.parse(webhook_store.WebhookSpec,
                               {"url": "https://example.com/hook", "format": fmt, "types": types})
    hook = webhook_store.insert(conn, webhook_store.draft(account_id, spec))
    conn.execute("UPDATE webhooks SET status = ? WHERE id = ?", (status, hook.id))
    return hook


def test_insert_many_answers_seqs_in_order_and_none_for_duplicates(conn: Connection) -> None:
    account, _key = accounts.create(conn, "a", "secret")
    first = event_store.insert_many(conn, [event(account.id, f"e{n}") for n in range(3)])
    assert first == [1, 2, 3]
    again = [event(account.id, "e1"), event(account.id, "new"), event(account.id, "new"), event(account.id, "e2"),
             event(account.id, "newer")]
    seqs = event_store.insert_many(conn, again)
    assert [seq is None for seq in seqs] == [True, False, True, True, False]
    # Increasing, past the first three; consecutive on SQLite, where a duplicate takes no number (on
    # PostgreSQL the identity hands one out to every row it is offered: a gap, which the cursor allows).
    assert 3 < seqs[1] < seqs[4]
    if conn.dialect == "sqlite":
        assert seqs == [None, 4, None, None, 5]
    stored = conn.execute("SELECT id FROM events ORDER BY seq").fetchall()
    assert [row[0] for row in stored] == ["e0", "e1", "e2", "new", "newer"]


def test_each_event_is_queued_exactly_for_the_active_webhooks_that_accept_it(conn: Connection) -> None:
    """The fan-out is SQL; Webhook.accepts is the rule it must follow, for every format and type."""
    account, _key = accounts.create(conn, "a", "secret")
    other, _key = accounts.create(conn, "b", "secret")
    hooks = [add_webhook(conn, account.id, fmt, types)
             for fmt in formats.FORMATS
             for types in ([], ["click"], ["open", "bounce", "sent"])
             if all(t in formats.SUPPORTED_TYPES[fmt] for t in types)]
    add_webhook(conn, account.id, "linkhub", [], status="inactive")
    add_webhook(conn, other.id, "linkhub", [])  # another account's webhook never gets these events
    batch = [event(account.id, f"{t}-{n}", t) for n, t in enumerate(event_store.EVENT_TYPES)]

    stored, queued = outbox.store_events(conn, batch)

    assert stored == [True] * len(batch)
    expected = sorted((hook.id, e.id) for hook, e in itertools.product(hooks, batch) if hook.accepts(e.type))
    rows = conn.execute("SELECT o.id, o.webhook_id, e.id FROM outbox o JOIN events e ON e.seq = o.event_seq"
                        " ORDER BY o.id").fetchall()
    assert sorted((row[1], row[2]) for row in rows) == expected
    assert queued == len(expected)
    seqs = {e.id: n for n, e in enumerate(batch)}
    for hook in hooks:  # each webhook's queue follows the order of events
        order = [seqs[row[2]] for row in rows if row[1] == hook.id]
        assert order == sorted(order)


def test_duplicates_are_not_queued_again(conn: Connection) -> None:
    account, _key = accounts.create(conn, "a", "secret")
    add_webhook(conn, account.id, "linkhub", [])
    assert outbox.store_events(conn, [event(account.id, "x"), event(account.id, "y")]) == ([True, True], 2)
    assert outbox.store_events(conn, [event(account.id, "y"), event(account.id, "z")]) == ([False, True], 1)
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 3


def test_the_nul_character_posted_is_stored_and_read_back(app: Any, account: Any) -> None:
    """SQLite stores U+0000 as sent; PostgreSQL's text and jsonb cannot hold it, and there it is stored as
    U+FFFD, the replacement character, whether it came raw or JSON-escaped: either way the batch is
    accepted whole and nothing else in it changes."""
    sent = {"id": "nul-1", "type": "open", "occurred_at": "2026-11-23T05:00:00.000Z",
            "email": "ann@example.com", "recipient_id": "r\u00001", "mailing_id": "m-1", "message_id": "\\u0000",
            "details": {"note": "a\u0000b", "literal": "\\u0000 is text here", "n": 3}}
    with app.client() as client:
        post_events(client, account, [sent])
        page = client.get("/v1/events", headers=bearer(account)).json()
    [stored] = page["events"]
    nul = "\ufffd" if ON_POSTGRESQL else "\u0000"
    assert stored["recipient_id"] == f"r{nul}1"
    assert stored["details"] == {"note": f"a{nul}b", "literal": "\\u0000 is text here", "n": 3}
    assert stored["email"] == "ann@example.com"
    assert stored["message_id"] == "\\u0000"  # six characters of text, not the character
