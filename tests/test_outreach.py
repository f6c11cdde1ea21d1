"""POST /outreach/{account_id}/links: Outreach's contract, in-process; the public URL `serve` reads from its flag
and the environment, against a real `linkhub serve`."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from linkhub.core import accounts
from linkhub.store import connect

from conftest import create_account, hold_write_lock, outreach_body, post_links, query, sign

CODE = re.compile(r"^[A-Za-z0-9_-]+$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _code(short: str, base: str) -> str:
    assert short.startswith(base + "/r/"), short
    return short[len(base) + 3 :]


def _links_count(db_path, account) -> int:
    return query(db_path, "SELECT count(*) FROM links WHERE account_id = ?", (account.id,))[0][0]


def _links(db_path, account) -> list[dict]:
    return [dict(r) for r in query(db_path, "SELECT * FROM links WHERE account_id = ? ORDER BY code", (account.id,))]


# -- signature and account -------------------------------------------------------------


def test_good_signature_is_answered(app, account):
    with app.client() as client:
        answer = post_links(client, account, outreach_body(["https://example.com/"]))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert list(answer.json()["data"]) == ["https://example.com/"]


def test_wrong_missing_signature_and_unknown_account_get_the_same_401(app, account, db_path):
    body = outreach_body(["https://example.com/"])
    raw = json.dumps(body).encode()
    other = create_account(db_path, secret="another-secret")
    with app.client() as client:
        answers = {
            "missing": post_links(client, account, raw, signature=None),
            "empty": post_links(client, account, raw, signature=""),
            "wrong": post_links(client, account, raw, signature=sign("not-the-secret", raw)),
            "other account's secret": post_links(client, account, raw, signature=sign(other.secret, raw)),
            "signature of another body": post_links(client, account, raw, signature=sign(account.secret, raw + b" ")),
            "not hex": post_links(client, account, raw, signature="z" * 64),
            "unknown account": client.post(
                "/outreach/no-such-account/links", content=raw,
                headers={"Outreach-Webhook-Signature": sign(account.secret, raw),
                         "Content-Type": "application/json"},
            ),
        }
    for case, answer in answers.items():
        assert answer.status_code == 401, (case, answer.text)
        assert answer.headers["content-type"].startswith("application/json"), case
    bodies = {case: answer.json() for case, answer in answers.items()}
    first = bodies["missing"]
    assert "error" in first
    assert all(b == first for b in bodies.values()), bodies
    assert _links_count(db_path, account) == 0


def test_non_ascii_signature_header_is_401_not_a_crash(app, account):
    raw = json.dumps(outreach_body(["https://example.com/"])).encode()
    with app.client() as client:
        answer = client.post(
            f"/outreach/{account.id}/links", content=raw,
            headers={"Outreach-Webhook-Signature": b"\xe9" * 64, "Content-Type": "application/json"},
        )
    assert answer.status_code == 401, answer.text


def test_signature_is_checked_before_the_body_is_parsed(app, account):
    """An unsigned caller learns nothing about the body's validity."""
    with app.client() as client:
        answer = post_links(client, account, b"{not json", signature="0" * 64)
    assert answer.status_code == 401


# -- malformed bodies ------------------------------------------------------------------

VALID_META = {"mailing": {"id": "m"}, "prospect": {"id": "p"}}

