"""Minting links for any sender: `POST /v1/links`, `GET /v1/links` and `linkhub links mint|list`.

What a sender relies on: the answer's shape and order, that calling again answers the same links and
pixel (and that Outreach's link replacement and this API mint the very same codes), the refusals and
their reasons, the limits, the link filter only when asked for, expiry on `/r/` (to the expired URL,
or the expired page), the listing's pages, the CLI, and erasure of a recipient minted this way.
Expected values are computed in the tests from what they sent, and counts from the tables.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from test_erasure import hits_in_files, variants

from linkhub.core.accounts import get
from linkhub.services import links as use
from linkhub.store import connect

from conftest import Account, create_account, linkhub, outreach_body, post_links, query
from delivery_support import bearer

PAST = "2020-01-01T00:00:00Z"
FUTURE = "2999-01-01T00:00:00Z"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/154.0.0.0 Safari/537.36")


def mint(client: httpx.Client, account: Account, body: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/links", json=body, headers=bearer(account))


def minted(client: httpx.Client, account: Account, body: dict[str, Any]) -> list[dict[str, Any]]:
    answer = mint(client, account, body)
    assert answer.status_code == 200, answer.text
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


def path_of(short: str, base: str) -> str:
    assert short.startswith((base + "/r/", base + "/o/")), short
    return short[len(base):]


def json_true(value: Any) -> Any:
    """A JSON `true` read with `->>`: SQLite answers 1, PostgreSQL 'true'."""
    return 1 if value in (1, "true") else value


def count(db_path: Any, table: str) -> int:
    value: int = query(db_path, f"SELECT count(*) FROM {table}")[0][0]
    return value


# -- shape, order, idempotency ----------------------------------------------------------------------


def test_answers_each_message_in_order_and_again_the_same(app, db_path):
    account = create_account(db_path)
    body = {"messages": [
        {"mailing_id": "m-1", "recipient": {"id": "r-1", "email": "one@example.com"}, "message_id": "msg-1",
         "urls": ["https://a.example/x", "mailto:help@a.example", "https://a.example/y", "https://a.example/x",
                  "/relative", "javascript:alert(1)"]},
        {"mailing_id": "m-1", "recipient": {"email": "Two@Example.com"}, "urls": ["https://a.example/x"]},
        {"mailing_id": "m-2", "recipient": {"id": "r-1"}, "urls": []},
    ]}
    with app.client() as client:
        first = minted(client, account, body)
        again = minted(client, account, body)
    base = app.url
    assert again == first
    assert [m["message_id"] for m in first[:1]] == ["msg-1"]
    # Derived ids: the same call derives the same, and they name no recipient in clear.
    assert first[1]["message_id"].startswith("lh-") and len(first[1]["message_id"]) == 35
    assert "two" not in first[1]["message_id"].lower()
    assert first[2]["message_id"] != first[1]["message_id"]
    one = first[0]
    assert list(one["links"]) == ["https://a.example/x", "https://a.example/y"]  # given order, each once
    assert one["refused"] == [{"url": "mailto:help@a.example", "reason": "not_http_url"},
                              {"url": "/relative", "reason": "not_http_url"},
                              {"url": "javascript:alert(1)", "reason": "not_http_url"}]
    assert first[2]["links"] == {} and first[2]["refused"] == []
    # One code per recipient and URL: the other recipient's link to the same URL differs.
    assert first[1]["links"]["https://a.example/x"] != one["links"]["https://a.example/x"]
    pixels = [m["open_pixel"] for m in first]
    assert len(set(pixels)) == 3 and all(p.startswith(base + "/o/") for p in pixels)
    # The rows: one per distinct (recipient, URL), one pixel per message, as given.
    assert count(db_path, "links") == 3 and count(db_path, "pixels") == 3
    rows = {row["code"]: dict(row) for row in query(db_path, "SELECT * FROM pixels")}
    code = path_of(one["open_pixel"], base)[3:]
    assert rows[code]["mailing_id"] == "m-1" and rows[code]["message_id"] == "msg-1"
    assert rows[code]["recipient_id"] == "r-1" and rows[code]["email"] == "one@example.com"
    y_code = path_of(one["links"]["https://a.example/y"], base)[3:]
    link = query(db_path, "SELECT * FROM links WHERE code = ?", (y_code,))[0]
    assert (link["mailing_id"], link["prospect_id"], link["prospect_email"], link["message_id"]) == (
        "m-1", "r-1", "one@example.com", "msg-1")
    assert link["target_url"] == link["original_url"] == "https://a.example/y"
    with app.client() as client:
        for short in one["links"].values():
            assert client.get(path_of(short, base)).status_code == 302


def test_outreach_and_the_api_mint_the_same_code_for_the_same_recipient_and_url(app, db_path):
    account = create_account(db_path)
    with app.client() as client:
        answer = post_links(client, account, outreach_body(["https://a.example/p"], mailing="m-9", prospect="p-9"))
        assert answer.status_code == 200, answer.text
        by_outreach = answer.json()["data"]["https://a.example/p"]
        by_api = minted(client, account, {"messages": [
            {"mailing_id": "m-9", "recipient": {"id": "p-9"}, "urls": ["https://a.example/p", "https://a.example/q"]},
        ]})[0]["links"]
    assert by_api["https://a.example/p"] == by_outreach
    assert count(db_path, "links") == 2


def test_a_recipient_by_address_alone_is_one_recipient_whatever_the_case_and_counted_once(app, db_path):
    account = create_account(db_path)
    with app.client() as client:
        upper, lower = (minted(client, account, {"messages": [
            {"mailing_id": "m-1", "recipient": {"email": email}, "urls": ["https://a.example/1"]}]})[0]
            for email in ("Ann@Example.com", "ann@example.com"))
        # The same person by id and address: links of their own, but one recipient in the reports.
        minted(client, account, {"messages": [
            {"mailing_id": "m-1", "recipient": {"id": "42", "email": "ANN@example.com"}, "urls": ["https://a.example/1"]}]})
        report = client.get("/v1/reports/mailings/m-1", headers=bearer(account))
    assert upper == lower
    assert [row["prospect_id"] for row in query(db_path, "SELECT prospect_id FROM links ORDER BY code")] == [
        "ann@example.com", "42"]
    assert report.status_code == 200, report.text
    assert report.json()["recipients"] == 1


# -- refusals and limits -----------------------------------------------------------------------------


def _message(**fields: Any) -> dict[str, Any]:
    return {"mailing_id": "m", "recipient": {"id": "r"}, "urls": ["https://a.example/"], **fields}


@pytest.mark.parametrize(("body", "status", "path"), [
    ({"messages": [_message()] * 1001}, 422, "$.messages"),
    ({"messages": []}, 422, "$.messages"),
    ({"messages": [_message(urls=[f"https://a.example/{i}" for i in range(10_001)])]}, 422, "$.messages[0].urls"),
    ({"messages": [_message(urls=[f"https://a.example/{i}" for i in range(5_001)])] * 2}, 422, "$.messages"),
    ({"messages": [_message(recipient={})]}, 422, "$.messages[0].recipient"),
    ({"messages": [_message(), _message(recipient={"email": "nobody"})]}, 422, "$.messages[1].recipient.email"),
    ({"messages": [_message(recipient={"id": "erased:abc"})]}, 422, "$.messages[0].recipient.id"),
    ({"messages": [{"recipient": {"id": "r"}, "urls": []}]}, 422, "$.messages[0].mailing_id"),
    ({"messages": [_message(mailing_id="")]}, 422, "$.messages[0].mailing_id"),
    ({"messages": [_message(urls=[{"url": "https://a.example/", "expires_at": "tomorrow"}])]}, 422,
     "$.messages[0].urls[0].expires_at"),
    ({"messages": [_message(urls=[{"url": "https://a.example/", "expired_url": "https://b.example/"}])]}, 422,
     "$.messages[0].urls[0].expired_url"),
    ({"messages": [_message()], "expires_at": PAST, "expired_url": "ftp://b.example/"}, 422, "$.expired_url"),
    ({"messages": [_message()], "expired_url": "https://b.example/"}, 422, "$.expired_url"),
    ({"messages": [_message(colour="blue")]}, 422, "$.messages[0]"),
    ({"messages": [_message(urls=[42])]}, 422, "$.messages[0].urls[0]"),
])
def test_a_request_that_cannot_be_served_is_a_422_naming_where(app, db_path, body, status, path):
    account = create_account(db_path)
    with app.client() as client:
        answer = mint(client, account, body)
    assert answer.status_code == status, answer.text
    document = answer.json()
    assert document["error"] == "invalid_request" and document["path"] == path
    assert document["message"].startswith(path)
    assert count(db_path, "links") == 0 and count(db_path, "pixels") == 0


def test_the_limits_themselves_are_served(app, db_path):
    account = create_account(db_path)
    body = {"messages": [{"mailing_id": "big", "recipient": {"id": f"r-{n}"},
                          "urls": [f"https://a.example/{n}/{i}" for i in range(10)]} for n in range(1000)]}
    with app.client(timeout=60) as client:
        answer = minted(client, account, body)
    assert len({m["message_id"] for m in answer}) == 1000
    assert len(answer) == 1000 and all(len(m["links"]) == 10 for m in answer)
    assert list(answer[999]["links"]) == [f"https://a.example/999/{i}" for i in range(10)]
    assert count(db_path, "links") == 10_000 and count(db_path, "pixels") == 1000
    assert len({m["open_pixel"] for m in answer}) == 1000


def test_not_json_no_key_and_unknown_parameters(app, db_path):
    account = create_account(db_path)
    with app.client() as client:
        assert client.post("/v1/links", content=b"{", headers=bearer(account)).json()["error"] == "malformed_json"
        unauthorized = client.post("/v1/links", json={"messages": [_message()]})
        assert unauthorized.status_code == 401
        assert client.post("/v1/links?x=1", json={"messages": [_message()]},
                           headers=bearer(account)).json()["error"] == "unknown_parameter"
    assert count(db_path, "links") == 0


def test_the_link_filter_applies_only_when_the_call_asks_for_it(app, db_path):
    account = create_account(db_path, link_filter=r"^https://keep\.")
    urls = ["https://keep.example/1", "https://drop.example/2", "mailto:x@keep.example"]
    with app.client() as client:
        without = minted(client, account, {"messages": [_message(urls=urls)]})[0]
        filtered = minted(client, account, {"messages": [_message(recipient={"id": "other"}, urls=urls)],
                                            "apply_link_filter": True})[0]
    assert list(without["links"]) == urls[:2]
    assert without["refused"] == [{"url": urls[2], "reason": "not_http_url"}]
    assert list(filtered["links"]) == urls[:1]
    assert filtered["refused"] == [{"url": urls[1], "reason": "filtered_out"},  # in the order given
                                   {"url": urls[2], "reason": "not_http_url"}]


def test_an_unusable_filter_refuses_every_link_with_its_reason(app, db_path):
    account = create_account(db_path)
    # A pattern that no longer compiles (set before a stricter check, or by hand): nothing is minted.
    conn = connect(db_path)
    conn.execute("UPDATE accounts SET link_filter = '(' WHERE id = ?", (account.id,))
    conn.close()
    with app.client() as client:
        answer = minted(client, account, {"messages": [_message(urls=["https://a.example/1"])],
                                          "apply_link_filter": True})[0]
    assert answer["links"] == {}
    assert answer["refused"] == [{"url": "https://a.example/1", "reason": "filter_unusable"}]


# -- expiry ------------------------------------------------------------------------------------------


def test_expired_links_go_to_the_expired_url_or_the_expired_page_and_still_count(app, db_path):
    account = create_account(db_path)
    with app.client() as client:
        answer = minted(client, account, {
            "expires_at": PAST, "expired_url": "https://a.example/over",
            "messages": [_message(urls=[
                "https://a.example/call-expiry",  # the call's: expired, to its expired URL
                {"url": "https://a.example/no-page", "expires_at": PAST,  # its own expiry, the call's URL
                 "expired_url": None},
                {"url": "https://a.example/later", "expires_at": FUTURE},  # not yet expired
            ])]})[0]
        links = {url: path_of(short, app.url) for url, short in answer["links"].items()}
        to_expired = client.get(links["https://a.example/call-expiry"], headers={"user-agent": CHROME})
        later = client.get(links["https://a.example/later"], headers={"user-agent": CHROME})
        # A URL whose expiry has no expired URL, in a call without one: the page.
        page_only = minted(client, account, {"messages": [_message(
            recipient={"id": "r-2"}, urls=[{"url": "https://a.example/gone", "expires_at": PAST}])]})[0]
        gone_path = path_of(page_only["links"]["https://a.example/gone"], app.url)
        gone = client.get(gone_path, headers={"user-agent": CHROME})
        head = client.head(gone_path, headers={"user-agent": CHROME})
    assert to_expired.status_code == 302 and to_expired.headers["location"] == "https://a.example/over"
    # `expired_url: null` in the URL's object is "not given": the call's applies.
    assert query(db_path, "SELECT expired_url FROM links WHERE original_url = 'https://a.example/no-page'")[0][0] == (
        "https://a.example/over")
    assert later.status_code == 302 and later.headers["location"] == "https://a.example/later"
    assert gone.status_code == 410 and "expired" in gone.text and gone.headers["cache-control"] == "no-store"
    assert gone.headers["content-type"].startswith("text/html")
    assert head.status_code == 410 and head.content == b""
    rows = query(db_path, "SELECT url, details ->> 'method' AS method, details ->> 'expired' AS expired"
                          " FROM events WHERE type = 'click' ORDER BY seq")
    assert [(row["url"], row["method"], json_true(row["expired"])) for row in rows] == [
        ("https://a.example/call-expiry", "GET", 1), ("https://a.example/later", "GET", None),
        ("https://a.example/gone", "GET", 1), ("https://a.example/gone", "HEAD", 1)]
    stored = query(db_path, "SELECT expires_at FROM links WHERE original_url = 'https://a.example/later'")[0][0]
    assert stored == "2999-01-01T00:00:00.000Z"


def test_minting_again_keeps_the_expiry_a_link_was_minted_with(app, db_path):
    account = create_account(db_path)
    with app.client() as client:
        first = minted(client, account, {"messages": [_message()], "expires_at": FUTURE})[0]
        second = minted(client, account, {"messages": [_message()], "expires_at": PAST})[0]
        assert first == second
        assert client.get(path_of(first["links"]["https://a.example/"], app.url)).status_code == 302


# -- listing -----------------------------------------------------------------------------------------


def test_listing_pages_through_the_accounts_links_in_order(app, db_path):
    account = create_account(db_path)
    other = create_account(db_path)
    messages = [
        {"mailing_id": mailing, "recipient": {"id": recipient}, "urls": [f"https://a.example/{mailing}/{recipient}/{i}"
                                                                         for i in range(3)]}
        for mailing in ("m-b", "m-a") for recipient in ("r-2", "r-1")
    ]
    with app.client() as client:
        answer = minted(client, account, {"messages": messages})
        minted(client, other, {"messages": [_message()]})
        expected = sorted((m["mailing_id"], m["recipient"]["id"], url, a["links"][url])
                          for m, a in zip(messages, answer, strict=True) for url in m["urls"])
        seen: list[dict[str, Any]] = []
        pages = 0
        cursor = None
        while True:
            page = client.get("/v1/links", params={"limit": 5, **({"cursor": cursor} if cursor else {})},
                              headers=bearer(account))
            assert page.status_code == 200, page.text
            pages += 1
            seen += page.json()["links"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        by_mailing = client.get("/v1/links", params={"mailing_id": "m-a", "recipient_id": "r-2"},
                                headers=bearer(account)).json()
        by_recipient = client.get("/v1/links", params={"recipient_id": "r-1", "limit": 2},
                                  headers=bearer(account)).json()
        rest = client.get("/v1/links", params={"recipient_id": "r-1", "cursor": by_recipient["next_cursor"]},
                          headers=bearer(account)).json()
        bad = client.get("/v1/links", params={"cursor": "nope"}, headers=bearer(account))
        foreign_code = query(db_path, "SELECT code FROM links WHERE account_id = ?", (other.id,))[0][0]
        foreign = client.get("/v1/links", params={"cursor": foreign_code}, headers=bearer(account))
        too_many = client.get("/v1/links", params={"limit": 1001}, headers=bearer(account))
    assert pages == 3  # 12 links, 5 a page
    assert [(s["mailing_id"], s["recipient_id"], s["original_url"], s["short_url"]) for s in seen] == expected
    assert all(s["account_id"] == account.id and s["message_id"].startswith("lh-") for s in seen)
    assert [s["original_url"] for s in by_mailing["links"]] == [f"https://a.example/m-a/r-2/{i}" for i in range(3)]
    assert by_mailing["next_cursor"] is None
    assert [s["original_url"] for s in by_recipient["links"] + rest["links"]] == [
        url for mailing in ("m-a", "m-b") for url in (f"https://a.example/{mailing}/r-1/{i}" for i in range(3))]
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"
    assert foreign.status_code == 422 and foreign.json()["field"] == "cursor"
    assert too_many.status_code == 422 and too_many.json()["field"] == "limit"


# -- the CLI -----------------------------------------------------------------------------------------


def test_cli_mints_what_the_api_answers_and_lists_it(app, db_path):
    account = create_account(db_path, public_url="https://t.example")
    db = ("--db", str(db_path))
    ran = linkhub("links", "mint", "--account", account.id, "--mailing", "m-1", "--recipient", "r-1",
                  "--email", "r1@example.com", "https://a.example/1", "mailto:x@example.com", "https://a.example/2",
                  "--json", *db)
    assert ran.returncode == 0, ran.output
    by_cli = json.loads(ran.stdout)
    with app.client() as client:
        by_api = minted(client, account, {"messages": [{"mailing_id": "m-1", "recipient": {"id": "r-1",
                                                                                           "email": "r1@example.com"},
                                                        "urls": ["https://a.example/1", "mailto:x@example.com",
                                                                 "https://a.example/2"]}]})[0]
        assert client.get(by_cli["links"]["https://a.example/1"][len("https://t.example"):]).status_code == 302
    assert by_cli == by_api
    assert by_cli["refused"] == [{"url": "mailto:x@example.com", "reason": "not_http_url"}]
    text = linkhub("links", "mint", "--account", account.id, "--mailing", "m-1", "--recipient", "r-1",
                   "https://a.example/1", "mailto:x@example.com", *db)
    assert text.returncode == 0, text.output
    assert by_cli["links"]["https://a.example/1"] in text.stdout and by_cli["open_pixel"] in text.stdout
    assert "refused: not an absolute http(s) URL" in text.stdout

    listed = linkhub("links", "list", "--account", account.id, "--mailing", "m-1", "--json", *db)
    assert listed.returncode == 0, listed.output
    with app.client() as client:
        assert json.loads(listed.stdout) == client.get("/v1/links", params={"mailing_id": "m-1"},
                                                       headers=bearer(account)).json()
    shown = linkhub("links", "list", *db)
    assert shown.returncode == 0 and "https://a.example/2" in shown.stdout


@pytest.mark.parametrize(("args", "says"), [
    (["--mailing", "m"], "one of --recipient or --email is required"),
    (["--mailing", "m", "--email", "not-an-address"], "--email"),
    (["--mailing", "m", "--recipient", "r", "--expires-at", "soon"], "--expires-at"),
    (["--mailing", "m", "--recipient", "r", "--expired-url", "https://b.example/"], "--expired-url"),
])
def test_cli_refusals_are_one_line(db_path, args, says):
    account = create_account(db_path)
    ran = linkhub("links", "mint", "--account", account.id, *args, "https://a.example/", "--db", str(db_path))
    assert ran.returncode != 0 and "Traceback" not in ran.output
    assert says in ran.stderr and len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    unknown = linkhub("links", "mint", "--account", "nope", "--mailing", "m", "--recipient", "r",
                      "https://a.example/", "--db", str(db_path))
    assert unknown.returncode != 0 and "nope" in unknown.stderr and "Traceback" not in unknown.output
    assert count(db_path, "links") == 0


def test_cli_beside_a_real_server(make_server, db_path):
    server = make_server()
    account = create_account(db_path)
    ran = linkhub("links", "mint", "--account", account.id, "--mailing", "m-1", "--email", "live@example.com",
                  "--expires-at", PAST, "--expired-url", "https://a.example/over", "https://a.example/live",
                  "--json", "--db", str(db_path))
    assert ran.returncode == 0, ran.output
    short = json.loads(ran.stdout)["links"]["https://a.example/live"]
    with server.client() as client:
        answer = client.get(short[short.index("/r/"):], headers={"user-agent": CHROME})
    assert answer.status_code == 302 and answer.headers["location"] == "https://a.example/over"
    assert server.stop() == 0
    assert json_true(query(db_path, "SELECT details ->> 'expired' FROM events WHERE type = 'click'")[0][0]) == 1


# -- erasure -----------------------------------------------------------------------------------------


def test_erasing_a_recipient_minted_by_address_clears_their_links_and_pixels(app, db_path):
    account = create_account(db_path)
    email = "Erin.Person@Example.com"
    personal = "https://a.example/over?e=erin.person%40example.com"
    with app.client() as client:
        answer = minted(client, account, {"messages": [
            {"mailing_id": "m-1", "recipient": {"email": email}, "urls": ["https://a.example/1"]},
            {"mailing_id": "m-1", "recipient": {"email": email}, "message_id": "second",
             "urls": [{"url": "https://a.example/2", "expires_at": FUTURE, "expired_url": personal}]},
            {"mailing_id": "m-1", "recipient": {"id": "keep"}, "urls": ["https://a.example/1"]},
        ]})
        first_link = path_of(answer[0]["links"]["https://a.example/1"], app.url)
        assert client.get(first_link, headers={"user-agent": CHROME}).status_code == 302
        erased = client.delete("/v1/recipients", params={"email": email.lower()}, headers=bearer(account))
        assert erased.status_code == 200, erased.text
        # The link keeps redirecting, and records nothing more.
        assert client.get(first_link, headers={"user-agent": CHROME}).status_code == 302
    removed = erased.json()["removed"]
    assert removed["events"] == 1 and removed["clicks"] == 1
    assert removed["links_kept"] == 1 and removed["links_deleted"] == 1  # its expired URL held the address
    assert removed["pixels"] == 2
    [receipt] = query(db_path, "SELECT pixels, links_kept FROM erasures")
    assert tuple(receipt) == (2, 1)  # the receipt counts them too
    pixels = {row["code"]: dict(row) for row in query(db_path, "SELECT * FROM pixels")}
    mine = [path_of(m["open_pixel"], app.url)[3:] for m in answer[:2]]
    for code in mine:
        row = pixels[code]
        assert row["email"] is None and row["recipient_id"] is None and row["erased_at"] is not None
        assert row["message_id"] == f"erased:{code}"
    kept = pixels[path_of(answer[2]["open_pixel"], app.url)[3:]]
    assert kept["recipient_id"] == "keep" and kept["erased_at"] is None
    link = query(db_path, "SELECT prospect_id, prospect_email, message_id FROM links WHERE code = ?",
                 (first_link[3:],))[0]
    assert tuple(link) == (f"erased:{first_link[3:]}", None, None)
    assert count(db_path, "events") == 0
    assert hits_in_files(db_path, variants(email)) == {}
    # Mailed again afterwards: new links and a new pixel, as for anyone.
    with app.client() as client:
        again = minted(client, account, {"messages": [
            {"mailing_id": "m-1", "recipient": {"email": email}, "urls": ["https://a.example/1"]}]})[0]
    assert again["open_pixel"] != answer[0]["open_pixel"] and again["links"] != answer[0]["links"]


def test_links_the_filter_cannot_decide_in_time_are_refused_as_such(db_path):
    # The budget spent (a deadline already past), as a hostile pattern would spend it: every URL is
    # refused as `filter_timeout`, never minted unfiltered.
    account = create_account(db_path, link_filter=r"^https://keep\.")
    conn = connect(db_path)
    try:
        loaded = get(conn, account.id)
    finally:
        conn.close()
    assert loaded is not None
    urls = ["https://keep.example/1", "https://drop.example/2"]
    assert use._filter(loaded, urls, time.monotonic() - 1) == dict.fromkeys(urls, "filter_timeout")
    assert use._filter(loaded, urls, time.monotonic() + 5) == {"https://drop.example/2": "filtered_out"}


# -- the pixel and the links a sender minted, end to end -----------------------------------------------


def test_a_minted_pixel_and_link_record_the_open_and_the_click_into_the_mailing_s_report(app, db_path):
    account = create_account(db_path)
    [message] = minted(app.client(), account, {"messages": [
        {"mailing_id": "news-7", "recipient": {"email": "Reader@Example.com"}, "message_id": "msg-7",
         "urls": ["https://example.com/offer"]}]})
    with app.client() as client:
        gif = client.get(path_of(message["open_pixel"], app.url) + ".gif", headers={"user-agent": CHROME})
        assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif"
        click = client.get(path_of(message["links"]["https://example.com/offer"], app.url),
                           headers={"user-agent": CHROME, "accept-language": "en"})
        assert click.status_code == 302 and click.headers["location"] == "https://example.com/offer"
    events = [dict(row) for row in query(db_path, "SELECT type, source, mailing_id, message_id, email FROM events"
                                                  " ORDER BY seq")]
    assert events == [
        {"type": "open", "source": "pixel", "mailing_id": "news-7", "message_id": "msg-7",
         "email": "Reader@Example.com"},
        {"type": "click", "source": "redirect", "mailing_id": "news-7", "message_id": "msg-7",
         "email": "Reader@Example.com"},
    ]
    [stats] = query(db_path, "SELECT recipients, opens, people_opens, unique_people_opens, clicks FROM mailing_stats"
                             " WHERE account_id = ? AND mailing_id = 'news-7'", (account.id,))
    assert tuple(stats) == (1, 1, 1, 1, 1)
