"""Webhook delivery end to end when things go badly: expiry to dead, `linkhub outbox status` and
`replay` (the CLI on the server's database), a SIGKILL or SIGTERM mid-delivery (a real server), and
the pruning an app does by itself (in-process)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from linkhub.core import events as event_store
from linkhub.core import webhooks as webhook_store
from linkhub.core.metrics import Metrics
from linkhub.delivery.loop import Deliverer
from linkhub.store import connect, open_database
from linkhub.util.times import now_rfc3339

from conftest import linkhub, query
from delivery_support import all_in, bearer, create_webhook, events, ids_of, outbox, post_events, states, wait_until
from sink import Answer


def test_expired_events_go_dead_and_replay_brings_them_back(hub, account, make_sink, db_path):
    sink = make_sink()
    sink.default = Answer(500, body=b"down for maintenance")
    sent = events("x", 3)
    with hub.client() as client:
        hook = create_webhook(client, account, sink.url, max_age_s=1)
        post_events(client, account, sent)
        wait_until(all_in(db_path, hook["id"], "dead", 3), what="3 dead rows")
        rows = outbox(db_path, hook["id"])
        assert all("expired" in row["last_error"] and "500" in row["last_error"] for row in rows), rows
        assert all(row["delivered_at"] is None for row in rows)

        status = linkhub("outbox", "status", "--json", "--db", str(db_path))
        assert status.returncode == 0, status.stderr
        [mine] = [row for row in json.loads(status.stdout) if row["webhook_id"] == hook["id"]]
        assert (mine["pending"], mine["in_flight"], mine["dead"]) == (0, 0, 3), mine
        assert mine["oldest_pending_age_s"] is None
        assert "500" in mine["last_error"]["error"], mine

        # The receiver is fixed (and the webhook given time enough to deliver replays).
        sink.default = Answer(200)
        answer = client.patch(f"/v1/webhooks/{hook['id']}", json={"max_age_s": 3600}, headers=bearer(account))
        assert answer.status_code == 200, answer.text
        before = len(sink.requests)

        dry = linkhub("outbox", "replay", "--webhook", hook["id"], "--dead-only", "--dry-run", "--db", str(db_path))
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.strip() == f"3 events would be queued for {hook['id']}", dry.stdout
        assert states(db_path, hook["id"]) == ["dead"] * 3  # nothing changed
        assert len(sink.requests) == before

        replay = linkhub("outbox", "replay", "--webhook", hook["id"], "--dead-only", "--db", str(db_path))
        assert replay.returncode == 0, replay.stderr
        assert replay.stdout.strip() == f"3 events queued for {hook['id']}", replay.stdout
        # The CLI cannot wake the server: its delivery loop finds the rows on its next poll (1 s).
        received = sink.wait_events(3)
        assert ids_of(received) == ids_of(sent)
        wait_until(all_in(db_path, hook["id"], "delivered", 3), what="3 delivered rows")
        assert all(row["last_error"] is None for row in outbox(db_path, hook["id"]))

        # Recovered: the last error is still shown, but beside a later success and no next attempt.
        status = linkhub("outbox", "status", "--json", "--db", str(db_path))
        [mine] = [row for row in json.loads(status.stdout) if row["webhook_id"] == hook["id"]]
        assert mine["last_success_at"] > mine["last_error"]["attempted_at"], mine
        assert (mine["pending"], mine["dead"], mine["next_attempt_at"]) == (0, 0, None), mine
        text = linkhub("outbox", "status", "--db", str(db_path)).stdout.splitlines()
        assert text[0].split()[:9] == ["webhook", "status", "pending", "in", "flight", "dead", "oldest", "last",
                                       "success"]
        [line] = [line for line in text if line.startswith(hook["id"])]
        assert mine["last_success_at"] in line and line.index(mine["last_success_at"]) == text[0].index("last success")


def test_outbox_status_shows_when_the_next_attempt_is_due(hub_app, account, make_sink, db_path):
    sink = make_sink()
    sink.default = Answer(500)
    with hub_app.client() as client:
        hook = create_webhook(client, account, sink.url)
        post_events(client, account, events("n", 1))
        sink.wait_for(1)

        def failed_once() -> dict | None:
            status = linkhub("outbox", "status", "--json", "--db", str(db_path))
            [mine] = [row for row in json.loads(status.stdout) if row["webhook_id"] == hook["id"]]
            return mine if mine["last_error"] and mine["next_attempt_at"] else None

        mine = wait_until(failed_once, what="a failed attempt and the next one scheduled")
        assert mine["pending"] + mine["in_flight"] == 1 and mine["last_success_at"] is None
        assert mine["next_attempt_at"] > mine["last_error"]["attempted_at"]



def test_sigkill_mid_delivery_resends_the_batch_after_restart(make_server, account, make_sink, db_path):
    """The restarted server takes the webhook over once the killed one's lease has expired (2 s here)."""
    sink = make_sink()
    # The first batch is received and recorded but never answered: linkhub is killed while it waits.
    sink.script(Answer(200, hold=sink.hang()))
    sent = events("k", 5)
    server = make_server("--allow-private-targets", "--lease-s", "2")
    with server.client() as client:
        hook = create_webhook(client, account, sink.url, batch_size=2)
        post_events(client, account, sent)
    first = sink.wait_for(1)[0]
    assert ids_of(first.json()) == ["k-0", "k-1"]
    assert states(db_path, hook["id"])[:2] == ["sending", "sending"]
    server.kill()

    make_server("--allow-private-targets", "--lease-s", "2")  # the same database
    received = sink.wait_events(5)
    again = sink.requests[1]
    assert ids_of(again.json()) == ["k-0", "k-1"]  # the same events, with the same ids…
    assert again.headers["webhook-id"] == first.headers["webhook-id"]  # …and the same message id
    assert [item["attempt"] for item in again.json()] == [2, 2]  # the interrupted POST counted as a try
    assert ids_of(received) == ids_of(sent)  # each event confirmed exactly once, in order
    rows = wait_until(lambda: (rows := outbox(db_path, hook["id"])) and all(r["state"] == "delivered" for r in rows)
                      and rows, what="all rows delivered")
    assert [row["event_id"] for row in rows] == ids_of(sent)  # one row per event: nothing lost, nothing doubled