MALFORMED = [
    pytest.param(b"{\"data\": [", "$", id="truncated-json"),
    pytest.param(b"not json at all", "$", id="garbage"),
    pytest.param(b"", "$", id="empty-body"),
    pytest.param(b"[]", "$", id="top-level-array"),
    pytest.param(b"\"a string\"", "$", id="top-level-string"),
    pytest.param(json.dumps({"data": {}, "meta": VALID_META}).encode(), "$.data", id="data-not-array"),
    pytest.param(json.dumps({"data": "https://x.example/", "meta": VALID_META}).encode(), "$.data",
                 id="data-a-string"),
    pytest.param(json.dumps({"data": ["https://x.example/", 7], "meta": VALID_META}).encode(), "$.data[1]",
                 id="data-item-not-string"),
    pytest.param(json.dumps({"data": ["https://x.example/"]}).encode(), "$", id="meta-missing"),
    pytest.param(json.dumps({"data": [], "meta": "m"}).encode(), "$.meta", id="meta-not-object"),
    pytest.param(json.dumps({"data": [], "meta": {"prospect": {"id": "p"}}}).encode(), "$.meta",
                 id="mailing-missing"),
    pytest.param(json.dumps({"data": [], "meta": {"mailing": {}, "prospect": {"id": "p"}}}).encode(),
                 "$.meta.mailing", id="mailing-id-missing"),
    pytest.param(json.dumps({"data": [], "meta": {"mailing": {"id": True}, "prospect": {"id": "p"}}}).encode(),
                 "$.meta.mailing.id", id="mailing-id-bool"),
    pytest.param(json.dumps({"data": [], "meta": {"mailing": {"id": "m"}}}).encode(), "$.meta",
                 id="prospect-missing"),
    pytest.param(json.dumps({"data": [], "meta": {**VALID_META, "urls": ["https://x.example/"]}}).encode(),
                 "$.meta.urls", id="urls-array"),
    pytest.param(json.dumps({"data": [], "meta": {**VALID_META, "urls": {"https://x.example/": 3}}}).encode(),
                 "$.meta.urls[...]", id="urls-value-not-string"),
    pytest.param(json.dumps({"data": [], "meta": {**VALID_META, "user": "u"}}).encode(), "$.meta.user",
                 id="user-not-object"),
]


@pytest.mark.parametrize(("raw", "path"), MALFORMED)
def test_malformed_body_is_400_naming_where(app, account, db_path, raw, path):
    with app.client() as client:
        answer = post_links(client, account, raw)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    problem = answer.json()
    assert problem["path"] == path, problem
    assert problem["error"] in ("malformed_json", "invalid_body")
    assert isinstance(problem["message"], str) and problem["message"]
    assert _links_count(db_path, account) == 0


def test_missing_field_message_names_the_field(app, account):
    raw = json.dumps({"data": [], "meta": {"prospect": {"id": "p"}}}).encode()
    with app.client() as client:
        problem = post_links(client, account, raw).json()
    assert "mailing" in problem["message"]
    assert problem["path"] == "$.meta"


def test_unknown_extra_fields_are_ignored(app, account):
    body = outreach_body(["https://example.com/a"])
    body["version"] = 2
    body["meta"]["mailing"]["subject"] = "Hello"
    body["meta"]["prospect"]["tags"] = ["a", {"b": None}]
    body["meta"]["sequence"] = {"id": 5, "step": 2}
    with app.client() as client:
        answer = post_links(client, account, body)
    assert answer.status_code == 200, answer.text
    assert list(answer.json()["data"]) == ["https://example.com/a"]


def test_optional_user_and_prospect_email_may_be_absent(app, account, db_path):
    raw = json.dumps({"data": ["https://example.com/a"], "meta": {"mailing": {"id": "m"}, "prospect": {"id": "p"}}})
    with app.client() as client:
        answer = post_links(client, account, raw.encode())
    assert answer.status_code == 200, answer.text
    [row] = _links(db_path, account)
    assert row["prospect_email"] is None and row["user_id"] is None and row["user_email"] is None


# -- body size -------------------------------------------------------------------------

MIB = 1024 * 1024


def _padded(size: int) -> bytes:
    """A valid body of exactly `size` bytes (padding in an unknown field)."""
    body = outreach_body(["https://example.com/big"])
    body["padding"] = ""
    raw = json.dumps(body).encode()
    body["padding"] = "x" * (size - len(raw))
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


def test_body_of_exactly_one_mib_is_accepted(app, account):
    with app.client() as client:
        answer = post_links(client, account, _padded(MIB))
    assert answer.status_code == 200, answer.text
    assert list(answer.json()["data"]) == ["https://example.com/big"]


