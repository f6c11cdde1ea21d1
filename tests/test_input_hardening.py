"""Input linkhub must refuse with a clear 4xx (and input it must take), against a real app.

Times outside what linkhub stores, JSON nested too deep, unknown query parameters,
Outreach's nulls, and request bodies that never arrive whole.
"""

from __future__ import annotations

import json
import random
import re
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from linkhub.core import events, formats
from linkhub.store import connect
from linkhub.store.schema import migrate
from linkhub.util.times import rfc3339_to_ms

from conftest import ON_POSTGRESQL, Account, Server, create_account, linkhub, outreach_body, post_links, query, sign
from delivery_support import all_in, create_webhook, wait_until
from inprocess import InProcess

STORED_TIME = re.compile(r"^[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$")
# A public address literal: accepted without a DNS lookup, and never contacted (the webhook stays inactive).
PUBLIC_URL = "http://93.184.215.14/hook"
OUT_OF_RANGE = [
    "9999-12-31T23:59:59-05:00",  # past year 9999 once in UTC (overflowed: a 500)
    "0001-01-01T00:00:00+01:00",  # before year 1 once in UTC (overflowed: a 500)
    "0999-06-01T00:00:00Z",  # was stored as '999-06-01…'
    "0999-12-31T23:59:59.999Z",
]
NOT_RFC3339 = ["2026-W47-1T00:00:00Z", "2026-11-23T09:15+01:00", "2026-11-23T09:15:02+0100", "2026-11-23T09:15:02"]


def bearer(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.api_key}"}


def an_event(**fields: Any) -> dict[str, Any]:
    return {"type": "open", "occurred_at": "2026-11-23T09:15:02Z", "email": "ann@example.com", **fields}


def stored_events(db_path: Path, account: Account) -> list[Any]:
    return query(db_path, f"SELECT {events.PUBLIC_COLUMNS} FROM events WHERE account_id = ? ORDER BY seq",
                 (account.id,))


def nested(depth: int, leaf: Any = 1) -> Any:
    """A value `depth` levels of arrays and objects deep (alternating), around `leaf`."""
    value = leaf
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


def nested_json(depth: int) -> str:
    """`nested(depth)` as JSON text, built as text: json.dumps cannot go past ~1000 levels."""
    opens = "".join('{"k":' if level % 2 else "[" for level in reversed(range(depth)))
    closes = "".join("}" if level % 2 else "]" for level in range(depth))
    return opens + "1" + closes


# -- times ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("moment", OUT_OF_RANGE + NOT_RFC3339)
def test_an_event_time_linkhub_cannot_store_is_a_422_naming_the_field(app: InProcess, db_path: Path, account: Account,
                                                                       moment: str) -> None:
    body = [an_event(), an_event(occurred_at=moment)]
    with app.client() as client:
        answer = client.post("/v1/events", json=body, headers=bearer(account))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_event"
    assert (answer.json()["index"], answer.json()["field"]) == (1, "occurred_at")
    assert stored_events(db_path, account) == []  # all or nothing


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("moment", OUT_OF_RANGE + NOT_RFC3339)
def test_a_since_or_until_linkhub_cannot_compare_is_a_422_naming_it(app: InProcess, account: Account, name: str,
                                                                    moment: str) -> None:
    with app.client() as client:
        answer = client.get("/v1/events", params={name: moment}, headers=bearer(account))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_parameter"
    assert answer.json()["field"] == name


