"""Minting short links, for every caller: Outreach's link replacement and `POST /v1/links` (with the CLI's
`linkhub links mint`) choose links and mint them here, by the same rules and the same code.

The rules: only absolute http(s) URLs with a host get a short link (`replaceable`); the account's link
filter, when the caller applies it, keeps only the links it matches, each decided within a budget
(`apply_filter`); and a recipient has one code per target URL in a mailing, so minting again answers
the codes minted before (`mint`, idempotent on the unique index links_by_recipient).
"""

from __future__ import annotations

import re
import time
import weakref
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec

from linkhub.core import linkfilter, mailings
from linkhub.core.accounts import Account
from linkhub.store import Connection
from linkhub.store.dialect import Sql
from linkhub.util import ids
from linkhub.util.times import now_rfc3339

# Links per INSERT when minting: 13 bound parameters each at most, 650 a statement, far below
# SQLite's limit (32766).
_LINKS_PER_INSERT = 50
# On PostgreSQL each statement is a round trip to the server, and a chunk is one JSON parameter
# (_PG_INSERT): a retried 45,000-link email reads its codes back in 9 chunks, not 900.
_PG_LINKS_PER_INSERT = 5000

_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
# The start of an http(s) URL whose authority (up to the first / ? or #) has no brackets
# and a host: what follows its last '@' is neither empty nor begins with ':'. Character
# classes, printable ASCII: _AUTH is an authority character but '@', _HOST1 neither '@'
# nor ':'. Possessive, so a URL that does not match fails without backtracking.
_AUTH = r"[\x21\x22\x24-\x2e\x30-\x3e\x41-\x5a\x5c\x5e-\x7e]"
_HOST1 = r"[\x21\x22\x24-\x2e\x30-\x39\x3b-\x3e\x41-\x5a\x5c\x5e-\x7e]"
_PLAIN_HTTP_URL = re.compile(rf"(?i:https?)://(?:{_AUTH}*+@)*+{_HOST1}{_AUTH}*+(?:[/?#]|\Z)").match


def replaceable(url: str) -> bool:
    """Only absolute http(s) URLs with a host get a short link; anything else is left as it is."""
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
    target: str  # where /r/<code> sends the visitor
    original: str  # the link as written in the email
    # After this (RFC 3339 UTC), /r/<code> sends the visitor to expired_url, or shows an "expired" page.
    expires_at: str | None = None
    expired_url: str | None = None


@dataclass(frozen=True)
class Filtered:
    links: list[Link]  # the links the filter kept, in order
    rejected: list[Link]  # the links it did not match
    timed_out: list[Link]  # the links it could not decide in time (left out: the safe answer)
    unusable: bool = False  # the pattern does not compile (logged): every link was left out


def apply_filter(account: Account, links: list[Link], *, deadline: float) -> Filtered:
    """The links the account's link filter matches (on their original URL), decided until `deadline`
    (time.monotonic()). The server calls it in a worker thread, never on the event loop."""
    if not account.link_filter:
        return Filtered(links, [], [])
    compile_started = time.monotonic()
    if linkfilter.compiled(account.link_filter) is None:  # bounded when the filter was set; cached after
        return Filtered([], [], [], unusable=True)
    deadline += time.monotonic() - compile_started  # a first compile is not the links' fault
    chosen: list[Link] = []
    rejected: list[Link] = []
    timed_out: list[Link] = []
    for link in links:
        remaining = deadline - time.monotonic()
        verdict = (
            linkfilter.matches(account.link_filter, link.original, timeout=min(linkfilter.MATCH_TIMEOUT_S, remaining))
            if remaining > 0 else None
        )
        (timed_out if verdict is None else chosen if verdict else rejected).append(link)
    return Filtered(chosen, rejected, timed_out)


@dataclass(frozen=True)
class Recipient:
    """Whom links are minted for: their codes are unique per (account, mailing, prospect_id, target)."""

    account_id: str
    mailing_id: str
    prospect_id: str
    prospect_email: str | None
    user_id: str | None
    user_email: str | None
    message_id: str | None = None  # the message the links were first minted for (POST /v1/links)