def test_body_over_one_mib_is_413(app, account, db_path):
    raw = _padded(MIB + 1)
    with app.client() as client:
        answer = post_links(client, account, raw)
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("application/json")
    assert "error" in answer.json()
    # Without a Content-Length (chunked), the limit holds as the body streams in. On a fresh
    # connection: Hypercorn closes one whose request body was left unread.
    with app.client() as client:
        chunked = client.post(
            f"/outreach/{account.id}/links",
            content=(raw[i : i + 65536] for i in range(0, len(raw), 65536)),
            headers={"Outreach-Webhook-Signature": sign(account.secret, raw), "Content-Type": "application/json"},
        )
        assert chunked.status_code == 413
    assert _links_count(db_path, account) == 0


# -- which links are replaced -----------------------------------------------------------

NOT_REPLACED = [
    "mailto:someone@example.com",
    "tel:+15551234567",
    "/relative/path",
    "relative.html",
    "//example.com/scheme-relative",
    "ftp://example.com/file.txt",
    "javascript:alert(1)",
    "garbage",
    "",
    "https://",
    "http://",
    "https:///no-host",
    "http://[::1",
    " https://example.com/leading-space",
    "https://example.com/trailing-space ",
    "https://exa mple.com/inner-space",
]
REPLACED = [
    "https://example.com/",
    "http://example.com/path?q=1#frag",
    "HTTPS://EXAMPLE.COM/UPPER",
    "https://user@example.com:8443/port",
    "http://[2001:db8::1]/v6",
]


def test_only_absolute_http_and_https_links_with_a_host_are_replaced(app, account, db_path):
    with app.client() as client:
        answer = post_links(client, account, outreach_body(NOT_REPLACED + REPLACED))
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert sorted(data) == sorted(REPLACED)
    for short in data.values():
        assert short.startswith(app.url + "/r/")
    stored = {row["target_url"] for row in _links(db_path, account)}
    assert stored == set(REPLACED)


def test_no_replaceable_links_answers_empty_data(app, account, db_path):
    with app.client() as client:
        answer = post_links(client, account, outreach_body(["mailto:a@example.com"]))
        empty = post_links(client, account, outreach_body([]))
    assert answer.status_code == 200 and answer.json() == {"data": {}}
    assert empty.status_code == 200 and empty.json() == {"data": {}}
    assert _links_count(db_path, account) == 0


def test_duplicates_are_answered_once(app, account, db_path):
    data = ["https://example.com/a", "https://example.com/b", "https://example.com/a", "https://example.com/a"]
    with app.client() as client:
        answer = post_links(client, account, outreach_body(data))
    assert answer.status_code == 200
    assert answer.text.count("https://example.com/a") == 1
    assert sorted(answer.json()["data"]) == ["https://example.com/a", "https://example.com/b"]
    assert _links_count(db_path, account) == 2


def test_answer_keys_are_exactly_the_data_strings(app, account):
    # Strings that a URL normaliser would change: the keys must come back byte for byte.
    data = [
        "https://Example.COM/Path",
        "https://example.com/a%20b?x=%7E&y=ü",
        "https://example.com/ünïcode",
        "https://example.com:443/default-port",
        "https://example.com/trailing/",
        "https://example.com/trailing",
        "https://example.com/?utm_source=outreach&utm_medium=email",
    ]
    with app.client() as client:
        answer = post_links(client, account, outreach_body(data))
    assert answer.status_code == 200
    assert list(answer.json()["data"]) == data  # same strings, same order, nothing added


# -- the link filter ---------------------------------------------------------------------


