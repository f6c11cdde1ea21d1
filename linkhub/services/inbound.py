"""Inbound webhook use cases: create, list, show, rotate the token and delete an endpoint (the HTTP API
`/v1/inbound` and `linkhub inbound …` both call these), and receive a provider's POST to `/in/<token>`.

A POST's items become canonical events (`core.formats_in`) stored through the same ingest as
`POST /v1/events` (`services.events.ingest`): new events and their deliveries in one transaction,
with the endpoint's counts and its rejected items in that same transaction.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from linkhub.core import accounts, inbound
from linkhub.core import formats_in as formats
from linkhub.core.clicks import Origins
from linkhub.core.errors import LinkhubError
from linkhub.core.inbound import Endpoint, EndpointNotFound
from linkhub.core.outbox import DEFAULT_SETTLE_S
from linkhub.delivery.loop import Deliverer
from linkhub.services.events import ingest
from linkhub.services.storage import Storage
from linkhub.settings import Settings
from linkhub.store import Connection, Store
from linkhub.util.times import now_rfc3339

log = logging.getLogger("linkhub.inbound")
# Bodies this large are decoded in a thread: on the event loop they would hold up redirects.
INLINE_PARSE_BYTES = 256 * 1024


class Unauthorized(LinkhubError):
    """An unknown token, or missing or wrong Basic credentials: one answer for all, which says not which."""

    status = 401
    code = "unauthorized"

    def __init__(self) -> None:
        super().__init__("unknown inbound URL, or missing or wrong credentials",
                         headers={"WWW-Authenticate": 'Basic realm="linkhub inbound"'})


def url(endpoint: Endpoint, token: str, account: accounts.Account, server: Callable[[], Settings]) -> str:
    """The endpoint's full URL, on the account's public URL, else the server's (as Outreach's URL)."""
    base = account.public_url or server().base_url
    return f"{base}/in/{token}"


@dataclass(frozen=True)
class Issued:
    """An endpoint with its token, which exists in clear only in this answer."""

    endpoint: Endpoint
    url: str

    def document(self) -> dict[str, Any]:
        return {**inbound.public(self.endpoint), "url": self.url}


def find(store: Storage, endpoint_id: str, account_id: str | None) -> Endpoint:
    found = inbound.get(store.reader(), endpoint_id, account_id)
    if found is None:
        raise EndpointNotFound(endpoint_id)
    return found


def show(store: Storage, endpoint_id: str, account_id: str | None) -> dict[str, Any]:
    """The endpoint and its last rejected items (newest first), never its token or password."""
    conn = store.reader()
    found = find(store, endpoint_id, account_id)
    return {**inbound.public(found),
            "rejects": [{"received_at": r.received_at, "index": r.index, "reason": r.reason, "item": r.item}
                        for r in inbound.rejects(conn, found.id)]}


def list_documents(store: Storage, account_id: str | None) -> list[dict[str, Any]]:
    return [inbound.public(e) for e in inbound.list_for(store.reader(), account_id)]


async def create(store: Storage, account_id: str, provider: str, basic: tuple[str, str] | None,
                 server: Callable[[], Settings]) -> Issued:
    """A new endpoint; `basic` is (user, password) when the provider is to send Basic auth."""
    if provider not in formats.PROVIDERS:
        raise inbound.InvalidEndpoint(f"provider must be one of {', '.join(formats.PROVIDERS)}", field="provider")
    hashed = None
    if basic is not None:
        inbound.check_basic(*basic)
        hashed = (basic[0], await asyncio.to_thread(inbound.hash_password, basic[1]))
    account = accounts.get(store.reader(), account_id)
    if account is None:
        raise accounts.AccountNotFound(account_id)
    endpoint, token = await store.write(lambda conn: inbound.create(conn, account_id, provider, hashed))
    log.info("inbound endpoint %s created for account %s (%s)", endpoint.id, account_id, provider)
    return Issued(endpoint, url(endpoint, token, account, server))


async def rotate(store: Storage, endpoint_id: str, account_id: str | None, server: Callable[[], Settings]) -> Issued:
    find(store, endpoint_id, account_id)
    endpoint, token = await store.write(lambda conn: inbound.rotate(conn, endpoint_id, account_id))
    account = accounts.get(store.reader(), endpoint.account_id)
    assert account is not None
    log.info("inbound endpoint %s: token rotated", endpoint.id)
    return Issued(endpoint, url(endpoint, token, account, server))


async def delete(store: Storage, endpoint_id: str, account_id: str | None) -> Endpoint:
    find(store, endpoint_id, account_id)
    endpoint = await store.write(lambda conn: inbound.delete(conn, endpoint_id, account_id))
    log.info("inbound endpoint %s deleted", endpoint.id)
    return endpoint


# -- receiving ---------------------------------------------------------------------------------


def _basic(authorization: str | None) -> tuple[str, str] | None:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if colon else None


async def authenticate(store: Storage, token: str, authorization: str | None) -> Endpoint:
    """The endpoint of the token, if the request's credentials are those it asks for; Unauthorized otherwise."""
    found = inbound.by_token(store.reader(), token) if token.startswith("inb_") and len(token) <= 128 else None
    given = _basic(authorization)
    matches = False
    if given is not None:
        # Checked whenever credentials come, against a dummy when there is nothing to match, so the
        # time taken does not tell a known token from an unknown one (without them, both fail at once).
        stored = found.password_scrypt if found is not None else None
        matches = await asyncio.to_thread(inbound.password_matches, stored, given[1])
    if found is None:
        raise Unauthorized
    wanted = found.endpoint.basic_user
    user_matches = given is not None and hmac.compare_digest(given[0].encode(), (wanted or "").encode())
    if wanted is not None and not (matches and user_matches):
        raise Unauthorized
    return found.endpoint


@dataclass(frozen=True)
class Received:
    accepted: int
    duplicates: int
    rejected: int
    rejects: list[formats.Rejected]


def parse(endpoint: Endpoint, body: bytes, received_at: str) -> formats.Parsed:
    """The body's items as events and rejects; refuses a body that is no batch at all (LinkhubError)."""
    items = formats.decode(endpoint.provider, body)
    return formats.parse(endpoint.provider, items, account_id=endpoint.account_id, received_at=received_at)


async def receive(db: Store, deliverer: Deliverer, endpoint: Endpoint, body: bytes, *,
                  settle_s: float = DEFAULT_SETTLE_S, origins: Origins | None = None) -> Received:
    """Store a provider's POST: its valid items as events (duplicates dropped) and deliveries, its counts
    and rejected items, in one transaction; answered once committed."""
    received_at = now_rfc3339()
    parsed = (parse(endpoint, body, received_at) if len(body) <= INLINE_PARSE_BYTES
              else await asyncio.to_thread(parse, endpoint, body, received_at))

    def bookkeeping(conn: Connection, accepted: int, duplicates: int) -> None:
        inbound.record(conn, endpoint, received_at=received_at, accepted=accepted, duplicates=duplicates,
                       rejects=parsed.rejects)

    ingested = await ingest(db, deliverer, parsed.events, settle_s=settle_s, origins=origins, also=bookkeeping)
    if parsed.rejects:
        first = parsed.rejects[0]
        # Reasons name fields, never values; the endpoint id is no secret (the token is).
        log.warning("inbound endpoint %s (%s): %d of %d items rejected; the first, item %d: %s", endpoint.id,
                    endpoint.provider, len(parsed.rejects), len(parsed.rejects) + len(parsed.events), first.index,
                    first.reason)
    return Received(ingested.accepted, ingested.duplicates, len(parsed.rejects), parsed.rejects)