def existing_codes(conn: Connection, who: Recipient, targets: list[str]) -> dict[str, str]:
    """Codes already minted for these targets (one chunk's) and this recipient."""
    # A seek per target in the unique index links_by_recipient, not the recipient's whole range:
    # a retried call reads back every chunk, and reading all of a 45,000-link email's rows
    # for each of its 900 chunks made a retry quadratic, holding the writer for minutes.
    if conn.dialect == "postgresql":
        # The targets as one JSON array (one parameter, not thousands), joined: a seek per target or one
        # hash of the recipient's range, as the planner finds cheaper. (`IN (SELECT …)` and `= ANY(…)`
        # were planned as a filter over the range, tested against every target: 3.6 s for 5000 targets.)
        rows = conn.execute(
            "SELECT l.target_url, l.code FROM jsonb_array_elements_text(CAST(? AS jsonb)) AS t(target)"
            " JOIN links AS l ON l.account_id = ? AND l.mailing_id = ? AND l.prospect_id = ?"
            " AND l.target_url = t.target",
            (msgspec.json.encode(targets).decode(), who.account_id, who.mailing_id, who.prospect_id),
        )
        return dict(rows.fetchall())
    rows = conn.execute(
        "SELECT target_url, code FROM links WHERE account_id = ? AND mailing_id = ? AND prospect_id = ?"
        f" AND target_url IN ({','.join('?' * len(targets))})",
        (who.account_id, who.mailing_id, who.prospect_id, *targets),
    )
    return dict(rows.fetchall())


_COLUMNS = ("code, account_id, target_url, original_url, mailing_id, prospect_id, prospect_email, user_id,"
            " user_email, created_at")
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ALL_COLUMNS = _COLUMNS + ", message_id, expires_at, expired_url"
_ALL_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

# The rowid of the next link minted on a connection (the writer's), counted here because a
# statement asking for max(rowid) cost each call a wait for the GIL in the writer; kept with the
# connection's rollback count, since a rollback takes back the rows it was counted past.
_next_number: weakref.WeakKeyDictionary[Connection, tuple[int, int]] = weakref.WeakKeyDictionary()
_NEXT_NUMBER = Sql(sqlite="SELECT coalesce(max(rowid), 0) + 1 FROM links", postgresql="SELECT nextval('link_numbers')")


# PostgreSQL: a chunk's links as one JSON array of [code, target, original, expires_at, expired_url], so
# the statement has a few parameters whatever the chunk's size (each of thousands of placeholders costs
# psycopg's client-side binding more than the insert itself costs the server).
_PG_INSERT = (
    f"INSERT INTO links ({_ALL_COLUMNS})"
    " SELECT j.value ->> 0, :account, j.value ->> 1, j.value ->> 2, :mailing, :prospect, :email, :user_id,"
    " :user_email, :now, :message, j.value ->> 3, j.value ->> 4"
    " FROM jsonb_array_elements(CAST(:links AS jsonb)) WITH ORDINALITY AS j(value, n) ORDER BY j.n"
    " ON CONFLICT DO NOTHING"
)


def _insert_on_postgresql(conn: Connection, who: Recipient, chunk: list[Link], drawn: list[str], now: str) -> int:
    rows = [[code, link.target, link.original, link.expires_at, link.expired_url]
            for link, code in zip(chunk, drawn, strict=True)]
    return conn.execute(_PG_INSERT, {
        "account": who.account_id, "mailing": who.mailing_id, "prospect": who.prospect_id,
        "email": who.prospect_email, "user_id": who.user_id, "user_email": who.user_email, "now": now,
        "message": who.message_id, "links": msgspec.json.encode(rows).decode(),
    }).rowcount


