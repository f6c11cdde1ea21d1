"""Inbound webhooks: `/in/<token>` (the sending platforms post their own payloads there; GET answers
their URL test) and `/v1/inbound` (create, list, show, rotate the token, delete; Bearer API key,
scoped to its account: another account's endpoint is 404, as if it did not exist).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from linkhub.core.accounts import Account
from linkhub.services import inbound as use
from linkhub.settings import Settings
from linkhub.web.contract import ANONYMOUS, BASIC, BEARER, Answer, Operation, Param
from linkhub.web.responses import JSON, read_body, validation_error
from linkhub.web.state import State

# A body of a thousand items (Arpoone's most) is far below this; eSputnik's are not bounded by its
# documents, and this bounds what one request may make the server decode.
MAX_BODY = 8 * 1024 * 1024
MAX_REQUEST = 4 * 1024

Provider = Literal["optimizely", "esputnik", "arpoone"]


class BasicAuthIn(msgspec.Struct, forbid_unknown_fields=True):
    """The credentials the provider will send (eSputnik's and Optimizely's connectors can)."""

    username: Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[^:\x00-\x1f]+$")]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class InboundIn(msgspec.Struct, forbid_unknown_fields=True):
    """POST /v1/inbound: which provider will post to the endpoint, and whether with Basic auth."""

    provider: Provider
    basic_auth: BasicAuthIn | None = None


class InboundOut(msgspec.Struct, kw_only=True):
    """An endpoint as shown: never its token (only its hash is stored) nor its password."""

    id: str
    account_id: str
    provider: Provider
    basic_auth_user: str | None
    created_at: str
    token_rotated_at: str
    last_received_at: str | None
    accepted: int
    duplicates: int
    rejected: int


class InboundCreatedOut(InboundOut, kw_only=True):
    """The endpoint with its full URL, token included: shown only in this answer."""

    url: str


class InboundListOut(msgspec.Struct):
    endpoints: list[InboundOut]


class RejectOut(msgspec.Struct):
    received_at: str
    index: int  # the item's position in its body, from 0
    reason: str
    item: str  # the item as JSON text, cut to 4096 characters


class InboundShowOut(InboundOut, kw_only=True):
    rejects: list[RejectOut]  # the last 100, newest first


class InboundDeletedOut(msgspec.Struct):
    id: str
    deleted: bool


class InboundReceivedOut(msgspec.Struct):
    """POST /in/<token>: what became of the body's items, once committed."""

    accepted: int
    duplicates: int
    rejected: int


class InboundReadyOut(msgspec.Struct):
    """GET /in/<token>: the URL works (eSputnik tests it so when it is saved)."""

    status: Literal["ok"]
    provider: Provider


def _server(state: State) -> Settings:
    return state.settings


def _out(kind: type[msgspec.Struct], document: dict[str, object]) -> msgspec.Struct:
    return msgspec.convert(document, kind)


async def create_endpoint(request: Request, state: State, account: Account) -> Response:
    raw = await read_body(request, MAX_REQUEST)
    try:
        spec = msgspec.json.decode(raw, type=InboundIn)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise validation_error(exc) from None
    basic = (spec.basic_auth.username, spec.basic_auth.password) if spec.basic_auth is not None else None
    issued = await use.create(state.db, account.id, spec.provider, basic, lambda: _server(state))
    return JSON(_out(InboundCreatedOut, issued.document()), status_code=201)


async def list_endpoints(request: Request, state: State, account: Account) -> Response:
    documents = use.list_documents(state.db, account.id)
    return JSON(InboundListOut([msgspec.convert(d, InboundOut) for d in documents]))


async def show_endpoint(request: Request, state: State, account: Account) -> Response:
    return JSON(_out(InboundShowOut, use.show(state.db, request.path_params["endpoint_id"], account.id)))


async def rotate_token(request: Request, state: State, account: Account) -> Response:
    issued = await use.rotate(state.db, request.path_params["endpoint_id"], account.id, lambda: _server(state))
    return JSON(_out(InboundCreatedOut, issued.document()))


