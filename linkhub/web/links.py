"""POST /v1/links (mint short links and an open pixel for each message of any sender) and GET /v1/links
(list minted links, keyset-paginated), scoped to the account of the Bearer key."""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from linkhub.core.accounts import Account
from linkhub.core.errors import LinkhubError
from linkhub.services import links as use
from linkhub.services.links import InvalidLinks, Reason
from linkhub.util import jsondepth
from linkhub.web.contract import BEARER, Answer, Operation, Param
from linkhub.web.responses import JSON, int_param, read_body
from linkhub.web.state import State

# 10,000 URLs of a few hundred characters, and 1,000 messages' worth of ids.
MAX_BODY = 16 * 1024 * 1024
INLINE_PARSE_BYTES = 256 * 1024

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=2048, extra_json_schema={"format": "email"})]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
# The format is for the document (use.mint checks the time itself, naming the field).
Moment = Annotated[str, msgspec.Meta(max_length=64, description="RFC 3339 time; stored in UTC",
                                     extra_json_schema={"format": "date-time", "pattern": "^[1-9]"})]
# Said in the document; the check, naming the field, is the use case's.
_ID_OR_EMAIL = {"anyOf": [{"properties": {name: {"type": "string"}}, "required": [name]} for name in ("id", "email")]}


class RecipientIn(msgspec.Struct, forbid_unknown_fields=True):
    """Whom the message goes to: an id, an address, or both (at least one)."""

    id: Id | None = None
    email: Email | None = None


class UrlIn(msgspec.Struct, forbid_unknown_fields=True):
    """A URL with an expiry of its own (a plain string takes the call's)."""

    url: Url
    expires_at: Moment | None = None
    expired_url: Url | None = None


class MessageIn(msgspec.Struct, forbid_unknown_fields=True):
    mailing_id: Id
    recipient: Annotated[RecipientIn, msgspec.Meta(extra_json_schema=_ID_OR_EMAIL)]
    urls: Annotated[list[Url | UrlIn], msgspec.Meta(max_length=use.MAX_URLS)]
    message_id: Id | None = None


