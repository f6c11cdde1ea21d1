"""--keep-events-days and `linkhub events prune`: old events go, clicks included, with their outbox rows
and verdict changes, a short transaction at a time, while the redirect keeps answering; young ones stay.

The store is filled through the real paths (POST /v1/events with an old `occurred_at`, clicks through
/r/); what those paths cannot make (clicks that happened long ago, outbox rows in every state, verdict
changes) is written with SQL beside them, as an older database would hold them.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from linkhub.core import retention
from linkhub.core import webhooks as webhook_store
from linkhub.delivery.retention import Pruner
from linkhub.store import connect
from linkhub.util.times import clamped_later, now_rfc3339

from conftest import create_account, linkhub, outreach_body, post_links, query
from delivery_support import post_events, wait_until

OLD = clamped_later(-400 * 86_400)  # long past a 30-day retention
RECENT = clamped_later(-2 * 86_400)  # within it
KEEP_DAYS = 30
STATES = ("pending", "sending", "delivered", "dead")


@dataclass
class Store:
    """What the test put in the database, by event id: which are old, which outbox rows and changes are whose."""

    account_id: str
    link_path: str
    old: set[str] = field(default_factory=set)
    young: set[str] = field(default_factory=set)
    old_clicks: set[str] = field(default_factory=set)
    outbox: dict[int, str] = field(default_factory=dict)  # outbox id -> event id
    changes: dict[int, str] = field(default_factory=dict)  # verdict_changes id -> event id


def fill(app: Any, db_path: Any) -> Store:
    account = create_account(db_path)
    target = "https://example.com/pricing"
    with app.client() as client:
        minted = post_links(client, account, outreach_body([target], prospect="p-7", email="ann@example.com"))
        path = minted.json()["data"][target][len(app.url):]
        store = Store(account.id, path)
        # Sender-reported events: old ones (a mailing of last year) and young ones.
        old_batch = [{"id": f"old-{n}", "type": ("sent", "delivered", "open", "bounce")[n % 4], "occurred_at": OLD,
                      "email": "ann@example.com", "mailing_id": "m-1",
                      **({"details": {"category": "hard"}} if n % 4 == 3 else {})} for n in range(22)]
        young_batch = [{"id": f"young-{n}", "type": "open", "occurred_at": RECENT, "email": "ann@example.com",
                        "mailing_id": "m-1"} for n in range(5)]
        post_events(client, account, old_batch)
        post_events(client, account, young_batch)
        store.old |= {event["id"] for event in old_batch}
        store.young |= {event["id"] for event in young_batch}
        for _ in range(8):  # clicks through the redirect: each happened now
            assert client.get(path, headers={"accept-language": "en"}).status_code == 302
    clicks = [row[0] for row in query(db_path, "SELECT id FROM events WHERE type = 'click' ORDER BY seq")]
    assert len(clicks) == 8
    store.old_clicks = set(clicks[:3])  # the first three become clicks of long ago
    store.old |= store.old_clicks
    store.young |= set(clicks[3:])

    conn = connect(db_path)
    try:
        conn.executemany("UPDATE events SET occurred_at = ? WHERE id = ?", [(OLD, id_) for id_ in store.old_clicks])
        # An inactive webhook: its rows stay where the test puts them (no delivery loop takes them); queued
        # and delivered just now, so neither expiry nor --keep-deliveries-days touches them.
        hook = webhook_store.insert(conn, webhook_store.draft(
            account.id, webhook_store.parse(webhook_store.WebhookSpec, {"url": "https://example.com/hook"})))
        seqs = dict(conn.execute("SELECT id, seq FROM events").fetchall())
        now = now_rfc3339()
        # Every state among the old events' rows and among the young ones'.
        for n, event_id in [*enumerate(sorted(store.old)), *enumerate(sorted(store.young))]:
            state = STATES[n % len(STATES)]
            row = conn.execute(
                "INSERT INTO outbox (webhook_id, event_seq, state, queued_at, next_attempt_at, delivered_at)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (hook.id, seqs[event_id], state, now, now, now if state == "delivered" else None))
            store.outbox[row.fetchone()[0]] = event_id
        for event_id in clicks:
            row = conn.execute(
                "INSERT INTO verdict_changes (account_id, event_seq, changed_at, cause, old_verdict, old_score,"
                " new_verdict, new_score, reasons, classifier) VALUES (?, ?, ?, 'settle', 'unknown', 0, 'scanner',"
                " -80, '[]', 'test') RETURNING id", (account.id, seqs[event_id], now_rfc3339()))
            store.changes[row.fetchone()[0]] = event_id
    finally:
        conn.close()
    assert store.old and store.young and not store.old & store.young
    return store


def assert_only_young_left(db_path: Any, store: Store, *, besides: frozenset[str] | set[str] = frozenset(),
                           in_flight: bool = False) -> None:
    left = {row[0] for row in query(db_path, "SELECT id FROM events")}
    assert left == store.young | besides
    # Every outbox row and verdict change of a young event is there (pending and sending ones included),
    # and none of an old one, whatever its state.
    outbox_left = {row[0] for row in query(db_path, "SELECT id FROM outbox")}
    assert outbox_left == {id_ for id_, event_id in store.outbox.items() if event_id in store.young}
    if in_flight:  # the server ran throughout: rows being sent were not released by a restart
        assert {row[0] for row in query(db_path, "SELECT state FROM outbox")} == set(STATES)
    changes_left = {row[0] for row in query(db_path, "SELECT id FROM verdict_changes")}
    assert changes_left == {id_ for id_, event_id in store.changes.items() if event_id in store.young}


class Gated:
    """The server's Store, seen by the pruner: after its second chunk, `between` runs before the third."""

    def __init__(self, db: Any, between: Callable[[], Awaitable[None]]) -> None:
        self._db = db
        self._between = between
        self.chunks: list[retention.Pruned] = []

    async def write(self, fn: Any, **kwargs: Any) -> Any:
        result = await self._db.write(fn, **kwargs)
        # The pruner writes each chunk under its lease: leases.fenced(…, work=prune_chunk) answers (held, chunk).
        work = fn.keywords.get("work") if isinstance(fn, functools.partial) else None
        if isinstance(work, functools.partial) and work.func is retention.prune_chunk:
            self.chunks.append(result[1])
            if len(self.chunks) == 2:
                await self._between()
        return result


