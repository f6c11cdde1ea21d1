"""Webhook delivery against hostile targets and data: SSRF through IPv6 forms that carry an IPv4
address, credentials quoted in exception texts, receivers that ask for instant retries, events
their format cannot render, and `ordered` switched on while batches are in flight.

Two servers serve the whole module: a strict app in-process (private targets refused, as in
production) for the SSRF tests, and a real server that may deliver to receivers on 127.0.0.1 for
the others (retry timing, batches in flight, what its log shows). Every address here is an IP
literal: nothing is resolved through DNS.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from linkhub.core import events as event_store
from linkhub.core import outbox as outbox_store
from linkhub.core import webhooks as webhook_store
from linkhub.delivery import loop, sender
from linkhub.settings import Settings
from linkhub.store import connect
from linkhub.store.schema import migrate

from conftest import Account, Server, create_account, linkhub, query, start_server
from delivery_support import bearer, create_webhook, deliveries, events, ids_of, outbox, post_events, wait_until
from inprocess import InProcess
from sink import Answer

PUBLIC_URL = "http://93.184.215.14/hook"  # a public IP literal: never connected to (the webhook stays inactive)


def _database(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    path = tmp_path_factory.mktemp(name) / "linkhub.db"
    conn = connect(path)
    migrate(conn)
    conn.close()
    return path


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    app = InProcess(Settings(db=_database(tmp_path_factory, "strict")))
    yield app
    assert app.stop() == 0


@pytest.fixture(scope="module")
def lenient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(_database(tmp_path_factory, "lenient"), "--allow-private-targets")
    yield server
    assert server.stop() == 0


def _stored_webhook(db_path: Path, account: Account, url: str, **columns: Any) -> webhook_store.Webhook:
    """A webhook written straight into the database (as an older release, or a restore, may have left it)."""
    conn = connect(db_path)
    try:
        spec = webhook_store.parse(webhook_store.WebhookSpec, {
            "url": PUBLIC_URL, "active": True, "retry": {"policy": "fixed", "interval_s": 1}})
        hook = webhook_store.insert(conn, webhook_store.draft(account.id, spec))
        assignments = {"url": url, **columns}
        conn.execute(f"UPDATE webhooks SET {', '.join(f'{name} = ?' for name in assignments)} WHERE id = ?",
                     (*assignments.values(), hook.id))
    finally:
        conn.close()
    return hook


# -- SSRF: IPv6 forms that carry an IPv4 address, and other non-public IPv6 ----------------------

# (URL, what the refusal must name): every IPv6 form that embeds a non-public IPv4 address.
EMBEDDED = [
    ("http://[::127.0.0.1]/hook", "127.0.0.1"),  # IPv4-compatible, dotted
    ("http://[::7f00:1]:8080/hook", "127.0.0.1"),  # IPv4-compatible, hex
    ("http://[::ffff:169.254.169.254]/latest/", "169.254.169.254"),  # IPv4-mapped
    ("http://[::ffff:0:a00:1]/", "10.0.0.1"),  # IPv4-translated (SIIT)
    ("http://[64:ff9b::a9fe:a9fe]/", "169.254.169.254"),  # NAT64, well-known prefix
    ("http://[64:ff9b::7f00:1]/", "127.0.0.1"),
    ("http://[2002:c0a8:101::1]/", "192.168.1.1"),  # 6to4
    ("http://[2002:7f00:1::]/", "127.0.0.1"),
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "127.0.0.1"),  # Teredo: the client, de-obfuscated
]
# A dotted IPv4 address with the trailing dot of an absolute name is still that address. (The numeric
# forms browsers and inet_aton read, 127.1 or 0x7f.1, are refused as hosts before any address check.)
TRAILING_DOT = ("http://169.254.169.254./latest/", "169.254.169.254")
# Non-public IPv6 that `ipaddress.is_global` does not refuse on every Python release.
OTHER_V6 = [
    "http://[::]/",  # unspecified
    "http://[64:ff9b:1::808:808]/",  # local-use NAT64: refused whatever it carries
    "http://[fec0::1]/",  # site-local
    "http://[100::1]/",  # discard-only
    "http://[5f00::1]/",  # SRv6 SIDs
    "http://[3fff::1]/",  # documentation
    "http://[2001:db8::1]/",  # documentation
    "http://[ff02::1]/",  # multicast
]


def _strict_account(strict: InProcess) -> Account:
    return create_account(strict.db_path)


@pytest.mark.parametrize(("url", "named"), [*EMBEDDED, TRAILING_DOT, *((url, None) for url in OTHER_V6)])
def test_create_refuses_other_forms_of_non_public_addresses(strict, url, named):
    account = _strict_account(strict)
    with strict.client() as client:
        answer = client.post("/v1/webhooks", json={"url": url}, headers=bearer(account))
    assert answer.status_code == 422, answer.text
    document = answer.json()
    assert (document["error"], document["field"]) == ("target_refused", "url"), document
    assert "not a public address" in document["message"] or "not a valid IPv4 address" in document["message"]
    if named:
        assert named in document["message"], document["message"]
    assert query(strict.db_path, "SELECT count(*) FROM webhooks WHERE account_id = ?", (account.id,))[0][0] == 0


def test_update_refuses_ipv6_forms_of_non_public_addresses(strict):
    account = _strict_account(strict)
    with strict.client() as client:
        made = client.post("/v1/webhooks", json={"url": PUBLIC_URL}, headers=bearer(account))
        assert made.status_code == 201, made.text
        webhook_id = made.json()["id"]
        refused = {}
        for url, named in EMBEDDED:
            answer = client.patch(f"/v1/webhooks/{webhook_id}", json={"url": url}, headers=bearer(account))
            refused[url] = (answer.status_code, answer.json().get("error"), answer.json().get("field"),
                            named in answer.json().get("message", ""))
        shown = client.get(f"/v1/webhooks/{webhook_id}", headers=bearer(account)).json()
    assert refused == {url: (422, "target_refused", "url", True) for url, _ in EMBEDDED}
    assert shown["url"] == PUBLIC_URL


def test_cli_create_refuses_an_ipv4_compatible_loopback(strict):
    account = _strict_account(strict)
    answer = linkhub("webhooks", "create", "--account", account.id, "--url", "http://[::7f00:1]/hook",
                 "--db", str(strict.db_path))
    assert answer.returncode != 0
    assert "127.0.0.1" in answer.stderr and "not a public address" in answer.stderr, answer.stderr
    assert "Traceback" not in answer.stderr
    assert query(strict.db_path, "SELECT count(*) FROM webhooks WHERE account_id = ?", (account.id,))[0][0] == 0


def test_stored_webhooks_with_embedded_private_addresses_are_refused_at_delivery(strict, make_sink):
    """URLs stored earlier (another setting, an older release) are checked again on every delivery."""
    account = _strict_account(strict)
    # The numeric IPv4 forms are refused at create as hosts (webhook URL validation), but a stored
    # one must still never reach a resolver or the loopback receiver.
    urls = ["http://[::127.0.0.1]:{port}/hook", "http://[::ffff:127.0.0.1]:{port}/hook",
            "http://[64:ff9b::7f00:1]:{port}/hook", "http://[2002:7f00:1::]:{port}/hook",
            "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{port}/hook",
            "http://2130706433:{port}/hook", "http://0x7f.1:{port}/hook", "http://0177.0.0.1:{port}/hook",
            "http://127.1:{port}/hook"]
    sink = make_sink()
    hooks = {url: _stored_webhook(strict.db_path, account, url.format(port=sink.port)) for url in urls}
    with strict.client() as client:
        post_events(client, account, events("ssrf", 1))
        logs = {url: wait_until(lambda h=hook: deliveries(client, account, h.id), what=f"a refused attempt to {url}")
                for url, hook in hooks.items()}
    for url, log in logs.items():
        first = log[0]
        assert first["status_code"] is None, (url, first)
        assert "refused target" in first["error"] and "127.0.0.1" in first["error"], (url, first)
        [row] = outbox(strict.db_path, hooks[url].id)
        assert row["state"] in ("pending", "sending") and "refused target" in row["last_error"], row
    assert sink.requests == []  # refused before connecting


PUBLIC = ["8.8.8.8", "93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
NOT_PUBLIC = ["127.0.0.1", "10.1.2.3", "100.64.0.1", "169.254.1.1", "192.0.0.8", "224.0.0.1", "255.255.255.255",
              "::1", *(url.split("[", 1)[1].split("]", 1)[0] for url, _ in EMBEDDED),
              *(url.split("[", 1)[1].split("]", 1)[0] for url in OTHER_V6), "fe80::1%eth0", "fc00::1"]


@pytest.mark.parametrize("address", PUBLIC)
def test_classifier_lets_public_addresses_through(address):
    assert sender.non_public_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_classifier_refuses_non_public_addresses(address):
    reason = sender.non_public_reason(ipaddress.ip_address(address))
    assert reason is not None and "not a public address" in reason


# -- credentials never leak through exception texts -----------------------------------------------

# Each makes httpx refuse the request, and the first two make h11 quote the value it refused.
BAD_CREDENTIALS = {
    "bearer": ({"type": "bearer", "token": "Sekrit-Bearer-7731 "}, "Sekrit-Bearer-7731"),  # trailing space
    "header": ({"type": "header", "name": "X-Api-Key", "value": "Sekrit-Header-5520\r\nX-Evil: 1"},
               "Sekrit-Header-5520"),
    "non-ascii": ({"type": "header", "name": "X-Api-Key", "value": "Sekrit-Кey-9901"}, "Sekrit-"),
}


def test_credentials_are_redacted_from_errors_logs_and_answers(lenient, make_sink):
    """Stored straight in the database (validation at create would refuse them now)."""
    account = create_account(lenient.db_path)
    sink = make_sink()
    hooks = {kind: _stored_webhook(lenient.db_path, account, sink.url, auth=json.dumps(auth))
             for kind, (auth, _) in BAD_CREDENTIALS.items()}
    with lenient.client() as client:
        post_events(client, account, events("cred", 1))
        logs = {kind: wait_until(lambda h=hook: deliveries(client, account, h.id), what=f"a failed {kind} attempt")
                for kind, hook in hooks.items()}
        listed = {kind: client.get(f"/v1/webhooks/{hook.id}/deliveries", headers=bearer(account)).text
                  for kind, hook in hooks.items()}
        verified = {kind: client.post(f"/v1/webhooks/{hook.id}/verify", headers=bearer(account))
                    for kind, hook in hooks.items()}
    by_cli = {kind: linkhub("webhooks", "verify", hook.id, "--allow-private-targets", "--db", str(lenient.db_path))
              for kind, hook in hooks.items()}
    # The failures really came from the credentials (else this test would prove nothing).
    assert "Illegal header value" in logs["bearer"][0]["error"] and "[redacted]" in logs["bearer"][0]["error"]
    assert "Illegal header value" in logs["header"][0]["error"] and "[redacted]" in logs["header"][0]["error"]
    assert "could not build the request" in logs["non-ascii"][0]["error"], logs["non-ascii"]
    assert {kind: answer.status_code for kind, answer in verified.items()} == dict.fromkeys(BAD_CREDENTIALS, 200)
    assert all(answer.json()["ok"] is False and answer.json()["error"] for answer in verified.values())
    assert {kind: run.returncode for kind, run in by_cli.items()} == dict.fromkeys(BAD_CREDENTIALS, 1)

    stored = [json.dumps([tuple(row) for row in query(lenient.db_path, sql, (hook.id,))])
              for hook in hooks.values()
              for sql in ("SELECT * FROM deliveries WHERE webhook_id = ?",
                          "SELECT last_error FROM outbox WHERE webhook_id = ?")]
    places = {"deliveries and outbox rows": "\n".join(stored), "server log": lenient.output,
              "GET …/deliveries": "\n".join(listed.values()),
              "POST …/verify": "\n".join(answer.text for answer in verified.values()),
              "CLI verify": "\n".join(run.stdout + run.stderr for run in by_cli.values())}
    leaks = [(place, secret) for place, text in places.items()
             for _, secret in BAD_CREDENTIALS.values() if secret in text]
    assert not leaks, leaks
    assert "Traceback" not in lenient.output


def test_redact_removes_every_form_of_a_credential():
    hook = webhook_store.Webhook(
        id="wh_x", account_id="acc", url=PUBLIC_URL, types=(), format="linkhub",
        auth={"type": "basic", "username": "hook-user", "password": "p@ss\nword"}, secret="whsec_c2VjcmV0",
        batch_size=1, retry_policy="fixed", retry_interval_s=1, max_age_s=60, timeout_s=10, ordered=True,
        description=None, status="active", status_reason=None, created_at="", updated_at="")
    header = sender.auth_headers(hook.auth)["Authorization"]
    text = (f"Illegal header value {header.encode()!r}; password {hook.auth['password']!r} raw "
            f"{hook.auth['password']} secret {hook.secret}")
    redacted = sender.redact(text, hook)
    assert "p@ss" not in redacted and header.split()[1] not in redacted and "c2VjcmV0" not in redacted, redacted
    assert redacted.startswith("Illegal header value")


# -- hostile receivers: Retry-After ----------------------------------------------------------------

POLICY_S = 30  # the webhooks' fixed retry interval: the floor of any Retry-After


def test_retry_after_zero_negative_or_past_never_retries_sooner_than_the_policy(lenient, make_sink):
    account = create_account(lenient.db_path)
    answers = {
        "zero": Answer(429, headers={"Retry-After": "0"}),
        "past date": Answer(503, headers={"Retry-After": formatdate(0, usegmt=True)}),
        "negative": Answer(429, headers={"Retry-After": "-5"}),
        "superscript": Answer(503, headers={"Retry-After": "²"}),
        "huge": Answer(503, headers={"Retry-After": "9" * 400}),
    }
    sinks = {name: make_sink() for name in answers}
    for name, answer in answers.items():
        sinks[name].default = answer
    with lenient.client() as client:
        hooks = {name: create_webhook(client, account, sink.url, retry={"policy": "fixed", "interval_s": POLICY_S})
                 for name, sink in sinks.items()}
        post_events(client, account, events("ra", 1))

        def recorded(hook_id: str) -> dict[str, Any] | None:
            rows = outbox(lenient.db_path, hook_id)
            return rows[0] if rows and rows[0]["state"] == "pending" and rows[0]["last_error"] else None

        rows = {name: wait_until(lambda h=hook: recorded(h["id"]), what=f"the {name} failure recorded")
                for name, hook in hooks.items()}
    # Within a window far longer than a tight loop needs, each receiver saw its one request.
    assert sinks["zero"].quiet(1, within=2.0), sinks["zero"].describe()
    assert all(len(sink.requests) == 1 for sink in sinks.values()), {n: len(s.requests) for n, s in sinks.items()}

    def delay(row: dict[str, Any]) -> float:
        return (datetime.fromisoformat(row["next_attempt_at"]) - datetime.fromisoformat(row["last_attempt_at"])
                ).total_seconds()

    delays = {name: delay(row) for name, row in rows.items()}
    assert all(POLICY_S <= delays[name] < POLICY_S + 60 for name in ("zero", "past date", "negative",
                                                                       "superscript")), delays
    assert 3600 <= delays["huge"] < 3600 + 60, delays  # capped at an hour


# -- poison events ------------------------------------------------------------------------------


def _stored_event(account: Account, event_id: str, n: int, **fields: Any) -> event_store.Event:
    values: dict[str, Any] = {"occurred_at": f"2026-03-02T10:00:{n:02d}.000Z", **fields}
    return event_store.Event(id=event_id, account_id=account.id, type="open", received_at="2026-03-02T10:01:00.000Z",
                             source="api", email="jo@example.com", **values)


def test_an_event_its_format_cannot_render_goes_dead_and_holds_nothing_back(lenient, make_sink):
    """Events an older release stored broken: a year below 1000 (which no provider format can render)
    and details that are not JSON. Ordered webhooks; the broken events sit between good ones."""
    account = create_account(lenient.db_path)
    batched, single = make_sink(), make_sink()
    with lenient.client() as client:
        one = create_webhook(client, account, batched.url, format="optimizely", batch_size=10)
        each = create_webhook(client, account, single.url, format="optimizely", batch_size=1)
    good = [f"good-{i}" for i in range(4)]
    stored = [_stored_event(account, good[0], 0),
              _stored_event(account, "bad-year", 1, occurred_at="999-06-01T00:00:00.000Z"),
              _stored_event(account, good[1], 2),
              _stored_event(account, "bad-details", 3),
              _stored_event(account, good[2], 4),
              _stored_event(account, good[3], 5)]
    conn = connect(lenient.db_path)
    try:
        conn.execute("BEGIN IMMEDIATE")  # one transaction: the server sees the queue whole
        outbox_store.store_events(conn, stored)
        conn.execute("UPDATE events SET details = '{not json' WHERE account_id = ? AND id = 'bad-details'",
                     (account.id,))
        conn.execute("COMMIT")
    finally:
        conn.close()
    assert ids_of(batched.wait_events(4)) == good
    assert ids_of(single.wait_events(4)) == good
    # The batch went out once, without its broken events (nothing failed, nothing was retried).
    assert [ids_of(r.json()) for r in batched.requests] == [good]
    for hook in (one, each):
        rows = wait_until(lambda h=hook: (rows := outbox(lenient.db_path, h["id"]))
                          and all(r["state"] in ("delivered", "dead") for r in rows) and rows,
                          what="every row settled")
        states = {row["event_id"]: (row["state"], row["last_error"] or "") for row in rows}
        assert {eid: state for eid, (state, _) in states.items()} == {
            **dict.fromkeys(good, "delivered"), "bad-year": "dead", "bad-details": "dead"}, states
        assert "optimizely format cannot render" in states["bad-year"][1], states
        assert "cannot be read" in states["bad-details"][1], states


def test_an_enormous_max_age_does_not_wedge_the_queue(lenient, make_sink):
    """A max_age_s of 10**12 s (refused by the API now, stored by older releases): the expiry cutoff it
    implies is not a date, and the queue must still flow."""
    account = create_account(lenient.db_path)
    sink = make_sink()
    with lenient.client() as client:
        hook = create_webhook(client, account, sink.url)
        conn = connect(lenient.db_path)
        conn.execute("UPDATE webhooks SET max_age_s = ? WHERE id = ?", (10**12, hook["id"]))
        conn.close()
        post_events(client, account, events("age", 2))
    assert ids_of(sink.wait_events(2)) == ["age-0", "age-1"]


# -- ordering under change ---------------------------------------------------------------------


def test_switching_to_ordered_mid_delivery_sends_each_batch_once_and_in_order(lenient, make_sink):
    """Four unordered batches are held in flight at the receiver while the webhook becomes ordered
    (with another batch size). None of them may be sent again, and from then on batches go one at
    a time in queue order."""
    account = create_account(lenient.db_path)
    sink = make_sink()
    hold = sink.hang()
    sink.script(*(Answer(200, hold=hold) for _ in range(4)))
    sent = events("o", 200)
    with lenient.client() as client:
        hook = create_webhook(client, account, sink.url, ordered=False, batch_size=5)
        post_events(client, account, sent)
        sink.wait_for(4)  # four lanes, each with a batch in flight
        answer = client.patch(f"/v1/webhooks/{hook['id']}", json={"ordered": True, "batch_size": 7},
                              headers=bearer(account))
        assert answer.status_code == 200, answer.text
        before_switch = len(sink.requests)
        hold.set()
        sink.wait_until(lambda requests: len({e["id"] for r in requests if r.answered == 200 for e in r.json()})
                        >= len(sent), what="every event delivered")
        wait_until(lambda: all(r["state"] == "delivered" for r in outbox(lenient.db_path, hook["id"])),
                   what="every row delivered")
    arrivals = Counter(item["id"] for r in sink.requests for item in r.json())
    twice = {event_id: count for event_id, count in arrivals.items() if count != 1}
    assert not twice, f"events sent more than once: {twice}"
    assert set(arrivals) == set(ids_of(sent))
    assert before_switch == 4
    index = {event_id: i for i, event_id in enumerate(ids_of(sent))}
    after = [index[item["id"]] for r in sink.requests[before_switch:] for item in r.json()]
    inversions = sum(1 for a, b in itertools.pairwise(after) if b < a)
    assert inversions == 0, f"{inversions} inversions among batches sent after the switch"
    assert all(len(r.json()) <= 7 for r in sink.requests[before_switch:])


def test_switching_ordered_off_mid_delivery_goes_parallel_from_the_next_batch(lenient, make_sink):
    """The receiver lets requests through only once 4 are in flight together: after the switch,
    only parallel batches get through (one lane carrying on alone would wait at the gate)."""
    account = create_account(lenient.db_path)
    sink = make_sink()
    hold = sink.hang()
    sink.script(Answer(200, hold=hold))
    sent = events("par", 9)
    with lenient.client() as client:
        hook = create_webhook(client, account, sink.url, batch_size=1)  # ordered
        post_events(client, account, sent)
        sink.wait_for(1)
        answer = client.patch(f"/v1/webhooks/{hook['id']}", json={"ordered": False}, headers=bearer(account))
        assert answer.status_code == 200, answer.text
        sink.gate = loop.PER_WEBHOOK_CONCURRENCY
        hold.set()
        received = sink.wait_events(len(sent))
    assert sorted(ids_of(received)) == sorted(ids_of(sent)) and len(received) == len(sent)
    assert sink.max_in_flight == loop.PER_WEBHOOK_CONCURRENCY, sink.describe()