class LinksIn(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /v1/links."""

    messages: Annotated[list[MessageIn], msgspec.Meta(min_length=1, max_length=use.MAX_MESSAGES)]
    apply_link_filter: bool = False
    expires_at: Moment | None = None
    expired_url: Url | None = None


class RefusedOut(msgspec.Struct):
    url: str
    reason: Reason


class MessageOut(msgspec.Struct):
    message_id: str  # the sender's, or the one linkhub derived
    links: dict[str, str]  # URL as given → its short link, in the order given
    refused: list[RefusedOut]
    open_pixel: str


class LinksOut(msgspec.Struct):
    """The answer of POST /v1/links: one entry per message, in the request's order."""

    messages: list[MessageOut]


class LinkOut(msgspec.Struct):
    code: str
    short_url: str
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


class LinkListOut(msgspec.Struct):
    """The answer of GET /v1/links."""

    links: list[LinkOut]
    next_cursor: str | None


_decode = msgspec.json.Decoder(LinksIn).decode


def _refusal(exc: msgspec.ValidationError) -> InvalidLinks:
    message, _, path = str(exc).partition(" - at `")
    path = path.rstrip("`") or "$"
    if path == "$.messages" and "length <=" in message:
        return InvalidLinks(path, f"at most {use.MAX_MESSAGES} messages a call")
    if path.endswith(".urls") and "length <=" in message:
        return InvalidLinks(path, f"at most {use.MAX_URLS} URLs a call")
    if message.startswith("Object missing required field"):
        name = message.rsplit("`", 2)[-2]
        return InvalidLinks(f"{path}.{name}", "required")
    return InvalidLinks(path, message)


def parse(body: bytes) -> use.MintSpec:
    """The body as the use case's request: 400 if it is not JSON, 422 (naming where) if it is not a LinksIn."""
    try:
        jsondepth.check(body)
        request = _decode(body)
    except msgspec.ValidationError as exc:
        raise _refusal(exc) from None
    except jsondepth.TooDeep as exc:
        raise LinkhubError(str(exc), code="too_deep", path=exc.path, offset=exc.offset, max_depth=exc.limit) from None
    except msgspec.DecodeError as exc:
        raise LinkhubError(str(exc), code="malformed_json", path="$") from None
    return use.MintSpec(
        messages=[use.MessageSpec(
            mailing_id=message.mailing_id,
            urls=[use.UrlSpec(item) if isinstance(item, str) else use.UrlSpec(item.url, item.expires_at,
                                                                               item.expired_url)
                  for item in message.urls],
            message_id=message.message_id,
            recipient_id=message.recipient.id,
            email=message.recipient.email,
        ) for message in request.messages],
        apply_link_filter=request.apply_link_filter,
        expires_at=request.expires_at,
        expired_url=request.expired_url,
    )


def answer(minted: use.Minted, base: str) -> LinksOut:
    return LinksOut([MessageOut(
        message_id=message.message_id,
        links={url: use.link_url(base, code) for url, code in message.codes.items()},
        refused=[RefusedOut(url, reason) for url, reason in message.refused],
        open_pixel=use.pixel_url(base, message.pixel),
    ) for message in minted.messages])


async def mint_links(request: Request, state: State, account: Account) -> Response:
    body = await read_body(request, MAX_BODY)
    # A big call takes a while to decode and check: not on the event loop, which serves redirects.
    spec = parse(body) if len(body) <= INLINE_PARSE_BYTES else await run_in_threadpool(parse, body)
    minted = await use.mint(state.db, account, spec, filters=state.filters)
    if minted.minted:
        state.metrics.inc("linkhub_links_minted_total", minted.minted)
    return JSON(answer(minted, account.public_url or state.settings.base_url))


def listed(page: use.ListedPage) -> LinkListOut:
    return LinkListOut([LinkOut(
        code=link.code, short_url=short, account_id=link.account_id, mailing_id=link.mailing_id,
        recipient_id=link.recipient_id,
        email=link.email, message_id=link.message_id, original_url=link.original_url, target_url=link.target_url,
        created_at=link.created_at, expires_at=link.expires_at, expired_url=link.expired_url,
    ) for link, short in page.links], page.next_cursor)


async def list_links(request: Request, state: State, account: Account) -> Response:
    params = request.query_params
    limit = int_param(request, "limit", use.DEFAULT_LIMIT, 1, use.MAX_LIMIT)
    base = account.public_url or state.settings.base_url
    # A recipient without a mailing reads the account's range of the index: off the event loop.
    page = await run_in_threadpool(lambda: use.listing(
        state.db, account_id=account.id, mailing_id=params.get("mailing_id") or None,
        recipient_id=params.get("recipient_id") or None, cursor=params.get("cursor") or None, limit=limit,
        base_of=lambda _: base))
    return JSON(listed(page))


operations = [
    Operation(
        "post", "/v1/links", "Mint short links and an open pixel for each message, in the request's order", "links",
        mint_links, body=LinksIn, security=[BEARER],
        answers={200: Answer("each message's links (URLs refused are listed with the reason) and open pixel",
                             LinksOut)},
        errors={422: "the request cannot be served as asked (`invalid_request`, with `path` and `field`)",
                503: "the links were not committed in time; the same call again answers the same codes "
                     "(`unavailable`)"},
    ),
    Operation(
        "get", "/v1/links", "List minted links, keyset-paginated", "links", list_links, security=[BEARER],
        params=[Param("mailing_id"), Param("recipient_id"),
                Param("cursor", description="a `next_cursor` of an earlier page"),
                Param("limit", Annotated[int, msgspec.Meta(ge=1, le=use.MAX_LIMIT)],
                      description=f"default {use.DEFAULT_LIMIT}")],
        answers={200: Answer("a page of links", LinkListOut)},
        errors={422: "a bad limit or cursor (`invalid_parameter`)"},
    ),
]
