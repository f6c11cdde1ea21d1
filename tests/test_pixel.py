"""GET/HEAD /o/<code>: the open pixel's GIF, the `open` it records (committed before the answer), first and
repeated opens, how opens are classified (mail image proxies, Apple Mail Privacy Protection, scanners,
people), the reporting views, erasure and retention, and `classify trace` with opens — in-process, on a
real SQLite file. Pixel rows are made with plain SQL, as the minting API stores them (migration 0009)."""

from __future__ import annotations

import asyncio
import json
import secrets
import struct
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from linkhub.core import retention
from linkhub.core.classify.verdict import CLASSIFIER_VERSION
from linkhub.core.useragent import describe
from linkhub.settings import parse_networks
from linkhub.store import connect, transaction

from conftest import Account, create_account, linkhub, query
from delivery_support import create_webhook

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/154.0.0.0 Safari/537.36")
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
# Apple Mail's own user agent, with no browser token after the engine's: Apple Mail itself, or MPP.
APPLE_MAIL = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
# Addresses: Google's (Gmail's image proxy fetches from 66.249.8x), Yahoo's, Microsoft's Exchange Online
# (40.107.0.0/16), an Apple Private Relay egress (104.28.40.0/25 in the shipped list), Barracuda's
# gateway (209.222.80.0/21), and a residential address on no list.
GOOGLE_IP, YAHOO_IP, MICROSOFT_IP = "66.249.84.21", "98.136.180.7", "40.107.22.9"
APPLE_RELAY_IP, BARRACUDA_IP, HOME_IP = "104.28.40.5", "209.222.82.10", "73.21.4.7"
HOUR = timedelta(hours=1)


def at(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def mint_pixel(db_path: Path, account: Account, *, mailing: str = "m-1", message: str | None = None,
               recipient_id: str | None = "r-1", email: str | None = "ana@northwind.example",
               minted: datetime | None = None, erased: bool = False) -> str:
    """A row of `pixels` with exactly migration 0009's columns; returns its /o/ path."""
    code = "px" + secrets.token_urlsafe(12)
    minted = minted or datetime.now(UTC) - HOUR
    conn = connect(db_path)
    try:
        conn.execute(
            "INSERT INTO pixels (code, account_id, mailing_id, message_id, recipient_id, email, created_at, erased_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (code, account.id, mailing, message or f"msg-{code}", recipient_id, email, at(minted),
             at(datetime.now(UTC)) if erased else None))
    finally:
        conn.close()
    return f"/o/{code}"


def opens(db_path: Path, account: Account) -> list[dict[str, Any]]:
    """The account's open events, oldest first, details decoded."""
    rows = query(db_path, "SELECT * FROM events WHERE type = 'open' AND account_id = ? ORDER BY seq", (account.id,))
    return [{**dict(row), "details": json.loads(row["details"])} for row in rows]


def codes(event: dict[str, Any]) -> list[str]:
    return [reason["code"] for reason in event["details"]["reasons"]]


