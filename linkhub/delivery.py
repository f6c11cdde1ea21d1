"""The delivery loop: drains the outbox to every active webhook, started and stopped with the app.

A supervisor task finds webhooks with queued rows and runs one worker per webhook, so
a slow, hung or failing receiver only ever holds its own worker. Limits:
- ordered webhooks send one batch at a time (strict FIFO: nothing passes a failing head);
- unordered webhooks send up to PER_WEBHOOK_CONCURRENCY batches at once;
- at most GLOBAL_CONCURRENCY requests are in flight overall, over one shared connection pool.
Every state change goes through the database writer before the next step, so a killed
process resends at most the batches it had in flight (at-least-once, same event ids).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime

import httpx

from . import formats, outbox, sender, webhooks
from .db import Database, DatabaseClosed
from .metrics import Metrics
from .timeutil import now_rfc3339

log = logging.getLogger("linkhub.delivery")

GLOBAL_CONCURRENCY = 64
PER_WEBHOOK_CONCURRENCY = 4
# How often the supervisor looks for work nobody told it about (CLI replays, retries coming due).
POLL_INTERVAL_S = 1.0
# Retry-After is honoured, up to this long.
MAX_RETRY_AFTER_S = 3600.0
# How often queues of paused (inactive, disabled) webhooks are checked for expired rows.
EXPIRY_INTERVAL_S = 10.0


class Deliverer:
    def __init__(self, db: Database, metrics: Metrics, *, allow_private: bool) -> None:
        self.db = db
        self.metrics = metrics
        self.allow_private = allow_private
        self.client: httpx.AsyncClient | None = None
        self._wake = asyncio.Event()
        self._requests = asyncio.Semaphore(GLOBAL_CONCURRENCY)
        self._workers: dict[str, asyncio.Task[bool]] = {}
        # Events per webhook in batches being sent now (linkhub_outbox_in_flight).
        self.in_flight: Counter[str] = Counter()
        self._supervisor: asyncio.Task[None] | None = None

    async def start(self, client: httpx.AsyncClient) -> None:
        """Start delivering. Rows an earlier run left 'sending' must have been released (server.run does it)."""
        self.client = client
        self._supervisor = asyncio.create_task(self._supervise(), name="linkhub-delivery")

    def wake(self) -> None:
        """New rows were queued: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        tasks = [t for t in (self._supervisor, *self._workers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        # Batches cut off mid-flight were not confirmed: they go out again after restart.
        try:
            await self.db.write(outbox.release_claims)
        except DatabaseClosed as exc:  # the writer has failed: `serve` releases them as it starts
            log.error("claimed deliveries not released on the way out (%s)", exc)

    async def _supervise(self) -> None:
        last_expiry = 0.0
        while True:
            self._wake.clear()
            try:
                if time.monotonic() - last_expiry >= EXPIRY_INTERVAL_S:
                    last_expiry = time.monotonic()
                    await self._expire_paused()
                for webhook_id in self._webhooks_with_work():
                    if webhook_id not in self._workers:
                        task = asyncio.create_task(self._work(webhook_id), name=f"linkhub-delivery-{webhook_id}")
                        self._workers[webhook_id] = task
                        task.add_done_callback(functools.partial(self._worker_done, webhook_id))
            except Exception:
                log.exception("delivery supervisor pass failed; retrying")
            # Not asyncio.wait_for: on Python 3.11 it returns normally when it is cancelled just as
            # the event is set (stop() cancels the workers, whose done callbacks set it), and this
            # loop then outlived stop(), which waited for it forever: SIGTERM never ended the process.
            try:
                async with asyncio.timeout(POLL_INTERVAL_S):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _worker_done(self, webhook_id: str, task: asyncio.Task[bool]) -> None:
        self._workers.pop(webhook_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery worker for %s failed: %r", webhook_id, task.exception())
            # Its claimed rows would otherwise stay 'sending' (and block an ordered queue) until restart.
            asyncio.create_task(self.db.write(functools.partial(outbox.release_claims, webhook_id=webhook_id)))
        elif task.cancelled() or task.result():
            # It may have stopped just as new rows arrived: let the supervisor look again. Not when
            # its next batch was not due: the supervisor would start it again at once, and again…
            self._wake.set()

    def _webhooks_with_work(self) -> list[str]:
        rows = self.db.reader().execute(
            "SELECT w.id FROM webhooks w WHERE w.status = 'active' AND EXISTS ("
            " SELECT 1 FROM outbox o WHERE o.webhook_id = w.id AND o.state IN ('pending', 'sending'))"
        )
        return [row[0] for row in rows]

    async def _expire_paused(self) -> None:
        """Queued rows of inactive or disabled webhooks still expire (their workers do it for active ones)."""
        rows = self.db.reader().execute(
            "SELECT w.id FROM webhooks w WHERE w.status != 'active' AND EXISTS ("
            " SELECT 1 FROM outbox o WHERE o.webhook_id = w.id AND o.state IN ('pending', 'sending'))"
        ).fetchall()
        for (webhook_id,) in rows:
            hook = webhooks.get(self.db.reader(), webhook_id)
            if hook is not None:
                await self.db.write(functools.partial(outbox.expire, hook=hook))

    async def _work(self, webhook_id: str) -> bool:
        """Deliver one webhook's queue until it is empty, the webhook stops being active, or nothing is due.

        Returns False in the last case: the supervisor's next poll brings the webhook back.
        """
        while True:
            hook = webhooks.get(self.db.reader(), webhook_id)
            if hook is None or hook.status != "active":
                return True
            due = outbox.next_due(self.db.reader(), hook)
            if due is None:
                return True
            wait = (datetime.fromisoformat(due) - datetime.now(UTC)).total_seconds()
            if wait > 0:
                # Retries are not due yet; the supervisor brings this webhook back when they are.
                if wait > POLL_INTERVAL_S:
                    return False
                await asyncio.sleep(wait)
                continue
            lanes = 1 if hook.ordered else PER_WEBHOOK_CONCURRENCY
            await asyncio.gather(*(self._lane(webhook_id) for _ in range(lanes)))

    async def _lane(self, webhook_id: str) -> None:
        """Claim and send batches one after another while the webhook is active and has due rows.

        Recording a batch's outcome and claiming the next one share one write, so a busy
        writer (a large ingest in progress) costs the queue one wait per batch, not two.
        After a failure nothing is claimed: the batch waits for its retry, and an ordered
        queue waits behind it.
        """
        batch = await self.db.write(functools.partial(outbox.claim, webhook_id=webhook_id))
        while batch is not None:
            result, attempted_at = await self._send_counted(batch)
            batch = await self.db.write(functools.partial(_record_then_claim, batch=batch, result=result,
                                                          attempted_at=attempted_at))

    async def _send_counted(self, batch: outbox.Batch) -> tuple[sender.Outcome, str]:
        self.in_flight[batch.hook.id] += len(batch.row_ids)
        try:
            return await self._send(batch)
        finally:
            self.in_flight[batch.hook.id] -= len(batch.row_ids)
            if self.in_flight[batch.hook.id] <= 0:
                del self.in_flight[batch.hook.id]

    async def _send(self, batch: outbox.Batch) -> tuple[sender.Outcome, str]:
        assert self.client is not None
        hook = batch.hook
        attempted_at = now_rfc3339()
        try:
            body = formats.render_batch(hook.format, batch.items)
            async with self._requests:
                attempted_at = now_rfc3339()
                result = await sender.post_batch(self.client, hook, body, batch.message_id,
                                                 allow_private=self.allow_private)
        except Exception as exc:  # a bug of ours must not strand the claimed rows: retry them later
            log.exception("could not send a batch to webhook %s", hook.id)
            result = sender.Outcome(None, 0, f"linkhub could not send the batch: {exc!r}", "", None)
        self.metrics.inc("linkhub_webhook_deliveries_total", outcome=result.kind)
        if result.kind != "not_sent":
            self.metrics.observe("linkhub_webhook_delivery_duration_seconds", result.duration_ms / 1000)
        if result.delivered:
            self.metrics.inc("linkhub_webhook_events_delivered_total", len(batch.row_ids))
        else:
            self.metrics.inc("linkhub_webhook_failures_total")
            log.warning("delivery of %d events to webhook %s failed: %s", len(batch.row_ids), hook.id, result.error)
        return result, attempted_at


def _record_then_claim(conn: sqlite3.Connection, *, batch: outbox.Batch, result: sender.Outcome,
                       attempted_at: str) -> outbox.Batch | None:
    """Record the outcome of one POST; after a success, claim the webhook's next batch (same transaction)."""
    _record(conn, hook=batch.hook, batch=batch, result=result, attempted_at=attempted_at)
    return outbox.claim(conn, batch.hook.id) if result.delivered else None


def _record(conn: sqlite3.Connection, *, hook: webhooks.Webhook, batch: outbox.Batch, result: sender.Outcome,
            attempted_at: str) -> None:
    """The outcome of one POST: rows, attempt log, and the webhook's status on 410."""
    if webhooks.get(conn, hook.id) is None:
        return  # deleted while the batch was in flight; its outbox rows went with it
    webhooks.record_delivery(conn, hook.id, batch.message_id, attempted_at, len(batch.row_ids),
                             result.status_code, result.duration_ms, result.error, test=False)
    if result.delivered:
        outbox.delivered(conn, batch)
        return
    attempts = max(attempt for _, attempt in batch.items)
    delay = outbox.retry_delay(hook, attempts)
    if result.retry_after_s is not None:
        delay = min(result.retry_after_s, MAX_RETRY_AFTER_S)
    outbox.failed(conn, batch, result.error or "failed", delay)
    if result.status_code == 410:
        webhooks.set_status(conn, hook.id, "disabled",
                            f"receiver answered 410 Gone at {now_rfc3339()}; events are kept pending")
        log.warning("webhook %s disabled: receiver answered 410 Gone", hook.id)