def test_old_events_go_in_chunks_while_the_redirect_keeps_answering(make_app, db_path, monkeypatch):
    monkeypatch.setattr(retention, "CHUNK", 4)
    app = make_app()  # keeps every event: the test runs the pruning itself, to watch it
    store = fill(app, db_path)
    answers: list[int] = []
    clicks_stored: list[int] = []

    async def redirect_between_chunks() -> None:
        async with app.async_client() as client:
            answers.append((await client.get(store.link_path)).status_code)
        # The redirect answered once its click committed: the writer was not held by the pruning.
        clicks_stored.append(query(db_path, "SELECT count(*) FROM events WHERE type = 'click'")[0][0])

    gated = Gated(app.app.state.db, redirect_between_chunks)
    # The app's own lease keeper: its pruner took the retention lease at start-up, and one process's pruners share it.
    pruner = Pruner(gated, 0, keep_events_days=KEEP_DAYS, keeper=app.app.state.leases)  # type: ignore[arg-type]
    total = app.run(pruner.prune_events)

    assert answers == [302]
    # 8 clicks, 4 or 8 of the old ones deleted by then (two chunks of 4, clicks among them or not), plus the new one.
    assert clicks_stored and clicks_stored[0] >= 8 - len(store.old_clicks) + 1
    new_click = {row[0] for row in query(db_path, "SELECT id FROM events WHERE type = 'click'")} - store.young
    assert len(new_click) == 1  # the click of the redirect between chunks is kept: it is young
    assert total.events == len(store.old)
    assert total.clicks == len(store.old_clicks)
    assert total.outbox == sum(1 for event_id in store.outbox.values() if event_id in store.old)
    assert total.verdict_changes == sum(1 for event_id in store.changes.values() if event_id in store.old)
    # Short transactions: each chunk at most CHUNK events, as many as that takes, then one that finds none.
    sizes = [chunk.events for chunk in gated.chunks]
    assert all(size <= 4 for size in sizes)
    assert sizes[-1] == 0 and sum(sizes) == len(store.old)
    assert len(sizes) == math.ceil(len(store.old) / 4) + 1
    assert_only_young_left(db_path, store, besides=new_click, in_flight=True)


