"""Minting links for any sender (`POST /v1/links`, `linkhub links mint`) and listing them (`GET /v1/links`,
`linkhub links list`).

A call names messages: each one's mailing, recipient and URLs. Every URL that link replacement would
replace gets a short link, minted by the same code as Outreach's (core/minting.py), so the rules are
one: absolute http(s) URLs only (the others are answered as refused, with the reason), one code per
recipient and URL in a mailing (minting again answers the same codes), the account's link filter only
when the call asks for it. Each message also gets its open pixel (core/pixels.py).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from linkhub.core import minting, pixels
from linkhub.core.accounts import Account
from linkhub.core.erasure import ERASED_PREFIX
from linkhub.core.errors import LinkhubError, Unavailable
from linkhub.core.minting import Link, Listed, Recipient
from linkhub.services.outreach import FilterThreads
from linkhub.services.storage import Storage
from linkhub.store import UNAVAILABLE, Connection
from linkhub.util.times import parse_rfc3339, to_rfc3339
from linkhub.util.wording import ascii_lower

MAX_MESSAGES = 1000
MAX_URLS = 10_000  # in all the messages of one call
# The link filter's time over a whole call, shared by its distinct URLs. A sender waits for its
# answer longer than Outreach (2 s in all), but a hostile pattern must still cost a call a bounded time.
FILTER_BUDGET_S = 2.0
# Messages minted per write: the writer's transaction stays short, so the clicks queued behind it wait
# little. A call is not atomic: a retry after a failure mints only what is missing (minting is idempotent).
MESSAGES_PER_WRITE = 100
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

Reason = Literal["not_http_url", "filtered_out", "filter_timeout", "filter_unusable"]
REASONS: dict[Reason, str] = {
    "not_http_url": "not an absolute http(s) URL with a host",
    "filtered_out": "the account's link filter does not match it",
    "filter_timeout": "the account's link filter could not decide in time",
    "filter_unusable": "the account's link filter does not compile",
}


class InvalidLinks(LinkhubError):
    """A request to mint links that cannot be served as asked; `path` says where (`$.messages[2].recipient`)."""

    status = 422
    code = "invalid_request"

    def __init__(self, path: str, reason: str) -> None:
        field_name = path.rstrip("]").rsplit(".", 1)[-1].split("[", 1)[0] if path != "$" else None
        super().__init__(f"{path}: {reason}", path=path, field=field_name)
        self.reason = reason


@dataclass(frozen=True)
class UrlSpec:
    url: str
    expires_at: str | None = None  # RFC 3339; overrides the call's
    expired_url: str | None = None  # overrides the call's


@dataclass(frozen=True)
class MessageSpec:
    mailing_id: str
    urls: list[UrlSpec]
    message_id: str | None = None  # None: linkhub derives one (pixels.derived_message_id)
    recipient_id: str | None = None
    email: str | None = None  # one of recipient_id and email at least


@dataclass(frozen=True)
class MintSpec:
    messages: list[MessageSpec]
    apply_link_filter: bool = False
    expires_at: str | None = None  # every link's, unless its URL says otherwise
    expired_url: str | None = None


@dataclass(frozen=True)
class MintedMessage:
    message_id: str
    codes: dict[str, str]  # each URL given (once, in the order given) that got a link → its code
    refused: list[tuple[str, Reason]]  # the URLs that did not, with why
    pixel: str  # the open pixel's code


@dataclass(frozen=True)
class Minted:
    messages: list[MintedMessage]  # in the order of the request
    minted: int  # links new in this call (a retry mints none)


def recipient_key(recipient_id: str | None, email: str | None) -> str:
    """What `links.prospect_id` holds for a recipient: their id, or when the sender gave only their address,
    the address lower-cased (ASCII, as reports and erasure compare addresses), so the same address is one
    recipient whatever its case, and reports (which count the address first) count them once."""
    if recipient_id is not None:
        return recipient_id
    assert email is not None
    return ascii_lower(email)


@dataclass
class _Message:
    message_id: str
    who: Recipient
    urls: list[str] = field(default_factory=list)  # each URL given, once, in the order given
    links: list[Link] = field(default_factory=list)
    refused: dict[str, Reason] = field(default_factory=dict)

    def refusals(self) -> list[tuple[str, Reason]]:
        """The refused URLs in the order they were given, whichever rule refused them."""
        return [(url, self.refused[url]) for url in self.urls if url in self.refused]


def _moment(value: str | None, path: str) -> str | None:
    if value is None:
        return None
    try:
        return to_rfc3339(parse_rfc3339(value))
    except ValueError as exc:
        raise InvalidLinks(path, str(exc)) from None


def _expired_url(value: str | None, path: str) -> str | None:
    if value is not None and not minting.replaceable(value):
        raise InvalidLinks(path, "not an absolute http(s) URL with a host")
    return value


def _prepare(account: Account, spec: MintSpec) -> list[_Message]:
    """Check what the types cannot say, and choose each message's links by the minting rules."""
    if not spec.messages:
        raise InvalidLinks("$.messages", "at least one message is required")
    if len(spec.messages) > MAX_MESSAGES:
        raise InvalidLinks("$.messages", f"at most {MAX_MESSAGES} messages a call (this one has {len(spec.messages)})")
    total = sum(len(message.urls) for message in spec.messages)
    if total > MAX_URLS:
        raise InvalidLinks("$.messages", f"at most {MAX_URLS} URLs a call, in all its messages (this one has {total})")
    expires_at = _moment(spec.expires_at, "$.expires_at")
    expired_url = _expired_url(spec.expired_url, "$.expired_url")
    if expired_url is not None and expires_at is None:
        raise InvalidLinks("$.expired_url", "expired_url needs an expires_at")
    prepared = []
    for i, message in enumerate(spec.messages):
        at = f"$.messages[{i}]"
        if message.recipient_id is None and message.email is None:
            raise InvalidLinks(f"{at}.recipient", "one of id or email is required")
        if message.email is not None and "@" not in message.email:
            raise InvalidLinks(f"{at}.recipient.email", "not an email address")
        # What erasure leaves in place of an identifier: never one a sender can name.
        if message.recipient_id is not None and message.recipient_id.startswith(ERASED_PREFIX):
            raise InvalidLinks(f"{at}.recipient.id", f"a recipient id may not begin with {ERASED_PREFIX!r}")
        if message.message_id is not None and message.message_id.startswith(ERASED_PREFIX):
            raise InvalidLinks(f"{at}.message_id", f"a message id may not begin with {ERASED_PREFIX!r}")
        key = recipient_key(message.recipient_id, message.email)
        message_id = message.message_id or pixels.derived_message_id(account.id, message.mailing_id, key)
        who = Recipient(account_id=account.id, mailing_id=message.mailing_id, prospect_id=key,
                        prospect_email=message.email, user_id=None, user_email=None, message_id=message_id)
        chosen = _Message(message_id, who)
        seen: set[str] = set()
        for j, item in enumerate(message.urls):
            item_expires = _moment(item.expires_at, f"{at}.urls[{j}].expires_at") or expires_at
            item_expired_url = _expired_url(item.expired_url, f"{at}.urls[{j}].expired_url") or expired_url
            if item_expired_url is not None and item_expires is None:
                raise InvalidLinks(f"{at}.urls[{j}].expired_url", "expired_url needs an expires_at")
            if item.url in seen:  # the first one listed counts
                continue
            seen.add(item.url)
            chosen.urls.append(item.url)
            if minting.replaceable(item.url):
                chosen.links.append(Link(item.url, item.url, item_expires, item_expired_url))
            else:
                chosen.refused[item.url] = "not_http_url"
        prepared.append(chosen)
    return prepared