def mint(conn: Connection, who: Recipient, links: list[Link]) -> tuple[dict[str, str], int]:
    """Codes for the links (runs in the writer's transaction); return target → code and how many were new.

    One multi-row INSERT … ON CONFLICT DO NOTHING per chunk. When every row went in (the
    usual case, a new email) the codes are the ones drawn; otherwise the chunk's links are
    read back: a link minted before for this recipient (a retried call) or by a concurrent
    call keeps its code (and the expiry it was minted with), and a link whose code collided
    with another link's (54 random bits: in theory only) is drawn again. A retry thus writes
    no row. (Not read first, on the event loop: a read there costs a new email, the usual
    case, a read transaction and a hand-over of the GIL to the writer, ~5 % of
    link-replacement throughput. No RETURNING: the sqlite3 module steps, and releases the
    GIL, once per returned row.)
    """
    now = now_rfc3339()
    codes: dict[str, str] = {}
    created = 0
    missing = links
    # Outreach's links have neither a message id nor an expiry: their rows leave those columns out,
    # which keeps binding 45,000 links' parameters on a retry as cheap as it was.
    columns, row = (_ALL_COLUMNS, _ALL_ROW) if who.message_id is not None or any(
        link.expires_at is not None or link.expired_url is not None for link in links) else (_COLUMNS, _ROW)
    extra = columns is _ALL_COLUMNS
    postgresql = conn.dialect == "postgresql"
    per_insert = _PG_LINKS_PER_INSERT if postgresql else _LINKS_PER_INSERT
    while missing:
        for start in range(0, len(missing), per_insert):
            chunk = missing[start : start + per_insert]
            # Numbered with the next rowid: the chunk's codes sort together, after those minted before.
            counted = _next_number.get(conn)
            if counted is not None and counted[0] == conn.rollbacks:
                number = counted[1]
            else:
                number = conn.execute(_NEXT_NUMBER.on(conn)).fetchone()[0]
            drawn = ids.link_codes(number, len(chunk))
            if postgresql:
                inserted = _insert_on_postgresql(conn, who, chunk, drawn, now)
            else:
                values: list[str | None] = []
                for link, code in zip(chunk, drawn, strict=True):
                    values += [code, who.account_id, link.target, link.original, who.mailing_id,
                               who.prospect_id, who.prospect_email, who.user_id, who.user_email, now]
                    if extra:
                        values += [who.message_id, link.expires_at, link.expired_url]
                inserted = conn.execute(
                    f"INSERT INTO links ({columns}) VALUES " + ",".join([row] * len(chunk)) + " ON CONFLICT DO NOTHING",
                    values,
                ).rowcount
                # (PostgreSQL's sequence is shared with other processes: asked for each chunk.)
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


# -- reading minted links back (GET /v1/links, `linkhub links list`) ----------------------------------

# A listing's order, which is links_by_recipient's: every page is one seek in that index, after the
# last key of the page before.
_KEY = ("account_id", "mailing_id", "prospect_id", "target_url")
LISTED_COLUMNS = ("code, account_id, mailing_id, prospect_id, prospect_email, message_id, original_url, target_url,"
                  " created_at, expires_at, expired_url")


# SQLite is told to walk links_by_recipient, the listing's order; PostgreSQL has no such hint (its
# planner walks that index for the ORDER BY … LIMIT).
_BY_RECIPIENT = Sql(sqlite=" INDEXED BY links_by_recipient", postgresql="")


@dataclass(frozen=True)
class Listed:
    code: str
    account_id: str
    mailing_id: str
    recipient_id: str
    email: str | None
    message_id: str | None
    original_url: str
    target_url: str
    created_at: str
    expires_at: str | None
    expired_url: str | None


@dataclass(frozen=True)
class LinkPage:
    links: list[Listed]
    next_code: str | None  # the code of the last link shown when more follow, else None


class UnknownCursor(LookupError):
    """The link a page should continue after is not one of those listed (another account's, or deleted)."""


def page(conn: Connection, *, account_id: str | None, mailing_id: str | None, recipient_id: str | None,
         after: str | None, limit: int) -> LinkPage:
    """Up to `limit` minted links, in the order of (account, mailing, recipient, target URL), after the link
    with the code `after`. Links of erased recipients are not listed (they name nobody). Raises UnknownCursor.

    A page continues after a link's code, not its key: the key holds the recipient, whom a cursor should
    not carry around in URLs. One seek finds the key again."""
    where = ["erased_at IS NULL"]
    values: list[str | int] = []
    fixed = {"account_id": account_id, "mailing_id": mailing_id, "prospect_id": recipient_id}
    for column, value in fixed.items():
        if value is not None:
            where.append(f"{column} = ?")
            values.append(value)
    if after is not None:
        key = conn.execute(f"SELECT {', '.join(_KEY)} FROM links WHERE code = ?", (after,)).fetchone()
        if key is None or (account_id is not None and key[0] != account_id):
            raise UnknownCursor(after)
        # Compared on the columns after the key's prefix that equalities fix: then SQLite seeks to
        # the cursor within that prefix (a comparison of the whole key would not be used with them).
        prefix = 0
        while prefix < 3 and fixed.get(_KEY[prefix]) is not None:
            prefix += 1
        where.append(f"({', '.join(_KEY[prefix:])}) > ({', '.join('?' * (4 - prefix))})")
        values.extend(tuple(key)[prefix:])
    rows = conn.execute(f"SELECT {LISTED_COLUMNS} FROM links{_BY_RECIPIENT.on(conn)}"
                        f" WHERE {' AND '.join(where)} ORDER BY {', '.join(_KEY)} LIMIT ?",
                        (*values, limit + 1)).fetchall()
    shown = [Listed(*row) for row in rows[:limit]]
    return LinkPage(shown, shown[-1].code if shown and len(rows) > limit else None)
