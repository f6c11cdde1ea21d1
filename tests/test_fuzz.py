"""Property-based fuzzing of every route of a real `linkhub serve`, with hypothesis.

One server (with --allow-private-targets, so loopback receivers are accepted) takes a few
thousand generated requests: structure-aware bodies (Outreach calls signed with the account's
secret so they reach past the signature check, events, webhook specs and changes), random
bodies and bytes, random query strings, paths, methods and headers. Whatever it is sent:

- it never answers 5xx;
- every non-2xx answer outside /r/ is a JSON object with `error` and `message`
  (except the documented non-JSON answers: HEAD has no body, a redirect has none);
- its log never shows a traceback;
- at the end /healthz answers 200 and everything that was accepted can still be read back.

Every URL a webhook is given points at 127.0.0.1 (or ::1), or is refused before any network
use: nothing here resolves a name through DNS or reaches past loopback. The run is
derandomized (the same examples every time, so CI is deterministic) and keeps no example
database, so nothing is written to the repository.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import ipaddress
import json
import socket
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, note, reject, settings
from hypothesis import strategies as st

from linkhub.core.events import EVENT_TYPES
from linkhub.store import connect
from linkhub.store.schema import migrate

from conftest import Account, Server, create_account, outreach_body, post_links, start_server
from sink import Sink, closed_port

# Examples per test, one request each: ~2,400 requests, ~30 s on a 2-core machine (measured).
EXAMPLES = 300

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same examples on every run: CI stays deterministic
    database=None,  # nothing saved under .hypothesis/ in the repository
    deadline=None,  # a request's time depends on the machine, not on the example
    # The only fixtures are module-scoped (one server for the whole run): nothing is reset
    # between examples, and nothing needs to be. Generating URLs filters a few out.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

FORMATS = ("linkhub", "optimizely", "esputnik", "arpoone")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Hosts a fuzzed webhook URL may name: loopback literals only, so no DNS and no other machine
# (and only our receiver's port or a closed one: see _safe_target).
LOOPBACK_HOSTS = ("127.0.0.1", "127.0.0.1", "[::ffff:127.0.0.1]")


@dataclass
class World:
    """The server under fuzz and what the strategies draw on: accounts, webhooks, codes."""

    server: Server
    client: httpx.Client
    sink: Sink
    dead_port: int
    alice: Account  # no link filter
    bob: Account  # a link filter; its key must never see alice's webhooks
    webhook_ids: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    log_seen: int = 0  # how much of the server's log the last check had read
    previous: Any = None  # the last call and its answer: named when the next one finds the connection dropped


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    path = tmp_path_factory.mktemp("fuzz") / "linkhub.db"
    conn = connect(path)
    migrate(conn)
    conn.close()
    alice = create_account(path, secret="alice-secret")
    bob = create_account(path, secret="bob-secret", link_filter=r"^https://keep\.example/")
    sink = Sink()
    # Trusting loopback as a proxy makes every click parse the fuzzed X-Forwarded-For.
    server = start_server(path, "--allow-private-targets", "--trusted-proxies", "127.0.0.0/8,::1")
    try:
        with server.client() as client:
            world = World(server, client, sink, closed_port(), alice, bob)
            _seed(world)
            yield world
        assert server.stop() == 0
    finally:
        if server.proc.poll() is None:
            server.kill()
        sink.stop()


def _seed(world: World) -> None:
    """A few webhooks and short links to start from; the fuzz adds more as it creates them."""
    client = world.client
    for account, spec in [
        (world.alice, {"url": world.sink.url, "active": True}),
        (world.alice, {"url": world.sink.url, "active": True, "ordered": False, "format": "esputnik",
                       "auth": {"type": "basic", "username": "u", "password": "p"}}),
        (world.alice, {"url": world.sink.url, "format": "optimizely", "active": True, "batch_size": 1}),
        (world.alice, {"url": f"http://127.0.0.1:{world.dead_port}/down", "active": True,
                       "retry": {"policy": "fixed", "interval_s": 1}}),
        (world.alice, {"url": world.sink.url, "format": "arpoone"}),
        (world.bob, {"url": world.sink.url, "active": True, "auth": {"type": "bearer", "token": "t"}}),
    ]:
        answer = client.post("/v1/webhooks", json=spec, headers=_bearer(account))
        assert answer.status_code == 201, answer.text
        world.webhook_ids.append(answer.json()["id"])
    links = ["https://example.com/a", "https://keep.example/b", "http://example.org/ü?x=1#f"]
    for account in (world.alice, world.bob):
        answer = post_links(client, account, outreach_body(links))
        assert answer.status_code == 200, answer.text
        world.codes += [url.rsplit("/r/", 1)[1] for url in answer.json()["data"].values()]


# -- sending and checking ------------------------------------------------------------------------


@dataclass
class Call:
    method: str
    target: bytes  # the raw request target: path and query, exactly as sent
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


def send(world: World, call: Call) -> httpx.Response:
    note(f"{call.method} {call.target!r} headers={call.headers!r} body={call.body[:2000]!r}")
    # The URL only names the server: the raw target goes on the wire exactly as generated.
    request = world.client.build_request(call.method, "/", headers=call.headers, content=call.body,
                                         extensions={"target": call.target})
    try:
        response = world.client.send(request)
    except httpx.LocalProtocolError:  # something httpx/h11 will not put on the wire: not a server test
        reject()
    except httpx.RemoteProtocolError as exc:
        raise AssertionError(f"{exc} (the connection's previous call and answer: {world.previous!r})") from exc
    world.previous = (call, response.status_code, dict(response.headers))
    check(world, call, response)
    return response


def check(world: World, call: Call, response: httpx.Response) -> None:
    status = response.status_code
    note(f"-> {status} {response.headers.get('content-type')} {response.content[:500]!r}")
    assert status < 500, f"{call.method} {call.target!r}: {status} {response.text[:500]}"
    path = call.target.split(b"?", 1)[0]
    if not path.startswith(b"/r/") and not 200 <= status < 300 and call.method != "HEAD":
        if 300 <= status < 400:  # documented: the trailing-slash redirect has no body
            assert "location" in response.headers, response.headers
        else:
            document = response.json()
            assert isinstance(document, dict) and isinstance(document.get("error"), str) \
                and isinstance(document.get("message"), str), document
    log = world.server.output
    fresh, world.log_seen = log[world.log_seen:], len(log)
    assert "Traceback" not in fresh, fresh


def _bearer(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.api_key}"}


def _sign(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()


# -- strategies: values ----------------------------------------------------------------------------

_anything_text = st.text(max_size=40)
_odd_text = st.one_of(
    _anything_text,
    st.sampled_from(["", " ", "\x00", "\u00ad", "\u200b", "\ud7ff", "\U0010ffff", "é", "NaN", "null", "-1",
                     "1e309", "99999999999999999999", "０", "true", "[]", "{}", "%00", "%ff", "a" * 3000]),
)
_json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), _odd_text,
)
json_value = st.recursive(_json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_odd_text, inner, max_size=4)), max_leaves=12)


def _nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


# Deeper than any sane limit (64), and shallow enough for copy.deepcopy and json.dumps here.
deep_json = st.integers(min_value=30, max_value=250).map(_nested)


def _rfc3339(year: int, month: int, day: int, hour: int, minute: int, second: int, fraction: str,
             sep: str, offset: str) -> str:
    return f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}{fraction}{offset}"


_well_formed_time = st.builds(
    _rfc3339,
    st.one_of(st.integers(1, 9999), st.sampled_from([1, 999, 1000, 1969, 1970, 2038, 9999])),
    st.integers(1, 12), st.integers(1, 28), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
    st.one_of(st.just(""), st.integers(1, 12).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n))
              .map(lambda d: "." + d)),
    st.sampled_from(["T", "t", " "]),
    st.one_of(st.sampled_from(["Z", "z", "+00:00", "-00:00", "+23:59", "-23:59", "+05:30", "-05:00"]),
              st.builds(lambda s, h, m: f"{s}{h:02d}:{m:02d}", st.sampled_from("+-"), st.integers(0, 23),
                        st.integers(0, 59))),
)
# The edges of what can be stored: past year 9999 or before year 1 once in UTC, below year 1000.
_edge_times = st.sampled_from([
    "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00", "0999-06-01T00:00:00Z", "9999-12-31T23:59:59.999Z",
    "0001-01-01T00:00:00Z", "1000-01-01T00:00:00Z", "2026-11-23", "2026-11-23T09:15:02", "2026-02-30T00:00:00Z",
    "2026-11-23T09:15:60Z", "1e9", "now", ""])
times = st.one_of(
    # Well-formed, everywhere in (and at the edges of) the calendar, with every kind of offset.
    _well_formed_time,
    _well_formed_time,
    # Almost well-formed: out-of-range fields, missing pieces, other ISO 8601 spellings.
    st.builds(_rfc3339, st.integers(0, 99999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25),
              st.integers(0, 61), st.integers(0, 61), st.sampled_from(["", ".", ".5", ".1234567890123"]),
              st.sampled_from(["T", "_", "", "TT"]), st.sampled_from(["", "Z", "+24:00", "+1", "+0100", "UTC"])),
    _edge_times,
    _edge_times,
    _odd_text,
)


def _int_text(low: int = -5, high: int = 2**64) -> st.SearchStrategy[str]:
    return st.one_of(st.integers(low, high).map(str),
                     st.sampled_from(["", "0", "1", "1000", "1001", "+5", "-1", "1e3", "5.0", "０", " 1", "0x10",
                                      "9" * 19, "9" * 40]))


# -- strategies: requests --------------------------------------------------------------------------

_token = st.text(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=20)
_header_value = st.binary(max_size=60).map(
    lambda raw: bytes(b for b in raw if b not in b"\x00\t\n\r\x0b\x0c").strip(b" "))
_odd_headers = st.lists(st.one_of(
    st.tuples(st.sampled_from(["Content-Type", "Accept", "User-Agent", "Referer", "X-Forwarded-For",
                               "X-Forwarded-Proto", "Cookie", "Origin", "Accept-Encoding", "Expect",
                               "If-None-Match", "Range"]).map(str.encode), _header_value),
    st.tuples(st.sampled_from(["Content-Type"]).map(str.encode),
              st.sampled_from([b"application/json", b"text/plain", b"application/json; charset=latin-1",
                               b"multipart/form-data; boundary=x", b"application/x-www-form-urlencoded"])),
    st.tuples(st.sampled_from(["X-Forwarded-For"]).map(str.encode),
              st.sampled_from([b"127.0.0.1", b"::1, 10.0.0.1", b"[2001:db8::1]:443", b"1.2.3.4:5", b"garbage,,"])),
    st.tuples(_token.map(str.encode), _header_value),
), max_size=4)


def _auth_headers(world: World) -> st.SearchStrategy[list[tuple[bytes, bytes]]]:
    """Mostly a valid key (so requests reach past the 401), sometimes a broken or missing one."""
    key = st.sampled_from([world.alice.api_key, world.alice.api_key, world.bob.api_key])
    valid = key.map(lambda k: [(b"Authorization", b"Bearer " + k.encode())])
    return st.one_of(
        valid, valid, valid, valid, valid,
        key.map(lambda k: [(b"Authorization", b"bearer  " + k.encode() + b" ")]),
        st.just([]),
        _header_value.map(lambda v: [(b"Authorization", v)]),
        _header_value.map(lambda v: [(b"Authorization", b"Bearer " + v)]),
        st.just([(b"Authorization", b"Basic dTpw")]),
    )


def _query(pairs: list[tuple[str, str]]) -> bytes:
    return urlencode(pairs).encode() if pairs else b""


def _raw_query(known: tuple[str, ...], values: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    pair = st.tuples(st.one_of(st.sampled_from(known), _odd_text), values)
    return st.one_of(
        st.lists(pair, max_size=5).map(_query),
        st.binary(max_size=40).map(lambda raw: quote(raw, safe="=&;+%").encode()),  # raw, even bad escapes
    )


def _with_query(path: bytes, query: bytes) -> bytes:
    return path + b"?" + query if query else path


def _body_bytes(structured: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        structured.map(lambda value: json.dumps(value).encode()),
        structured.map(lambda value: json.dumps(value).encode()),
        structured.map(lambda value: json.dumps(value).encode()),
        structured.map(lambda value: json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        json_value.map(lambda value: json.dumps(value).encode()),
        deep_json.map(lambda value: json.dumps(value).encode()),
        st.binary(max_size=200),
        st.sampled_from([b"", b" ", b"null", b"[", b"{", b"[]", b"{}", b'"x"', b"NaN", b"[NaN]", b"\xff\xfe",
                         b"\xef\xbb\xbf[]", b"[1e999]", b'{"a":1,"a":2}', b"[" * 100_000]),
    )


def _is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """127.0.0.1 itself, possibly IPv4-mapped: where our receiver listens, and nothing else."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address == ipaddress.IPv4Address("127.0.0.1")


