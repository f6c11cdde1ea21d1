"""Outreach's "Mailing links custom tracker": check the call, choose the links, mint short links.

The contract (docs/outreach.md): Outreach POSTs the links of one outgoing email to one
recipient; we answer `{"data": {<link as sent>: <our short link>}}` for the links we
replace and leave the rest out, which Outreach reads as "keep the original".
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import weakref
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec

from linkhub.core import linkfilter, mailings
from linkhub.core.accounts import Account
from linkhub.store import Connection
from linkhub.util import ids, jsondepth
from linkhub.util.times import now_rfc3339

SIGNATURE_HEADER = "outreach-webhook-signature"
# Time for the link filter over a whole email, shared by its links, so a hostile pattern
# costs one request at most this long.
FILTER_BUDGET_S = 0.25
# Links per INSERT when minting: 10 bound parameters each, 500 a statement, far below
# SQLite's limit (32766).
_LINKS_PER_INSERT = 50

Id = str | int
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
# The start of an http(s) URL whose authority (up to the first / ? or #) has no brackets
# and a host: what follows its last '@' is neither empty nor begins with ':'. Character
# classes, printable ASCII: _AUTH is an authority character but '@', _HOST1 neither '@'
# nor ':'. Possessive, so a URL that does not match fails without backtracking.
_AUTH = r"[\x21\x22\x24-\x2e\x30-\x3e\x41-\x5a\x5c\x5e-\x7e]"
_HOST1 = r"[\x21\x22\x24-\x2e\x30-\x39\x3b-\x3e\x41-\x5a\x5c\x5e-\x7e]"
_PLAIN_HTTP_URL = re.compile(rf"(?i:https?)://(?:{_AUTH}*+@)*+{_HOST1}{_AUTH}*+(?:[/?#]|\Z)").match


class Mailing(msgspec.Struct):
    id: Id


class Prospect(msgspec.Struct):
    id: Id
    email: str | None = None


class User(msgspec.Struct):
    id: Id | None = None
    email: str | None = None


class Meta(msgspec.Struct):
    mailing: Mailing
    prospect: Prospect
    # null is what Outreach sends for "none" as often as it leaves a field out: the same here.
    user: User | None = None
    urls: dict[str, str] | None = None


class Payload(msgspec.Struct):
    """The request body. Unknown fields are ignored: Outreach may add some."""

    data: list[str]
    meta: Meta


_decode = msgspec.json.Decoder(Payload).decode


def decode(body: bytes) -> Payload:
    """Parse and validate a request body. Raises msgspec.DecodeError (jsondepth.TooDeep) / ValidationError."""
    jsondepth.check(body)  # unknown fields are skipped, but msgspec still parses them
    return _decode(body)


def signature_ok(secret: str, body: bytes, signature: str | None) -> bool:
    """Outreach signs the raw body: lowercase hex HMAC-SHA256 keyed with the app's secret."""
    if not signature:
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest().encode()
    # Bytes, not str: compare_digest refuses non-ASCII str, and a header may carry anything.
    return hmac.compare_digest(expected, signature.strip().lower().encode("utf-8", "replace"))


def replaceable(url: str) -> bool:
    """Only absolute http(s) URLs with a host; anything else is left for Outreach to keep."""
    # The common case is decided by string methods and one regex, not by urlsplit, which
    # costs ~5 µs on a URL it has not seen (its cache never hits here: every email's links
    # differ), 50 times a call on the event loop. For ASCII, isprintable() with no space is
    # exactly "no \s and no control character"; and for an ASCII authority without brackets
    # urlsplit raises nothing and its host is what lies after the last '@' and before the
    # next ':'. Anything else (mailto:, brackets, non-ASCII, …) goes the long way.
    if url.isascii():
        if not url.isprintable() or " " in url:
            return False
        if _PLAIN_HTTP_URL(url):
            return True
    return replaceable_by_urlsplit(url)


def replaceable_by_urlsplit(url: str) -> bool:
    """What replaceable() decides, the long way (and the definition its shortcut is tested against)."""
    if not url or _SPACE_OR_CONTROL.search(url):
        return False
    try:
        parts = urlsplit(url)
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


class Link(msgspec.Struct):  # made 50 times a call: built in C, a fifth of a NamedTuple's cost
    target: str  # the data value: where /r/<code> sends the visitor
    original: str  # the link as written in the email


@dataclass(frozen=True)
class Choice:
    links: list[Link]  # the links of this call that we replace, in order, each once
    timed_out: int  # links left out because the filter could not decide in time