def metric(app: Any, name: str) -> float:
    with app.client() as client:
        text = client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def assert_gif(answer: httpx.Response, *, body: bool = True) -> None:
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/gif"
    assert answer.headers["cache-control"] == "no-store, private"
    assert answer.headers["pragma"] == "no-cache"
    assert answer.headers["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"
    size = int(answer.headers["content-length"])
    if not body:
        assert answer.content == b""
        return
    gif = answer.content
    assert len(gif) == size
    # A GIF89a of 1×1 pixels whose graphic control extension marks its colour transparent, then the trailer.
    assert gif[:6] == b"GIF89a" and struct.unpack("<HH", gif[6:10]) == (1, 1)
    extension = gif.index(b"!\xf9\x04")
    assert gif[extension + 3] & 1 == 1
    assert gif.endswith(b";")


@pytest.fixture
def app(make_app: Any) -> Any:
    """The app believing X-Forwarded-For from the in-process client (127.0.0.1): each test names its IPs."""
    return make_app(trusted_proxies=parse_networks("127.0.0.1/32"))


def fetch(app: Any, path: str, *, ua: str | None = CHROME, ip: str = HOME_IP, method: str = "GET",
          **headers: str) -> httpx.Response:
    sent = {"x-forwarded-for": ip, **headers}
    if ua is not None:
        sent["user-agent"] = ua
    with app.client() as client:
        return client.request(method, path, headers=sent)


# -- the GIF and the open it records ------------------------------------------------------------------


def test_a_pixel_answers_the_gif_and_its_open_is_committed_before_the_answer(app, db_path, account):
    path = mint_pixel(db_path, account, mailing="m-7", message="<a1@mail.example>", recipient_id="4711",
                      email="Ana.Lopez@Northwind.example")
    answer = fetch(app, path, **{"accept-language": "es-ES,es;q=0.9"})
    assert_gif(answer)
    # Read right after the answer: the open is already in the database.
    [event] = opens(db_path, account)
    assert (event["source"], event["mailing_id"], event["message_id"], event["recipient_id"], event["email"],
            event["code"], event["url"]) == ("pixel", "m-7", "<a1@mail.example>", "4711",
                                            "Ana.Lopez@Northwind.example", path[3:], None)
    details = event["details"]
    assert details["first_open"] is True
    client = describe(CHROME)  # what a click stores of the same user agent
    assert (details["device"], details["os"], details["browser"]) == (client.device, client.os, client.browser)
    assert details["os"].startswith("Windows") and details["browser"].startswith("Chrome")
    assert details["ip"] == HOME_IP and details["user_agent"] == CHROME and details["method"] == "GET"
    assert details["headers"] == {"accept-language": "es-ES,es;q=0.9"}
    assert details["verdict"] == "human" and details["bot"] is False and details["classifier"] == CLASSIFIER_VERSION
    assert isinstance(details["score"], int) and codes(event)
    assert details["proxy"] is None and details["apple_mpp"] is False
    assert metric(app, "linkhub_opens_recorded_total") == 1


def test_the_gif_suffix_is_the_same_pixel(app, db_path, account):
    path = mint_pixel(db_path, account)
    assert_gif(fetch(app, path + ".gif"))
    assert [event["code"] for event in opens(db_path, account)] == [path[3:]]


def test_head_answers_the_gif_s_headers_and_records_nothing(app, db_path, account):
    path = mint_pixel(db_path, account)
    assert_gif(fetch(app, path, method="HEAD"), body=False)
    assert opens(db_path, account) == []


@pytest.mark.parametrize("path", ["/o/pxUnknownCode12", "/o/x", "/o/", "/o/pxUnknownCode12.png", "/o/a/b/c",
                                  "/o/%00%00%00%00%00%00"])
def test_an_unknown_or_malformed_code_still_gets_the_gif_and_records_nothing(app, db_path, account, path):
    mint_pixel(db_path, account)
    assert_gif(fetch(app, path))
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == 0
    assert metric(app, "linkhub_pixels_unknown_total") == 1


def test_an_erased_pixel_answers_and_records_nothing(app, db_path, account):
    path = mint_pixel(db_path, account, erased=True)
    assert_gif(fetch(app, path))
    assert opens(db_path, account) == []


def test_other_methods_are_refused(app, db_path, account):
    path = mint_pixel(db_path, account)
    with app.client() as client:
        answer = client.post(path, content=b"x")
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"
    assert opens(db_path, account) == []


# -- first and repeated opens ------------------------------------------------------------------------


def test_the_first_open_and_the_repeats_are_told_apart_in_the_event_and_the_view(app, db_path, account):
    path = mint_pixel(db_path, account)
    other = mint_pixel(db_path, account, recipient_id="r-2", email="ben@contoso.example")
    for target in (path, path, other, path):
        assert_gif(fetch(app, target))
    firsts = [(event["code"], event["details"]["first_open"]) for event in opens(db_path, account)]
    assert firsts == [(path[3:], True), (path[3:], False), (other[3:], True), (path[3:], False)]
    view = query(db_path, "SELECT code, first_open FROM opens WHERE account_id = ? ORDER BY seq", (account.id,))
    assert [(row["code"], row["first_open"]) for row in view] == [(c, int(f)) for c, f in firsts]


def test_concurrent_opens_of_one_message_have_exactly_one_first(app, db_path, account):
    paths = [mint_pixel(db_path, account, recipient_id=f"r-{n}", email=f"p{n}@example.com") for n in range(3)]

    async def burst() -> list[int]:
        async with app.async_client() as client:
            answers = await asyncio.gather(*(client.get(path, headers={"user-agent": CHROME})
                                             for path in paths for _ in range(8)))
        return [answer.status_code for answer in answers]

    assert app.run(burst) == [200] * 24
    events = opens(db_path, account)
    assert len(events) == 24
    for path in paths:
        mine = [event["details"]["first_open"] for event in events if event["code"] == path[3:]]
        assert len(mine) == 8 and mine.count(True) == 1 and mine[0] is True


# -- classification ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ua", "ip", "proxy"), [
    (GMAIL_PROXY, GOOGLE_IP, "Gmail's image proxy"),
    (YAHOO_PROXY, YAHOO_IP, "Yahoo Mail's proxy"),
    # Outlook on the web fetches images from Microsoft's network with a browser-like user agent.
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/97.0.4692.99 "
     "Safari/537.36", MICROSOFT_IP, "Outlook's image proxy"),
])
def test_a_mail_image_proxy_is_a_real_open_marked_proxied_without_a_device(app, db_path, account, ua, ip, proxy):
    # Fetched seconds after minting, with no Accept-Language: the proxy's request, not the reader's.
    path = mint_pixel(db_path, account, minted=datetime.now(UTC) - timedelta(seconds=3))
    assert_gif(fetch(app, path, ua=ua, ip=ip))
    [event] = opens(db_path, account)
    details = event["details"]
    assert details["verdict"] in ("human", "unknown") and details["bot"] is False
    assert codes(event)[0] == "proxied" and details["reasons"][0]["evidence"]["proxy"] == proxy
    assert details["proxy"] == proxy and details["apple_mpp"] is False
    assert (details["device"], details["os"], details["browser"]) == (None, None, None)
    assert "no_accept_language" not in codes(event)
    [row] = query(db_path, "SELECT kind, proxy FROM opens WHERE account_id = ?", (account.id,))
    assert (row["kind"], row["proxy"]) == ("proxied", proxy)


