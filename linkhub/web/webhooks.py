"""REST API for webhooks under /v1/webhooks: create, list, show, update, verify, (de)activate, rotate, delete.

Every call is scoped to the account of its Bearer key; another account's webhook is 404, as if
it did not exist. Secrets and credentials appear in an answer only when they are created.
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from linkhub.core import webhooks
from linkhub.core.accounts import Account
from linkhub.services import webhooks as use
from linkhub.services.webhooks import Receivers
from linkhub.web.auth import authenticated
from linkhub.web.responses import JSON, InvalidParameter, accepts, int_param, read_body, route, validation_error
from linkhub.web.state import State

MAX_BODY = 64 * 1024
DEFAULT_DELIVERIES = 50
MAX_DELIVERIES = 1000


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


@authenticated
@accepts()
async def create_webhook(request: Request, state: State, account: Account) -> Response:
    spec = await _body(request, webhooks.WebhookSpec)
    created = await use.create(state.db, _receivers(state), account.id, spec)
    return JSON(created.public(), status_code=201)


@authenticated
@accepts()
async def list_webhooks(request: Request, state: State, account: Account) -> Response:
    return JSON({"webhooks": [w.public() for w in webhooks.list_for(state.db.reader(), account.id)]})


@authenticated
@accepts()
async def show_webhook(request: Request, state: State, account: Account) -> Response:
    return JSON(use.find(state.db, request.path_params["webhook_id"], account.id).public())


@authenticated
@accepts()
async def update_webhook(request: Request, state: State, account: Account) -> Response:
    webhook_id = _mine(state, request, account)
    changes = await _body(request, webhooks.WebhookChanges)
    return JSON((await use.update(state.db, _receivers(state), webhook_id, account.id, changes)).public())


@authenticated
@accepts("force")
async def delete_webhook(request: Request, state: State, account: Account) -> Response:
    webhook_id = _mine(state, request, account)
    force = _bool_param(request, "force")
    return JSON((await use.delete(state.db, webhook_id, account.id, force=force)).public())


@authenticated
@accepts()
async def verify_webhook(request: Request, state: State, account: Account) -> Response:
    result = await use.verify(state.db, _receivers(state), request.path_params["webhook_id"], account.id)
    return JSON(result.public())


@authenticated
@accepts("verify")
async def activate_webhook(request: Request, state: State, account: Account) -> Response:
    webhook_id = _mine(state, request, account)
    verify = _bool_param(request, "verify")
    activated = await use.activate(state.db, _receivers(state), webhook_id, account.id, verify_first=verify)
    return JSON(activated.public())


@authenticated
@accepts()
async def deactivate_webhook(request: Request, state: State, account: Account) -> Response:
    return JSON((await use.deactivate(state.db, request.path_params["webhook_id"], account.id)).public())


@authenticated
@accepts()
async def rotate_secret(request: Request, state: State, account: Account) -> Response:
    webhook_id = _mine(state, request, account)
    rotation = await _body(request, webhooks.SecretRotation, optional=True)
    webhook = await use.rotate(state.db, webhook_id, account.id, expire_previous=rotation.expire_previous)
    return JSON(use.rotated(webhook))


@authenticated
@accepts("limit")
async def list_deliveries(request: Request, state: State, account: Account) -> Response:
    webhook_id = _mine(state, request, account)
    limit = int_param(request, "limit", DEFAULT_DELIVERIES, 1, MAX_DELIVERIES)
    return JSON({"deliveries": use.deliveries(state.db, webhook_id, account.id, limit)})


_ONE = "/v1/webhooks/{webhook_id}"

routes: list[Route] = [
    route("/v1/webhooks", GET=list_webhooks, POST=create_webhook),
    route(_ONE, GET=show_webhook, PATCH=update_webhook, DELETE=delete_webhook),
    Route(f"{_ONE}/verify", verify_webhook, methods=["POST"]),
    Route(f"{_ONE}/activate", activate_webhook, methods=["POST"]),
    Route(f"{_ONE}/deactivate", deactivate_webhook, methods=["POST"]),
    Route(f"{_ONE}/rotate-secret", rotate_secret, methods=["POST"]),
    Route(f"{_ONE}/deliveries", list_deliveries, methods=["GET"]),
]
