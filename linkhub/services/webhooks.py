"""Webhook use cases: create, update, verify, (de)activate, rotate the secret, delete, and the reads of one webhook.

The HTTP API (`/v1/webhooks`, on the server's Database) and `linkhub webhooks …` (on the CLI's
own connection) both call these, so a webhook is changed by one sequence whichever front end
asked: the same checks in the same order, the same SSRF guard, the same verify batch, the same
log lines. Requests arrive parsed (`core.webhooks.parse`); refusals are `LinkhubError`s.

`account_id` scopes each call: a webhook of another account is `WebhookNotFound`, as if it did
not exist. The CLI may pass None (any account).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import httpx
from msgspec import UNSET

from linkhub.core import accounts, webhooks
from linkhub.core.errors import LinkhubError
from linkhub.core.webhooks import Dropped, Webhook
from linkhub.delivery import sender
from linkhub.delivery import verify as verify_batch
from linkhub.delivery.verify import VerifyResult
from linkhub.services.storage import Storage
from linkhub.store import Connection, StoreError

log = logging.getLogger("linkhub.webhooks")


@dataclass(frozen=True)
class Receivers:
    """How a use case reaches receivers (the target check, the verify batch)."""

    allow_private: bool
    # The pool to POST through; None: a client of its own for the one call (the CLI's case).
    http: httpx.AsyncClient | None = None


class TargetRefused(LinkhubError):
    """The URL resolves to an address deliveries may not go to (see `sender.resolve_target`)."""

    status = 422
    code = "target_refused"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="url")


class VerifyFailed(LinkhubError):
    """The receiver did not accept the verify batch: nothing was stored (create) or changed (activate)."""

    status = 422
    code = "verify_failed"

    def __init__(self, result: VerifyResult, webhook: Webhook | None = None) -> None:
        super().__init__(f"the receiver did not accept the verify batch: {result.describe()}", verify=result.public())
        self.result = result
        self.webhook = webhook  # activate's: the webhook as it stays


@dataclass(frozen=True)
class Created:
    webhook: Webhook
    verify: VerifyResult | None

    def public(self) -> dict[str, Any]:
        """The webhook with its signing secret, shown this once, and the verify result if one was sent."""
        document = {**self.webhook.public(), "secret": self.webhook.secret}
        if self.verify is not None:
            document["verify"] = self.verify.public()
        return document


@dataclass(frozen=True)
class Activated:
    webhook: Webhook
    verify: VerifyResult | None

    def public(self) -> dict[str, Any]:
        document = self.webhook.public()
        if self.verify is not None:
            document["verify"] = self.verify.public()
        return document


@dataclass(frozen=True)
class Deleted:
    webhook_id: str
    dropped: Dropped

    def public(self) -> dict[str, Any]:
        return {"id": self.webhook_id, "deleted": True, "dropped": self.dropped.public()}


def rotated(webhook: Webhook) -> dict[str, Any]:
    """What a rotation shows: the new secret (this once) and until when the previous one signs too."""
    return {"id": webhook.id, "secret": webhook.secret, "previous_secret_until": webhook.previous_secret_until}


# -- reads ------------------------------------------------------------------------------------


def find(store: Storage, webhook_id: str, account_id: str | None) -> Webhook:
    """The webhook, if it is the account's; WebhookNotFound otherwise.

    The writing use cases call it first too: a webhook that is not there is refused on a reader,
    and never fails a write job (which would make the writer replay its whole batch).
    """
    return _owned(store.reader(), webhook_id, account_id)


def deliveries(store: Storage, webhook_id: str, account_id: str | None, limit: int) -> list[dict[str, Any]]:
    """The latest POSTs to the webhook, newest first."""
    conn = store.reader()
    return webhooks.recent_deliveries(conn, _owned(conn, webhook_id, account_id).id, limit)


def _owned(conn: Connection, webhook_id: str, account_id: str | None) -> Webhook:
    """The webhook as this connection sees it now (inside a write: as it is being changed)."""
    webhook = webhooks.get(conn, webhook_id, account_id)
    if webhook is None:
        raise webhooks.WebhookNotFound(webhook_id, account_id)
    return webhook


# -- changes ----------------------------------------------------------------------------------


async def create(store: Storage, receivers: Receivers, account_id: str, spec: webhooks.WebhookSpec) -> Created:
    """Check the webhook and its target; with `spec.verify`, store nothing unless the receiver answers 2xx."""
    draft = webhooks.draft(account_id, spec)
    await _check_target(receivers, draft.url)
    if accounts.get(store.reader(), account_id) is None:
        raise accounts.AccountNotFound(account_id)
    result = None
    if spec.verify:  # eSputnik's check on save: signed with the very secret that is then stored
        result = await _send(receivers, draft)
        if not result.ok:
            raise VerifyFailed(result)

    def insert(conn: Connection) -> Webhook:
        stored = webhooks.insert(conn, draft)
        if result is not None:
            result.record(conn, stored.id)
        return stored

    webhook = await store.write(insert)
    log.info("webhook %s created for account %s (%s)", webhook.id, account_id, webhook.status)
    return Created(webhook, result)


async def update(store: Storage, receivers: Receivers, webhook_id: str, account_id: str | None,
                 changes: webhooks.WebhookChanges) -> Webhook:
    """Apply `changes`, checked as a whole before any network call or write; a new URL is target-checked."""
    changed = webhooks.apply(find(store, webhook_id, account_id), changes)
    if changes.url is not UNSET:
        await _check_target(receivers, changed.url)

    def store_changes(conn: Connection) -> Webhook:
        # Applied again to the row as it is now: it may have changed while DNS answered, and
        # into something these changes do not fit (InvalidWebhook then, too).
        return webhooks.update(conn, _owned(conn, webhook_id, account_id), changes)

    webhook = await store.write(store_changes)
    log.info("webhook %s updated", webhook.id)
    return webhook


async def verify(store: Storage, receivers: Receivers, webhook_id: str, account_id: str | None) -> VerifyResult:
    """POST the verify batch, whatever the webhook's status, and log the attempt in its delivery log."""
    webhook = find(store, webhook_id, account_id)
    result = await _send(receivers, webhook)
    try:
        await store.write(functools.partial(_record_if_exists, result=result, webhook_id=webhook.id))
    except StoreError as exc:  # the log is a convenience: the caller still gets the receiver's answer
        log.warning("could not log verify attempt of webhook %s: %s", webhook.id, exc)
    return result