def test_sigterm_mid_delivery_stops_promptly_and_resends_after_restart(make_server, account, make_sink, db_path):
    """A graceful stop does not wait on a hung receiver; the unconfirmed batch goes again after restart."""
    sink = make_sink()
    sink.script(Answer(200, hold=sink.hang()))
    sent = events("t", 3)
    server = make_server("--allow-private-targets")
    with server.client() as client:
        hook = create_webhook(client, account, sink.url, batch_size=2)
        post_events(client, account, sent)
    first = sink.wait_for(1)[0]
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 5, "the stop waited on the hung receiver"
    assert states(db_path, hook["id"]) == ["pending"] * 3  # claims released on the way out

    make_server("--allow-private-targets")
    assert ids_of(sink.wait_events(3)) == ids_of(sent)
    assert sink.requests[1].headers["webhook-id"] == first.headers["webhook-id"]
    wait_until(all_in(db_path, hook["id"], "delivered", 3), what="3 delivered rows")


def _old_and_recent_deliveries(account, db_path):
    """A webhook with two old delivered rows, an old dead row, a recent delivered row, an old log entry."""
    conn = connect(db_path)
    hook = webhook_store.insert(conn, webhook_store.draft(
        account.id, webhook_store.parse(webhook_store.WebhookSpec, {"url": "https://example.com/hook"})))
    long_ago, recently = "2020-01-01T00:00:00.000Z", "2999-01-01T00:00:00.000Z"
    stored = event_store.insert_many(conn, [
        event_store.Event(id=f"p-{n}", account_id=account.id, type="open", occurred_at=long_ago,
                          received_at=long_ago, source="api", email="a@example.com") for n in range(4)])
    rows = [("delivered", long_ago), ("delivered", long_ago), ("dead", None), ("delivered", recently)]
    for seq, (state, delivered_at) in zip(stored, rows, strict=True):
        conn.execute("INSERT INTO outbox (webhook_id, event_seq, state, queued_at, next_attempt_at, delivered_at)"
                     " VALUES (?, ?, ?, ?, ?, ?)", (hook.id, seq, state, long_ago, long_ago, delivered_at))
    conn.execute("INSERT INTO deliveries (webhook_id, message_id, attempted_at, events, status_code, duration_ms)"
                 " VALUES (?, 'msg_1', ?, 2, 200, 5)", (hook.id, long_ago))
    conn.close()
    return hook


