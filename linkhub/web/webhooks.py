"""REST API for webhooks under /v1/webhooks: create, list, show, update, verify, (de)activate, rotate, delete.

Every call is scoped to the account of its Bearer key; another account's webhook is 404, as if
it did not exist. Secrets and credentials appear in an answer only when they are created.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from linkhub.core import webhooks
from linkhub.core.accounts import Account
from linkhub.core.webhooks import Webhook
from linkhub.delivery import sender, verify
from linkhub.store import Connection, StoreError
from linkhub.web.auth import Handler, authenticated
from linkhub.web.responses import JSON, accepts, error, int_param, read_body, route, validation_error
from linkhub.web.state import State

log = logging.getLogger("linkhub.webhooks")

MAX_BODY = 64 * 1024
DEFAULT_DELIVERIES = 50
MAX_DELIVERIES = 1000

def _authenticated(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """`auth.authenticated`, plus: a webhook that is absent or another account's is a 404."""

    @functools.wraps(handler)
    async def scoped(request: Request, state: State, account: Account) -> Response:
        try:
            return await handler(request, state, account)
        except webhooks.WebhookNotFound:  # absent, or another account's: the same answer
            return _not_found(request.path_params.get("webhook_id", ""))

    return authenticated(scoped)


def _not_found(webhook_id: str) -> JSON:
    return error(404, "not_found", f"no webhook {webhook_id!r}")


def _invalid(exc: webhooks.InvalidWebhook) -> JSON:
    return error(422, "invalid_webhook", exc.message, field=exc.field)


async def _body(request: Request, kind: type[webhooks.S], *, optional: bool = False) -> webhooks.S | Response:
    raw = await read_body(request, MAX_BODY)
    try:
        return webhooks.parse(kind, raw if raw.strip() or not optional else b"{}")
    except webhooks.InvalidWebhook as exc:
        return _invalid(exc)
    except msgspec.DecodeError as exc:
        raise validation_error(exc) from None


async def _target_refused(state: State, url: str) -> JSON | None:
    """SSRF guard at create/update: a URL resolving to a non-public address is refused (unless allowed)."""
    try:
        await sender.resolve_target(url, allow_private=state.settings.allow_private_targets)
    except sender.TargetRefused as exc:
        return error(422, "target_refused", str(exc), field="url")
    return None


async def _verify(state: State, webhook: Webhook) -> verify.VerifyResult:
    assert state.http is not None, "the HTTP client is opened by the app's lifespan"
    return await verify.send(state.http, webhook, allow_private=state.settings.allow_private_targets)


def _verify_failed(result: verify.VerifyResult) -> JSON:
    return error(422, "verify_failed", f"the receiver did not accept the verify batch: {result.describe()}",
                 verify=result.public())


def _bool_param(request: Request, name: str) -> bool | None:
    """A true/false query parameter (false when absent); None if it is anything else."""
    value = request.query_params.get(name, "false").lower()
    return {"true": True, "1": True, "false": False, "0": False}.get(value)


def _mine(state: State, request: Request, account: Account) -> Webhook:
    """The webhook of the path, if it is the account's; raises WebhookNotFound (→ 404) otherwise."""
    return _owned(state.db.reader(), request.path_params["webhook_id"], account.id)


def _owned(conn: Connection, webhook_id: str, account_id: str) -> Webhook:
    """Inside a write: the webhook as it is now, if still the account's."""
    webhook = webhooks.get(conn, webhook_id, account_id)
    if webhook is None:
        raise webhooks.WebhookNotFound(webhook_id)
    return webhook


# -- handlers ------------------------------------------------------------------------------------


@_authenticated
@accepts()
async def create_webhook(request: Request, state: State, account: Account) -> Response:
    spec = await _body(request, webhooks.WebhookSpec)
    if isinstance(spec, Response):
        return spec
    try:
        draft = webhooks.draft(account.id, spec)
    except webhooks.InvalidWebhook as exc:
        return _invalid(exc)
    if (refused := await _target_refused(state, draft.url)) is not None:
        return refused
    result = None
    if spec.verify:  # eSputnik's check on save: nothing is stored unless the receiver says 2xx
        result = await _verify(state, draft)
        if not result.ok:
            return _verify_failed(result)

    def store(conn: Connection) -> Webhook:
        stored = webhooks.insert(conn, draft)
        if result is not None:
            result.record(conn, stored.id)
        return stored

    webhook = await state.db.write(store)
    log.info("webhook %s created for account %s (%s)", webhook.id, account.id, webhook.status)
    document = {**webhook.public(), "secret": webhook.secret}
    if result is not None:
        document["verify"] = result.public()
    return JSON(document, status_code=201)


@_authenticated
@accepts()
async def list_webhooks(request: Request, state: State, account: Account) -> Response:
    return JSON({"webhooks": [w.public() for w in webhooks.list_for(state.db.reader(), account.id)]})


@_authenticated
@accepts()
async def show_webhook(request: Request, state: State, account: Account) -> Response:
    return JSON(_mine(state, request, account).public())


