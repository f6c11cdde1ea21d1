"""REST API for webhooks under /v1/webhooks: create, list, show, update, verify, (de)activate, rotate, delete.

Every call is scoped to the account of its Bearer key; another account's webhook is 404, as if
it did not exist. Secrets and credentials appear in an answer only when they are created.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType
from starlette.requests import Request
from starlette.responses import Response

from linkhub.core import webhooks
from linkhub.core.accounts import Account
from linkhub.services import webhooks as use
from linkhub.services.webhooks import Receivers
from linkhub.web.contract import BEARER, Answer, Operation, Param
from linkhub.web.errors import VerifyOut
from linkhub.web.responses import JSON, InvalidParameter, int_param, read_body, validation_error
from linkhub.web.state import State

MAX_BODY = 64 * 1024
DEFAULT_DELIVERIES = 50
MAX_DELIVERIES = 1000


class AuthShownOut(msgspec.Struct, forbid_unknown_fields=True):
    """How the webhook authenticates to its receiver, without the credentials themselves."""

    type: Literal["none", "basic", "bearer", "header"]
    username: str | UnsetType = UNSET  # basic
    name: str | UnsetType = UNSET  # header: the header's name


class WebhookOut(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A webhook as the API shows it: never its signing secret nor its receiver's credentials."""

    id: str
    url: str
    types: Annotated[list[str], msgspec.Meta(description="the event types it receives; empty: every type")]
    verdicts: list[str]
    wait_for_verdict: bool
    format: str
    auth: AuthShownOut
    batch_size: int
    retry: webhooks.Retry
    max_age_s: int
    timeout_s: int
    ordered: bool
    description: str | None
    status: Literal["active", "inactive", "disabled"]
    status_reason: str | None
    created_at: str
    updated_at: str
    previous_secret_until: str | None


class WebhookActivatedOut(WebhookOut, kw_only=True, forbid_unknown_fields=True):
    """The webhook, and the verify batch's outcome when one was asked for (?verify=true)."""

    verify: VerifyOut | UnsetType = UNSET


class WebhookCreatedOut(WebhookOut, kw_only=True, forbid_unknown_fields=True):
    """The new webhook with its signing secret, shown this once, and the verify outcome if one was sent."""

    secret: str
    verify: VerifyOut | UnsetType = UNSET


class WebhooksOut(msgspec.Struct, forbid_unknown_fields=True):
    webhooks: list[WebhookOut]


class DroppedOut(msgspec.Struct, forbid_unknown_fields=True):
    pending: int
    dead: int