@pytest.mark.parametrize(("ua", "ip", "by"), [
    (APPLE_MAIL, APPLE_RELAY_IP, "network"),  # Apple's relay, whatever the user agent
    ("Mozilla/5.0", HOME_IP, "user_agent"),   # MPP's bare user agent, from an address the list lacks
])
def test_an_apple_mpp_prefetch_is_unknown_and_reported_apart(app, db_path, account, ua, ip, by):
    path = mint_pixel(db_path, account, minted=datetime.now(UTC) - timedelta(seconds=2))
    assert_gif(fetch(app, path, ua=ua, ip=ip))
    [event] = opens(db_path, account)
    details = event["details"]
    assert details["verdict"] == "unknown" and details["apple_mpp"] is True and details["proxy"] is None
    assert codes(event)[0] == "apple_mpp"
    evidence = details["reasons"][0]["evidence"]
    assert evidence == ({"ip": ip, "network": "apple_private_relay", "certainty": "high"} if by == "network"
                        else {"user_agent": "Mozilla/5.0"})
    assert details["device"] is None
    [row] = query(db_path, "SELECT kind, apple_mpp FROM opens WHERE account_id = ?", (account.id,))
    assert (row["kind"], row["apple_mpp"]) == ("apple_mpp", 1)


def test_apple_mail_without_mpp_from_a_home_address_is_a_person_s_open(app, db_path, account):
    path = mint_pixel(db_path, account)
    assert_gif(fetch(app, path, ua=APPLE_MAIL, ip=HOME_IP, **{"accept-language": "en-GB"}))
    [event] = opens(db_path, account)
    assert event["details"]["apple_mpp"] is False and event["details"]["verdict"] in ("human", "unknown")
    assert event["details"]["os"] == describe(APPLE_MAIL).os and event["details"]["os"]


