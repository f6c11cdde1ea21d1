"""GET/HEAD /r/<code>: the redirect and the click it records, in-process; what `serve` reads from its flags and
the environment (trusted proxies) against a real `linkhub serve`."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from linkhub.settings import parse_networks
from linkhub.store import connect

from conftest import create_account, hold_write_lock, outreach_body, post_links, query

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)


def mint(app, account, target: str, *, original: str | None = None, **meta) -> str:
    """Ask for a short link the way Outreach does; return its path `/r/<code>`."""
    urls = {original: target} if original else {}
    with app.client() as client:
        answer = post_links(client, account, outreach_body([target], urls=urls, **meta))
    assert answer.status_code == 200, answer.text
    short = answer.json()["data"][target]
    assert short.startswith(app.url + "/r/")
    return short[len(app.url) :]


def clicks(db_path, account) -> list[dict]:
    """The account's click events, oldest first, details decoded."""
    rows = query(db_path, "SELECT * FROM events WHERE type = 'click' AND account_id = ? ORDER BY seq", (account.id,))
    result = []
    for row in rows:
        event = dict(row)
        event["details"] = json.loads(event["details"])
        result.append(event)
    return result


# -- the redirect ------------------------------------------------------------------------


def test_known_code_redirects_with_no_store(app, account):
    path = mint(app, account, "https://example.com/landing?utm_source=x&a=%20b")
    with app.client() as client:
        answer = client.get(path)
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://example.com/landing?utm_source=x&a=%20b"
    assert answer.headers["cache-control"] == "no-store"


def test_a_code_minted_by_an_earlier_build_still_redirects(app, db_path, account):
    # Earlier builds minted 11 random characters (no sequence number); those emails are out there.
    conn = connect(db_path)
    try:
        conn.execute(
            "INSERT INTO links (code, account_id, target_url, original_url, mailing_id, prospect_id, created_at)"
            " VALUES ('q3J-x_9aZk0', ?, 'https://example.com/old', 'https://example.com/old', 'm0', 'p0',"
            " '2026-01-02T03:04:05.000Z')",
            (account.id,),
        )
    finally:
        conn.close()
    with app.client() as client:
        answer = client.get("/r/q3J-x_9aZk0")
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://example.com/old"
    assert [click["code"] for click in clicks(db_path, account)] == ["q3J-x_9aZk0"]


def test_redirect_ignores_a_query_string(app, account):
    path = mint(app, account, "https://example.com/x")
    with app.client() as client:
        answer = client.get(path + "?utm=1")
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://example.com/x"


def test_redirect_target_is_the_data_value_not_the_original(app, account):
    path = mint(app, account, "https://bit.ly/abc", original="https://www.example.com/page")
    with app.client() as client:
        answer = client.get(path)
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://bit.ly/abc"


def test_concurrent_redirects_each_get_their_own_link(app, account, db_path):
    """Codes asked for at the same moment are looked up together; each answer must still be its own."""
    targets = [f"https://example.com/page-{n}" for n in range(12)]
    paths = [mint(app, account, target) for target in targets]
    asked = [*paths, *paths, "/r/nosuchcode1", paths[0]]  # repeats, an unknown code, and the same code twice

    async def fetch_all() -> list[httpx.Response]:
        async with app.async_client() as client:
            return await asyncio.gather(*(client.get(path) for path in asked))

    answers = app.run(fetch_all)
    expected = [*targets, *targets, None, targets[0]]
    assert [a.headers.get("location") for a in answers] == expected
    assert [a.status_code for a in answers] == [302 if t else 404 for t in expected]
    stored = [(c["code"], c["url"]) for c in clicks(db_path, account)]
    assert sorted(stored) == sorted((p[3:], t) for p, t in zip(asked, expected, strict=True) if t)


def test_every_get_is_a_click(app, account, db_path):
    path = mint(app, account, "https://example.com/x")
    with app.client() as client:
        for _ in range(3):
            assert client.get(path).status_code == 302
    assert len(clicks(db_path, account)) == 3


CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/154.0.0.0 Safari/537.36")


def test_head_answers_like_get_and_is_recorded_as_a_machine(app, account, db_path):
    path = mint(app, account, "https://example.com/x")
    with app.client() as client:
        head = client.head(path, headers={"accept-language": "en", "user-agent": CHROME})
        unknown = client.head("/r/NoSuchCode123")
    assert head.status_code == 302
    assert head.headers["location"] == "https://example.com/x"
    assert head.headers["cache-control"] == "no-store"
    assert head.content == b""
    assert unknown.status_code == 404
    # Flagged, never dropped: a link scanner's HEAD is a hit the reports can show apart.
    [stored] = clicks(db_path, account)
    assert stored["code"] == path[3:]
    assert stored["details"]["method"] == "HEAD"
    assert stored["details"]["verdict"] == "scanner" and stored["details"]["bot"] is True
    assert "head_request" in [reason["code"] for reason in stored["details"]["reasons"]]
    assert tuple(query(db_path, "SELECT method, verdict FROM clicks")[0]) == ("HEAD", "scanner")


