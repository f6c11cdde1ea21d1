"""Webhook delivery end to end, the happy paths: the app in-process (its delivery loop runs as in `serve`), real
receivers on 127.0.0.1.

Events go in through POST /v1/events (or a click on /r/), webhooks are made with POST /v1/webhooks,
and what the receivers get is checked as bytes on the wire: the JSON array in the webhook's format,
the headers, the Standard Webhooks signature (checked with the `standardwebhooks` library).
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

import linkhub

from conftest import create_account, outreach_body, post_links, query
from delivery_support import bearer, create_webhook, event, events, ids_of, outbox, post_events, wait_until

USER_AGENT = f"linkhub/{linkhub.__version__}"
CLICK_DETAILS = {"ip": "198.51.100.4", "user_agent": "Mozilla/5.0 (Windows NT 10.0)", "device": "desktop",
                 "os": "Windows 10", "browser": "Firefox 64.1", "country": "PT"}

# One event of every canonical type, with the type-specific details each carries.
ALL_TYPES: list[dict[str, Any]] = [
    event("e-sent", "sent", 0, details={"mailing_name": "Spring sale"}),
    event("e-delivered", "delivered", 1),
    event("e-undelivered", "undelivered", 2, details={"description": "smtp;552 mailbox full"}),
    event("e-open", "open", 3, details=CLICK_DETAILS),
    event("e-click", "click", 4, url="https://example.com/offer", details=CLICK_DETAILS),
    event("e-bounce", "bounce", 5, details={"category": "hard", "reason": "other",
                                            "description": "smtp;550 5.1.1 no such user"}),
    event("e-unsubscribe", "unsubscribe", 6, details={"reason": "via link"}),
    event("e-spam", "spamcomplaint", 7, details={"provider": "Yahoo"}),
    event("e-subscription", "subscription_changed", 8, details={"categories": ["news"]}),
]
# What each format can express (docs/formats.md), in the order they were posted; the others never go out.
EXPRESSIBLE = {
    "linkhub": ["sent", "delivered", "undelivered", "open", "click", "bounce", "unsubscribe", "spamcomplaint",
                "subscription_changed"],
    "optimizely": ["sent", "open", "click", "bounce", "unsubscribe", "spamcomplaint"],
    "esputnik": ["delivered", "undelivered", "open", "click", "bounce", "unsubscribe", "spamcomplaint",
                 "subscription_changed"],
    "arpoone": ["open", "click", "bounce", "unsubscribe", "spamcomplaint"],
}
ESPUTNIK_STATUS = {"delivered": "DELIVERED", "undelivered": "UNDELIVERED", "open": "READ", "click": "CLICKED",
                   "bounce": "UNDELIVERED", "unsubscribe": "UNSUBSCRIBED", "spamcomplaint": "SPAM",
                   "subscription_changed": "SUBSCRIPTION_CHANGED"}
ARPOONE_TYPE = {"open": "Opened", "click": "Clicked", "bounce": "Bounced", "unsubscribe": "Unsubscribed",
                "spamcomplaint": "Spam"}


def epoch_ms(rfc3339: str) -> int:
    return int(datetime.fromisoformat(rfc3339).timestamp() * 1000)


def check_wire(request: Any, secret: str) -> list[dict[str, Any]]:
    """The headers every delivery carries, and a signature the standardwebhooks library accepts."""
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["webhook-id"].startswith("msg_")
    assert request.headers["webhook-signature"].startswith("v1,")
    payload = Verifier(secret).verify(request.body, request.headers)  # raises if the signature is wrong
    assert isinstance(payload, list) and payload
    return payload


# -- formats ------------------------------------------------------------------------------


def test_each_format_receives_what_it_can_express_signed_and_in_order(hub_app, account, make_sink, db_path):
    sinks = {fmt: make_sink() for fmt in EXPRESSIBLE}
    with hub_app.client() as client:
        hooks = {fmt: create_webhook(client, account, sink.url, format=fmt) for fmt, sink in sinks.items()}
        assert post_events(client, account, ALL_TYPES).json() == {"accepted": 9, "duplicates": 0}
    by_type = {item["type"]: item for item in ALL_TYPES}

    for fmt, sink in sinks.items():
        wanted = EXPRESSIBLE[fmt]
        received = sink.wait_events(len(wanted))
        payloads = [check_wire(request, hooks[fmt]["secret"]) for request in sink.requests]
        assert [item for payload in payloads for item in payload] == received
        assert len(received) == len(wanted), f"{fmt} got more than it can express: {received}"
        assert all(item["attempt"] == 1 for item in received)
        assert all("test" not in item for item in received)
        # What the format cannot express was never even queued for it (so it can never be sent).
        assert [row["event_type"] for row in outbox(db_path, hooks[fmt]["id"])] == wanted
        if fmt == "linkhub":
            assert [item["type"] for item in received] == wanted
            for item in received:
                sent = by_type[item["type"]]
                # A click the sender posted without a verdict is shown as what it counted as: unknown.
                verdict = {"verdict": "unknown", "reasons": []} if sent["type"] == "click" else {}
                assert item == {"id": sent["id"], "type": sent["type"], "occurred_at": sent["occurred_at"],
                                "email": "jo@example.com", "recipient_id": "r-42", "mailing_id": "m-7",
                                "message_id": "msg-9", "url": sent.get("url"),
                                "details": {**sent.get("details", {}), **verdict}, "attempt": 1}
        elif fmt == "optimizely":
            assert [item["type"] for item in received] == wanted
            assert "delivered" not in [item["type"] for item in received]
            for item in received:
                sent = by_type[item["type"]]
                assert item["id"] == sent["id"]
                assert item["recipientId"] == "r-42"
                assert item["mailingId"] == "m-7"
                assert item["mailId"] == "msg-9"
                assert item["clientId"] == account.id
                assert item["created"] == epoch_ms(sent["occurred_at"])
                assert item["mediaTypesToAddresses"] == {"EMAIL": "jo@example.com"}
            click = received[wanted.index("click")]
            assert (click["link"], click["remoteAddress"], click["device"], click["operatingSystem"],
                    click["browser"]) == ("https://example.com/offer", "198.51.100.4", "desktop", "Windows 10",
                                          "Firefox 64.1")
            bounce = received[wanted.index("bounce")]
            assert (bounce["category"], bounce["reason"]) == ("hardbounce", "other")
        elif fmt == "esputnik":
            assert [item["activityStatus"] for item in received] == [ESPUTNIK_STATUS[t] for t in wanted]
            assert "e-sent" not in [item["iid"] for item in received]
            for item, type_ in zip(received, wanted, strict=True):
                sent = by_type[type_]
                assert item["iid"] == sent["id"]
                assert item["email"] == "jo@example.com"
                assert item["contactId"] == "r-42"
                assert item["messageId"] == "msg-9"
                assert item["activityDateTime"] == sent["occurred_at"][:19]
            assert received[wanted.index("click")]["clickEventLink"] == "https://example.com/offer"
            bounce = received[wanted.index("bounce")]
            assert bounce["hardBounce"] is True
            assert bounce["statusDescription"] == "smtp;550 5.1.1 no such user"
        else:
            assert [item["EventType"] for item in received] == [ARPOONE_TYPE[t] for t in wanted]
            for item, type_ in zip(received, wanted, strict=True):
                assert item["Email"] == "jo@example.com"
                assert item["MessageId"] == "msg-9"
                assert item["Time"] == epoch_ms(by_type[type_]["occurred_at"])
            click = received[wanted.index("click")]["EventDetails"]
            assert (click["Link"], click["IpAddress"], click["CountryCode"]) == (
                "https://example.com/offer", "198.51.100.4", "PT")
            assert received[wanted.index("bounce")]["EventDetails"]["IsHardBouce"] is True

    # The check above means something: the library refuses another secret, or an altered body.
    request = sinks["linkhub"].requests[0]
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Verifier(other).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(hooks["linkhub"]["secret"]).verify(request.body.replace(b"e-open", b"e-0pen"), request.headers)


def test_types_filter_and_inactive_webhooks(hub_app, account, make_sink, db_path):
    """Only subscribed types are queued; an inactive webhook gets nothing, even once activated later."""
    clicks_sink, idle_sink = make_sink(), make_sink()
    with hub_app.client() as client:
        clicks_only = create_webhook(client, account, clicks_sink.url, types=["click"])
        idle = create_webhook(client, account, idle_sink.url, active=False)
        post_events(client, account, [event("t-open", "open", 0), event("t-click", "click", 1, url="https://x.test/"),
                                      event("t-bounce", "bounce", 2)])
        assert ids_of(clicks_sink.wait_events(1)) == ["t-click"]
        assert outbox(db_path, idle["id"]) == []
        answer = client.post(f"/v1/webhooks/{idle['id']}/activate", headers=bearer(account))
        assert answer.status_code == 200, answer.text
        post_events(client, account, [event("t-open-2", "open", 3)])
        assert ids_of(idle_sink.wait_events(1)) == ["t-open-2"]
    assert [r["event_id"] for r in outbox(db_path, clicks_only["id"])] == ["t-click"]
    assert [r["event_id"] for r in outbox(db_path, idle["id"])] == ["t-open-2"]


# -- clicks from /r/ ------------------------------------------------------------------------


def test_clicks_from_redirects_flow_through_the_same_pipeline(hub_app, account, make_sink):
    native, optimizely = make_sink(), make_sink()
    original, target = "https://www.example.com/page?x=1", "https://bit.ly/abc"
    plain = "https://example.org/plain"
    with hub_app.client() as client:
        create_webhook(client, account, native.url, types=["click"])
        create_webhook(client, account, optimizely.url, format="optimizely")
        minted = post_links(client, account, outreach_body([target, plain], urls={original: target},
                                                           mailing="m-55", prospect="p-9",
                                                           email="prospect@example.com"))
        assert minted.status_code == 200, minted.text
        for link in (target, plain):
            short = minted.json()["data"][link]
            answer = client.get(short[len(hub_app.url):], headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0)"})
            assert answer.status_code == 302
            assert answer.headers["location"] == link
    clicks = native.wait_events(2)
    assert [c["type"] for c in clicks] == ["click", "click"]
    first, second = clicks
    assert first["url"] == original  # what the recipient meant to visit
    assert first["details"]["target"] == target  # where the redirect actually went
    assert second["url"] == plain
    assert "target" not in second["details"]  # original == target: nothing to add
    for click in clicks:
        assert (click["email"], click["recipient_id"], click["mailing_id"]) == ("prospect@example.com", "p-9", "m-55")
        assert click["attempt"] == 1 and click["id"]
    assert [c["link"] for c in optimizely.wait_events(2)] == [original, plain]


# -- batching ------------------------------------------------------------------------------


def test_batches_by_size_in_order(hub_app, account, make_sink):
    sink = make_sink()
    sent = events("b", 7)
    with hub_app.client() as client:
        hook = create_webhook(client, account, sink.url, batch_size=3)
        post_events(client, account, sent)
    received = sink.wait_events(7)
    assert [len(r.json()) for r in sink.requests] == [3, 3, 1]
    assert ids_of(received) == ids_of(sent)
    assert sink.max_in_flight == 1  # ordered (the default): one batch at a time
    message_ids = [r.headers["webhook-id"] for r in sink.requests]
    assert len(set(message_ids)) == 3
    for request in sink.requests:
        check_wire(request, hook["secret"])


# -- auth connectors -------------------------------------------------------------------------


def test_each_auth_type_arrives_as_configured(hub_app, account, make_sink):
    auths = {
        "none": {"type": "none"},
        "basic": {"type": "basic", "username": "hook-user", "password": "p@ss:word"},
        "bearer": {"type": "bearer", "token": "tok-123"},
        "header": {"type": "header", "name": "X-Api-Key", "value": "k-456"},
    }
    sinks = {kind: make_sink() for kind in auths}
    with hub_app.client() as client:
        for kind, auth in auths.items():
            create_webhook(client, account, sinks[kind].url, auth=auth)
        post_events(client, account, events("auth", 2))
    headers = {kind: sink.wait_for(1)[0].headers for kind, sink in sinks.items()}
    assert "authorization" not in headers["none"]
    assert headers["basic"]["authorization"] == "Basic " + base64.b64encode(b"hook-user:p@ss:word").decode()
    assert headers["bearer"]["authorization"] == "Bearer tok-123"
    assert headers["header"]["x-api-key"] == "k-456"
    assert "authorization" not in headers["header"]
    for kind in ("none", "basic", "bearer"):
        assert "x-api-key" not in headers[kind]


# -- the ingest API as the pipeline's entrance ----------------------------------------------


def test_account_isolation(hub_app, account, make_sink, db_path):
    other = create_account(db_path, secret="other-secret")
    mine, theirs = make_sink(), make_sink()
    with hub_app.client() as client:
        create_webhook(client, account, mine.url)
        their_hook = create_webhook(client, other, theirs.url)
        post_events(client, account, events("iso", 3))
        mine.wait_events(3)
        listed = client.get("/v1/events", headers=bearer(other))
        assert listed.status_code == 200
        assert listed.json() == {"events": [], "next_cursor": None}
        own = client.get("/v1/events", headers=bearer(account)).json()["events"]
        assert ids_of(own) == ["iso-0", "iso-1", "iso-2"]
        # The other account's webhook is not even queued for these events.
        assert outbox(db_path, their_hook["id"]) == []
        # The same event ids are the other account's own business: stored and delivered to it alone.
        assert post_events(client, other, events("iso", 1)).json() == {"accepted": 1, "duplicates": 0}
        assert ids_of(theirs.wait_events(1)) == ["iso-0"]
        assert ids_of(client.get("/v1/events", headers=bearer(other)).json()["events"]) == ["iso-0"]
    assert len(mine.requests) == 1 and len(theirs.requests) == 1


def test_one_bad_event_refuses_the_whole_request(hub_app, account, make_sink, db_path):
    sink = make_sink()
    batch = events("v", 5)
    batch[3]["email"] = "not-an-address"
    del batch[3]["recipient_id"]
    with hub_app.client() as client:
        hook = create_webhook(client, account, sink.url)
        answer = post_events(client, account, batch, expect=422)
        document = answer.json()
        assert document["index"] == 3 and document["field"] == "email", document
        assert "3" in answer.text and "email" in answer.text
        missing = [dict(item) for item in events("w", 5)]
        del missing[1]["occurred_at"]
        answer = post_events(client, account, missing, expect=422)
        assert (answer.json()["index"], answer.json()["field"]) == (1, "occurred_at"), answer.text
        assert client.get("/v1/events", headers=bearer(account)).json()["events"] == []
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == 0
    assert outbox(db_path, hook["id"]) == []
    assert sink.requests == []


def test_duplicates_are_counted_and_not_delivered_twice(hub_app, account, make_sink, db_path):
    sink = make_sink()
    with hub_app.client() as client:
        hook = create_webhook(client, account, sink.url)
        first = events("d", 3)
        assert post_events(client, account, first).json() == {"accepted": 3, "duplicates": 0}
        sink.wait_events(3)
        again = [*first, event("d-new", "open", 9)]
        assert post_events(client, account, again).json() == {"accepted": 1, "duplicates": 3}
        twice = [event("d-twice", "open", 10), event("d-twice", "open", 10)]  # repeated within one request
        assert post_events(client, account, twice).json() == {"accepted": 1, "duplicates": 1}
        received = sink.wait_events(5)
    assert ids_of(received) == ["d-0", "d-1", "d-2", "d-new", "d-twice"]
    assert [r["event_id"] for r in outbox(db_path, hook["id"])] == ["d-0", "d-1", "d-2", "d-new", "d-twice"]
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == 5
    wait_until(lambda: all(r["state"] == "delivered" for r in outbox(db_path, hook["id"])), what="all delivered")