def test_times_at_the_edges_of_the_range_are_stored_in_the_documented_form_and_sort_as_text(
        app: InProcess, db_path: Path, account: Account) -> None:
    sent = {
        "0999-12-31T23:30:00-01:00": "1000-01-01T00:30:00.000Z",  # year 999 locally, 1000 in UTC
        "1000-01-01T00:00:00Z": "1000-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.9999Z": "9999-12-31T23:59:59.999Z",
        "9999-12-31T23:59:59+00:00": "9999-12-31T23:59:59.000Z",
        "2026-11-23t10:15:02.5+01:00": "2026-11-23T09:15:02.500Z",
        "2026-11-23 09:15:02Z": "2026-11-23T09:15:02.000Z",
    }
    with app.client() as client:
        answer = client.post("/v1/events", json=[an_event(occurred_at=t) for t in sent], headers=bearer(account))
        assert answer.status_code == 202, answer.text
        read = client.get("/v1/events", headers=bearer(account))
        early = client.get("/v1/events", params={"until": "1000-01-01T00:00:00.001Z"}, headers=bearer(account))
        late = client.get("/v1/events", params={"since": "9999-12-31T23:59:59.5Z"}, headers=bearer(account))
    rows = stored_events(db_path, account)
    assert [row["occurred_at"] for row in rows] == list(sent.values())
    assert all(STORED_TIME.match(row["occurred_at"]) for row in rows)
    by_text = sorted(row["occurred_at"] for row in rows)
    by_time = [row["occurred_at"] for row in sorted(rows, key=lambda row: rfc3339_to_ms(row["occurred_at"]))]
    assert by_text == by_time
    assert read.status_code == 200 and [e["occurred_at"] for e in read.json()["events"]] == list(sent.values())
    assert [e["occurred_at"] for e in early.json()["events"]] == ["1000-01-01T00:00:00.000Z"]
    assert [e["occurred_at"] for e in late.json()["events"]] == ["9999-12-31T23:59:59.999Z"]
    for fmt in formats.FORMATS:  # what a webhook of each format would be sent
        items = [(events.from_row(row), 1) for row in rows]
        items = [(event, attempt) for event, attempt in items if event.type in formats.SUPPORTED_TYPES[fmt]]
        assert json.loads(formats.render_batch(fmt, items)), fmt


def test_events_at_the_edges_with_deep_details_are_delivered_in_every_format(make_app: Any, db_path: Path,
                                                                             make_receiver: Any) -> None:
    # A max_age_s of three thousand years (the API now refuses more than ten, but an older release
    # stored whatever it was given) puts the expiry cut-off before year 1000: "never", not an error.
    # PostgreSQL's INTEGER column holds at most 2**31 - 1 (68 years): its edge is that.
    max_age_s = 2**31 - 1 if ON_POSTGRESQL else 10**11
    app = make_app(allow_private_targets=True)
    account = create_account(db_path)
    batch = [
        an_event(type=kind, id=f"{kind}-{n}", occurred_at=moment, details={"k": nested(61)})
        for n, moment in enumerate(["1000-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"])
        for kind in ("open", "click", "bounce", "unsubscribe")
    ]
    with app.client() as client:
        hooks = {fmt: create_webhook(client, account, make_receiver().url, format=fmt)["id"]
                 for fmt in formats.FORMATS}
        conn = connect(db_path)
        conn.execute("UPDATE webhooks SET max_age_s = ?", (max_age_s,))
        conn.close()
        assert client.post("/v1/events", json=batch, headers=bearer(account)).status_code == 202
    for fmt, webhook_id in hooks.items():
        count = sum(1 for item in batch if item["type"] in formats.SUPPORTED_TYPES[fmt])
        assert count, fmt
        wait_until(all_in(db_path, webhook_id, "delivered", count), what=f"{fmt}: {count} delivered")
    assert "Traceback" not in app.output


@pytest.mark.parametrize("flag", ["--since", "--until"])
@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00", "0999-06-01T00:00:00Z"])
def test_outbox_replay_refuses_a_time_outside_the_range_in_one_line(tmp_path: Path, flag: str, moment: str) -> None:
    path = tmp_path / "cli.db"
    conn = connect(path)
    migrate(conn)
    conn.close()
    result = linkhub("outbox", "replay", "--webhook", "wh_none", flag, moment, "--db", str(path))
    assert result.returncode == 2, result.stderr
    assert flag in result.stderr and "supported range" in result.stderr
    assert "Traceback" not in result.stderr


# -- nesting -------------------------------------------------------------------------------------


def test_event_details_nested_to_the_limit_are_stored_and_read_back(app: InProcess, db_path: Path,
                                                                    account: Account) -> None:
    # The batch array, the event object and `details` are three of the 64 levels.
    details = {"k": nested(61)}
    with app.client() as client:
        answer = client.post("/v1/events", json=[an_event(details=details)], headers=bearer(account))
        assert answer.status_code == 202, answer.text
        read = client.get("/v1/events", headers=bearer(account))
    assert read.status_code == 200
    assert read.json()["events"][0]["details"] == details
    event = events.from_row(stored_events(db_path, account)[0])
    for fmt in formats.FORMATS:
        assert formats.render_batch(fmt, [(event, 1)]), fmt