@_authenticated
@accepts()
async def update_webhook(request: Request, state: State, account: Account) -> Response:
    webhook_id = request.path_params["webhook_id"]
    current = _mine(state, request, account)
    changes = await _body(request, webhooks.WebhookChanges)
    if isinstance(changes, Response):
        return changes
    try:
        changed = webhooks.apply(current, changes)  # checked before any network or write
    except webhooks.InvalidWebhook as exc:
        return _invalid(exc)
    if changes.url is not msgspec.UNSET and (refused := await _target_refused(state, changed.url)) is not None:
        return refused

    def store(conn: Connection) -> Webhook:
        return webhooks.update(conn, _owned(conn, webhook_id, account.id), changes)

    try:
        webhook = await state.db.write(store)
    except webhooks.InvalidWebhook as exc:  # changed concurrently into something these changes do not fit
        return _invalid(exc)
    log.info("webhook %s updated", webhook.id)
    return JSON(webhook.public())


@_authenticated
@accepts("force")
async def delete_webhook(request: Request, state: State, account: Account) -> Response:
    webhook_id = _mine(state, request, account).id
    force = _bool_param(request, "force")
    if force is None:
        return error(422, "invalid_parameter", "force must be true or false", field="force")

    def remove(conn: Connection) -> webhooks.Dropped:
        return webhooks.delete(conn, _owned(conn, webhook_id, account.id).id, force=force)

    try:
        dropped = await state.db.write(remove)
    except webhooks.WebhookActive as exc:
        return error(409, "webhook_active", str(exc))
    except webhooks.WebhookHasQueue as exc:
        return error(409, "webhook_has_queue", f"{exc}; DELETE with ?force=true drops them", **exc.queued.public())
    log.info("webhook %s deleted (dropped %d pending and %d dead deliveries)", webhook_id, dropped.pending,
             dropped.dead)
    return JSON({"id": webhook_id, "deleted": True, "dropped": dropped.public()})


@_authenticated
@accepts()
async def verify_webhook(request: Request, state: State, account: Account) -> Response:
    webhook = _mine(state, request, account)
    result = await _verify(state, webhook)
    try:
        await state.db.write(functools.partial(_record_if_exists, result=result, webhook_id=webhook.id))
    except StoreError as exc:  # the log is a convenience: the caller still gets the receiver's answer
        log.warning("could not log verify attempt of webhook %s: %s", webhook.id, exc)
    return JSON(result.public())


def _record_if_exists(conn: Connection, *, result: verify.VerifyResult, webhook_id: str) -> None:
    if webhooks.get(conn, webhook_id) is not None:  # it may have been deleted while we waited on the receiver
        result.record(conn, webhook_id)


@_authenticated
@accepts("verify")
async def activate_webhook(request: Request, state: State, account: Account) -> Response:
    webhook = _mine(state, request, account)
    webhook_id = webhook.id
    verify = _bool_param(request, "verify")
    if verify is None:
        return error(422, "invalid_parameter", "verify must be true or false", field="verify")
    result = await _verify(state, webhook) if verify else None

    def store(conn: Connection) -> Webhook | None:
        current = _owned(conn, webhook_id, account.id)
        if result is not None:
            result.record(conn, current.id)
            if not result.ok:
                return None
        return webhooks.set_status(conn, current.id, "active", None)

    activated = await state.db.write(store)
    if activated is None:
        assert result is not None
        return _verify_failed(result)
    log.info("webhook %s activated", webhook_id)
    document = activated.public()
    if result is not None:
        document["verify"] = result.public()
    return JSON(document)


@_authenticated
@accepts()
async def deactivate_webhook(request: Request, state: State, account: Account) -> Response:
    webhook_id = _mine(state, request, account).id

    def store(conn: Connection) -> Webhook:
        return webhooks.set_status(conn, _owned(conn, webhook_id, account.id).id, "inactive", None)

    webhook = await state.db.write(store)
    log.info("webhook %s deactivated", webhook_id)
    return JSON(webhook.public())


@_authenticated
@accepts()
async def rotate_secret(request: Request, state: State, account: Account) -> Response:
    webhook_id = _mine(state, request, account).id
    rotation = await _body(request, webhooks.SecretRotation, optional=True)
    if isinstance(rotation, Response):
        return rotation

    def store(conn: Connection) -> Webhook:
        return webhooks.rotate_secret(conn, _owned(conn, webhook_id, account.id).id,
                                      expire_previous=rotation.expire_previous)

    webhook = await state.db.write(store)
    log.info("webhook %s: signing secret rotated (previous secret signs until %s)", webhook_id,
             webhook.previous_secret_until or "now")
    return JSON({"id": webhook_id, "secret": webhook.secret, "previous_secret_until": webhook.previous_secret_until})


@_authenticated
@accepts("limit")
async def list_deliveries(request: Request, state: State, account: Account) -> Response:
    webhook = _mine(state, request, account)
    limit = int_param(request, "limit", DEFAULT_DELIVERIES, 1, MAX_DELIVERIES)
    return JSON({"deliveries": webhooks.recent_deliveries(state.db.reader(), webhook.id, limit)})


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