def test_a_security_scanner_fetching_the_image_at_delivery_is_a_scanner(app, db_path, account):
    path = mint_pixel(db_path, account, minted=datetime.now(UTC) - timedelta(seconds=2))
    assert_gif(fetch(app, path, ua="Barracuda Sentinel (EE)", ip=BARRACUDA_IP))
    [event] = opens(db_path, account)
    assert event["details"]["verdict"] == "scanner" and event["details"]["bot"] is True
    assert {"security_vendor", "scanner_network", "early_hit"} <= set(codes(event))
    [row] = query(db_path, "SELECT kind FROM opens WHERE account_id = ?", (account.id,))
    assert row["kind"] == "machine"


def test_a_proxy_serving_many_companies_is_not_made_a_machine_by_its_shared_address(app, db_path, account):
    """Gmail's proxy fetches for everyone from a few addresses: one address opening for many companies'
    recipients within minutes is a scanner's sign for clicks, never for a proxy's opens."""
    domains = ["northwind.example", "contoso.example", "fabrikam.example", "tailspin.example", "adatum.example"]
    for n, domain in enumerate(domains):
        path = mint_pixel(db_path, account, recipient_id=f"r-{n}", email=f"p{n}@{domain}")
        assert_gif(fetch(app, path, ua=GMAIL_PROXY, ip=GOOGLE_IP))
    verdicts = [event["details"]["verdict"] for event in opens(db_path, account)]
    assert verdicts == ["unknown"] * len(domains)
    # The same five fetches from a plain address on no list do make it look shared (the rule still works).
    other = create_account(db_path)
    for n, domain in enumerate(domains):
        path = mint_pixel(db_path, other, recipient_id=f"r-{n}", email=f"p{n}@{domain}")
        assert_gif(fetch(app, path, ua="Mozilla/5.0 (Windows NT 10.0; Win64; x64)", ip="198.51.100.20"))
    assert any("shared_ip" in codes(event) for event in opens(db_path, other))


def test_mailing_stats_split_the_opens(app, db_path, account):
    made = [
        (GMAIL_PROXY, GOOGLE_IP, "proxied"), (GMAIL_PROXY, GOOGLE_IP, "proxied"),
        (APPLE_MAIL, APPLE_RELAY_IP, "apple_mpp"), ("Mozilla/5.0", HOME_IP, "apple_mpp"),
        ("Barracuda Sentinel (EE)", BARRACUDA_IP, "machine"),
        (CHROME, HOME_IP, "person"), (CHROME, "73.21.9.9", "person"),
    ]
    recipients = ["r-1", "r-1", "r-2", "r-3", "r-4", "r-5", "r-1"]
    pixels = {r: mint_pixel(db_path, account, recipient_id=r, email=f"{r}@example.com") for r in set(recipients)}
    for (ua, ip, _kind), recipient in zip(made, recipients, strict=True):
        assert_gif(fetch(app, pixels[recipient], ua=ua, ip=ip, **{"accept-language": "en"}))
    kinds = [row["kind"] for row in query(db_path, "SELECT kind FROM opens WHERE account_id = ? ORDER BY seq",
                                          (account.id,))]
    assert kinds == [kind for _ua, _ip, kind in made]
    [row] = query(db_path, "SELECT * FROM mailing_stats WHERE account_id = ? AND mailing_id = 'm-1'", (account.id,))
    people = [r for (_u, _i, kind), r in zip(made, recipients, strict=True) if kind in ("proxied", "person")]
    assert (row["opens"], row["people_opens"], row["unique_people_opens"], row["proxied_opens"],
            row["apple_mpp_opens"], row["machine_opens"]) == (7, len(people), len(set(people)), 2, 2, 1)
    assert row["recipients"] == 0  # no links and no `sent` event: the rate is not known
    assert row["open_rate"] is None
    first = query(db_path, "SELECT min(occurred_at) FROM opens WHERE account_id = ? AND kind IN ('proxied', 'person')",
                  (account.id,))[0][0]
    assert row["first_open_at"] == first
    # Each recipient's opens are split the same way in recipient_activity.
    activity = {r["recipient"]: r for r in query(db_path, "SELECT * FROM recipient_activity WHERE account_id = ?",
                                                 (account.id,))}
    for recipient in set(recipients):
        theirs = [kind for (_u, _i, kind), r in zip(made, recipients, strict=True) if r == recipient]
        got = activity[f"{recipient}@example.com"]
        assert (got["opens"], got["people_opens"], got["apple_mpp_opens"], got["machine_opens"]) == (
            len(theirs), sum(k in ("proxied", "person") for k in theirs), theirs.count("apple_mpp"),
            theirs.count("machine")), recipient
        assert (got["first_open_at"] is None) == (not any(k in ("proxied", "person") for k in theirs))