def _safe_target(url: str, live: int, dead: int) -> bool:
    """Whether a generated webhook URL is safe to hand the server: it is refused before any network
    use, or it reaches our own receiver (`live`, over plain HTTP: TLS to it would hang until the
    webhook's timeout) or a port nothing listens on (`dead`, or 0), at 127.0.0.1 as both
    the server's URL check and httpx read it. Never a name (it would be resolved), never another port
    (another process of this machine may listen there)."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
    except ValueError:
        return True  # the server's URL check refuses it
    if host is None or parts.scheme not in ("http", "https"):
        return True
    try:
        if not _is_loopback(ipaddress.ip_address(host)):
            return False
    except ValueError:
        return False
    try:
        sent = httpx.URL(text)
    except httpx.InvalidURL:
        return True  # httpx cannot send it anywhere
    try:
        same_host = _is_loopback(ipaddress.ip_address(sent.host.strip("[]")))
    except ValueError:
        return False
    if not same_host or port != sent.port:
        return False
    return port in (dead, 0) or (port == live and parts.scheme == "http")


def _webhook_urls(world: World) -> st.SearchStrategy[str]:
    live = str(world.sink.port)
    port = st.one_of(st.sampled_from([live, live, live, live, str(world.dead_port), "0", "65536", "99999", "-1",
                                      "abc", "８０", " 1", "1_0"]),
                     st.integers(65536, 10**6).map(str))
    path = st.one_of(st.just("/hook"), _anything_text.map(lambda t: "/" + t), st.just("/a#frag"),
                     st.just("/?q=1"), st.just("/\u00ad"))
    scheme = st.sampled_from(["http", "http", "http", "http", "https", "HTTP", "ftp", "javascript", ""])
    built = st.builds(lambda s, h, p, rest: f"{s}://{h}:{p}{rest}", scheme, st.sampled_from(LOOPBACK_HOSTS), port,
                      path)
    odd = st.one_of(
        st.sampled_from(["", " ", "http://", "http:///x", "http://@127.0.0.1/", "http://u:p@127.0.0.1/",
                         "http://127.0.0.1:80\x00/", "http://127.0.0.1/ x", "http://[::1/", "http://[127.0.0.1]/",
                         f" http://127.0.0.1:{world.dead_port}/ ", f"http://127.0.0.1:{world.sink.port}/" + "a" * 3000,
                         "/relative", "mailto:a@b", "http://127.0.0.1/no-port"]),
        _odd_text,
    )
    good = st.builds(lambda rest: f"http://127.0.0.1:{live}{rest}", path)  # reaches the receiver
    return st.one_of(good, good, good, built, built, odd).filter(
        lambda url: _safe_target(url, world.sink.port, world.dead_port))


KeyPath = tuple[str, ...]


def _apply(value: Any, mutations: list[tuple[KeyPath, Any]]) -> Any:
    """`value` with each (path, new) applied: the field at `path` set to `new`, or removed if `new` is _DROP."""
    value = copy.deepcopy(value)
    for path, new in mutations:
        parent = value
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        if new is _DROP:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = new
    return value


_DROP = object()


def mutated(valid: st.SearchStrategy[Any], paths: list[KeyPath]) -> st.SearchStrategy[Any]:
    """Mostly well-formed objects, some with one or two fields broken, removed or added.

    A fully random body is refused at its first field; one broken field at a time reaches the
    checks behind it (a valid event with one odd field, a valid webhook with one odd option).
    """
    where = st.sampled_from([*paths, ("unknown_field",)])
    mutation = st.tuples(where, st.one_of(json_value, json_value, st.just(_DROP)))
    return st.builds(_apply, valid, st.lists(mutation, max_size=2))


# Credentials must become header values: printable ASCII, and what is not (non-ASCII, U+2028).
_credential = st.one_of(st.text(string.printable, min_size=1, max_size=20), _odd_text,
                        st.sampled_from(["é", "пароль", "tok\u2028en", "\u00a0"]))


def _auth_spec() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.just({"type": "none"}),
        st.builds(lambda u, p: {"type": "basic", "username": u, "password": p}, _credential, _credential),
        st.builds(lambda t: {"type": "bearer", "token": t}, _credential),
        st.builds(lambda n, v: {"type": "header", "name": n, "value": v},
                  st.one_of(_token, st.sampled_from(["Content-Type", "webhook-signature", "Authorization"]),
                            _odd_text), _credential),
    )


_big = st.one_of(st.integers(1, 10**6), st.sampled_from([1, 2**31, 2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64]))


def _webhook_fields(world: World) -> dict[str, st.SearchStrategy[Any]]:
    """Every option, each with valid values and their edges: `mutated` breaks them one at a time."""
    return {
        "url": _webhook_urls(world),
        "types": st.one_of(st.none(), st.lists(st.sampled_from(EVENT_TYPES), max_size=4)),
        "format": st.sampled_from(FORMATS),
        "auth": _auth_spec(),
        "batch_size": st.one_of(st.integers(1, 1000), st.sampled_from([1, 1000])),
        "retry": st.one_of(st.just({"policy": "exponential"}),
                           st.builds(lambda i: {"policy": "fixed", "interval_s": i}, _big)),
        "max_age_s": _big,
        "timeout_s": st.integers(1, 3),
        "ordered": st.booleans(),
        "description": st.one_of(st.none(), _odd_text, st.just("d" * 1000)),
        "active": st.booleans(),
        "verify": st.sampled_from([True, True, False]),  # the receiver is contacted while the call waits
    }


def webhook_specs(world: World) -> st.SearchStrategy[Any]:
    fields = _webhook_fields(world)
    url = fields.pop("url")
    valid = st.fixed_dictionaries({"url": url}, optional=fields)
    # One option at a time beside a working URL, verified or activated: each option's values reach
    # the receiver (a spec with every option drawn nearly always has one refused).
    receiver = st.just(world.sink.url)
    one_option = st.one_of(*(
        st.fixed_dictionaries({"url": receiver, name: value},
                              optional={flag: st.booleans() for flag in ("verify", "active") if flag != name})
        for name, value in fields.items()))
    broken = mutated(valid, [("url",), *((name,) for name in fields), ("auth", "type"), ("auth", "token"),
                             ("retry", "interval_s")])
    return st.one_of(broken, one_option, one_option)


def webhook_changes(world: World) -> st.SearchStrategy[Any]:
    fields = _webhook_fields(world)
    fields.pop("verify")
    fields.pop("active")
    return mutated(st.fixed_dictionaries({}, optional=fields), [(name,) for name in fields] + [("active",)])


def _link_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda s, h, p: f"{s}://{h}{p}", st.sampled_from(["http", "https", "HTTPS", "ftp", "mailto"]),
                  st.sampled_from(["example.com", "keep.example", "ü.example", "[::1]", "a@b", "", "x:1",
                                   "[bad", "127.0.0.1:99999"]),
                  _anything_text.map(lambda t: "/" + t)),
        st.builds(lambda p: "https://keep.example/" + p, _anything_text),
        _odd_text,
        st.just("https://keep.example/" + "k" * 5000),
    )


_ident = st.one_of(st.text(min_size=1, max_size=20), st.integers(), st.integers(-(2**70), 2**70))


def outreach_payloads() -> st.SearchStrategy[Any]:
    valid = st.fixed_dictionaries({
        "data": st.lists(_link_text(), max_size=8),
        "meta": st.fixed_dictionaries(
            {"mailing": st.fixed_dictionaries({"id": _ident}),
             "prospect": st.fixed_dictionaries({"id": _ident}, optional={"email": st.one_of(st.none(), _odd_text)})},
            optional={"user": st.one_of(st.none(), st.fixed_dictionaries(
                          {}, optional={"id": st.one_of(st.none(), _ident), "email": st.one_of(st.none(), _odd_text)})),
                      "urls": st.one_of(st.none(), st.dictionaries(_link_text(), _link_text(), max_size=4))}),
    })
    paths: list[KeyPath] = [("data",), ("meta",), ("meta", "mailing"), ("meta", "mailing", "id"), ("meta", "prospect"),
                         ("meta", "prospect", "id"), ("meta", "prospect", "email"), ("meta", "user"),
                         ("meta", "urls"), ("meta", "deep")]
    deep = st.builds(lambda p, d: {**p, "deep": d}, valid, deep_json)
    return st.one_of(mutated(valid, paths), mutated(valid, paths), deep, json_value)


_short_id = st.one_of(st.text(min_size=1, max_size=30), st.just("x" * 256))


def events() -> st.SearchStrategy[Any]:
    valid = st.fixed_dictionaries(
        {"type": st.sampled_from(EVENT_TYPES),
         "occurred_at": st.one_of(_well_formed_time, _well_formed_time, _well_formed_time, times),
         "email": st.one_of(st.just("a@b.c"), st.just("A.B@EXAMPLE.COM"), st.builds(lambda t: t + "@x", _odd_text))},
        optional={
            "id": _short_id, "recipient_id": _short_id, "mailing_id": _short_id, "message_id": _short_id,
            "url": _link_text().filter(lambda url: len(url) <= 2048),
            "details": st.one_of(st.dictionaries(_odd_text, json_value, max_size=5),
                                 st.builds(lambda c: {"category": c}, st.one_of(st.sampled_from(["soft", "hard"]),
                                                                              json_value)),
                                 st.builds(lambda d: {"deep": d}, deep_json)),
        },
    )
    paths: list[KeyPath] = [(name,) for name in ("type", "occurred_at", "email", "id", "recipient_id", "mailing_id",
                                              "message_id", "url", "details", "code")]
    paths += [("details", "category"), ("details", "deep")]
    event = mutated(valid, paths)
    return st.one_of(st.lists(event, min_size=1, max_size=3), st.lists(event, min_size=1, max_size=3),
                     st.lists(event, min_size=1, max_size=3), st.lists(event, max_size=0), event, json_value)


def _paths() -> st.SearchStrategy[bytes]:
    segment = st.one_of(
        st.sampled_from(["", "r", "v1", "v2", "events", "webhooks", "outreach", "links", "healthz", "metrics",
                         "..", ".", "%2e%2e", "%2F", "%00", "%ff", "%zz", "%", "wh_" + "0" * 24, "verify"]),
        st.text(max_size=12).map(lambda t: quote(t, safe="")),
    )
    return st.lists(segment, min_size=1, max_size=5).map(lambda parts: ("/" + "/".join(parts)).encode())


# -- the fuzz ---------------------------------------------------------------------------------------


def test_service_routes(world: World) -> None:
    @FUZZ
    @given(path=st.sampled_from([b"/healthz", b"/metrics", b"/healthz/", b"/metrics/"]),
           method=st.sampled_from(METHODS), query=_raw_query(("x",), _odd_text), headers=_odd_headers,
           body=st.binary(max_size=30))
    def run(path: bytes, method: str, query: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        response = send(world, Call(method, _with_query(path, query), headers, body))
        if method == "GET" and path == b"/healthz":
            assert response.status_code == 200

    run()


def test_webhooks_create(world: World) -> None:
    @FUZZ
    @given(spec=webhook_specs(world), raw=st.one_of(st.none(), st.none(), _body_bytes(webhook_specs(world))),
           auth=_auth_headers(world), headers=_odd_headers,
           method=st.sampled_from(["POST", "POST", "POST", "GET", "HEAD", "PUT", "DELETE"]))
    def run(spec: Any, raw: bytes | None, auth: list[tuple[bytes, bytes]], headers: list[tuple[bytes, bytes]],
            method: str) -> None:
        body = raw if raw is not None else json.dumps(spec).encode()
        response = send(world, Call(method, b"/v1/webhooks", auth + headers, body))
        if method == "POST" and response.status_code == 201:
            world.webhook_ids.append(response.json()["id"])

    run()


def test_webhook_by_id(world: World) -> None:
    action = st.sampled_from([
        ("GET", ""), ("HEAD", ""), ("PATCH", ""), ("PATCH", ""), ("DELETE", ""), ("PUT", ""), ("POST", ""),
        ("POST", "/verify"), ("POST", "/activate"), ("POST", "/deactivate"), ("POST", "/rotate-secret"),
        ("GET", "/deliveries"), ("GET", "/verify"), ("DELETE", "/activate"), ("POST", "/nope"), ("GET", "/"),
    ])

    @FUZZ
    @given(data=st.data(), action=action, auth=_auth_headers(world), headers=_odd_headers,
           changes=webhook_changes(world), raw=st.one_of(st.none(), st.none(), _body_bytes(webhook_changes(world))),
           query=_raw_query(("verify", "limit", "force"), st.one_of(_int_text(), st.sampled_from(
               ["true", "false", "1", "0", "TRUE", "yes"]), _odd_text)))
    def run(data: st.DataObject, action: tuple[str, str], auth: list[tuple[bytes, bytes]],
            headers: list[tuple[bytes, bytes]], changes: Any, raw: bytes | None, query: bytes) -> None:
        webhook_id = data.draw(st.one_of(st.sampled_from(world.webhook_ids), st.sampled_from(world.webhook_ids),
                                         st.just("wh_" + "0" * 24), st.text(max_size=30)), label="webhook id")
        method, tail = action
        if method == "POST" and tail == "/rotate-secret":
            rotation = st.fixed_dictionaries({}, optional={"expire_previous": json_value})
            body = data.draw(st.one_of(st.just(b""), st.just(b'{"expire_previous": true}'), _body_bytes(rotation)))
        elif method == "PATCH":
            body = raw if raw is not None else json.dumps(changes).encode()
        else:
            body = b""
        target = f"/v1/webhooks/{quote(webhook_id, safe='')}{tail}".encode()
        send(world, Call(method, _with_query(target, query), auth + headers, body))

    run()


def test_outreach_links(world: World) -> None:
    @FUZZ
    @given(payload=outreach_payloads(), raw=st.one_of(st.none(), _body_bytes(outreach_payloads())),
           signer=st.sampled_from(["own", "own", "own", "own", "own", "other", "wrong", "none", "garbage"]),
           account=st.sampled_from(["alice", "alice", "alice", "bob", "bob", "unknown", "odd"]),
           headers=_odd_headers)
    def run(payload: Any, raw: bytes | None, signer: str, account: str, headers: list[tuple[bytes, bytes]]) -> None:
        body = raw if raw is not None else json.dumps(payload).encode()
        accounts = {"alice": world.alice, "bob": world.bob}
        account_id = {"unknown": "0" * 16, "odd": "%ff%00..%2F"}.get(account) or accounts[account].id
        own, other = (world.bob, world.alice) if account == "bob" else (world.alice, world.bob)
        signature = {"own": _sign(own.secret, body), "other": _sign(other.secret, body),
                     "wrong": _sign("wrong", body), "garbage": "\u00ff zz".encode("latin-1")}.get(signer)
        sent = list(headers)
        if signature is not None:
            sent.append((b"Outreach-Webhook-Signature", signature))
        response = send(world, Call("POST", f"/outreach/{account_id}/links".encode(), sent, body))
        if response.status_code == 200:
            for short in response.json()["data"].values():
                world.codes.append(short.rsplit("/r/", 1)[1])

    run()


def test_redirects(world: World) -> None:
    @FUZZ
    @given(data=st.data(), method=st.sampled_from((*METHODS, "FOO")), headers=_odd_headers,
           query=_raw_query(("utm", "code"), _odd_text))
    def run(data: st.DataObject, method: str, headers: list[tuple[bytes, bytes]], query: bytes) -> None:
        code = data.draw(st.one_of(st.sampled_from(world.codes), st.text(string.ascii_letters + "_-", max_size=40),
                                   st.text(max_size=10).map(lambda t: quote(t, safe=""))), label="code")
        response = send(world, Call(method, _with_query(b"/r/" + code.encode(), query), headers))
        if method == "GET" and code in world.codes:
            assert response.status_code == 302

    run()


def test_events_post(world: World) -> None:
    well_formed = events().map(lambda value: json.dumps(value).encode())

    @FUZZ
    @given(body=st.one_of(well_formed, well_formed, _body_bytes(events())), auth=_auth_headers(world),
           headers=_odd_headers,
           query=_raw_query(("since",), _odd_text))
    def run(body: bytes, auth: list[tuple[bytes, bytes]], headers: list[tuple[bytes, bytes]], query: bytes) -> None:
        send(world, Call("POST", _with_query(b"/v1/events", query), auth + headers, body))

    run()


def test_events_get(world: World) -> None:
    edgy = st.one_of(_edge_times, times)
    known = {"type": st.one_of(st.sampled_from(EVENT_TYPES), _odd_text), "since": edgy, "until": edgy,
             "cursor": _int_text(), "limit": _int_text(), "email": st.one_of(st.just("a@b.c"), _odd_text),
             "mailing_id": _odd_text}
    pair = st.one_of(*(st.tuples(st.just(name), value) for name, value in known.items()),
                     st.tuples(_odd_text, _odd_text))
    query = st.one_of(st.lists(pair, max_size=4).map(_query), st.lists(pair, max_size=4).map(_query),
                      _raw_query(tuple(known), _odd_text))

    @FUZZ
    @given(query=query, auth=_auth_headers(world), headers=_odd_headers,
           method=st.sampled_from(["GET", "GET", "HEAD"]))
    def run(query: bytes, auth: list[tuple[bytes, bytes]], headers: list[tuple[bytes, bytes]], method: str) -> None:
        send(world, Call(method, _with_query(b"/v1/events", query), auth + headers))

    run()


def test_random_requests(world: World) -> None:
    @FUZZ
    @given(path=_paths(), method=st.one_of(st.sampled_from(METHODS), _token.map(str.upper)),
           query=_raw_query(("limit",), _odd_text), auth=_auth_headers(world), headers=_odd_headers,
           body=st.one_of(st.binary(max_size=100), json_value.map(lambda v: json.dumps(v).encode())))
    def run(path: bytes, method: str, query: bytes, auth: list[tuple[bytes, bytes]],
            headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        if method == "CONNECT":  # h11 would switch protocols: not an HTTP request/answer
            reject()
        send(world, Call(method, _with_query(path, query), auth + headers, body))

    run()


def test_server_survived(world: World) -> None:
    """After all of it: healthy, no traceback logged, and everything accepted can be read back."""
    client = world.client
    assert client.get("/healthz").status_code == 200
    for account in (world.alice, world.bob):
        cursor: str | None = ""
        pages = 0
        while cursor is not None and pages < 10_000:
            answer = client.get("/v1/events", params={"limit": 1000, **({"cursor": cursor} if cursor else {})},
                                headers=_bearer(account))
            assert answer.status_code == 200, answer.text
            cursor = answer.json()["next_cursor"]
            pages += 1
        answer = client.get("/v1/webhooks", headers=_bearer(account))
        assert answer.status_code == 200, answer.text
        for webhook in answer.json()["webhooks"]:
            shown = client.get(f"/v1/webhooks/{webhook['id']}/deliveries", headers=_bearer(account))
            assert shown.status_code == 200, shown.text
    assert "Traceback" not in world.server.output, world.server.output


# -- what the fuzz found, pinned down ------------------------------------------------------------


def _raw_exchange(world: World, head: bytes) -> bytes:
    """Send `head` (request line and headers, no body) on a fresh connection; return the answer's head."""
    host, port = world.server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n\r\n", 1)[0].lower()


@pytest.mark.parametrize("request_line", [b"POST /v1/events HTTP/1.1", b"POST /healthz HTTP/1.1",
                                          b"POST /no/such/path HTTP/1.1", b"PUT /r/abcdefgh HTTP/1.1"])
def test_an_answer_given_before_the_body_was_read_closes_the_connection(world: World, request_line: bytes) -> None:
    # The body is never sent: the server answers (401, 405, 404) without it, and cannot reuse a
    # connection whose request is unfinished. It must say so, or the client's next request on
    # this connection is lost without an answer.
    head = _raw_exchange(world, request_line + b"\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
    assert head.startswith(b"http/1.1 4"), head
    assert b"\r\nconnection: close" in head, head


def test_an_answer_after_the_body_was_read_keeps_the_connection(world: World) -> None:
    with world.server.client() as client:
        first = client.post("/v1/events", content=b"[]", headers=_bearer(world.alice))
        second = client.get("/healthz")
    assert first.status_code == 422 and "connection" not in first.headers
    assert second.status_code == 200