@pytest.mark.parametrize("depth", [62, 100, 990, 100_000])
def test_event_details_nested_too_deep_are_a_400_saying_where(app: InProcess, db_path: Path, account: Account,
                                                              depth: int) -> None:
    body = json.dumps([an_event(), an_event(details={"k": "DEEP"})]).replace('"DEEP"', nested_json(depth))
    with app.client() as client:
        answer = client.post("/v1/events", content=body, headers=bearer(account))
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["error"] == "too_deep" and error["max_depth"] == 64
    assert error["path"].startswith("$[1].details.k.k") or error["path"].startswith("$[1].details.k[0].k")
    assert error["path"].count(".") + error["path"].count("[") == 64  # one step per enclosing level
    assert body.encode()[error["offset"]:error["offset"] + 1] in (b"[", b"{")
    assert stored_events(db_path, account) == []


def test_a_long_body_too_deep_at_its_end_is_refused_without_its_path(app: InProcess, db_path: Path,
                                                                    account: Account) -> None:
    wide = json.dumps([an_event(details={"many": ["x"] * 200_000}), an_event(details={"k": "DEEP"})])
    with app.client() as client:
        answer = client.post("/v1/events", content=wide.replace('"DEEP"', nested_json(70)), headers=bearer(account))
    assert answer.status_code == 400, answer.text
    assert (answer.json()["error"], answer.json()["path"], answer.json()["offset"]) == ("too_deep", "$", None)
    assert stored_events(db_path, account) == []


def _depth(value: Any) -> int:
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    return 0 if children is None else 1 + max(map(_depth, children), default=0)