def test_an_open_whose_burst_shows_a_machine_is_rescored_and_the_change_recorded(app, db_path, account):
    """One plain address fetching three companies' pixels seconds after they were minted: the third makes
    the address shared, and the first two opens' verdicts change, as clicks' do while they settle."""
    domains = ["northwind.example", "contoso.example", "fabrikam.example"]
    for n, domain in enumerate(domains):
        path = mint_pixel(db_path, account, recipient_id=f"r-{n}", email=f"p{n}@{domain}",
                          minted=datetime.now(UTC) - timedelta(seconds=2))
        assert_gif(fetch(app, path, ua="Mozilla/5.0 (Windows NT 10.0; Win64; x64)", ip="198.51.100.30"))
    events = opens(db_path, account)
    assert [event["details"]["verdict"] for event in events] == ["scanner"] * 3
    assert all("shared_ip" in codes(event) for event in events)
    changes = query(db_path, "SELECT event_seq, old_verdict, new_verdict, cause FROM verdict_changes"
                             " WHERE account_id = ? ORDER BY id", (account.id,))
    assert [(row["event_seq"], row["old_verdict"], row["new_verdict"], row["cause"]) for row in changes] == [
        (event["seq"], "unknown", "scanner", "settle") for event in events[:2]]


def test_opens_are_delivered_to_the_account_s_webhooks(make_app, db_path, account, make_receiver):
    app = make_app(allow_private_targets=True, trusted_proxies=parse_networks("127.0.0.1/32"))
    receiver = make_receiver()
    with app.client() as client:
        create_webhook(client, account, receiver.url, types=["open"])
    path = mint_pixel(db_path, account, mailing="m-9", message="<b2@mail.example>")
    assert_gif(fetch(app, path, ua=GMAIL_PROXY, ip=GOOGLE_IP))
    [delivered] = receiver.wait_events(1)
    [stored] = opens(db_path, account)
    assert delivered["id"] == stored["id"] and delivered["type"] == "open"
    assert (delivered["mailing_id"], delivered["message_id"], delivered["recipient_id"], delivered["email"]) == (
        "m-9", "<b2@mail.example>", "r-1", "ana@northwind.example")
    details = delivered["details"]
    assert details["first_open"] is True and details["proxy"] == "Gmail's image proxy"
    assert details["verdict"] == "unknown" and details["reasons"][0]["code"] == "proxied"