def test_filter_is_matched_against_the_original_url(app, db_path):
    account = create_account(db_path, link_filter=r"^https://www\.google\.com/")
    data = [
        "https://bit.ly/33zYFqH",       # original www.google.com → replaced
        "https://yhoo.it/35tPtX6",      # original www.yahoo.com → left out
        "https://www.google.com/maps",  # no meta.urls entry: its own original → replaced
        "https://bit.ly/google",        # original www.yahoo.com/2, though the current URL looks similar → left out
    ]
    urls = {
        "https://www.google.com/": "https://bit.ly/33zYFqH",
        "https://www.yahoo.com/": "https://yhoo.it/35tPtX6",
        "https://www.yahoo.com/2": "https://bit.ly/google",
    }
    with app.client() as client:
        answer = post_links(client, account, outreach_body(data, urls=urls))
    assert answer.status_code == 200, answer.text
    assert sorted(answer.json()["data"]) == ["https://bit.ly/33zYFqH", "https://www.google.com/maps"]
    rows = {r["target_url"]: r["original_url"] for r in _links(db_path, account)}
    assert rows == {
        "https://bit.ly/33zYFqH": "https://www.google.com/",
        "https://www.google.com/maps": "https://www.google.com/maps",
    }


def test_filter_does_not_match_on_the_current_url(app, db_path):
    account = create_account(db_path, link_filter=r"bit\.ly")
    urls = {"https://www.example.com/": "https://bit.ly/x"}
    with app.client() as client:
        answer = post_links(client, account, outreach_body(["https://bit.ly/x", "https://bit.ly/y"], urls=urls))
    assert answer.status_code == 200
    # bit.ly/x's original does not match; bit.ly/y has no entry, so it is its own original and matches.
    assert list(answer.json()["data"]) == ["https://bit.ly/y"]


def test_filter_uses_pcre_style_syntax(app, db_path):
    # Possessive quantifiers and \d are Perl-style; `regex` supports them, `re` before 3.11 did not.
    account = create_account(db_path, link_filter=r"(?i)^https://shop\.example\.com/item/\d++$")
    with app.client() as client:
        answer = post_links(client, account, outreach_body(
            ["https://SHOP.example.com/item/42", "https://shop.example.com/item/x", "https://example.com/item/1"]))
    assert list(answer.json()["data"]) == ["https://SHOP.example.com/item/42"]


def _metric(app, name: str) -> float:
    with app.client() as client:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def test_catastrophic_filter_times_out_and_still_answers_quickly(app, db_path):
    account = create_account(db_path, link_filter=r"(?:a|a)*$")
    evil = f"https://example.com/{account.id}/" + "a" * 30 + "!"
    fine = "https://example.com/fine"
    with app.client() as client:
        started = time.monotonic()
        answer = post_links(client, account, outreach_body([evil, fine]))
        elapsed = time.monotonic() - started
        # The app is not stalled: it answers the next request at once.
        health = client.get("/healthz")
    assert answer.status_code == 200, answer.text
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
    assert list(answer.json()["data"]) == [fine]
    assert health.status_code == 200
    # the timeout is logged, naming the link
    assert any("timed out" in line and account.id in line for line in app.output.splitlines())


def test_concurrent_calls_with_a_catastrophic_filter_stall_neither_redirects_nor_health(app, db_path):
    # The filter compiles at once but backtracks without end on these links: each call spends
    # its whole matching budget. Matching runs in threads of its own, off the event loop.
    hostile = create_account(db_path, link_filter=r"(a|aa)+$")
    plain = create_account(db_path)
    neighbour = create_account(db_path, link_filter=r"^https://shop\.example/")
    with app.client() as client:
        short = post_links(client, plain, outreach_body(["https://example.com/landing"])).json()["data"]
    redirect_path = short["https://example.com/landing"][len(app.url):]
    body = outreach_body([f"https://example.com/{i}/" + "a" * 40 + "!" for i in range(200)])
    stop = threading.Event()
    statuses: list[int] = []

    def flood() -> None:
        with app.client() as client:
            while not stop.is_set():
                statuses.append(post_links(client, hostile, body).status_code)

    callers = [threading.Thread(target=flood) for _ in range(12)]
    for caller in callers:
        caller.start()
    try:
        deadline = time.monotonic() + 30
        while not statuses and time.monotonic() < deadline:  # the flood is under way
            time.sleep(0.01)
        # A liveness check, not a timing one: a stalled event loop would not answer at all in 2 s.
        with app.client(timeout=2) as probe:
            for _ in range(20):
                assert probe.get("/healthz").status_code == 200
                redirect = probe.get(redirect_path)
                assert redirect.status_code == 302
                assert redirect.headers["location"] == "https://example.com/landing"
            # Another account's filter still gets a thread: the flood holds one at a time.
            links = ["https://shop.example/a", "https://other.example/"]
            answered = [post_links(probe, neighbour, outreach_body(links)).json()["data"] for _ in range(10)]
            assert all(list(data) == ["https://shop.example/a"] for data in answered), answered
    finally:
        stop.set()
        for caller in callers:
            caller.join(timeout=60)
    assert statuses and set(statuses) == {200}


