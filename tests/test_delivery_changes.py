"""Webhook delivery end to end while the webhook is changed under a queue that is still draining:
deactivation, a new URL, a rotated secret, a new format. Each change must apply from the next batch on.
In-process (hub_app): the delivery loop and real receivers, batches held by the receiver, not timed."""

from __future__ import annotations

from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from delivery_support import bearer, create_webhook, event, events, ids_of, outbox, post_events, states, wait_until
from sink import Answer


def test_deactivation_stops_the_queue_after_the_batch_in_flight(hub_app, account, make_sink, db_path):
    sink = make_sink()
    hold = sink.hang()
    sink.script(Answer(200, hold=hold))  # the first batch is held until the webhook is deactivated
    with hub_app.client() as client:
        hook = create_webhook(client, account, sink.url, batch_size=1)
        post_events(client, account, events("q", 4))
        sink.wait_for(1)
        answer = client.post(f"/v1/webhooks/{hook['id']}/deactivate", headers=bearer(account))
        assert answer.status_code == 200 and answer.json()["status"] == "inactive", answer.text
        hold.set()
        wait_until(lambda: states(db_path, hook["id"])[0] == "delivered", what="the batch in flight confirmed")
        stopped = sink.quiet(1, within=2.0)  # with 1 s retries and polls, anything still going would show
        after_deactivation = [ids_of(r.json()) for r in sink.requests[1:]]
        # Reactivated, it delivers what was kept queued, each event once.
        answer = client.post(f"/v1/webhooks/{hook['id']}/activate", headers=bearer(account))
        assert answer.status_code == 200, answer.text
        received = sink.wait_events(4)
    assert stopped, f"batches sent after the webhook was deactivated: {after_deactivation}"
    assert ids_of(received) == ["q-0", "q-1", "q-2", "q-3"]


def test_a_new_url_and_a_rotated_secret_apply_from_the_next_batch(hub_app, account, make_sink, db_path):
    old, new = make_sink(), make_sink()
    hold = old.hang()
    old.script(Answer(200, hold=hold))
    with hub_app.client() as client:
        hook = create_webhook(client, account, old.url, batch_size=1)
        post_events(client, account, events("c", 4))
        old.wait_for(1)
        rotated = client.post(f"/v1/webhooks/{hook['id']}/rotate-secret", headers=bearer(account))
        assert rotated.status_code == 200, rotated.text
        secret = rotated.json()["secret"]
        moved = client.patch(f"/v1/webhooks/{hook['id']}", json={"url": new.url}, headers=bearer(account))
        assert moved.status_code == 200, moved.text
        hold.set()
        wait_until(lambda: states(db_path, hook["id"]) == ["delivered"] * 4, what="4 rows delivered")
    stale = []
    for request in [*old.requests[1:], *new.requests]:
        try:
            Verifier(secret).verify(request.body, request.headers)
        except WebhookVerificationError:
            stale.append(ids_of(request.json()))
    problems = []
    if old.requests[1:]:
        problems.append(f"batches sent to the old URL after the change: {[ids_of(r.json()) for r in old.requests[1:]]}")
    if stale:
        problems.append(f"batches signed with the old secret after the rotation: {stale}")
    assert not problems, "\n".join(problems)
    assert ids_of(new.wait_events(3)) == ["c-1", "c-2", "c-3"]


def test_a_format_change_with_queued_events_does_not_wedge_the_queue(hub_app, account, make_sink, db_path):
    """Queued while the webhook was `linkhub`, a `sent` event cannot be expressed once it is `esputnik`.
    It must not be sent (issue #3, Formats) — and it must not stop the events behind it either."""
    sink = make_sink()
    sink.default = Answer(500)
    with hub_app.client() as client:
        hook = create_webhook(client, account, sink.url)
        post_events(client, account, [event("s-1", "sent", 0), event("o-1", "open", 1)])
        sink.wait_for(1)
        answer = client.patch(f"/v1/webhooks/{hook['id']}", json={"format": "esputnik"}, headers=bearer(account))
        assert answer.status_code == 200, answer.text
        sink.default = Answer(200)
        post_events(client, account, [event("o-2", "open", 2)])
        try:
            received = sink.wait_events(2, timeout=6)
        except AssertionError as exc:
            rows = [(row["event_id"], row["state"], row["last_error"]) for row in outbox(db_path, hook["id"])]
            errors = [line.strip() for line in hub_app.log if "ERROR" in line]
            raise AssertionError(f"{exc}\noutbox: {rows}\nserver errors: {errors}") from None
        assert [(item.get("iid"), item.get("activityStatus")) for item in received] == [
            ("o-1", "READ"), ("o-2", "READ")], received
        # linkhub marks rows delivered just after the receiver's answer: wait for that commit.
        wait_until(lambda: states(db_path, hook["id"]).count("delivered") == 2, what="both opens marked delivered")
        rows = {row["event_id"]: (row["state"], row["last_error"]) for row in outbox(db_path, hook["id"])}
        # The inexpressible event is set aside with a reason, not left claimed or queued forever.
        assert rows["s-1"][0] not in ("pending", "sending"), rows
        assert rows["o-1"][0] == rows["o-2"][0] == "delivered", rows