def test_a_webhook_that_takes_people_s_verdicts_gets_a_person_s_open_and_not_a_scanner_s(make_app, db_path, account,
                                                                                          make_receiver):
    app = make_app(allow_private_targets=True, trusted_proxies=parse_networks("127.0.0.1/32"))
    receiver = make_receiver()
    with app.client() as client:
        create_webhook(client, account, receiver.url, types=["open"], verdicts=["human", "unknown"])
    scanned = mint_pixel(db_path, account, message="<scanned@mail.example>",
                         minted=datetime.now(UTC) - timedelta(seconds=2))
    read = mint_pixel(db_path, account, message="<read@mail.example>", recipient_id="r-2", email="bo@northwind.example")
    assert_gif(fetch(app, scanned, ua="Barracuda Sentinel (EE)", ip=BARRACUDA_IP))
    assert_gif(fetch(app, read))
    [delivered] = receiver.wait_events(1)
    assert delivered["message_id"] == "<read@mail.example>"
    assert [event["details"]["verdict"] for event in opens(db_path, account)] == ["scanner", "unknown"]
    # The scanner's open was never queued for this webhook.
    assert query(db_path, "SELECT count(*) FROM outbox")[0][0] == 1


# -- when the store cannot write ----------------------------------------------------------------------


def test_a_locked_database_still_gets_the_gif_promptly_and_the_open_is_counted(app, db_path, account):
    path = mint_pixel(db_path, account)
    blocker = connect(db_path)  # another process holding the write lock
    try:
        blocker.begin()
        started = time.monotonic()
        answer = fetch(app, path, ua="while-locked")
        elapsed = time.monotonic() - started
    finally:
        blocker.undo()
        blocker.close()
    assert_gif(answer)
    assert elapsed < 2.0, f"took {elapsed:.2f}s"
    assert "not committed within" in app.output
    assert metric(app, "linkhub_opens_unconfirmed_total") == 1
    # It stayed queued: committed once the lock is gone, before the next open (one writer, in order).
    assert_gif(fetch(app, path, ua="after"))
    assert [event["details"]["user_agent"] for event in opens(db_path, account)] == ["while-locked", "after"]


# -- erasure and retention ------------------------------------------------------------------------------


def test_erasing_the_recipient_removes_their_opens_and_silences_the_pixel(app, db_path, account):
    path = mint_pixel(db_path, account, recipient_id="4711", email="ana@northwind.example")
    kept = mint_pixel(db_path, account, recipient_id="4712", email="ben@northwind.example")
    for target in (path, path, kept):
        assert_gif(fetch(app, target))
    ran = linkhub("erase", "--account", account.id, "--email", "ANA@northwind.example", "--json",
                  "--db", str(db_path))
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["removed"]["events"] == 2
    assert [event["code"] for event in opens(db_path, account)] == [kept[3:]]
    [pixel] = query(db_path, "SELECT email, recipient_id, erased_at FROM pixels WHERE code = ?", (path[3:],))
    assert pixel["email"] is None and pixel["recipient_id"] is None and pixel["erased_at"] is not None
    # It still answers, and records nothing more.
    assert_gif(fetch(app, path))
    assert [event["code"] for event in opens(db_path, account)] == [kept[3:]]


def test_retention_deletes_old_opens_like_any_event(app, db_path, account):
    path = mint_pixel(db_path, account)
    for _ in range(3):
        assert_gif(fetch(app, path))
    seqs = [event["seq"] for event in opens(db_path, account)]
    conn = connect(db_path)
    try:
        conn.execute("UPDATE events SET occurred_at = '2020-01-01T00:00:00.000Z' WHERE seq IN (?, ?)", seqs[:2])
        with transaction(conn):
            pruned = retention.prune_chunk(conn, retention.cutoff(30))
    finally:
        conn.close()
    assert pruned.events == 2
    assert [event["seq"] for event in opens(db_path, account)] == seqs[2:]


# -- classify trace ----------------------------------------------------------------------------------------


