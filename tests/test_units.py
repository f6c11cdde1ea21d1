"""Unit tests for the pure pieces: client IP, which URLs are replaceable and which links are
chosen, signatures, filters, time."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from linkhub.core import linkfilter, outreach
from linkhub.core.accounts import Account
from linkhub.settings import parse_networks
from linkhub.util.times import format_ms, now_rfc3339, parse_rfc3339, to_rfc3339
from linkhub.web.clientip import client_ip

# -- clientip.client_ip ------------------------------------------------------------------

LOCAL = parse_networks("127.0.0.1/32")
PROXIES = parse_networks("127.0.0.1/32, 10.0.0.0/8, 2001:db8:ffff::/48")


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "expected"), [
    # nothing trusted: the header is ignored
    ("127.0.0.1", "203.0.113.7", (), "127.0.0.1"),
    # no header
    ("127.0.0.1", None, LOCAL, "127.0.0.1"),
    ("127.0.0.1", "", LOCAL, "127.0.0.1"),
    # the peer is not a trusted proxy: it is the client, whatever it claims
    ("198.51.100.9", "203.0.113.7", LOCAL, "198.51.100.9"),
    # one trusted proxy
    ("127.0.0.1", "203.0.113.7", LOCAL, "203.0.113.7"),
    ("127.0.0.1", " 203.0.113.7 ", LOCAL, "203.0.113.7"),
    # the rightmost untrusted hop is the client; what the client wrote to its left is ignored
    ("127.0.0.1", "1.2.3.4, 203.0.113.7", LOCAL, "203.0.113.7"),
    # a chain of trusted proxies is skipped
    ("10.0.0.1", "203.0.113.7, 10.1.1.1, 10.2.2.2", PROXIES, "203.0.113.7"),
    ("127.0.0.1", "8.8.8.8, 203.0.113.7, 10.1.1.1", PROXIES, "203.0.113.7"),
    # every hop trusted: the leftmost is the best we know
    ("127.0.0.1", "10.0.0.5, 10.0.0.6", PROXIES, "10.0.0.5"),
    # ports are dropped
    ("127.0.0.1", "203.0.113.7:5123", LOCAL, "203.0.113.7"),
    ("127.0.0.1", "[2001:db8::1]:443", LOCAL, "2001:db8::1"),
    # IPv6
    ("127.0.0.1", "2001:db8::1", LOCAL, "2001:db8::1"),
    ("2001:db8:ffff::1", "2001:db8:1::7", PROXIES, "2001:db8:1::7"),
    # garbage: nothing at or left of it can be believed; the last trusted hop is what we know
    ("127.0.0.1", "garbage", LOCAL, "127.0.0.1"),
    ("127.0.0.1", "203.0.113.7, unknown", LOCAL, "127.0.0.1"),
    ("127.0.0.1", "unknown, 203.0.113.7", LOCAL, "203.0.113.7"),
    ("10.0.0.1", "203.0.113.7, bogus, 10.0.0.2", PROXIES, "10.0.0.2"),
    # no peer at all (a Unix socket)
    (None, "203.0.113.7", LOCAL, None),
])
def test_client_ip(peer, forwarded, trusted, expected):
    assert client_ip(peer, forwarded, trusted) == expected


def test_parse_networks():
    assert parse_networks("") == ()
    assert parse_networks(None) == ()
    assert [str(n) for n in parse_networks("10.0.0.0/8 , 192.168.1.7")] == ["10.0.0.0/8", "192.168.1.7/32"]
    with pytest.raises(ValueError, match="nonsense"):
        parse_networks("10.0.0.0/8, nonsense")


# -- outreach.replaceable ----------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "https://example.com",
    "https://example.com/",
    "http://example.com/a?b=c#d",
    "HTTP://EXAMPLE.COM/",
    "https://user:pw@example.com:8443/x",
    "http://[2001:db8::1]/",
    "https://xn--bcher-kva.example/",
    "https://bücher.example/",
    "http://127.0.0.1:8080/r/abc",
])
def test_replaceable(url):
    assert outreach.replaceable(url)


@pytest.mark.parametrize("url", [
    "",
    "mailto:a@example.com",
    "tel:+15551234567",
    "sms:+15551234567",
    "ftp://example.com/",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "data:text/html,hi",
    "/relative",
    "relative",
    "//example.com/",
    "https://",
    "https:///path",
    "http:example.com",
    "http://[::1",
    " https://example.com/",
    "https://example.com/\n",
    "https://exa mple.com/",
    "https://example.com/\x00",
    "https://example.com/\t",
])
def test_not_replaceable(url):
    assert not outreach.replaceable(url)


def test_replaceable_shortcut_agrees_with_urlsplit():
    schemes = ["http", "https", "HTTPS", "hTtP", "ftp", "", "http:"]
    separators = ["://", ":/", ":///", "//", ":"]
    userinfo = ["", "u@", "u:p@", "@", "a@b@", ":@"]
    hosts = ["example.com", "", "[::1]", "[::1", "::1]", "[v1.x]", "[nonsense]", "ex%41mple", "bücher.example"]
    ports = ["", ":", ":80", ":x", "::"]
    rests = ["", "/", "/a?b#c", "?q", "#f", "/a b", "/\t", "/\x7f", "/\x1f"]
    urls = [scheme + sep + user + host + port + rest
            for scheme in schemes for sep in separators for user in userinfo
            for host in hosts for port in ports for rest in rests]
    assert len(urls) > 50_000
    disagree = [url for url in urls if outreach.replaceable(url) != outreach.replaceable_by_urlsplit(url)]
    assert disagree == []
    assert sum(map(outreach.replaceable, urls)) > 1000  # both answers occur


# -- outreach.choose_links ---------------------------------------------------------------


def _account(link_filter: str | None = None) -> Account:
    return Account(id="acc", name="n", outreach_secret="s", public_url=None, link_filter=link_filter,
                   created_at="2026-11-23T00:00:00.000Z", updated_at="2026-11-23T00:00:00.000Z")


def _payload(data: list[str], urls: dict[str, str]) -> outreach.Payload:
    return outreach.decode(json.dumps({"data": data, "meta": {"mailing": {"id": 1}, "prospect": {"id": 2},
                                                               "urls": urls}}).encode())


def test_choose_links_keeps_order_drops_duplicates_and_finds_originals():
    payload = _payload(
        ["https://t.example/2", "mailto:a@example.com", "https://t.example/1", "https://t.example/2", "/relative",
         "https://plain.example/"],
        # Two originals became the same current URL: the first one listed is the original.
        {"https://orig.example/a": "https://t.example/1", "https://orig.example/b": "https://t.example/2",
         "https://orig.example/c": "https://t.example/2"},
    )
    choice = outreach.choose_links(_account(), payload)
    assert [(link.target, link.original) for link in choice.links] == [
        ("https://t.example/2", "https://orig.example/b"),
        ("https://t.example/1", "https://orig.example/a"),
        ("https://plain.example/", "https://plain.example/"),  # not in meta.urls: its own original
    ]
    assert choice.timed_out == 0


def test_choose_links_filters_on_the_original_url():
    payload = _payload(["https://t.example/1", "https://t.example/2"],
                       {"https://keep.example/x": "https://t.example/1", "https://drop.example/y": "https://t.example/2"})
    choice = outreach.choose_links(_account(r"^https://keep\."), payload)
    assert [link.target for link in choice.links] == ["https://t.example/1"]


def test_choose_links_with_a_filter_decides_nothing_past_its_deadline():
    payload = _payload(["https://t.example/1", "https://t.example/2", "mailto:a@example.com"], {})
    choice = outreach.choose_links(_account(r"t\.example"), payload, deadline=time.monotonic() - 1)
    assert choice.links == []
    assert choice.timed_out == 2  # the two replaceable links; mailto: was never a candidate


# -- outreach.signature_ok ---------------------------------------------------------------


def test_signature_ok():
    body = b'{"data": []}'
    good = hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert outreach.signature_ok("secret", body, good)
    assert not outreach.signature_ok("secret", body + b" ", good)
    assert not outreach.signature_ok("other", body, good)
    assert not outreach.signature_ok("secret", body, None)
    assert not outreach.signature_ok("secret", body, "")
    assert not outreach.signature_ok("secret", body, good[:-1])
    assert not outreach.signature_ok("secret", body, "é" * 64)  # must not raise


# -- linkfilter --------------------------------------------------------------------------


def test_filter_matches_by_search():
    assert linkfilter.matches(r"example\.com", "https://www.example.com/x") is True
    assert linkfilter.matches(r"^example\.com", "https://www.example.com/x") is False


def test_filter_timeout_is_none_not_an_exception():
    assert linkfilter.matches(r"(?:a|a)*$", "https://example.com/" + "a" * 30 + "!", timeout=0.01) is None


@pytest.mark.parametrize("pattern", ["(", "[a-", "*a", "a{2,1}", "trailing\\"])
def test_invalid_filter_is_refused(pattern):
    with pytest.raises(linkfilter.InvalidFilter, match="invalid link filter"):
        linkfilter.validate(pattern)


# -- timeutil ----------------------------------------------------------------------------

TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def test_format_ms():
    assert format_ms(0) == "1970-01-01T00:00:00.000Z"
    assert format_ms(1_795_418_102_481) == "2026-11-23T07:15:02.481Z"
    assert format_ms(-1) == "1969-12-31T23:59:59.999Z"
    assert format_ms(999) == "1970-01-01T00:00:00.999Z"


def test_now_rfc3339_is_utc_now():
    import re

    text = now_rfc3339()
    assert re.match(TIMESTAMP, text)
    assert abs(parse_rfc3339(text) - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-23T09:15:02Z", datetime(2026, 11, 23, 9, 15, 2, tzinfo=UTC)),
    ("2026-11-23T09:15:02.481Z", datetime(2026, 11, 23, 9, 15, 2, 481000, tzinfo=UTC)),
    ("2026-11-23T10:15:02+01:00", datetime(2026, 11, 23, 9, 15, 2, tzinfo=UTC)),
    ("2026-11-23T04:15:02-05:00", datetime(2026, 11, 23, 9, 15, 2, tzinfo=UTC)),
    ("2026-11-23t09:15:02z", datetime(2026, 11, 23, 9, 15, 2, tzinfo=UTC)),
    ("2026-11-23 09:15:02Z", datetime(2026, 11, 23, 9, 15, 2, tzinfo=UTC)),
])
def test_parse_rfc3339(text, expected):
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", [
    "2026-11-23T09:15:02",        # no offset
    "2026-11-23T09:15:02.481",    # no offset
    "2026-11-23",
    "23/11/2026 09:15:02Z",
    "yesterday at noon, UTC",
    "",
    1795418102,
    None,
])
def test_parse_rfc3339_refuses(text):
    with pytest.raises(ValueError, match="is not an RFC 3339 timestamp"):
        parse_rfc3339(text)


def test_to_rfc3339_converts_to_utc_and_truncates_to_ms():
    moment = datetime(2026, 11, 23, 10, 15, 2, 481999, tzinfo=timezone(timedelta(hours=1)))
    assert to_rfc3339(moment) == "2026-11-23T09:15:02.481Z"
    assert to_rfc3339(parse_rfc3339("2026-11-23T09:15:02Z")) == "2026-11-23T09:15:02.000Z"