def _filter(account: Account, urls: list[str], deadline: float) -> dict[str, Reason]:
    """The URLs the account's link filter refuses, each with why (each distinct URL matched once)."""
    filtered = minting.apply_filter(account, [Link(url, url) for url in urls], deadline=deadline)
    if filtered.unusable:
        return dict.fromkeys(urls, "filter_unusable")
    refused: dict[str, Reason] = dict.fromkeys((link.original for link in filtered.rejected), "filtered_out")
    refused.update(dict.fromkeys((link.original for link in filtered.timed_out), "filter_timeout"))
    return refused


def _write(messages: list[_Message]) -> Callable[[Connection], tuple[list[dict[str, str]], list[str], int]]:
    def write(conn: Connection) -> tuple[list[dict[str, str]], list[str], int]:
        codes: list[dict[str, str]] = []
        created = 0
        for message in messages:
            minted, new = minting.mint(conn, message.who, message.links) if message.links else ({}, 0)
            codes.append(minted)
            created += new
        drawn = pixels.mint(conn, messages[0].who.account_id, [
            pixels.Message(m.who.mailing_id, m.message_id, m.who.prospect_id, m.who.prospect_email)
            for m in messages])
        return codes, drawn, created

    return write


async def mint(storage: Storage, account: Account, spec: MintSpec, *, filters: FilterThreads | None = None) -> Minted:
    """Mint (or find, for a retry) the links and open pixel of every message of `spec`.

    `filters`: the server's threads for link filters (None: the caller's own thread, as the CLI runs).
    Raises InvalidLinks (422) for a request that cannot be served as asked, Unavailable if the store does
    not answer: a retry then is safe.
    """
    prepared = _prepare(account, spec)
    if spec.apply_link_filter and account.link_filter:
        urls = list(dict.fromkeys(link.original for message in prepared for link in message.links))
        check = functools.partial(_filter, account, urls, time.monotonic() + FILTER_BUDGET_S)
        refused = await filters.run(account, check) if filters is not None else check()
        if refused:
            for message in prepared:
                message.refused.update((link.original, refused[link.original]) for link in message.links
                                       if link.original in refused)
                message.links = [link for link in message.links if link.original not in refused]
    answers: list[MintedMessage] = []
    created = 0
    for start in range(0, len(prepared), MESSAGES_PER_WRITE):
        chunk = prepared[start : start + MESSAGES_PER_WRITE]
        try:
            codes, drawn, new = await storage.write(_write(chunk))
        except UNAVAILABLE as exc:
            raise Unavailable("the link store did not answer; retry the call: links and pixels minted "
                              "already are answered again, never minted twice") from exc
        created += new
        for message, minted, pixel in zip(chunk, codes, drawn, strict=True):
            answers.append(MintedMessage(message.message_id, minted,
                                         message.refusals(), pixel))
    return Minted(answers, created)


