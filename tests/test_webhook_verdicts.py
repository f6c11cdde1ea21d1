"""Webhooks that choose which click verdicts they receive, and may wait for the settled one.

In-process (the app's delivery loop runs as in `serve`) behind a trusted proxy, so each click's
client address comes from X-Forwarded-For as in a deployment behind a load balancer; real receivers
on 127.0.0.1 (tests/sink.py). Machine clicks come from a shipped scanner range (Microsoft Exchange
Online Protection, 40.92.0.0/15) with the old, full-build Chrome Defender's scans are reported to
send, or from `curl`; a person's from a documentation address with a current browser.

Each click is on a fresh recipient's link, from an address of its own, so no click is related to
another (the classifier's behaviour across hits judges related ones together), except in the test
of a burst, where settling itself changes the verdicts.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from linkhub.core import accounts, outbox
from linkhub.core import events as event_store
from linkhub.core import webhooks as webhook_store
from linkhub.core.outbox import SETTLE_MARGIN_S
from linkhub.settings import parse_networks
from linkhub.store import Connection, connect
from linkhub.store.dialect import Sql

from conftest import Account, linkhub, outreach_body, post_links, query
from delivery_support import bearer, create_webhook, event, get_webhook, post_events
from delivery_support import outbox as outbox_rows

CURRENT_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/154.0.0.0 Safari/537.36")
DEFENDER_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/97.0.4692.99 Safari/537.36")
PERSON = {"user-agent": CURRENT_CHROME, "accept-language": "en-GB,en;q=0.9"}
SCANNER = {"user-agent": DEFENDER_CHROME}  # no Accept-Language, as the scans send none
SCRIPT = {"user-agent": "curl/8.5.0", "accept": "*/*"}
CRM = ["human", "unknown"]
SETTLE_S = 1  # --classify-settle-s for the tests that wait: the window passes quickly

_addresses = itertools.count(1)


def person_ip() -> str:
    return f"203.0.113.{next(_addresses)}"


def scanner_ip() -> str:
    return f"40.92.0.{next(_addresses)}"  # Exchange Online Protection


@pytest.fixture
def proxied(make_app: Any) -> Any:
    """The app behind a trusted proxy, delivering to receivers on 127.0.0.1, with the default settle window."""
    return make_app(trusted_proxies=parse_networks("127.0.0.1/32"), allow_private_targets=True)


@pytest.fixture
def settling(make_app: Any) -> Any:
    """As `proxied`, with a settle window of SETTLE_S seconds."""
    return make_app(trusted_proxies=parse_networks("127.0.0.1/32"), allow_private_targets=True,
                    classify_settle_s=SETTLE_S)


def click(client: Any, app: Any, account: Account, headers: dict[str, str], *, ip: str) -> dict[str, Any]:
    """Mint one link for a fresh recipient and GET it once from `ip`; the stored click's row (id, details)."""
    target = "https://example.com/pricing"
    recipient = f"p-{ip}"
    minted = post_links(client, account, outreach_body([target], prospect=recipient, email=f"{recipient}@example.com"))
    assert minted.status_code == 200, minted.text
    path = minted.json()["data"][target][len(app.url):]
    assert client.get(path, headers={**headers, "x-forwarded-for": ip}).status_code == 302
    [row] = query(app.db_path, "SELECT id, details ->> 'verdict' AS verdict FROM events"
                               " WHERE account_id = ? AND type = 'click' AND recipient_id = ?", (account.id, recipient))
    return dict(row)


def settle_to(db_path: Path, account: Account, event_id: str, verdict: str) -> None:
    """Change a stored click's verdict in place, as settling does when later hits re-score it."""
    conn = connect(db_path)
    try:
        conn.execute(SET_VERDICT.on(conn), (verdict, "true" if verdict in ("scanner", "bot") else "false",
                                            account.id, event_id))
    finally:
        conn.close()