def test_the_server_deletes_old_events_by_itself(make_app, db_path):
    filler = make_app()
    store = fill(filler, db_path)
    filler.stop()
    server = make_app(keep_events_days=KEEP_DAYS)  # the pruner's first round runs at start-up
    wait_until(lambda: "that happened before" in server.output, what="the pruner's report of deleted events")
    assert_only_young_left(db_path, store)
    with server.client() as client:  # the link of the deleted clicks still redirects, and records
        assert client.get(store.link_path).status_code == 302
    assert query(db_path, "SELECT count(*) FROM clicks")[0][0] == len(store.young) - 5 + 1
    assert server.stop() == 0
    outbox_old = sum(1 for event_id in store.outbox.values() if event_id in store.old)
    changes_old = sum(1 for event_id in store.changes.values() if event_id in store.old)
    assert (f"deleted {len(store.old)} events ({len(store.old_clicks)} clicks) that happened before"
            in server.output)
    assert f"with {outbox_old} outbox rows and {changes_old} verdict changes" in server.output


def test_events_are_kept_by_default(make_app, db_path):
    filler = make_app()
    store = fill(filler, db_path)
    filler.stop()
    server = make_app()
    with server.client() as client:  # a request after start-up: the pruner's first round has had its turn
        assert client.get("/healthz").status_code == 200
    server.stop()
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == len(store.old | store.young)
    assert "that happened before" not in server.output


def test_events_prune_counts_then_deletes_the_same(make_app, db_path):
    filler = make_app()
    store = fill(filler, db_path)
    filler.stop()
    expected = {"events": len(store.old), "clicks": len(store.old_clicks),
                "outbox": sum(1 for event_id in store.outbox.values() if event_id in store.old),
                "verdict_changes": sum(1 for event_id in store.changes.values() if event_id in store.old)}
    dry = linkhub("events", "prune", "--older-than", str(KEEP_DAYS), "--dry-run", "--json", "--db", str(db_path))
    assert dry.returncode == 0, dry.stderr
    assert {key: json.loads(dry.stdout)[key] for key in expected} == expected
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == len(store.old | store.young)  # nothing went
    done = linkhub("events", "prune", "--older-than", str(KEEP_DAYS), "--db", str(db_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"deleted {expected['events']} events ({expected['clicks']} clicks)")
    assert_only_young_left(db_path, store)


def test_the_newest_event_is_kept_so_its_seq_is_never_given_again(make_app, db_path):
    app = make_app()
    account = create_account(db_path)
    with app.client() as client:
        post_events(client, account, [{"id": f"e-{n}", "type": "open", "occurred_at": OLD, "email": "ann@example.com"}
                                      for n in range(3)])
    app.stop()
    done = linkhub("events", "prune", "--older-than", "1", "--json", "--db", str(db_path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["events"] == 2
    assert [tuple(row) for row in query(db_path, "SELECT id, seq FROM events")] == [("e-2", 3)]


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_events_prune_refuses_a_bad_period(db_path, value):
    answer = linkhub("events", "prune", "--older-than", value, "--db", str(db_path))
    assert answer.returncode == 2
    assert "--older-than" in answer.stderr
    assert "Traceback" not in answer.stderr