def link_url(base: str, code: str) -> str:
    return f"{base}/r/{code}"


def pixel_url(base: str, code: str) -> str:
    return f"{base}/o/{code}"


# -- listing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedPage:
    links: list[tuple[Listed, str]]  # each link and its short URL
    next_cursor: str | None  # None: nothing after this page


def listing(storage: Storage, *, account_id: str | None, mailing_id: str | None, recipient_id: str | None,
            cursor: str | None, limit: int, base_of: Callable[[str], str]) -> ListedPage:
    """Minted links (of one account, or of every one), by mailing, recipient and URL, `limit` a page,
    after `cursor` (the `next_cursor` of the page before). `base_of(account_id)` is where an account's short
    links point. Raises LinkhubError (422, field cursor) for a cursor this did not make."""
    if not 1 <= limit <= MAX_LIMIT:
        raise LinkhubError(f"limit must be an integer from 1 to {MAX_LIMIT}", status=422, code="invalid_parameter",
                           field="limit")
    try:
        page = minting.page(storage.reader(), account_id=account_id, mailing_id=mailing_id,
                            recipient_id=recipient_id, after=cursor or None, limit=limit)
    except minting.UnknownCursor:
        raise LinkhubError("not a cursor returned by this API (or its link was deleted since: list from the start)",
                           status=422, code="invalid_parameter", field="cursor") from None
    return ListedPage([(link, link_url(base_of(link.account_id), link.code)) for link in page.links],
                      page.next_code)