def _random_value(rng: random.Random, budget: int) -> Any:
    """A value of about `budget` nodes whose strings are full of brackets, quotes and escapes."""
    pieces = ["[", "]", "{", "}", '"', "\\", "a", ",", ":", "\\\\", '\\"', "\n", "é"]
    text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
    if budget <= 1 or rng.random() < 0.2:
        return rng.choice([text, 1, None, True, 2.5])
    parts = [_random_value(rng, budget // 3) for _ in range(rng.randint(1, 3))]
    return parts if rng.random() < 0.5 else {f"{text}{n}": part for n, part in enumerate(parts)}


def test_nesting_is_measured_as_json_nests_whatever_the_strings_hold(app: InProcess, account: Account) -> None:
    rng = random.Random(12)
    with app.client(headers=bearer(account)) as client:
        for _ in range(150):
            value = _random_value(rng, 30)
            for _ in range(rng.randint(55, 66)):  # a chain near the limit, with siblings and strings
                value = [value, _random_value(rng, 2)] if rng.random() < 0.5 else {'"[k': value, "]": "{"}
            details = {"v": value}
            answer = client.post("/v1/events", content=json.dumps([an_event(details=details)],
                                                                  ensure_ascii=rng.random() < 0.5))
            expected = 202 if 2 + _depth(details) <= 64 else 400
            assert answer.status_code == expected, (2 + _depth(details), answer.text)


def test_brackets_inside_strings_do_not_count_as_nesting(app: InProcess, db_path: Path, account: Account) -> None:
    text = "[{" * 500 + '\\"[{'
    with app.client() as client:
        answer = client.post("/v1/events", json=[an_event(details={"note": text})] * 3, headers=bearer(account))
    assert answer.status_code == 202, answer.text


@pytest.mark.parametrize("depth", [65, 100_000])
def test_a_signed_outreach_call_nested_too_deep_is_a_400_even_in_an_ignored_field(app: InProcess, db_path: Path,
                                                                                 account: Account, depth: int) -> None:
    body = outreach_body(["https://example.com/a"])
    body["meta"]["extra"] = "DEEP"  # the body and meta are two levels
    with app.client() as client:
        answer = post_links(client, account, json.dumps(body).replace('"DEEP"', nested_json(depth - 2)).encode())
        within = outreach_body(["https://example.com/a"])
        within["meta"]["extra"] = nested(62)
        accepted = post_links(client, account, json.dumps(within).encode())
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "too_deep"
    assert answer.json()["path"].startswith("$.meta.extra")
    assert accepted.status_code == 200, accepted.text


def test_webhook_bodies_nested_too_deep_are_a_400(app: InProcess, account: Account) -> None:
    deep = nested_json(5000)  # past msgspec's own limit, within the 64 KiB a webhook body may have
    with app.client(headers=bearer(account)) as client:
        created = client.post("/v1/webhooks", content=f'{{"url": "{PUBLIC_URL}", "description": {deep}}}')
        webhook = client.post("/v1/webhooks", json={"url": PUBLIC_URL})
        assert webhook.status_code == 201, webhook.text
        one = f"/v1/webhooks/{webhook.json()['id']}"
        patched = client.patch(one, content=f'{{"description": {deep}}}')
        rotated = client.post(f"{one}/rotate-secret", content=json.dumps({"x": nested(65)}))
        after = client.get(one)
    for answer in (created, patched, rotated):
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "too_deep"
    assert after.json()["description"] is None


# -- query strings -------------------------------------------------------------------------------


def test_an_unknown_query_parameter_is_a_400_on_every_v1_route(app: InProcess, db_path: Path, account: Account) -> None:
    with app.client(headers=bearer(account)) as client:
        webhook = client.post("/v1/webhooks", json={"url": PUBLIC_URL}).json()
        one = f"/v1/webhooks/{webhook['id']}"
        calls = [
            ("GET", "/v1/events", None), ("POST", "/v1/events", [an_event()]),
            ("GET", "/v1/webhooks", None), ("POST", "/v1/webhooks", {"url": PUBLIC_URL}),
            ("GET", one, None), ("PATCH", one, {"description": "changed"}), ("DELETE", one, None),
            ("POST", f"{one}/verify", None), ("POST", f"{one}/activate", None), ("POST", f"{one}/deactivate", None),
            ("POST", f"{one}/rotate-secret", None), ("GET", f"{one}/deliveries", None),
        ]
        for method, path, body in calls:
            answer = client.request(method, path, params={"code": "x", "limit": "1"}, json=body)
            assert answer.status_code == 400, (method, path, answer.text)
            error = answer.json()
            assert error["error"] == "unknown_parameter", (method, path, error)
            assert "code" in error["parameters"] and "'code'" in error["message"], (method, path, error)
        still = client.get(one).json()
    # Nothing was done: no event stored, no second webhook, the first one unchanged and not deleted.
    assert stored_events(db_path, account) == []
    assert query(db_path, "SELECT count(*) FROM webhooks WHERE account_id = ?", (account.id,))[0][0] == 1
    assert still["description"] is None and still["status"] == "inactive"


def test_the_parameters_a_route_takes_still_work_and_repeating_one_is_a_400(app: InProcess,
                                                                             account: Account) -> None:
    with app.client(headers=bearer(account)) as client:
        assert client.post("/v1/events", json=[an_event(), an_event()]).status_code == 202
        webhook = client.post("/v1/webhooks", json={"url": PUBLIC_URL}).json()
        page = client.get("/v1/events", params={"limit": "1", "type": "open", "since": "2026-01-01T00:00:00Z"})
        deliveries = client.get(f"/v1/webhooks/{webhook['id']}/deliveries", params={"limit": "5"})
        repeated = client.get("/v1/events", params=[("limit", "1"), ("limit", "2")])
    assert page.status_code == 200 and len(page.json()["events"]) == 1
    assert deliveries.status_code == 200
    assert repeated.status_code == 400 and repeated.json()["parameters"] == ["limit"]


def test_email_filter_ignores_case(app: InProcess, account: Account) -> None:
    with app.client(headers=bearer(account)) as client:
        posted = client.post("/v1/events", json=[an_event(email="ann@example.com"), an_event(email="bob@example.com"),
                                                  an_event(email="ANN@EXAMPLE.COM")])
        assert posted.status_code == 202
        found = client.get("/v1/events", params={"email": "Ann@Example.com"}).json()["events"]
    assert [e["email"] for e in found] == ["ann@example.com", "ANN@EXAMPLE.COM"]


def test_the_email_filter_is_an_index_search(db_path: Path) -> None:
    sql = (f"SELECT {events.PUBLIC_COLUMNS} FROM events WHERE account_id = ? AND {{email}} AND seq > ?"
           " ORDER BY seq LIMIT ?")
    values = ("a", "Ann@Example.com", 0, 101)
    if ON_POSTGRESQL:
        (definition,) = [row[0] for row in query(db_path, "SELECT indexdef FROM pg_indexes"
                                                 " WHERE indexname = 'events_by_email'")]
        assert "lower(email)" in definition
        conn = connect(db_path)
        try:  # an empty table is read whole whatever its indexes: ask what the plan would be if it were large
            conn.execute("SET enable_seqscan = off")
            plan = "\n".join(row[0] for row in conn.execute(
                "EXPLAIN " + sql.format(email=events.SAME_EMAIL.on(conn)), values).fetchall())
        finally:
            conn.close()
        assert "events_by_email" in plan, plan
        return
    (definition,) = [row[0] for row in query(db_path, "SELECT sql FROM sqlite_master WHERE name = 'events_by_email'")]
    assert "COLLATE NOCASE" in definition
    plan = query(db_path, "EXPLAIN QUERY PLAN " + sql.format(email=events.SAME_EMAIL.sqlite), values)
    assert events.SAME_EMAIL.sqlite == "email = ? COLLATE NOCASE"
    assert [row["detail"] for row in plan] == [
        "SEARCH events USING INDEX events_by_email (account_id=? AND email=? AND rowid>?)"]


# -- Outreach shape ------------------------------------------------------------------------------


@pytest.mark.parametrize("nulls", [
    {"urls": None},
    {"user": None},
    {"user": {"id": None, "email": None}},
    {"prospect": {"id": "p-1", "email": None}},
    {"urls": None, "user": None, "prospect": {"id": 7, "email": None}},
])
def test_outreach_nulls_are_read_as_absent(app: InProcess, account: Account, nulls: dict[str, Any]) -> None:
    body = outreach_body(["https://example.com/a", "mailto:a@example.com"])
    body["meta"].update(nulls)
    with app.client() as client:
        answer = post_links(client, account, body)
    assert answer.status_code == 200, answer.text
    assert list(answer.json()["data"]) == ["https://example.com/a"]


# -- broken transfers ----------------------------------------------------------------------------


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _send(server: Server, data: bytes, *, half_close: bool, read: bool) -> bytes:
    """Send `data` on a new connection; optionally close our side for writing and read what comes back."""
    address = httpx.URL(server.url)
    with socket.create_connection((address.host, address.port), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        if read:
            while chunk := sock.recv(65536):
                received += chunk
    return received


def _gone_lines(server: Server) -> int:
    return server.output.count("the client went away")


@pytest.mark.parametrize("kind", ["closed mid-body", "shorter than content-length", "bad chunk size"])
@pytest.mark.parametrize("route", ["outreach", "events", "webhooks"])
def test_a_body_that_never_arrives_whole_is_no_5xx_and_no_traceback(shared_server: Server, kind: str,
                                                                     route: str) -> None:
    # Raw sockets on a real server: Hypercorn is what sees the transfer break.
    server = shared_server
    account = create_account(server.db_path)
    body = json.dumps(outreach_body(["https://example.com/a"]) if route == "outreach" else [an_event()]).encode()
    path, headers = {
        "outreach": (f"/outreach/{account.id}/links",
                     {"Outreach-Webhook-Signature": sign(account.secret, body)}),
        "events": ("/v1/events", bearer(account)),
        "webhooks": ("/v1/webhooks", bearer(account)),
    }[route]
    headers = {**headers, "Content-Type": "application/json"}
    before = _gone_lines(server)
    if kind == "closed mid-body":
        answer = _send(server, _head("POST", path, {**headers, "Transfer-Encoding": "chunked"})
                       + b"%x\r\n" % 10 + body[:10] + b"\r\n", half_close=False, read=False)
    elif kind == "shorter than content-length":
        answer = _send(server, _head("POST", path, {**headers, "Content-Length": str(len(body) + 50)}) + body,
                       half_close=True, read=True)
    else:
        answer = _send(server, _head("POST", path, {**headers, "Transfer-Encoding": "chunked"})
                       + b"%x\r\n" % 10 + body[:10] + b"\r\nzz\r\n" + body[10:] + b"\r\n0\r\n\r\n",
                       half_close=False, read=True)
    if answer:
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer
    deadline = time.monotonic() + 10
    while _gone_lines(server) == before and time.monotonic() < deadline:
        with server.client() as client:
            assert client.get("/healthz").status_code == 200
    assert _gone_lines(server) == before + 1, server.output[-2000:]
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
    assert "Traceback" not in server.output