def test_a_stored_filter_that_does_not_compile_leaves_every_link_out(app, db_path):
    # Only a hand-edited database can hold one (a filter is compiled when it is set): the
    # safe answer is to replace nothing, so Outreach keeps every original link.
    account = create_account(db_path)
    conn = connect(db_path)
    conn.execute("UPDATE accounts SET link_filter = '(unclosed' WHERE id = ?", (account.id,))
    conn.close()
    with app.client() as client:
        answer = post_links(client, account, outreach_body(["https://example.com/a"]))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"data": {}}
    deadline = time.monotonic() + 10  # the log is read from the app's stderr as it comes
    while "does not compile" not in app.output and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "link filter does not compile" in app.output


def test_filter_timeouts_are_counted(app, db_path):
    """/metrics documents linkhub_filter_timeouts_total: links left out because the filter timed out."""
    account = create_account(db_path, link_filter=r"(?:a|a)*$")
    before = _metric(app, "linkhub_filter_timeouts_total")
    with app.client() as client:
        answer = post_links(client, account, outreach_body(["https://example.com/" + "a" * 30 + "!"]))
    assert answer.json() == {"data": {}}
    assert _metric(app, "linkhub_filter_timeouts_total") == before + 1


def test_a_locked_store_answers_503_at_once(app, db_path):
    """If new codes cannot be stored in time, a fast 503: Outreach then keeps the original links."""
    account = create_account(db_path)
    with app.client() as client:
        assert client.get("/healthz").status_code == 200  # started up: its own start-up writes are done
    blocker = connect(db_path)
    try:
        hold_write_lock(blocker)
        with app.client() as client:
            started = time.monotonic()
            answer = post_links(client, account, outreach_body(["https://example.com/new"]))
            elapsed = time.monotonic() - started
    finally:
        blocker.undo()
        blocker.close()
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert elapsed < 1.8, f"took {elapsed:.2f}s; Outreach gives up after 2s"
    with app.client() as client:
        retry = post_links(client, account, outreach_body(["https://example.com/new"]))
    assert retry.status_code == 200
    assert list(retry.json()["data"]) == ["https://example.com/new"]
    assert _links_count(db_path, account) == 1


# -- idempotence and attribution --------------------------------------------------------


def test_same_call_twice_answers_the_same_codes_and_writes_nothing_new(app, account, db_path):
    body = outreach_body(["https://example.com/a", "https://example.com/b"])
    with app.client() as client:
        first = post_links(client, account, body)
        rows_after_first = _links(db_path, account)
        second = post_links(client, account, body)
        rows_after_second = _links(db_path, account)
        # A retry that adds a link keeps the old codes and mints only the new one.
        third = post_links(client, account, outreach_body(["https://example.com/b", "https://example.com/c"]))
    assert first.status_code == second.status_code == third.status_code == 200
    assert first.json() == second.json()
    assert rows_after_second == rows_after_first
    assert third.json()["data"]["https://example.com/b"] == first.json()["data"]["https://example.com/b"]
    assert _links_count(db_path, account) == 3