def _record_if_exists(conn: Connection, *, result: VerifyResult, webhook_id: str) -> None:
    if webhooks.get(conn, webhook_id) is not None:  # it may have been deleted while we waited on the receiver
        result.record(conn, webhook_id)


async def activate(store: Storage, receivers: Receivers, webhook_id: str, account_id: str | None, *,
                   verify_first: bool) -> Activated:
    """Start queueing events for the webhook; with `verify_first`, only if the receiver accepts the verify batch.

    The verify attempt is logged either way; a refusal (VerifyFailed) leaves the status as it was.
    """
    current = find(store, webhook_id, account_id)
    result = await _send(receivers, current) if verify_first else None

    def store_status(conn: Connection) -> Webhook:
        webhook = _owned(conn, webhook_id, account_id)
        if result is not None:
            result.record(conn, webhook.id)
            if not result.ok:
                return webhook
        return webhooks.set_status(conn, webhook.id, "active", None)

    webhook = await store.write(store_status)
    if result is not None and not result.ok:
        raise VerifyFailed(result, webhook)
    log.info("webhook %s activated", webhook.id)
    return Activated(webhook, result)


async def deactivate(store: Storage, webhook_id: str, account_id: str | None) -> Webhook:
    """Stop queueing new events for the webhook; it can be activated again later."""
    find(store, webhook_id, account_id)

    def store_status(conn: Connection) -> Webhook:
        return webhooks.set_status(conn, _owned(conn, webhook_id, account_id).id, "inactive", None)

    webhook = await store.write(store_status)
    log.info("webhook %s deactivated", webhook.id)
    return webhook


async def rotate(store: Storage, webhook_id: str, account_id: str | None, *, expire_previous: bool) -> Webhook:
    """A new signing secret; the previous one signs beside it for a day, unless `expire_previous`."""
    find(store, webhook_id, account_id)

    def store_secret(conn: Connection) -> Webhook:
        return webhooks.rotate_secret(conn, _owned(conn, webhook_id, account_id).id, expire_previous=expire_previous)

    webhook = await store.write(store_secret)
    log.info("webhook %s: signing secret rotated (previous secret signs until %s)", webhook.id,
             webhook.previous_secret_until or "now")
    return webhook


async def delete(store: Storage, webhook_id: str, account_id: str | None, *, force: bool) -> Deleted:
    """Delete an inactive webhook with its queue and log; one with pending or dead deliveries only with `force`."""
    find(store, webhook_id, account_id)

    def remove(conn: Connection) -> Dropped:
        return webhooks.delete(conn, _owned(conn, webhook_id, account_id).id, force=force)

    dropped = await store.write(remove)
    log.info("webhook %s deleted (dropped %d pending and %d dead deliveries)", webhook_id, dropped.pending,
             dropped.dead)
    return Deleted(webhook_id, dropped)


# -- receivers --------------------------------------------------------------------------------


async def _check_target(receivers: Receivers, url: str) -> None:
    """SSRF guard at create/update: a URL resolving to a non-public address is refused (unless allowed)."""
    try:
        await sender.resolve_target(url, allow_private=receivers.allow_private)
    except sender.TargetRefused as exc:
        raise TargetRefused(str(exc)) from None


async def _send(receivers: Receivers, webhook: Webhook) -> VerifyResult:
    if receivers.http is not None:
        return await verify_batch.send(receivers.http, webhook, allow_private=receivers.allow_private)
    async with sender.new_client() as http:
        return await verify_batch.send(http, webhook, allow_private=receivers.allow_private)