# details is jsonb on PostgreSQL, where `||` replaces the keys it is given.
SET_VERDICT = Sql(
    sqlite="UPDATE events SET details = json_set(details, '$.verdict', ?, '$.bot', json(?))"
           " WHERE account_id = ? AND id = ?",
    postgresql="UPDATE events SET details = details"
               " || jsonb_build_object('verdict', CAST(? AS text), 'bot', CAST(? AS jsonb))"
               " WHERE account_id = ? AND id = ?",
)
SET_VERDICT_ONLY = Sql(
    sqlite="UPDATE events SET details = json_set(details, '$.verdict', ?) WHERE account_id = ? AND id = ?",
    postgresql="UPDATE events SET details = details || jsonb_build_object('verdict', CAST(? AS text))"
               " WHERE account_id = ? AND id = ?",
)


def filtered(client: Any, verdict: str) -> float:
    """linkhub_webhook_clicks_filtered_total{verdict} from /metrics."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "linkhub_webhook_clicks_filtered_total" and sample.labels == {"verdict": verdict}:
                return float(sample.value)
    raise AssertionError(f"no linkhub_webhook_clicks_filtered_total{{verdict={verdict!r}}} in /metrics")


def ids(received: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in received]


def epoch_s(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339).timestamp()


def arrived_at(received: Any) -> float:
    """When a request reached the receiver, as Unix seconds (the sink keeps the monotonic clock)."""
    return received.arrived + (time.time() - time.monotonic())


def due_at(db_path: Path, webhook_id: str, event_id: str) -> float:
    [row] = [r for r in outbox_rows(db_path, webhook_id) if r["event_id"] == event_id]
    return epoch_s(row["next_attempt_at"])


# -- the queue itself (core, on a connection) ---------------------------------------------------------

# details.verdict of the clicks below: each verdict, none (a sender's click), and values that are not verdicts.
CLICK_VERDICTS: list[Any] = ["human", "unknown", "scanner", "bot", None, "Bot", 7]


@pytest.fixture
def conn(db_path: Path) -> Any:
    conn = connect(db_path)  # migrated: a file, or a PostgreSQL database
    yield conn
    conn.close()


def stored_event(account_id: str, event_id: str, event_type: str = "click", verdict: Any = None
                 ) -> event_store.Event:
    now = "2026-11-23T05:00:00.000Z"
    return event_store.Event(id=event_id, account_id=account_id, type=event_type, occurred_at=now,
                             received_at=now, source="api", email="a@example.com",
                             details={"verdict": verdict} if verdict is not None else {})


def add_webhook(conn: Connection, account_id: str, **spec: Any) -> webhook_store.Webhook:
    parsed = webhook_store.parse(webhook_store.WebhookSpec, {"url": "https://example.com/hook", "active": True,
                                                             **spec})
    return webhook_store.insert(conn, webhook_store.draft(account_id, parsed))


def queue(conn: Connection, hook: webhook_store.Webhook) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in conn.execute(
        "SELECT e.id, o.next_attempt_at FROM outbox o JOIN events e ON e.seq = o.event_seq WHERE o.webhook_id = ?"
        " ORDER BY o.id", (hook.id,))]


def test_the_fan_out_follows_the_webhook_s_verdicts_as_python_states_them(conn: Connection) -> None:
    """The fan-out is SQL; events.verdict_of and Webhook.takes_verdict are the rule it must follow."""
    account, _key = accounts.create(conn, "a", "secret")
    choices = [list(c) for n in (1, 2, 3, 4) for c in itertools.combinations(event_store.VERDICTS, n)]
    hooks = [add_webhook(conn, account.id, verdicts=verdicts, wait_for_verdict=wait)
             for verdicts in choices for wait in (False, True)]
    batch = [stored_event(account.id, f"c-{n}", verdict=v) for n, v in enumerate(CLICK_VERDICTS)]
    batch += [stored_event(account.id, f"o-{n}", "open", verdict=v) for n, v in enumerate(CLICK_VERDICTS)]
    batch.append(stored_event(account.id, "d-1", "delivered", verdict="bot"))  # verdicts are for clicks and opens

    _stored, queued = outbox.store_events(conn, batch, settle_s=30)

    for hook in hooks:
        expected = [e.id for e in batch if e.type not in outbox.JUDGED or hook.wait_for_verdict
                    or hook.takes_verdict(event_store.verdict_of(e.details))]
        assert [event_id for event_id, _due in queue(conn, hook)] == expected, (hook.verdicts, hook.wait_for_verdict)
    assert queued == conn.execute("SELECT count(*) FROM outbox").fetchone()[0]


def test_a_waiting_webhook_s_clicks_are_due_after_the_window_and_its_margin(conn: Connection) -> None:
    account, _key = accounts.create(conn, "a", "secret")
    waiting = add_webhook(conn, account.id, wait_for_verdict=True)
    plain = add_webhook(conn, account.id)
    batch = [stored_event(account.id, "c-1", verdict="scanner"), stored_event(account.id, "d-1", "delivered")]
    outbox.store_events(conn, batch, settle_s=30)
    [(_, click_due), (_, delivered_due)] = queue(conn, waiting)
    [queued_at] = {row[0] for row in conn.execute("SELECT queued_at FROM outbox")}
    assert epoch_s(click_due) - epoch_s(queued_at) == pytest.approx(30 + SETTLE_MARGIN_S, abs=0.002)
    assert delivered_due == queued_at
    assert {due for _, due in queue(conn, plain)} == {queued_at}  # a webhook that does not wait: due at once
    # Without a window named, the server's default (120 s) applies.
    outbox.store_events(conn, [stored_event(account.id, "c-2")])
    [due, queued_at] = conn.execute("SELECT next_attempt_at, queued_at FROM outbox o JOIN events e"
                                    " ON e.seq = o.event_seq WHERE e.id = 'c-2' AND o.webhook_id = ?",
                                    (waiting.id,)).fetchone()
    assert epoch_s(due) - epoch_s(queued_at) == pytest.approx(120 + SETTLE_MARGIN_S, abs=0.002)


def test_an_ordered_batch_stops_at_the_first_click_still_waiting(conn: Connection) -> None:
    account, _key = accounts.create(conn, "a", "secret")
    hook = add_webhook(conn, account.id, wait_for_verdict=True, verdicts=CRM)
    outbox.store_events(conn, [stored_event(account.id, "d-1", "delivered"), stored_event(account.id, "c-1"),
                               stored_event(account.id, "d-2", "delivered")], settle_s=30)
    claimed = outbox.claim(conn, hook.id)
    assert claimed.batch is not None and [e.id for e, _ in claimed.batch.items] == ["d-1"]
    outbox.delivered(conn, claimed.batch)
    assert outbox.claim(conn, hook.id) == outbox.Claim(None)  # d-2 waits behind the click
    # Unordered, the event behind it is due and goes.
    conn.execute("UPDATE webhooks SET ordered = 0 WHERE id = ?", (hook.id,))
    claimed = outbox.claim(conn, hook.id)
    assert claimed.batch is not None and [e.id for e, _ in claimed.batch.items] == ["d-2"]


def test_at_claim_a_click_whose_verdict_is_now_excluded_leaves_the_queue(conn: Connection) -> None:
    account, _key = accounts.create(conn, "a", "secret")
    hook = add_webhook(conn, account.id, wait_for_verdict=True, verdicts=CRM)
    outbox.store_events(conn, [stored_event(account.id, "c-1", verdict="unknown"),
                               stored_event(account.id, "c-2", verdict="scanner"),
                               stored_event(account.id, "c-3", verdict="unknown"),
                               stored_event(account.id, "o-1", "open")], settle_s=0)
    conn.execute("UPDATE outbox SET next_attempt_at = queued_at")  # the window has passed
    # Settling changed two of them meanwhile: c-1 to a scanner, c-2 (first judged a scanner) to a person.
    for event_id, verdict in (("c-1", "scanner"), ("c-2", "human")):
        conn.execute(SET_VERDICT_ONLY.on(conn), (verdict, account.id, event_id))
    claimed = outbox.claim(conn, hook.id)
    assert claimed.filtered == ("scanner",)
    assert claimed.batch is not None
    assert [(e.id, e.details.get("verdict")) for e, _ in claimed.batch.items] == [
        ("c-2", "human"), ("c-3", "unknown"), ("o-1", None)]
    assert [event_id for event_id, _ in queue(conn, hook)] == ["c-2", "c-3", "o-1"]  # c-1 has no row: not dead
    assert conn.execute("SELECT count(*) FROM outbox WHERE state = 'dead'").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 4  # the event itself stays


def test_narrowing_verdicts_over_a_backlog_drains_it_in_slices(conn: Connection) -> None:
    # Clicks queued while the webhook took every verdict; then it is narrowed to people's clicks.
    account, _key = accounts.create(conn, "a", "secret")
    hook = add_webhook(conn, account.id)
    scans = [stored_event(account.id, f"s-{n}", verdict="scanner") for n in range(outbox.EXPIRY_SLICE + 50)]
    outbox.store_events(conn, [*scans, stored_event(account.id, "p-1", verdict="human")])
    conn.execute("UPDATE webhooks SET verdicts = '[\"human\",\"unknown\"]' WHERE id = ?", (hook.id,))
    # One claim takes out at most a slice, so one write never grows with the backlog.
    assert outbox.claim(conn, hook.id) == outbox.Claim(None, ("scanner",) * outbox.EXPIRY_SLICE)
    claimed = outbox.claim(conn, hook.id)
    assert claimed.filtered == ("scanner",) * 50
    assert claimed.batch is not None and [e.id for e, _ in claimed.batch.items] == ["p-1"]


# -- the webhook's settings ---------------------------------------------------------------------------


def test_every_webhook_takes_every_verdict_until_told_otherwise(proxied: Any, account: Account) -> None:
    with proxied.client() as client:
        made = create_webhook(client, account, "http://93.184.215.14/hook")
        assert (made["verdicts"], made["wait_for_verdict"]) == (["human", "unknown", "scanner", "bot"], False)
        crm = create_webhook(client, account, "http://93.184.215.14/crm", verdicts=["unknown", "human"],
                             wait_for_verdict=True)
        assert (crm["verdicts"], crm["wait_for_verdict"]) == (CRM, True)  # canonical order
        assert get_webhook(client, account, crm["id"])["verdicts"] == CRM
        listed = client.get("/v1/webhooks", headers=bearer(account)).json()["webhooks"]
        assert [(w["verdicts"], w["wait_for_verdict"]) for w in listed] == [
            (made["verdicts"], False), (CRM, True)]

        # PATCH changes only what it names.
        path = f"/v1/webhooks/{crm['id']}"
        patched = client.patch(path, json={"wait_for_verdict": False}, headers=bearer(account)).json()
        assert (patched["verdicts"], patched["wait_for_verdict"]) == (CRM, False)
        patched = client.patch(path, json={"verdicts": ["bot"]}, headers=bearer(account)).json()
        assert (patched["verdicts"], patched["wait_for_verdict"]) == (["bot"], False)
        refused = client.patch(path, json={"verdicts": ["bot", "scanners"]}, headers=bearer(account))
        assert refused.status_code == 422
        assert refused.json() == {"error": "invalid_webhook", "field": "verdicts[1]",
                                  "message": "unknown verdict 'scanners'; known: human, unknown, scanner, bot"}
        assert get_webhook(client, account, crm["id"])["verdicts"] == ["bot"]
    [row] = query(proxied.db_path, "SELECT verdicts, wait_for_verdict FROM webhooks WHERE id = ?", (crm["id"],))
    assert (row["verdicts"], row["wait_for_verdict"]) == ('["bot"]', 0)


# -- which clicks a webhook gets ------------------------------------------------------------------------


def test_a_receiver_gets_scanner_clicks_only_when_its_verdicts_include_them(proxied: Any, account: Account,
                                                                           make_sink: Any) -> None:
    everything, crm, machines = make_sink(), make_sink(), make_sink()
    with proxied.client() as client:
        create_webhook(client, account, everything.url, types=["click"])
        crm_hook = create_webhook(client, account, crm.url, types=["click"], verdicts=CRM)
        create_webhook(client, account, machines.url, types=["click"], verdicts=["scanner", "bot"])
        scan = click(client, proxied, account, SCANNER, ip=scanner_ip())
        script = click(client, proxied, account, SCRIPT, ip=person_ip())
        person = click(client, proxied, account, PERSON, ip=person_ip())
    assert (scan["verdict"], script["verdict"], person["verdict"]) == ("scanner", "bot", "unknown")

    assert ids(everything.wait_events(3)) == [scan["id"], script["id"], person["id"]]
    assert [c["details"]["verdict"] for c in everything.wait_events(3)] == ["scanner", "bot", "unknown"]
    # The CRM's queue is ordered: its first event being the person's click means the machines' two,
    # which came before it, were never queued for it.
    received = crm.wait_events(1)
    assert ids(received) == [person["id"]]
    assert received[0]["details"]["verdict"] == "unknown"
    assert [row["event_id"] for row in outbox_rows(proxied.db_path, crm_hook["id"])] == [person["id"]]
    assert ids(machines.wait_events(2)) == [scan["id"], script["id"]]
    assert machines.quiet(len(machines.requests), 0.5)  # the person's click does not follow


def test_each_format_carries_the_verdict_that_was_filtered_on(proxied: Any, account: Account, make_sink: Any) -> None:
    sinks = {fmt: make_sink() for fmt in ("optimizely", "esputnik", "arpoone")}
    with proxied.client() as client:
        for fmt, sink in sinks.items():
            create_webhook(client, account, sink.url, format=fmt, types=["click"], verdicts=["scanner"])
        scan = click(client, proxied, account, SCANNER, ip=scanner_ip())
        click(client, proxied, account, PERSON, ip=person_ip())
    [optimizely] = sinks["optimizely"].wait_events(1)
    assert optimizely["linkhubVerdict"] == "scanner" and optimizely["linkhubScore"] <= -60
    assert "scanner_network" in optimizely["linkhubReasons"]
    [esputnik] = sinks["esputnik"].wait_events(1)
    assert (esputnik["linkhubVerdict"], esputnik["linkhubReasons"]) == ("scanner", optimizely["linkhubReasons"])
    [arpoone] = sinks["arpoone"].wait_events(1)
    assert arpoone["EventDetails"]["LinkhubVerdict"] == "scanner"
    assert arpoone["EventDetails"]["IpAddress"] == query(
        proxied.db_path, "SELECT details ->> 'ip' FROM events WHERE id = ?", (scan["id"],))[0][0]


def test_a_posted_click_without_a_verdict_counts_as_unknown(proxied: Any, account: Account, make_sink: Any) -> None:
    crm, machines = make_sink(), make_sink()
    with proxied.client() as client:
        create_webhook(client, account, crm.url, verdicts=CRM)
        create_webhook(client, account, machines.url, verdicts=["scanner", "bot"])
        post_events(client, account, [
            event("c-none", "click", 0, url="https://example.com/a", details={"ip": "198.51.100.4"}),
            event("c-bot", "click", 1, url="https://example.com/a", details={"verdict": "bot"}),
            event("c-odd", "click", 2, url="https://example.com/a", details={"verdict": "robot"}),
            event("o-none", "open", 3),  # an open is chosen by its verdict too
            event("d-bot", "delivered", 4, details={"verdict": "bot"}),  # neither click nor open: no verdict
        ])
    received = crm.wait_events(4)
    assert ids(received) == ["c-none", "c-odd", "o-none", "d-bot"]
    assert [item["details"].get("verdict") for item in received] == ["unknown", "unknown", None, "bot"]
    assert ids(machines.wait_events(2)) == ["c-bot", "d-bot"]


# -- waiting for the settled verdict ------------------------------------------------------------------


def test_a_waiting_webhook_gets_the_click_after_the_window_with_its_settled_verdict(settling: Any,
                                                                                  account: Account,
                                                                                  make_sink: Any) -> None:
    crm, instant = make_sink(), make_sink()
    with settling.client() as client:
        hook = create_webhook(client, account, crm.url, types=["click"], verdicts=CRM, wait_for_verdict=True)
        create_webhook(client, account, instant.url, types=["click"])
        # A first verdict of scanner that settles to a person: a waiting webhook sends it all the same.
        scanned = click(client, settling, account, SCANNER, ip=scanner_ip())
        assert scanned["verdict"] == "scanner"
        settle_to(settling.db_path, account, scanned["id"], "human")
        person = click(client, settling, account, PERSON, ip=person_ip())

    rows = outbox_rows(settling.db_path, hook["id"])
    assert len(rows) == 2
    for row in rows:  # due after the window and its margin, not before
        assert epoch_s(row["next_attempt_at"]) - epoch_s(row["queued_at"]) == pytest.approx(
            SETTLE_S + SETTLE_MARGIN_S, abs=0.002)
    due = due_at(settling.db_path, hook["id"], scanned["id"])
    received = crm.wait_events(2, timeout=30)
    assert ids(received) == [scanned["id"], person["id"]]
    assert [c["details"]["verdict"] for c in received] == ["human", "unknown"]
    assert arrived_at(crm.requests[0]) >= due - 0.01  # not before it was due (0.01: the clocks' rounding)
    assert ids(instant.wait_events(2)) == [scanned["id"], person["id"]]  # the other webhook does not wait


def test_a_click_that_settles_to_an_excluded_verdict_is_never_sent(settling: Any, account: Account,
                                                                   make_sink: Any) -> None:
    crm = make_sink()
    with settling.client() as client:
        hook = create_webhook(client, account, crm.url, types=["click"], verdicts=CRM, wait_for_verdict=True)
        before = filtered(client, "scanner")
        burst = click(client, settling, account, PERSON, ip=person_ip())
        assert burst["verdict"] == "unknown"
        settle_to(settling.db_path, account, burst["id"], "scanner")  # within the window: later hits re-scored it
        person = click(client, settling, account, PERSON, ip=person_ip())

        # The queue is ordered, so the later click arriving means the earlier one was judged first.
        assert ids(crm.wait_events(1, timeout=30)) == [person["id"]]
        assert [row["event_id"] for row in outbox_rows(settling.db_path, hook["id"])] == [person["id"]]
        assert filtered(client, "scanner") == before + 1
    assert len(crm.requests) == 1


def test_a_burst_that_settles_into_a_scan_never_reaches_a_waiting_crm(settling: Any, account: Account,
                                                                      make_sink: Any) -> None:
    # A gateway's scanner in a browser's clothes opens every link of one email at once: alone, its
    # first hit looks like a person's; the hits right after it make the whole burst a scanner's.
    disguised = {"user-agent": CURRENT_CHROME, "accept-language": "en-US"}
    links = [f"https://example.com/{page}" for page in ("pricing", "blog/launch", "docs")]
    crm = make_sink()
    with settling.client() as client:
        hook = create_webhook(client, account, crm.url, types=["click"], verdicts=CRM, wait_for_verdict=True)
        before = filtered(client, "scanner")
        minted = post_links(client, account, outreach_body(links, prospect="p-burst", email="p-burst@corp.example"))
        for short in minted.json()["data"].values():
            answer = client.get(short[len(settling.url):], headers={**disguised, "x-forwarded-for": "198.51.100.80"})
            assert answer.status_code == 302
        burst = [row[0] for row in query(settling.db_path, "SELECT verdict FROM clicks WHERE prospect_id = 'p-burst'"
                                                           " ORDER BY seq")]
        assert burst == ["scanner"] * 3
        assert query(settling.db_path, "SELECT count(*) FROM verdict_changes")[0][0] >= 1  # the first one changed
        person = click(client, settling, account, PERSON, ip=person_ip())

        # Ordered: the person's click, queued after the burst, arriving means the burst was judged first.
        assert ids(crm.wait_events(1, timeout=30)) == [person["id"]]
        assert filtered(client, "scanner") == before + 3
    assert [row["event_id"] for row in outbox_rows(settling.db_path, hook["id"])] == [person["id"]]


def test_other_events_of_a_waiting_webhook_go_at_once_unless_an_ordered_click_holds_them(
        settling: Any, account: Account, make_sink: Any) -> None:
    ordered, unordered = make_sink(), make_sink()
    with settling.client() as client:
        ordered_hook = create_webhook(client, account, ordered.url, verdicts=CRM, wait_for_verdict=True)
        unordered_hook = create_webhook(client, account, unordered.url, verdicts=CRM, wait_for_verdict=True,
                                        ordered=False)
        person = click(client, settling, account, PERSON, ip=person_ip())
        post_events(client, account, [event("b-1", "bounce", 0, details={"category": "hard"})])

    # Unordered: the bounce passes the waiting click.
    assert ids(unordered.wait_events(2, timeout=30)) == ["b-1", person["id"]]
    assert arrived_at(unordered.requests[-1]) >= due_at(settling.db_path, unordered_hook["id"], person["id"]) - 0.01
    # Ordered: the bounce waits behind the click, and both go together once the click is due.
    together = ordered.wait_events(2, timeout=30)
    assert ids(together) == [person["id"], "b-1"]
    assert arrived_at(ordered.requests[0]) >= due_at(settling.db_path, ordered_hook["id"], person["id"]) - 0.01


def test_ingested_clicks_wait_the_same_window(settling: Any, account: Account, make_sink: Any) -> None:
    crm = make_sink()
    with settling.client() as client:
        hook = create_webhook(client, account, crm.url, verdicts=CRM, wait_for_verdict=True)
        post_events(client, account, [event("c-1", "click", 0, url="https://example.com/a"),
                                      event("c-2", "click", 1, url="https://example.com/b")])
        settle_to(settling.db_path, account, "c-1", "bot")
    rows = outbox_rows(settling.db_path, hook["id"])
    assert all(epoch_s(r["next_attempt_at"]) - epoch_s(r["queued_at"]) == pytest.approx(SETTLE_S + SETTLE_MARGIN_S,
                                                                                         abs=0.002) for r in rows)
    assert ids(crm.wait_events(1, timeout=30)) == ["c-2"]
    assert [r["event_id"] for r in outbox_rows(settling.db_path, hook["id"])] == ["c-2"]


def test_replay_sends_only_the_clicks_the_webhook_takes(proxied: Any, account: Account, make_sink: Any) -> None:
    crm = make_sink()
    with proxied.client() as client:
        post_events(client, account, [event("r-1", "click", 0, url="https://example.com/a",
                                            details={"verdict": "scanner"}),
                                      event("r-2", "click", 1, url="https://example.com/a",
                                            details={"verdict": "human"})])
        hook = create_webhook(client, account, crm.url, verdicts=CRM)  # after the events: it has none of them
    replayed = linkhub("outbox", "replay", "--webhook", hook["id"], "--json", "--db", str(proxied.db_path))
    assert replayed.returncode == 0, replayed.output
    assert json.loads(replayed.stdout)["events"] == 1
    assert ids(crm.wait_events(1)) == ["r-2"]
    assert [r["event_id"] for r in outbox_rows(proxied.db_path, hook["id"])] == ["r-2"]