def _largest_body(make_link) -> tuple[dict, list[str]]:
    """The body with the most links that still fits the 1 MiB limit."""
    low, high = 1, 200_000
    while low < high:  # the largest n whose body fits
        n = (low + high + 1) // 2
        if len(json.dumps(outreach_body([make_link(i) for i in range(n)]))) <= 1024 * 1024:
            low = n
        else:
            high = n - 1
    data = [make_link(i) for i in range(low)]
    return outreach_body(data), data


def test_a_retried_call_as_large_as_the_limit_allows_answers_the_same_codes(app, account, db_path):
    """Finding the codes of a retry costs a seek per link, not a read of the recipient's every link per chunk."""
    body, data = _largest_body(lambda i: f"https://e.io/{i}")
    assert len(data) > 40_000
    with app.client() as client:
        client.timeout = httpx.Timeout(60)
        post_links(client, account, body)  # may answer 503 if slower than Outreach waits; it still commits
        deadline = time.monotonic() + 60
        while _links_count(db_path, account) < len(data) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _links_count(db_path, account) == len(data)
        minted = {r["target_url"]: r["code"] for r in query(
            db_path, "SELECT target_url, code FROM links WHERE account_id = ?", (account.id,))}
        # A retry answers in time: a few tries allow for a busy machine, none for a quadratic cost.
        for _ in range(3):
            retry = post_links(client, account, body)
            if retry.status_code == 200:
                break
    assert retry.status_code == 200, retry.text
    assert retry.json()["data"] == {target: f"{app.url}/r/{minted[target]}" for target in data}
    assert _links_count(db_path, account) == len(data)  # the retries created nothing


def test_ids_as_ints_are_accepted_and_stored_as_text(app, account, db_path):
    with app.client() as client:
        answer = post_links(client, account, outreach_body(["https://example.com/a"], mailing=123, prospect=456))
    assert answer.status_code == 200, answer.text
    [row] = _links(db_path, account)
    assert (row["mailing_id"], row["prospect_id"]) == ("123", "456")


def test_another_prospect_or_mailing_gets_other_codes(app, account):
    data = ["https://example.com/a"]
    with app.client() as client:
        p1 = post_links(client, account, outreach_body(data, prospect="p-1")).json()["data"][data[0]]
        p2 = post_links(client, account, outreach_body(data, prospect="p-2")).json()["data"][data[0]]
        m2 = post_links(client, account, outreach_body(data, mailing="m-2")).json()["data"][data[0]]
        again = post_links(client, account, outreach_body(data, prospect="p-1")).json()["data"][data[0]]
    assert len({p1, p2, m2}) == 3
    assert again == p1


def test_another_account_gets_other_codes(app, db_path):
    first, second = create_account(db_path, secret="s1"), create_account(db_path, secret="s2")
    body = outreach_body(["https://example.com/a"])
    with app.client() as client:
        a = post_links(client, first, body).json()["data"]
        b = post_links(client, second, body).json()["data"]
    assert a != b


def test_concurrent_identical_calls_agree_on_one_code(app, account, db_path):
    """Outreach retries and parallel sends: racing calls for the same recipient share codes."""
    from concurrent.futures import ThreadPoolExecutor

    body = outreach_body([f"https://example.com/{i}" for i in range(20)])

    def call(_: int) -> dict:
        with app.client() as client:
            answer = post_links(client, account, body)
            assert answer.status_code == 200, answer.text
            return answer.json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(16)))
    assert all(a == answers[0] for a in answers)
    assert _links_count(db_path, account) == 20


# -- codes -----------------------------------------------------------------------------


def test_codes_are_url_safe_long_enough_and_distinct(app, account):
    data = [f"https://example.com/page/{i}" for i in range(300)]
    with app.client() as client:
        answer = post_links(client, account, outreach_body(data))
    assert answer.status_code == 200
    codes = [_code(short, app.url) for short in answer.json()["data"].values()]
    assert len(codes) == 300
    assert len(set(codes)) == 300
    for code in codes:
        assert CODE.match(code), code
        assert len(code) >= 11, code  # a number of at least 2 characters, then 9 random (54 bits)