def test_classify_trace_judges_opens(tmp_path):
    def hit(**fields: Any) -> str:
        return json.dumps({"event": "open", "recipient": "4711", "mailing": "88", **fields})

    lines = [
        hit(t=4_000, ip=GOOGLE_IP, headers={"user-agent": GMAIL_PROXY}),
        hit(t=3_000, ip=APPLE_RELAY_IP, headers={"user-agent": APPLE_MAIL}),
        hit(t=2_500, ip="203.0.113.9", headers={"user-agent": "Mozilla/5.0"}),
        hit(t=1_500, ip=BARRACUDA_IP, headers={"user-agent": "Barracuda Sentinel (EE)"}),
        hit(t=7_200_000, ip=HOME_IP, headers={"user-agent": CHROME, "accept-language": "de"}),
        # The reader clicking seconds after the proxies' and the scanner's fetches, from home: the proxies'
        # addresses are not the reader's networks (no multi_network), the scanner's is its own.
        json.dumps({"t": 6_000, "ip": HOME_IP, "recipient": "4711", "mailing": "88", "url": "https://example.com/b",
                    "headers": {"user-agent": CHROME, "accept-language": "de"}}),
        # The same Apple relay address on a click is a person browsing with Private Relay: no apple_mpp.
        json.dumps({"t": 7_300_000, "ip": APPLE_RELAY_IP, "recipient": "4711", "mailing": "88",
                    "url": "https://example.com/a", "headers": {"user-agent": CHROME, "accept-language": "de"}}),
    ]
    path = tmp_path / "opens.jsonl"
    path.write_text("\n".join(lines) + "\n")
    ran = linkhub("classify", "trace", str(path))
    assert ran.returncode == 0, ran.stderr
    out = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [o["verdict"] for o in out] == ["unknown", "unknown", "unknown", "scanner", "human", "unknown", "human"]
    firsts = [o["reasons"][0]["code"] if o["reasons"] else None for o in out]
    assert firsts[:3] == ["proxied", "apple_mpp", "apple_mpp"]
    assert "multi_network" not in [r["code"] for r in out[5]["reasons"]]
    assert not any(r["code"] in ("apple_mpp", "proxied", "multi_network") for r in out[6]["reasons"])
    assert {o["classifier"] for o in out} == {CLASSIFIER_VERSION}


# -- a real server ------------------------------------------------------------------------------------------


def test_a_real_server_answers_the_pixel_and_records_the_open_before_answering(server, db_path, account):
    path = mint_pixel(db_path, account)
    with server.client() as client:
        head = client.head(path, headers={"user-agent": CHROME})
        answer = client.get(path + ".gif", headers={"user-agent": CHROME, "accept-language": "en"})
        unknown = client.get("/o/pxNoSuchCode99")
    assert_gif(head, body=False)
    assert_gif(answer)
    assert_gif(unknown)
    assert unknown.content == answer.content
    [event] = opens(db_path, account)
    assert event["details"]["method"] == "GET" and event["details"]["first_open"] is True
    assert event["details"]["ip"] == "127.0.0.1"


def test_anonymize_ip_and_no_user_agent_apply_to_opens(make_app, db_path, account):
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"), anonymize_ip=True, no_user_agent=True)
    path = mint_pixel(db_path, account)
    assert_gif(fetch(app, path, ua=APPLE_MAIL, ip=APPLE_RELAY_IP))
    [event] = opens(db_path, account)
    details = event["details"]
    assert details["ip"] == "104.28.40.0" and "user_agent" not in details
    # Judged on the full request (Apple's relay), stored minimised: the evidence holds the network too.
    assert details["apple_mpp"] is True and details["reasons"][0]["evidence"]["ip"] == "104.28.40.0"


def test_a_stopping_server_still_answers_the_gif_and_records_nothing(make_app, db_path):
    app = make_app()
    account = create_account(db_path)
    path = mint_pixel(db_path, account)
    app.app.begin_shutdown()
    with app.client() as client:
        answer = client.get(path, headers={"user-agent": CHROME})
        redirect = client.get("/r/anything")
    assert_gif(answer)
    assert redirect.status_code == 503  # the redirect is refused while stopping, as before
    assert opens(db_path, account) == []
    app.stop()