async def delete_endpoint(request: Request, state: State, account: Account) -> Response:
    endpoint = await use.delete(state.db, request.path_params["endpoint_id"], account.id)
    return JSON(InboundDeletedOut(endpoint.id, True))


# /in/ takes any query string: a provider may add its own, and the token is what counts.
async def ready(request: Request) -> Response:
    state: State = request.app.state.linkhub
    endpoint = await use.authenticate(state.db, request.path_params["token"], request.headers.get("authorization"))
    return JSON(_out(InboundReadyOut, {"status": "ok", "provider": endpoint.provider}))


async def receive(request: Request) -> Response:
    state: State = request.app.state.linkhub
    # Credentials before the body: a stranger's upload is not read.
    endpoint = await use.authenticate(state.db, request.path_params["token"], request.headers.get("authorization"))
    body = await read_body(request, MAX_BODY)
    received = await use.receive(state.db, state.deliverer, endpoint, body,
                                 settle_s=state.settings.classify_settle_s, origins=state.clicks.origins)
    for outcome, count in (("accepted", received.accepted), ("duplicate", received.duplicates),
                           ("rejected", received.rejected)):
        if count:
            state.metrics.inc("linkhub_inbound_items_total", count, provider=endpoint.provider, outcome=outcome)
    return JSON(InboundReceivedOut(received.accepted, received.duplicates, received.rejected))


_ONE = "/v1/inbound/{endpoint_id}"
_ID = Param("endpoint_id", where="path")
_TOKEN = Param("token", where="path", description="the endpoint's unguessable token, as in the URL it was given")
_NONE = "no such endpoint, or another account's (`not_found`)"
_WHO = "an unknown token, or missing or wrong Basic credentials (`unauthorized`): one answer for all"
# The provider's own payload: an array of its items, or one item (docs/inbound.md has each provider's).
ProviderBody = list[Any] | dict[str, Any]

operations = [
    Operation("get", "/in/{token}", "Answer a provider's test of the URL", "inbound", ready,
              security=[BASIC, ANONYMOUS], strict_query=False, params=[_TOKEN],
              answers={200: Answer("the URL works", InboundReadyOut)}, errors={401: _WHO}),
    Operation("post", "/in/{token}", "Receive a provider's events, in its own format", "inbound", receive,
              security=[BASIC, ANONYMOUS], strict_query=False, params=[_TOKEN], body=ProviderBody,
              answers={200: Answer("the body's items, committed: invalid ones are counted as rejected, not refused",
                                   InboundReceivedOut)},
              errors={400: "the body is neither an array of the provider's items nor one item (`invalid_body`)",
                      401: _WHO, 413: "more items or bytes than one body may have (`body_too_large`)"}),
    Operation("post", "/v1/inbound", "Create an inbound endpoint", "inbound", create_endpoint, security=[BEARER],
              body=InboundIn, answers={201: Answer("the endpoint with its full URL (shown this once)",
                                                   InboundCreatedOut)},
              errors={422: "bad Basic credentials or provider (`invalid_inbound`)"}),
    Operation("get", "/v1/inbound", "List the account's inbound endpoints", "inbound", list_endpoints,
              security=[BEARER], answers={200: Answer("its endpoints", InboundListOut)}),
    Operation("get", _ONE, "Show an inbound endpoint and its latest rejects", "inbound", show_endpoint,
              security=[BEARER], params=[_ID], answers={200: Answer("the endpoint", InboundShowOut)},
              errors={404: _NONE}),
    Operation("post", f"{_ONE}/rotate-token", "A new token (the old URL stops working)", "inbound", rotate_token,
              security=[BEARER], params=[_ID],
              answers={200: Answer("the endpoint with its new URL (shown this once)", InboundCreatedOut)},
              errors={404: _NONE}),
    Operation("delete", _ONE, "Delete an inbound endpoint", "inbound", delete_endpoint, security=[BEARER],
              params=[_ID], answers={200: Answer("deleted", InboundDeletedOut)}, errors={404: _NONE}),
]
