"""Outreach's "Mailing links custom tracker": check the call, choose the links, mint short links.

The contract (docs/outreach.md): Outreach POSTs the links of one outgoing email to one
recipient; we answer `{"data": {<link as sent>: <our short link>}}` for the links we
replace and leave the rest out, which Outreach reads as "keep the original". Which links get a
short link and how they are minted is shared with `POST /v1/links` (core/minting.py, whose names
this module passes on).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import msgspec

from linkhub.core import minting
from linkhub.core.accounts import Account
from linkhub.core.minting import Link, Recipient, mint, replaceable, replaceable_by_urlsplit
from linkhub.util import jsondepth

SIGNATURE_HEADER = "outreach-webhook-signature"
# Time for the link filter over a whole email, shared by its links, so a hostile pattern
# costs one request at most this long.
FILTER_BUDGET_S = 0.25

Id = str | int


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
    if deadline is None:
        deadline = time.monotonic() + FILTER_BUDGET_S
    # An unusable filter (logged) replaces nothing: Outreach keeps the originals.
    filtered = minting.apply_filter(account, links, deadline=deadline)
    return Choice(links=filtered.links, timed_out=len(filtered.timed_out))


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


__all__ = ["FILTER_BUDGET_S", "SIGNATURE_HEADER", "Choice", "Link", "Payload", "Recipient", "choose_links", "decode",
           "mint", "recipient", "replaceable", "replaceable_by_urlsplit", "signature_ok"]