class DeletedOut(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    deleted: bool
    dropped: DroppedOut


class RotatedOut(msgspec.Struct, forbid_unknown_fields=True):
    """The new secret (shown this once) and until when the previous one signs too (null: it stopped at once)."""

    id: str
    secret: str
    previous_secret_until: str | None


class DeliveryOut(msgspec.Struct, forbid_unknown_fields=True):
    """One POST to the receiver: a batch of `events` (`test`: a verify batch)."""

    id: int
    message_id: str
    attempted_at: str
    events: int
    status_code: int | None
    duration_ms: int
    error: str | None
    test: bool


class DeliveriesOut(msgspec.Struct, forbid_unknown_fields=True):
    deliveries: list[DeliveryOut]


def _out(kind: type[Any], document: Any) -> Any:
    # Made from the use case's one public form of the webhook; a key it gains fails here and in the tests.
    return msgspec.convert(document, kind)


async def _body(request: Request, kind: type[webhooks.S], *, optional: bool = False) -> webhooks.S:
    """The request body as `kind` (413, 400, or InvalidWebhook's 422 otherwise)."""
    raw = await read_body(request, MAX_BODY)
    try:
        return webhooks.parse(kind, raw if raw.strip() or not optional else b"{}")
    except msgspec.DecodeError as exc:
        raise validation_error(exc) from None


def _bool_param(request: Request, name: str) -> bool:
    """A true/false query parameter (false when absent); anything else is refused."""
    value = {"true": True, "1": True, "false": False, "0": False}.get(request.query_params.get(name, "false").lower())
    if value is None:
        raise InvalidParameter(f"{name} must be true or false", field=name)
    return value


def _mine(state: State, request: Request, account: Account) -> str:
    """The path's webhook id, once it is known to be the account's: a 404 comes before any other check."""
    return use.find(state.db, request.path_params["webhook_id"], account.id).id


def _receivers(state: State) -> Receivers:
    assert state.http is not None, "the HTTP client is opened by the app's lifespan"
    return Receivers(state.settings.allow_private_targets, state.http)


# -- handlers: parse the request, call the use case, answer; every refusal is raised ------------


async def create_webhook(request: Request, state: State, account: Account) -> Response:
    spec = await _body(request, webhooks.WebhookSpec)
    created = await use.create(state.db, _receivers(state), account.id, spec)
    return JSON(_out(WebhookCreatedOut, created.public()), status_code=201)


async def list_webhooks(request: Request, state: State, account: Account) -> Response:
    return JSON(WebhooksOut([_out(WebhookOut, w.public()) for w in webhooks.list_for(state.db.reader(), account.id)]))


async def show_webhook(request: Request, state: State, account: Account) -> Response:
    return JSON(_out(WebhookOut, use.find(state.db, request.path_params["webhook_id"], account.id).public()))


async def update_webhook(request: Request, state: State, account: Account) -> Response:
    webhook_id = _mine(state, request, account)
    changes = await _body(request, webhooks.WebhookChanges)
    updated = await use.update(state.db, _receivers(state), webhook_id, account.id, changes)
    return JSON(_out(WebhookOut, updated.public()))


async def delete_webhook(request: Request, state: State, account: Account) -> Response:
    webhook_id = _mine(state, request, account)
    force = _bool_param(request, "force")
    return JSON(_out(DeletedOut, (await use.delete(state.db, webhook_id, account.id, force=force)).public()))


async def verify_webhook(request: Request, state: State, account: Account) -> Response:
    result = await use.verify(state.db, _receivers(state), request.path_params["webhook_id"], account.id)
    return JSON(_out(VerifyOut, result.public()))


async def activate_webhook(request: Request, state: State, account: Account) -> Response:
    webhook_id = _mine(state, request, account)
    verify = _bool_param(request, "verify")
    activated = await use.activate(state.db, _receivers(state), webhook_id, account.id, verify_first=verify)
    return JSON(_out(WebhookActivatedOut, activated.public()))


async def deactivate_webhook(request: Request, state: State, account: Account) -> Response:
    deactivated = await use.deactivate(state.db, request.path_params["webhook_id"], account.id)
    return JSON(_out(WebhookOut, deactivated.public()))


async def rotate_secret(request: Request, state: State, account: Account) -> Response:
    webhook_id = _mine(state, request, account)
    rotation = await _body(request, webhooks.SecretRotation, optional=True)
    webhook = await use.rotate(state.db, webhook_id, account.id, expire_previous=rotation.expire_previous)
    return JSON(_out(RotatedOut, use.rotated(webhook)))


async def list_deliveries(request: Request, state: State, account: Account) -> Response:
    webhook_id = _mine(state, request, account)
    limit = int_param(request, "limit", DEFAULT_DELIVERIES, 1, MAX_DELIVERIES)
    return JSON(DeliveriesOut(_out(list[DeliveryOut], use.deliveries(state.db, webhook_id, account.id, limit))))


_ONE = "/v1/webhooks/{webhook_id}"
_ID = Param("webhook_id", where="path")
_NONE = "no such webhook, or another account's (`not_found`)"
_INVALID = "the body fails validation (`invalid_webhook`, with `field`)"
_TAG = "webhooks"


def _op(method: str, path: str, summary: str, handler: Any, answer: Answer, *, status: int = 200,
        **more: Any) -> Operation:
    return Operation(method, path, summary, _TAG, handler, {status: answer}, security=[BEARER], **more)


_FLAG = Literal["true", "false", "1", "0"]

operations = [
    _op("post", "/v1/webhooks", "Create a webhook", create_webhook,
        Answer("the webhook, with its signing secret (shown this once)", WebhookCreatedOut), status=201,
        body=webhooks.WebhookSpec,
        errors={422: f"{_INVALID}; its URL is refused (`target_refused`); or the receiver did not accept "
                     "the verify batch asked for (`verify_failed`)"}),
    _op("get", "/v1/webhooks", "List the account's webhooks", list_webhooks, Answer("its webhooks", WebhooksOut)),
    _op("get", _ONE, "Show a webhook", show_webhook, Answer("the webhook", WebhookOut), params=[_ID],
        errors={404: _NONE}),
    _op("patch", _ONE, "Change a webhook's settings (the fields given)", update_webhook,
        Answer("the webhook as changed", WebhookOut), params=[_ID], body=webhooks.WebhookChanges,
        errors={404: _NONE, 422: f"{_INVALID}, or its new URL is refused (`target_refused`)"}),
    _op("delete", _ONE, "Delete an inactive webhook", delete_webhook, Answer("what was deleted", DeletedOut),
        params=[_ID, Param("force", _FLAG, description="drop its waiting and dead deliveries too")],
        errors={404: _NONE, 409: "it is active (`webhook_active`), or has deliveries waiting or dead and "
                                 "force is not set (`webhook_has_queue`, with `pending` and `dead`)",
                422: "a bad force (`invalid_parameter`)"}),
    _op("post", f"{_ONE}/verify", "Send a verify batch and see the receiver's answer", verify_webhook,
        Answer("the receiver's answer, whatever it was", VerifyOut), params=[_ID], errors={404: _NONE}),
    _op("post", f"{_ONE}/activate", "Start deliveries", activate_webhook,
        Answer("the webhook, active", WebhookActivatedOut),
        params=[_ID, Param("verify", _FLAG,
                           description="send a verify batch first; stay inactive unless it is accepted")],
        errors={404: _NONE, 422: "the receiver did not accept the verify batch (`verify_failed`), or a bad "
                                 "verify (`invalid_parameter`)"}),
    _op("post", f"{_ONE}/deactivate", "Pause deliveries", deactivate_webhook,
        Answer("the webhook, inactive", WebhookOut), params=[_ID], errors={404: _NONE}),
    _op("post", f"{_ONE}/rotate-secret", "A new signing secret", rotate_secret,
        Answer("the new secret", RotatedOut), params=[_ID], body=webhooks.SecretRotation, body_required=False,
        errors={404: _NONE, 422: _INVALID}),
    _op("get", f"{_ONE}/deliveries", "The latest POSTs to the receiver, newest first", list_deliveries,
        Answer("its recent deliveries", DeliveriesOut),
        params=[_ID, Param("limit", Annotated[int, msgspec.Meta(ge=1, le=MAX_DELIVERIES)],
                           description=f"default {DEFAULT_DELIVERIES}")],
        errors={404: _NONE, 422: "a bad limit (`invalid_parameter`)"}),
]