def test_post_is_405(app, account, db_path):
    path = mint(app, account, "https://example.com/x")
    with app.client() as client:
        answer = client.post(path, content=b"")
    assert answer.status_code == 405
    assert "location" not in answer.headers
    assert clicks(db_path, account) == []


BAD_PATHS = [
    "/r/NoSuchCode123",
    "/r/aaaaaaaaaaa",
    "/r/<script>alert(1)</script>",
    "/r/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "/r/" + "A" * 200,
    "/r/a%00b",
    "/r/",
    "/r/abc",
    "/r/has%20space",
    "/r/x%22onload%3D%22",
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_unknown_or_malformed_code_is_a_404_page_that_does_not_echo(app, account, db_path, path):
    mint(app, account, "https://example.com/x")  # a real link exists; these are not it
    with app.client() as client:
        answer = client.get(path)
        reference = client.get("/r/ZZZZZZZZZZZ")
    assert answer.status_code == 404
    assert "location" not in answer.headers
    assert answer.headers["content-type"].startswith("text/html")
    body = answer.text
    # One fixed page for every unknown code: nothing of the request comes back.
    assert body == reference.text
    assert "Link not found" in body
    for fragment in ("script", "alert", "AAAAAAAA", "NoSuchCode", "onload", "space", "abc"):
        assert fragment not in body
    assert clicks(db_path, account) == []


def test_a_code_of_another_shape_never_redirects(app, account):
    """Only codes linkhub minted redirect: no open redirect through a URL in the path."""
    with app.client() as client:
        for path in ("/r/https://evil.example/", "/r/https:%2F%2Fevil.example%2F", "/r//evil.example"):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert "location" not in answer.headers


# -- the stored click --------------------------------------------------------------------


def test_stored_click_contents(app, account, db_path):
    path = mint(app, account, "https://example.com/direct", mailing="mail-1", prospect=42,
                email="pat@example.com")
    code = path[3:]
    before = datetime.now(UTC) - timedelta(seconds=1)
    with app.client() as client:
        answer = client.get(path, headers={"User-Agent": IPHONE_SAFARI, "Referer": "https://mail.example.com/inbox"})
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert answer.status_code == 302
    [click] = clicks(db_path, account)
    assert click["type"] == "click"
    assert click["source"] == "redirect"
    assert click["code"] == code
    assert click["account_id"] == account.id
    assert click["mailing_id"] == "mail-1"
    assert click["recipient_id"] == "42"
    assert click["email"] == "pat@example.com"
    assert click["url"] == "https://example.com/direct"
    assert TIMESTAMP.match(click["occurred_at"]), click["occurred_at"]
    assert TIMESTAMP.match(click["received_at"]), click["received_at"]
    assert before <= datetime.fromisoformat(click["occurred_at"]) <= after
    assert click["id"]
    details = click["details"]
    assert "target" not in details  # target == original: nothing to add
    assert details["ip"] == "127.0.0.1"
    assert details["user_agent"] == IPHONE_SAFARI
    assert details["device"] == "iPhone"
    assert details["os"] == "iOS 17.4"
    assert details["browser"] == "Mobile Safari 17.4"
    assert details["referer"] == "https://mail.example.com/inbox"


def test_click_url_is_the_original_and_target_is_kept_when_different(app, account, db_path):
    path = mint(app, account, "https://bit.ly/abc", original="https://www.example.com/page")
    with app.client() as client:
        assert client.get(path).status_code == 302
    [click] = clicks(db_path, account)
    assert click["url"] == "https://www.example.com/page"
    assert click["details"]["target"] == "https://bit.ly/abc"


def test_click_without_user_agent_or_referer(app, account, db_path):
    path = mint(app, account, "https://example.com/x")
    with app.client() as client:
        # httpx always sends its own User-Agent unless told not to
        client.headers.pop("user-agent", None)
        assert client.get(path).status_code == 302
    [click] = clicks(db_path, account)
    details = click["details"]
    assert details["user_agent"] is None
    assert details["referer"] is None
    assert details["device"] is None and details["os"] is None and details["browser"] is None


def test_each_click_gets_its_own_event_id(app, account, db_path):
    path = mint(app, account, "https://example.com/x")
    with app.client() as client:
        for _ in range(5):
            client.get(path)
    ids = [c["id"] for c in clicks(db_path, account)]
    assert len(ids) == len(set(ids)) == 5


def test_clicks_view(app, account, db_path):
    path = mint(app, account, "https://bit.ly/abc", original="https://www.example.com/page",
                mailing="m-7", prospect="p-9", email="pat@example.com")
    direct = mint(app, account, "https://example.com/direct", mailing="m-7", prospect="p-9")
    with app.client() as client:
        client.get(path, headers={"User-Agent": IPHONE_SAFARI, "Referer": "https://mail.example.com/"})
        client.get(direct)
    rows = [dict(r) for r in query(db_path, "SELECT * FROM clicks WHERE account_id = ? ORDER BY seq", (account.id,))]
    assert len(rows) == 2
    first, second = rows
    assert first["code"] == path[3:]
    assert first["account_id"] == account.id
    assert first["mailing_id"] == "m-7"
    assert first["prospect_id"] == "p-9"
    assert first["prospect_email"] == "pat@example.com"
    assert first["original_url"] == "https://www.example.com/page"
    assert first["target_url"] == "https://bit.ly/abc"
    assert first["ip"] == "127.0.0.1"
    assert first["user_agent"] == IPHONE_SAFARI
    assert (first["device"], first["os"], first["browser"]) == ("iPhone", "iOS 17.4", "Mobile Safari 17.4")
    assert first["referer"] == "https://mail.example.com/"
    assert TIMESTAMP.match(first["occurred_at"])
    # a click whose target is the original: the view fills target_url from it
    assert second["original_url"] == second["target_url"] == "https://example.com/direct"


# -- X-Forwarded-For ---------------------------------------------------------------------


def _ip_of(app, account, db_path, headers) -> str:
    """The address a click through `app` (in-process or a Server) stores, given these request headers."""
    path = mint(app, account, "https://example.com/x")
    before = len(clicks(db_path, account))
    with app.client() as client:
        assert client.get(path, headers=headers).status_code == 302
    rows = clicks(db_path, account)
    assert len(rows) == before + 1
    return rows[-1]["details"]["ip"]


def test_forwarded_for_is_ignored_by_default(app, account, db_path):
    assert _ip_of(app, account, db_path, {"X-Forwarded-For": "203.0.113.7"}) == "127.0.0.1"


def test_forwarded_for_is_believed_from_a_trusted_proxy(make_app, db_path):
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"))
    account = create_account(db_path)
    assert _ip_of(app, account, db_path, {"X-Forwarded-For": "203.0.113.7"}) == "203.0.113.7"
    # A client cannot forge its address: the rightmost untrusted hop is the client.
    assert _ip_of(app, account, db_path, {"X-Forwarded-For": "1.2.3.4, 203.0.113.7"}) == "203.0.113.7"
    # A chain of trusted proxies is skipped.
    chain = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7, 127.0.0.1, 127.0.0.1"}
    assert _ip_of(app, account, db_path, chain) == "203.0.113.7"
    # Several X-Forwarded-For headers read as one list, in order.
    split = [("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-For", "203.0.113.8")]
    assert _ip_of(app, account, db_path, split) == "203.0.113.8"
    # A port on the hop is not part of the address.
    assert _ip_of(app, account, db_path, {"X-Forwarded-For": "203.0.113.9:4711"}) == "203.0.113.9"
    # No header: the peer itself.
    assert _ip_of(app, account, db_path, {}) == "127.0.0.1"


def test_trusted_proxies_from_the_environment(make_server, db_path):
    server = make_server(env={"LINKHUB_TRUSTED_PROXIES": "127.0.0.1/32"})
    account = create_account(db_path)
    assert _ip_of(server, account, db_path, {"X-Forwarded-For": "203.0.113.9"}) == "203.0.113.9"


def test_forwarded_for_from_an_untrusted_peer_is_ignored_and_the_flag_wins(make_server, db_path):
    # The flag names only 10.0.0.0/8, so the test client (127.0.0.1) is no trusted proxy,
    # whatever the environment says.
    server = make_server("--trusted-proxies", "10.0.0.0/8", env={"LINKHUB_TRUSTED_PROXIES": "127.0.0.1/32"})
    account = create_account(db_path)
    assert _ip_of(server, account, db_path, {"X-Forwarded-For": "203.0.113.7"}) == "127.0.0.1"


# -- a locked database -------------------------------------------------------------------


def _metric(app, name: str) -> float:
    with app.client() as client:
        text = client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_locked_database_does_not_break_redirects(app, db_path):
    account = create_account(db_path)
    path = mint(app, account, "https://example.com/x")
    blocker = connect(db_path)  # another process holding the write lock (a long report, a migration…)
    try:
        hold_write_lock(blocker)
        with app.client() as client:
            started = time.monotonic()
            answer = client.get(path, headers={"User-Agent": "while-locked"})
            elapsed = time.monotonic() - started
    finally:
        blocker.undo()
        blocker.close()
    # The visitor still gets to the page, promptly; the loss is logged and counted.
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://example.com/x"
    assert elapsed < 2.0, f"took {elapsed:.2f}s"
    assert "not committed within" in app.output
    assert _metric(app, "linkhub_clicks_unconfirmed_total") == 1
    # The click stayed queued: once the lock is gone it is committed, before the next one
    # (one writer, in order), whose 302 comes only after its own commit.
    with app.client() as client:
        assert client.get(path, headers={"User-Agent": "after"}).status_code == 302
    agents = [c["details"]["user_agent"] for c in clicks(db_path, account)]
    assert agents == ["while-locked", "after"]