def choose_links(account: Account, payload: Payload, *, deadline: float | None = None) -> Choice:
    """The links to replace. With a filter, it runs until `deadline` (time.monotonic(); default
    FILTER_BUDGET_S from now): the server calls it in a worker thread then, never on the event loop."""
    # Where two originals became the same current URL, the first one listed counts.
    original_of = {current: original for original, current in reversed((payload.meta.urls or {}).items())}
    links = [Link(value, original_of.get(value, value)) for value in dict.fromkeys(payload.data)
             if replaceable(value)]
    if not account.link_filter:
        return Choice(links=links, timed_out=0)
    compile_started = time.monotonic()
    if linkfilter.compiled(account.link_filter) is None:  # bounded when the filter was set; cached after
        return Choice(links=[], timed_out=0)  # unusable (logged): replace nothing, Outreach keeps the originals
    if deadline is None:
        deadline = time.monotonic() + FILTER_BUDGET_S
    else:  # a first compile is not the links' fault
        deadline += time.monotonic() - compile_started
    chosen: list[Link] = []
    timed_out = 0
    for link in links:
        remaining = deadline - time.monotonic()
        verdict = (
            linkfilter.matches(account.link_filter, link.original, timeout=min(linkfilter.MATCH_TIMEOUT_S, remaining))
            if remaining > 0 else None
        )
        if verdict is None:
            timed_out += 1
        if verdict:
            chosen.append(link)
    return Choice(links=chosen, timed_out=timed_out)


@dataclass(frozen=True)
class Recipient:
    account_id: str
    mailing_id: str
    prospect_id: str
    prospect_email: str | None
    user_id: str | None
    user_email: str | None


def recipient(account: Account, payload: Payload) -> Recipient:
    meta = payload.meta
    user = meta.user or User()
    return Recipient(
        account_id=account.id,
        mailing_id=str(meta.mailing.id),
        prospect_id=str(meta.prospect.id),
        prospect_email=meta.prospect.email,
        user_id=None if user.id is None else str(user.id),
        user_email=user.email,
    )


def existing_codes(conn: Connection, who: Recipient, targets: list[str]) -> dict[str, str]:
    """Codes already minted for these targets (one chunk's, at most _LINKS_PER_INSERT) and this recipient."""
    # A seek per target in the unique index links_by_recipient, not the recipient's whole range:
    # a retried call reads back every chunk, and reading all of a 45,000-link email's rows
    # for each of its 900 chunks made a retry quadratic, holding the writer for minutes.
    rows = conn.execute(
        "SELECT target_url, code FROM links WHERE account_id = ? AND mailing_id = ? AND prospect_id = ?"
        f" AND target_url IN ({','.join('?' * len(targets))})",
        (who.account_id, who.mailing_id, who.prospect_id, *targets),
    )
    return dict(rows.fetchall())


# The rowid of the next link minted on a connection (the writer's), counted here because a
# statement asking for max(rowid) cost each call a wait for the GIL in the writer; kept with the
# connection's rollback count, since a rollback takes back the rows it was counted past.
_next_number: weakref.WeakKeyDictionary[Connection, tuple[int, int]] = weakref.WeakKeyDictionary()


def mint(conn: Connection, who: Recipient, links: list[Link]) -> tuple[dict[str, str], int]:
    """Codes for the links (runs in the writer's transaction); return target → code and how many were new.

    One multi-row INSERT … ON CONFLICT DO NOTHING per chunk. When every row went in (the
    usual case, a new email) the codes are the ones drawn; otherwise the chunk's links are
    read back: a link minted before for this recipient (a retried call) or by a concurrent
    call keeps its code, and a link whose code collided with another link's (54 random
    bits: in theory only) is drawn again. A retry thus writes no row. (Not read first, on
    the event loop: a read there costs a new email, the usual case, a read transaction and a
    hand-over of the GIL to the writer, ~5 % of link-replacement throughput. No RETURNING:
    the sqlite3 module steps, and releases the GIL, once per returned row.)
    """
    now = now_rfc3339()
    codes: dict[str, str] = {}
    created = 0
    missing = links
    while missing:
        for start in range(0, len(missing), _LINKS_PER_INSERT):
            chunk = missing[start : start + _LINKS_PER_INSERT]
            # Numbered with the next rowid: the chunk's codes sort together, after those minted before.
            counted = _next_number.get(conn)
            if counted is not None and counted[0] == conn.rollbacks:
                number = counted[1]
            else:
                number = conn.execute("SELECT coalesce(max(rowid), 0) + 1 FROM links").fetchone()[0]
            drawn = ids.link_codes(number, len(chunk))
            values: list[str | None] = []
            for link, code in zip(chunk, drawn, strict=True):
                values += [code, who.account_id, link.target, link.original, who.mailing_id,
                           who.prospect_id, who.prospect_email, who.user_id, who.user_email, now]
            inserted = conn.execute(
                "INSERT INTO links (code, account_id, target_url, original_url, mailing_id, prospect_id,"
                " prospect_email, user_id, user_email, created_at) VALUES "
                + ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
                + " ON CONFLICT DO NOTHING",
                values,
            ).rowcount
            _next_number[conn] = (conn.rollbacks, number + inserted)
            created += inserted
            if inserted == len(chunk):
                codes.update((link.target, code) for link, code in zip(chunk, drawn, strict=True))
            else:
                codes.update(existing_codes(conn, who, [link.target for link in chunk]))
        missing = [link for link in missing if link.target not in codes]
    if created:
        mailings.began(conn, [(who.account_id, who.mailing_id, now)])
    return codes, created
