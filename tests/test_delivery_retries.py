"""Webhook delivery end to end when receivers fail: retries, attempt counts, Retry-After, 410,
FIFO behind a failing head, parallel unordered batches, and isolation between webhooks. What is timed
(the gaps between retries, Retry-After, a receiver's timeout) runs on a real server; the rest (what a
failure is, what is sent next, what waits) in-process, against the same real receivers.

Every webhook here retries on a fixed 1 s interval (unless a test needs otherwise), so a retry
comes within a second or two; tests wait on what the receiver saw, never on a guessed delay.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime, timedelta
from email.utils import formatdate

import httpx

from linkhub.core import webhooks
from linkhub.delivery import loop, sender

from conftest import query
from delivery_support import (
    bearer,
    create_webhook,
    deliveries,
    event,
    events,
    get_webhook,
    ids_of,
    outbox,
    post_events,
    states,
    wait_until,
)
from sink import Answer, Sink, closed_port

# A retry is "after ≈1 s": not before this (the interval is honoured, no busy retrying)…
AT_LEAST_S = 0.9
# …and well before the next candidate explanation (a 30 s policy interval, a 10 s timeout).
FAR_BELOW_S = 6.0


def gaps(sink: Sink) -> list[float]:
    arrived = [r.arrived for r in sink.requests]
    return [round(b - a, 2) for a, b in itertools.pairwise(arrived)]


def test_attempt_counts_up_across_retries_after_500(hub, account, make_sink, db_path):
    sink = make_sink()
    sink.script(500, 500)  # then the default: 200
    with hub.client() as client:
        hook = create_webhook(client, account, sink.url, auth={"type": "bearer", "token": "sekrit-token"})
        post_events(client, account, events("a", 2))
        received = sink.wait_events(2)
        log = wait_until(lambda: (d := deliveries(client, account, hook["id"])) and len(d) == 3 and d,
                         what="3 logged attempts")
        raw_log = client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=bearer(account)).text
    assert [r.answered for r in sink.requests] == [500, 500, 200]
    assert [[item["attempt"] for item in r.json()] for r in sink.requests] == [[1, 1], [2, 2], [3, 3]]
    assert [ids_of(r.json()) for r in sink.requests] == [["a-0", "a-1"]] * 3
    assert ids_of(received) == ["a-0", "a-1"]
    # The same batch keeps its webhook-id across retries, so a receiver can recognise it.
    assert len({r.headers["webhook-id"] for r in sink.requests}) == 1
    assert all(AT_LEAST_S <= gap < FAR_BELOW_S for gap in gaps(sink)), gaps(sink)
    assert [(d["status_code"], d["events"]) for d in log] == [(500, 2), (500, 2), (200, 2)]
    assert all(d["attempted_at"] and d["duration_ms"] >= 0 for d in log)
    assert "sekrit-token" not in raw_log and hook["secret"] not in raw_log
    assert "500" in log[0]["error"] and log[2]["error"] is None
    assert {d["message_id"] for d in log} == {sink.requests[0].headers["webhook-id"]}
    rows = wait_until(lambda: (rows := outbox(db_path, hook["id"])) and all(r["state"] == "delivered" for r in rows)
                      and rows, what="rows delivered")
    assert [(r["attempts"], r["last_error"]) for r in rows] == [(3, None), (3, None)]


def test_retry_after_a_refused_connection(hub, account, make_sink, db_path):
    port = closed_port()
    with hub.client() as client:
        hook = create_webhook(client, account, f"http://127.0.0.1:{port}/hook")
        post_events(client, account, events("rc", 1))
        failed = wait_until(lambda: (d := deliveries(client, account, hook["id"])) and len(d) >= 2 and d,
                            what="two refused attempts logged")
        for attempt in failed:
            assert attempt["status_code"] is None
            assert "connect" in attempt["error"].lower(), attempt
        row = outbox(db_path, hook["id"])[0]
        assert row["state"] in ("pending", "sending") and row["attempts"] >= 2
        assert row["last_error"] and "connect" in row["last_error"].lower()
        # The receiver comes up on that very port: the next retry gets through.
        sink = make_sink(port=port)
        [delivered] = sink.wait_events(1)
        # The outcome is logged once the receiver has answered: wait for it.
        log = wait_until(lambda: (d := deliveries(client, account, hook["id"])) and d[-1]["status_code"] == 200
                         and d, what="the successful attempt logged")
    assert delivered["id"] == "rc-0"
    assert delivered["attempt"] == len(log) >= 3
    assert [d["status_code"] for d in log] == [None] * (len(log) - 1) + [200]
    wait_until(lambda: outbox(db_path, hook["id"])[0]["state"] == "delivered", what="row delivered")


def test_retry_after_on_429_and_503_is_honoured(hub, account, make_sink):
    """With a 1 s policy interval, only Retry-After can explain retries ≈3 s apart."""
    sink = make_sink()
    sink.script(
        Answer(429, headers={"Retry-After": "3"}),
        # An HTTP date, made when the request arrives: 3 s ahead, i.e. 2–3 s after truncation to the second.
        lambda _: Answer(503, headers={"Retry-After": formatdate(time.time() + 3, usegmt=True)}),
    )
    with hub.client() as client:
        hook = create_webhook(client, account, sink.url)  # FAST_RETRY: fixed, every second
        post_events(client, account, events("ra", 1))
        [received] = sink.wait_events(1, timeout=15)
        log = wait_until(lambda: (d := deliveries(client, account, hook["id"])) and len(d) == 3 and d,
                         what="3 logged attempts")
    assert [r.answered for r in sink.requests] == [429, 503, 200]
    assert received["attempt"] == 3
    first, second = gaps(sink)
    assert 3 * AT_LEAST_S <= first < 3 + FAR_BELOW_S, gaps(sink)
    assert 1.8 <= second < 3 + FAR_BELOW_S, gaps(sink)
    assert [d["status_code"] for d in log] == [429, 503, 200]


def test_410_gone_disables_the_webhook(hub_app, account, make_sink, db_path):
    gone, healthy = make_sink(), make_sink()
    gone.script(Answer(410, body=b"this endpoint was removed"))
    with hub_app.client() as client:
        hook = create_webhook(client, account, gone.url)
        create_webhook(client, account, healthy.url)
        post_events(client, account, events("g", 1))
        gone.wait_for(1)
        shown = wait_until(lambda: (w := get_webhook(client, account, hook["id"]))["status"] == "disabled" and w,
                           what="webhook disabled")
        assert "410" in (shown["status_reason"] or ""), shown
        # Later events are not queued for it, and nothing more goes to it (it would retry within 1 s if it did).
        post_events(client, account, [event("g-later", "open", 5)])
        assert ids_of(healthy.wait_events(2)) == ["g-0", "g-later"]
        assert gone.quiet(1, within=2.0), gone.describe()
        log = deliveries(client, account, hook["id"])
        listed = client.get("/v1/webhooks", headers={"Authorization": f"Bearer {account.api_key}"}).json()
    assert [d["status_code"] for d in log] == [410]
    assert [r["event_id"] for r in outbox(db_path, hook["id"])] == ["g-0"]
    assert [w["status"] for w in listed["webhooks"] if w["id"] == hook["id"]] == ["disabled"]


def test_ordered_fifo_holds_while_the_head_fails(hub_app, account, make_sink, db_path):
    sink = make_sink()
    sink.script(500, 500)
    head, tail = events("f", 6)[:2], events("f", 6)[2:]
    with hub_app.client() as client:
        hook = create_webhook(client, account, sink.url, batch_size=2)
        post_events(client, account, head)
        sink.wait_for(1)
        post_events(client, account, tail)  # queued behind a head that is failing
        received = sink.wait_events(6)
    bodies = [ids_of(r.json()) for r in sink.requests]
    assert bodies[:3] == [["f-0", "f-1"]] * 3, bodies
    assert [r.answered for r in sink.requests[:3]] == [500, 500, 200]
    # Nothing behind the head went out before the head was delivered; then strictly in stored order.
    assert ids_of(received) == [f"f-{i}" for i in range(6)]
    stored = [r["event_id"] for r in outbox(db_path, hook["id"])]
    assert stored == ids_of(received)
    assert len(sink.requests) == 5 and sink.max_in_flight == 1, sink.describe()


def test_unordered_batches_go_in_parallel(hub_app, account, make_sink):
    """The receiver holds each request until 4 are in flight at once: only parallel batches get through quickly."""
    sink = make_sink()
    sink.gate = loop.PER_WEBHOOK_CONCURRENCY
    sent = events("p", 8)
    with hub_app.client() as client:
        create_webhook(client, account, sink.url, ordered=False, batch_size=1)
        post_events(client, account, sent)
        received = sink.wait_events(8, timeout=20)
    assert sink.max_in_flight == loop.PER_WEBHOOK_CONCURRENCY, sink.describe()
    assert sorted(ids_of(received)) == sorted(ids_of(sent))  # each exactly once
    assert all(r.answered == 200 for r in sink.requests)
    assert len(sink.requests) == 8


def test_unordered_a_failing_batch_holds_back_nothing(hub_app, account, make_sink):
    sink = make_sink()
    sink.script(500)  # whichever batch arrives first fails once
    with hub_app.client() as client:
        create_webhook(client, account, sink.url, ordered=False, batch_size=1)
        post_events(client, account, events("u", 4))
        received = sink.wait_events(4)
    failed = ids_of(sink.requests[0].json())
    assert sink.requests[0].answered == 500
    assert sorted(ids_of(received)) == ["u-0", "u-1", "u-2", "u-3"]
    assert ids_of(received)[-1] == failed[0]  # the others went while it waited for its retry
    assert received[-1]["attempt"] == 2 and all(item["attempt"] == 1 for item in received[:-1])


HUNG_TIMEOUT_S = 2


def test_a_hung_receiver_delays_no_other_webhook_and_is_retried_after_the_timeout(hub, account, make_sink):
    """Isolation, and the retry after a timeout (the webhook's own timeout_s, 2 s here; 10 s by default)."""
    hung, other = make_sink(), make_sink()
    hold = hung.hang()
    hung.script(Answer(200, hold=hold))  # the first request is never answered (until teardown)
    with hub.client() as client:
        hook = create_webhook(client, account, hung.url, timeout_s=HUNG_TIMEOUT_S)
        create_webhook(client, account, other.url)
        post_events(client, account, [event("h-0", "open", 0)])
        hung.wait_for(1)
        other.wait_events(1)
        started = time.monotonic()
        post_events(client, account, [event("h-1", "open", 1)])  # while the hung receiver holds its worker
        assert ids_of(other.wait_events(2, timeout=5)) == ["h-0", "h-1"]
        latency = time.monotonic() - started
        assert latency < 3.0, f"the other webhook waited {latency:.1f}s behind a hung receiver"
        # After the timeout the hung batch is retried (with what queued behind it).
        retried = hung.wait_events(2, timeout=25)
        log = wait_until(lambda: (d := deliveries(client, account, hook["id"])) and d[-1]["status_code"] == 200
                         and d, what="the successful retry logged")
    waited = hung.requests[1].arrived - hung.requests[0].arrived
    assert HUNG_TIMEOUT_S <= waited < HUNG_TIMEOUT_S + FAR_BELOW_S, waited
    assert [(item["id"], item["attempt"]) for item in retried] == [("h-0", 2), ("h-1", 1)]
    assert log[0]["status_code"] is None and "time" in log[0]["error"].lower(), log[0]
    assert log[0]["duration_ms"] >= HUNG_TIMEOUT_S * 1000 - 100
    assert log[-1]["status_code"] == 200


def test_post_batch_times_out_on_a_hung_receiver(make_sink):
    """The sender's timeout, with a short one: no HTTP answer, an error saying so, a failed outcome."""
    sink = make_sink()
    sink.script(Answer(200, hold=sink.hang()))
    hook = webhooks.Webhook(
        id="wh_test", account_id="acc", url=sink.url, types=(), format="linkhub", auth={"type": "none"},
        secret="whsec_" + "A" * 44, batch_size=1, retry_policy="fixed", retry_interval_s=1, max_age_s=60,
        timeout_s=10, ordered=True, description=None, status="active", status_reason=None, created_at="", updated_at="",
    )

    async def post() -> sender.Outcome:
        async with httpx.AsyncClient() as client:
            return await sender.post_batch(client, hook, b"[]", "msg_1", allow_private=True, timeout=0.5)

    started = time.monotonic()
    outcome = asyncio.run(post())
    assert time.monotonic() - started < 3
    assert not outcome.delivered
    assert outcome.status_code is None
    assert "timed out" in (outcome.error or ""), outcome
    assert len(sink.requests) == 1


def test_redirects_are_not_followed_tls_errors_fail_and_any_2xx_delivers(hub_app, account, make_sink, db_path):
    redirecting, elsewhere, plain_http, no_content = make_sink(), make_sink(), make_sink(), make_sink()
    redirecting.script(Answer(302, headers={"Location": elsewhere.url}))
    no_content.default = Answer(204, body=b"")
    with hub_app.client() as client:
        redirected = create_webhook(client, account, redirecting.url)
        tls = create_webhook(client, account, plain_http.url.replace("http://", "https://"))
        accepted = create_webhook(client, account, no_content.url)
        post_events(client, account, events("n", 1))
        [retried] = redirecting.wait_events(1)
        tls_log = wait_until(lambda: deliveries(client, account, tls["id"]), what="the TLS attempt logged")
        redirect_log = wait_until(lambda: (d := deliveries(client, account, redirected["id"])) and len(d) == 2
                                  and d, what="2 logged attempts")
        no_content.wait_events(1)
    assert [r.answered for r in redirecting.requests] == [302, 200]
    assert retried["attempt"] == 2  # the 302 was a failure, retried to the same URL
    assert elsewhere.requests == []  # never followed
    assert [d["status_code"] for d in redirect_log] == [302, 200] and "302" in redirect_log[0]["error"]
    assert tls_log[0]["status_code"] is None and "SSL" in tls_log[0]["error"], tls_log
    assert plain_http.requests == []  # a TLS handshake is no HTTP request
    assert outbox(db_path, tls["id"])[0]["state"] in ("pending", "sending")
    wait_until(lambda: states(db_path, accepted["id"]) == ["delivered"], what="the 204 counted as delivered")


def test_private_targets_are_refused_again_at_delivery(make_app, account, make_sink, db_path):
    """SSRF: a webhook stored while private targets were allowed is not delivered to once they are not."""
    sink = make_sink()
    allowing = make_app(allow_private_targets=True)
    with allowing.client() as client:
        hook = create_webhook(client, account, sink.url)
    allowing.stop()
    strict = make_app()
    with strict.client() as client:
        post_events(client, account, events("s", 1))
        log = wait_until(lambda: deliveries(client, account, hook["id"]), what="the refused attempt logged")
    assert log[0]["status_code"] is None and "refused target" in log[0]["error"], log
    assert "127.0.0.1" in log[0]["error"]
    assert sink.requests == []  # refused before connecting
    assert outbox(db_path, hook["id"])[0]["state"] in ("pending", "sending")


def test_the_longest_allowed_retry_interval_and_max_age_still_deliver_and_schedule(hub_app, account, make_sink,
                                                                                   db_path):
    """At the upper bounds of interval_s and max_age_s, a failure is rescheduled a day later (not a crash)."""
    sink = make_sink()
    sink.default = Answer(500)
    with hub_app.client() as client:
        hook = create_webhook(client, account, sink.url, max_age_s=webhooks.MAX_AGE_S,
                              retry={"policy": "fixed", "interval_s": webhooks.MAX_RETRY_INTERVAL_S})
        post_events(client, account, events("long", 1))
        [attempt] = wait_until(lambda: deliveries(client, account, hook["id"]) or None, what="one logged attempt")
        sql = "SELECT next_attempt_at FROM outbox WHERE webhook_id = ? AND state = 'pending' AND next_attempt_at > ?"
        [(next_attempt_at,)] = wait_until(lambda: query(db_path, sql, (hook["id"], attempt["attempted_at"])) or None,
                                          what="the row rescheduled")
    assert attempt["status_code"] == 500
    wait = datetime.fromisoformat(next_attempt_at) - datetime.fromisoformat(attempt["attempted_at"])
    assert timedelta(hours=23) < wait < timedelta(hours=25), wait
    assert "Traceback" not in hub_app.output and "failed: OverflowError" not in hub_app.output, hub_app.output