def test_outbox_prune_forgets_old_deliveries_but_keeps_events_and_dead_rows(account, db_path):
    hook = _old_and_recent_deliveries(account, db_path)
    answer = linkhub("outbox", "prune", "--older-than", "30", "--json", "--db", str(db_path))
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["rows_deleted"] == 3  # two old delivered rows and the old log entry
    assert sorted(states(db_path, hook.id)) == ["dead", "delivered"]  # dead rows and recent ones stay
    assert query(db_path, "SELECT count(*) FROM events WHERE account_id = ?", (account.id,))[0][0] == 4


def test_the_server_prunes_old_deliveries_by_itself(account, db_path, make_app):
    hook = _old_and_recent_deliveries(account, db_path)
    server = make_app()  # default: keep 30 days of deliveries
    wait_until(lambda: sorted(states(db_path, hook.id)) == ["dead", "delivered"], what="old delivered rows pruned")
    wait_until(lambda: query(db_path, "SELECT count(*) FROM deliveries")[0][0] == 0, what="old log entry pruned")
    assert query(db_path, "SELECT count(*) FROM events WHERE account_id = ?", (account.id,))[0][0] == 4
    # Said once the round has found nothing more to prune: after the rows are gone, not with them.
    wait_until(lambda: "pruned 3 delivered outbox rows and delivery-log entries" in server.output,
               what="the pruning round's line")
    assert server.stop() == 0


def test_the_server_erases_previous_secrets_once_their_day_is_over(account, db_path, make_app):
    conn = connect(db_path)
    spec = webhook_store.parse(webhook_store.WebhookSpec, {"url": "https://example.com/hook"})
    over, running = (webhook_store.insert(conn, webhook_store.draft(account.id, spec)) for _ in range(2))
    for hook in (over, running):
        webhook_store.rotate_secret(conn, hook.id)  # the replaced secret signs beside the new one for a day
    conn.execute("UPDATE webhooks SET previous_secret_until = '2020-01-01T00:00:00.000Z' WHERE id = ?", (over.id,))
    conn.close()

    server = make_app(keep_deliveries_days=0)  # erased even when every delivery is kept

    def previous(hook_id):
        return tuple(query(db_path, "SELECT previous_secret, previous_secret_until FROM webhooks WHERE id = ?",
                           (hook_id,))[0])

    wait_until(lambda: previous(over.id) == (None, None), what="the expired previous secret erased")
    kept_secret, kept_until = previous(running.id)
    assert kept_secret == running.secret and kept_until > now_rfc3339()  # its day is not over: it still signs
    assert server.stop() == 0
    assert "erased the previous secret of 1 webhook(s)" in server.output


def test_stop_right_after_a_wake_stops_the_deliverer(db_path):
    """A wake() just before stop() (events stored as SIGTERM arrives) must not keep deliveries running:
    with asyncio.wait_for the supervisor swallowed its cancellation, kept spawning workers, and the
    server's shutdown hung until Hypercorn gave up with a traceback."""

    async def wake_then_stop() -> None:
        db = open_database(db_path)
        db.start()
        async with httpx.AsyncClient() as client:
            deliverer = Deliverer(db, Metrics(), allow_private=True)
            await deliverer.start(client)
            for _ in range(5):  # let the supervisor finish its first pass and wait for work
                await asyncio.sleep(0)
            deliverer.wake()
            async with asyncio.timeout(10):  # a bound for the failure case only: stop() takes milliseconds
                await deliverer.stop()
        await db.close()

    asyncio.run(wake_then_stop())