# -- public URL --------------------------------------------------------------------------


def test_account_public_url_overrides_the_server_one(make_server, db_path):
    # The flag wins over the environment; an account's own public URL wins over both.
    server = make_server("--public-url", "https://links.example.net/", env={"LINKHUB_PUBLIC_URL": "https://env.example.org"})
    custom = create_account(db_path, public_url="https://go.example.com")
    plain = create_account(db_path, secret="other")
    body = outreach_body(["https://example.com/a"])
    with server.client() as client:
        custom_link = post_links(client, custom, body).json()["data"]["https://example.com/a"]
        plain_link = post_links(client, plain, body).json()["data"]["https://example.com/a"]
    assert re.fullmatch(r"https://go\.example\.com/r/[A-Za-z0-9_-]{8,}", custom_link), custom_link
    assert re.fullmatch(r"https://links\.example\.net/r/[A-Za-z0-9_-]{8,}", plain_link), plain_link


def test_public_url_from_the_environment(make_server, db_path):
    server = make_server(env={"LINKHUB_PUBLIC_URL": "https://env.example.org"})
    account = create_account(db_path)
    with server.client() as client:
        link = post_links(client, account, outreach_body(["https://example.com/a"])).json()["data"]["https://example.com/a"]
    assert link.startswith("https://env.example.org/r/")


# -- account changes reach the running app -------------------------------------------


def test_account_changes_take_effect_without_restart(app, db_path):
    account = create_account(db_path, link_filter=r"keep")
    body = outreach_body(["https://example.com/keep", "https://example.com/drop"])
    with app.client() as client:
        before = post_links(client, account, body)
        assert list(before.json()["data"]) == ["https://example.com/keep"]

        conn = connect(db_path)  # as `linkhub accounts update` does, from another process's point of view
        try:
            accounts.update(conn, account.id, link_filter=None, public_url="https://custom.example.com",
                            outreach_secret="rotated-secret")
        finally:
            conn.close()

        old_secret = post_links(client, account, body)
        account.secret = "rotated-secret"
        after = post_links(client, account, body)
    assert old_secret.status_code == 401
    assert after.status_code == 200, after.text
    data = after.json()["data"]
    assert sorted(data) == ["https://example.com/drop", "https://example.com/keep"]
    assert all(v.startswith("https://custom.example.com/r/") for v in data.values())
    # the code minted before the change is still the code for that recipient and link
    assert _code(data["https://example.com/keep"], "https://custom.example.com") == _code(
        before.json()["data"]["https://example.com/keep"], app.url)


def test_account_created_while_running_is_served_at_once(app, db_path):
    with app.client() as client:
        late = create_account(db_path, secret="late")
        answer = post_links(client, late, outreach_body(["https://example.com/"]))
    assert answer.status_code == 200


# -- what is stored ----------------------------------------------------------------------


def test_stored_link_row(app, account, db_path):
    body = outreach_body(["https://bit.ly/x"], mailing="mail-9", prospect="pros-7", email="Pat@Example.com",
                         urls={"https://www.example.com/landing": "https://bit.ly/x"})
    before = datetime.now(UTC) - timedelta(seconds=1)
    with app.client() as client:
        short = post_links(client, account, body).json()["data"]["https://bit.ly/x"]
    after = datetime.now(UTC) + timedelta(seconds=1)
    [row] = _links(db_path, account)
    assert row["code"] == _code(short, app.url)
    assert row["account_id"] == account.id
    assert row["target_url"] == "https://bit.ly/x"
    assert row["original_url"] == "https://www.example.com/landing"
    assert row["mailing_id"] == "mail-9"
    assert row["prospect_id"] == "pros-7"
    assert row["prospect_email"] == "Pat@Example.com"
    assert row["user_id"] == "u-1"
    assert row["user_email"] == "sender@example.com"
    assert TIMESTAMP.match(row["created_at"]), row["created_at"]
    created = datetime.fromisoformat(row["created_at"])
    assert before <= created <= after
