"""The delivery loop: drains the outbox to every active webhook, started and stopped with the app.

A supervisor task finds webhooks with queued rows and runs one worker per webhook, so
a slow, hung or failing receiver only ever holds its own worker. Limits:
- ordered webhooks send one batch at a time (strict FIFO: nothing passes a failing head);
- unordered webhooks send up to PER_WEBHOOK_CONCURRENCY batches at once;
- at most GLOBAL_CONCURRENCY requests are in flight overall, over one shared connection pool.
Every state change goes through the database writer before the next step, so a killed
process resends at most the batches it had in flight (at-least-once, same event ids).

Several processes may share the database: a webhook is delivered only by the process holding its
lease (delivery/leases.py, core/leases.py), and every claim and outcome is written only while
that process still holds it, in the same transaction. A worker that finds its lease taken over
stops; the rows it had in flight were put back in the queue by the process that took it over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections import Counter
from datetime import UTC, datetime

import httpx

from linkhub.core import formats, leases, outbox, webhooks
from linkhub.core.leases import Lease
from linkhub.core.metrics import Metrics
from linkhub.delivery import sender
from linkhub.delivery.leases import LeaseKeeper
from linkhub.settings import Settings
from linkhub.store import UNAVAILABLE, Connection, Store, wakeups
from linkhub.util.times import now_rfc3339
from linkhub.util.wording import plural

log = logging.getLogger("linkhub.delivery")

GLOBAL_CONCURRENCY = 64
PER_WEBHOOK_CONCURRENCY = 4
# How often the supervisor looks for work nobody told it about (CLI replays, retries coming due).
POLL_INTERVAL_S = 1.0
# Retry-After is honoured, up to this long (and never sooner than the policy's first retry).
MAX_RETRY_AFTER_S = 3600.0
# How often queues of paused (inactive, disabled) webhooks are checked for expired rows.
EXPIRY_INTERVAL_S = 10.0
# The task lease under which one process at a time expires paused webhooks' rows.
EXPIRY_TASK = "expire-paused"


class LeaseLost(Exception):
    """A fenced write found the webhook's lease held by another process (or another epoch) now."""


class Deliverer:
    def __init__(self, db: Store, metrics: Metrics, *, allow_private: bool, keeper: LeaseKeeper | None = None) -> None:
        self.db = db
        self.metrics = metrics
        self.allow_private = allow_private
        # The process's leases; one of its own (started and stopped with it) when none is shared.
        self._own_keeper = keeper is None
        self.leases = keeper if keeper is not None else LeaseKeeper(db, length_s=Settings.lease_s)
        self.client: httpx.AsyncClient | None = None
        self._wake = asyncio.Event()
        self._wakes = 0  # how many times wake() was called: tells a finished worker whether it may have missed rows
        self._requests = asyncio.Semaphore(GLOBAL_CONCURRENCY)
        self._workers: dict[str, asyncio.Task[None]] = {}
        # Events per webhook in batches being sent now (linkhub_outbox_in_flight).
        self.in_flight: Counter[str] = Counter()
        self._supervisor: asyncio.Task[None] | None = None
        # The loop holds tasks weakly: a claim release started from a callback is kept here until it ends.
        self._releases: set[asyncio.Task[object]] = set()
        # On PostgreSQL, other processes' rows announce themselves (LISTEN/NOTIFY, store/wakeups.py), and
        # this process's are announced to them; the poll stays the backstop. SQLite has no such channel.
        url = wakeups.url_of(db)
        self.wakeups = (wakeups.Wakeups(url, name=self.leases.owner, on_wake=self._woken_by_another)
                        if url is not None else None)

    async def start(self, client: httpx.AsyncClient) -> None:
        """Start delivering: the webhooks whose leases this process takes (rows an earlier holder left
        'sending' are put back in the queue as their lease is taken)."""
        self.client = client
        if self._own_keeper:
            self.leases.start()
        self._supervisor = asyncio.create_task(self._supervise(), name="linkhub-delivery")
        if self.wakeups is not None:
            self.wakeups.start()

    def wake(self) -> None:
        """New rows were committed (call it after the commit): look now rather than at the next poll, and
        tell the other processes on the same PostgreSQL database, whose leases may hold their webhooks."""
        self._wakes += 1
        self._wake.set()
        if self.wakeups is not None:
            self.wakeups.announce()

    def _woken_by_another(self, notified: bool) -> None:
        """Another process committed rows (`notified`), or this one has just begun to listen and may have
        missed some: look now, as for this process's own rows (without announcing them again)."""
        if notified:
            self.metrics.inc("linkhub_wakeups_received_total")
        self._wakes += 1
        self._wake.set()

    async def stop(self) -> None:
        if self.wakeups is not None:
            await self.wakeups.stop()
        tasks = [t for t in (self._supervisor, *self._workers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        # Batches cut off mid-flight were not confirmed: with the leases given up, they go out again
        # from whichever process takes them (this one, restarted, or another). A shared keeper is
        # stopped by its owner once everything working under its leases has stopped.
        if self._own_keeper:
            await self.leases.stop()

    async def _supervise(self) -> None:
        last_expiry = 0.0
        while True:
            self._wake.clear()
            try:
                if time.monotonic() - last_expiry >= EXPIRY_INTERVAL_S:
                    last_expiry = time.monotonic()
                    await self._expire_paused()
                await self._start_workers()
            except UNAVAILABLE as exc:  # the database is away (restarting, a failover): one line a pass
                log.warning("delivery supervisor pass failed (%s); retrying", exc)
            except Exception:
                log.exception("delivery supervisor pass failed; retrying")
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as the
            # wait ends (a wake() just before stop()), and the supervisor then ran on forever.
            try:
                async with asyncio.timeout(POLL_INTERVAL_S):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _start_workers(self) -> None:
        """A worker for each webhook with queued rows whose lease this process holds or can take now."""
        reader = self.db.reader()
        waiting = [webhook_id for webhook_id in outbox.webhooks_with_work(reader, active=True)
                   if webhook_id not in self._workers]
        if not waiting:
            return
        # Read first, so that webhooks other processes hold cost no write each pass.
        holders = leases.holders(reader, leases.WEBHOOK)
        takeable = [webhook_id for webhook_id in waiting if self.leases.held(leases.WEBHOOK, webhook_id) is None
                    and (webhook_id not in holders or holders[webhook_id].takeable)]
        if takeable:
            await self.leases.acquire(leases.WEBHOOK, takeable)
        for webhook_id in waiting:
            lease = self.leases.held(leases.WEBHOOK, webhook_id)
            if lease is None or webhook_id in self._workers:
                continue
            task = asyncio.create_task(self._work(webhook_id, lease), name=f"linkhub-delivery-{webhook_id}")
            self._workers[webhook_id] = task
            self.leases.on_lost(lease, self._stop_worker)
            task.add_done_callback(functools.partial(self._worker_done, webhook_id, lease, self._wakes))

    def _stop_worker(self, lease: Lease) -> None:
        """The webhook's lease was taken over: whatever its worker is sending now, its outcome will not count."""
        task = self._workers.get(lease.key)
        if task is not None:
            task.cancel()

    def _worker_done(self, webhook_id: str, lease: Lease, wakes_at_start: int, task: asyncio.Task[None]) -> None:
        if self._workers.get(webhook_id) is task:
            del self._workers[webhook_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery worker for %s failed: %r", webhook_id, task.exception())
            # Its claimed rows would otherwise stay 'sending' (and block an ordered queue) until the
            # lease changes hands; only if this process still holds it, or they may be another's.
            release = asyncio.create_task(self.db.write(functools.partial(
                leases.release_claims, lease=lease, length_s=self.leases.length_s)))
            self._releases.add(release)
            release.add_done_callback(self._releases.discard)
        elif self._wakes != wakes_at_start:
            # New rows were announced while it ran, and it may have stopped just before they
            # arrived: let the supervisor look again. Not otherwise: a worker returns at once
            # for a queue whose next retry is minutes away (Retry-After: 3600), and waking the
            # supervisor each time would restart it in a busy loop until then.
            self._wake.set()

    async def _expire_paused(self) -> None:
        """Queued rows of inactive or disabled webhooks still expire (their workers do it for active ones):
        by one process at a time, the holder of the task's lease."""
        paused = outbox.webhooks_with_work(self.db.reader(), active=False)
        if not paused:
            return
        lease = await self.leases.acquire_task(EXPIRY_TASK)
        if lease is None:
            return
        for webhook_id in paused:
            hook = webhooks.get(self.db.reader(), webhook_id)
            if hook is not None and not await self.db.write(functools.partial(
                    _expire_fenced, lease=lease, length_s=self.leases.length_s, hook=hook)):
                self.leases.lost(lease)
                return

    async def _work(self, webhook_id: str, lease: Lease) -> None:
        """Deliver one webhook's queue until it is empty, the webhook stops being active, or nothing is due;
        then give its lease up if its queue is empty. Stops at once if the lease turns out to be lost."""
        idle = False
        try:
            idle = await self._deliver(webhook_id, lease)
        except* LeaseLost:
            self.leases.lost(lease)
        if idle and not await self.leases.release(lease, only_if_idle=True) and self.leases.held(
                leases.WEBHOOK, webhook_id) == lease:
            # Rows arrived after the queue was found empty (another process may have stored them,
            # and woke only itself): the lease is kept, and the supervisor looks again now.
            self._wake.set()

    async def _deliver(self, webhook_id: str, lease: Lease) -> bool:
        """True if it stopped with nothing left in the queue (or no webhook, or one paused), so the lease
        may be given up; False if retries wait (the lease is kept: giving it up and taking it again at
        every poll would cost writes for nothing)."""
        while True:
            hook = webhooks.get(self.db.reader(), webhook_id)
            if hook is None or hook.status != "active":
                return True
            due = outbox.next_due(self.db.reader(), hook)
            if due is None:  # the queue is empty: every lane has ended, so no row of it is 'sending'
                return True
            wait = (datetime.fromisoformat(due) - datetime.now(UTC)).total_seconds()
            if wait > 0:
                # Retries are not due yet; the supervisor brings this webhook back when they are.
                if wait > POLL_INTERVAL_S:
                    return False
                await asyncio.sleep(wait)
                continue
            lanes = 1 if hook.ordered else PER_WEBHOOK_CONCURRENCY
            # A task group, not gather: if one lane fails, the others are stopped before the
            # worker ends and its claims are released, so no batch of theirs is still being sent
            # when a new worker takes the released rows. Every lane has stopped before the next
            # pass starts lanes for the webhook as it is then (ordered or not).
            async with asyncio.TaskGroup() as group:
                for _ in range(lanes):
                    group.create_task(self._lane(webhook_id, lease, ordered=hook.ordered))

    async def _lane(self, webhook_id: str, lease: Lease, *, ordered: bool) -> None:
        """Claim and send batches one after another while the webhook is active and has due rows.

        Recording a batch's outcome and claiming the next one share one write, so a busy
        writer (a large ingest in progress) costs the queue one wait per batch, not two.
        After a failure nothing is claimed: the batch waits for its retry, and an ordered
        queue waits behind it. Events the webhook's format cannot render are set aside as
        dead on the way, and the rest of their batch is sent.

        `ordered` is the mode the lane was started in. Once the webhook has been switched,
        its claims take nothing, so the lane stops after the batch it has; when the last one
        has, the worker starts the lanes the new mode allows. Switched to ordered, no batch is
        sent until every batch of the unordered lanes has been answered, and then one at a time.
        """
        length_s = self.leases.length_s
        batch = self._filtered(await self.db.write(functools.partial(
            _claim_fenced, lease=lease, length_s=length_s, webhook_id=webhook_id, ordered=ordered)))
        while batch is not None:
            sendable, body, poisoned = _render(batch)
            result: sender.Outcome | None = None
            attempted_at = ""
            if sendable is not None:  # None: every event of the batch was set aside
                result, attempted_at = await self._send_counted(sendable, body)
            batch = self._filtered(await self.db.write(functools.partial(
                _record_then_claim, lease=lease, length_s=length_s, webhook_id=webhook_id, batch=sendable,
                poisoned=poisoned, result=result, attempted_at=attempted_at, ordered=ordered)))

    def _filtered(self, claimed: outbox.Claim | None) -> outbox.Batch | None:
        """The claimed batch, once the clicks the claim took out (committed by now) are counted.

        None for `claimed`: the write found the lease lost, and wrote nothing."""
        if claimed is None:
            raise LeaseLost
        for verdict in claimed.filtered:
            self.metrics.inc("linkhub_webhook_clicks_filtered_total", verdict=verdict)
        return claimed.batch

    async def _send_counted(self, batch: outbox.Batch, body: bytes) -> tuple[sender.Outcome, str]:
        self.in_flight[batch.hook.id] += len(batch.row_ids)
        try:
            return await self._send(batch, body)
        finally:
            self.in_flight[batch.hook.id] -= len(batch.row_ids)
            if self.in_flight[batch.hook.id] <= 0:
                del self.in_flight[batch.hook.id]

    async def _send(self, batch: outbox.Batch, body: bytes) -> tuple[sender.Outcome, str]:
        assert self.client is not None
        hook = batch.hook
        attempted_at = now_rfc3339()
        try:
            async with self._requests:
                attempted_at = now_rfc3339()
                result = await sender.post_batch(self.client, hook, body, batch.message_id,
                                                 allow_private=self.allow_private)
        except Exception as exc:  # a bug of ours must not strand the claimed rows: retry them later
            # One redacted line, no traceback: an exception's text may quote a header value.
            error = f"linkhub could not send the batch: {sender.describe_exception(exc, hook)}"
            log.error("could not send a batch to webhook %s: %s", hook.id, error)
            result = sender.Outcome(None, 0, error, "", None, "not_sent")
        self.metrics.inc("linkhub_webhook_deliveries_total", outcome=result.kind)
        if result.kind != "not_sent":
            self.metrics.observe("linkhub_webhook_delivery_duration_seconds", result.duration_ms / 1000)
        if result.delivered:
            self.metrics.inc("linkhub_webhook_events_delivered_total", len(batch.row_ids))
        else:
            self.metrics.inc("linkhub_webhook_failures_total")
            log.warning("delivery of %d events to webhook %s failed: %s", len(batch.row_ids), hook.id, result.error)
        return result, attempted_at


def _render(batch: outbox.Batch) -> tuple[outbox.Batch | None, bytes, list[tuple[int, str]]]:
    """The batch's body, event by event: (the rows that rendered, their body, (row id, reason) of those that did not).

    An event its format cannot render fails the same way on every try: it must not hold the
    other events of its batch, nor (ordered) every event behind it, until it expires.
    """
    hook = batch.hook
    parts: list[bytes] = []
    kept: list[int] = []
    poisoned: list[tuple[int, str]] = []
    for index, (row_id, (event, attempt)) in enumerate(zip(batch.row_ids, batch.items, strict=True)):
        try:
            parts.append(formats.render_one(hook.format, event, attempt))
        except Exception as exc:  # whatever it is, it is this event's: set it aside with the reason
            poisoned.append((row_id, f"not sent: the {hook.format} format cannot render event {event.id!r}: "
                                     f"{type(exc).__name__}: {exc}"))
        else:
            kept.append(index)
    if not poisoned:
        return batch, formats.join(parts), []
    if not kept:
        return None, b"", poisoned
    sendable = dataclasses.replace(batch, row_ids=tuple(batch.row_ids[i] for i in kept),
                                   items=[batch.items[i] for i in kept])
    return sendable, formats.join(parts), poisoned


def _claim_fenced(conn: Connection, *, lease: Lease, length_s: float, webhook_id: str,
                  ordered: bool) -> outbox.Claim | None:
    """`outbox.claim`, if `lease` still holds the webhook (None, and nothing claimed, if not)."""
    if not leases.hold(conn, lease, length_s):
        return None
    return outbox.claim(conn, webhook_id, ordered=ordered)


def _expire_fenced(conn: Connection, *, lease: Lease, length_s: float, hook: webhooks.Webhook) -> bool:
    """`outbox.expire` for a paused webhook, if `lease` (the task's) is still held; False if not."""
    if not leases.hold(conn, lease, length_s):
        return False
    outbox.expire(conn, hook)
    return True


def _record_then_claim(conn: Connection, *, lease: Lease, length_s: float, webhook_id: str,
                       batch: outbox.Batch | None, poisoned: list[tuple[int, str]], result: sender.Outcome | None,
                       attempted_at: str, ordered: bool) -> outbox.Claim | None:
    """Record the outcome of one POST (and the events set aside before it); after a success, or when
    nothing was left to send, claim the webhook's next batch (same transaction).

    Only if `lease` still holds the webhook: a process that lost it (it froze, and another took the
    webhook over and put its rows back in the queue) records nothing, and hears None.
    """
    if not leases.hold(conn, lease, length_s):
        return None
    if poisoned:
        outbox.set_aside(conn, poisoned)
        log.warning("webhook %s: %s set aside as dead: %s", webhook_id, plural(len(poisoned), "event"), poisoned[0][1])
    if batch is not None and result is not None:
        _record(conn, hook=batch.hook, batch=batch, result=result, attempted_at=attempted_at)
        if not result.delivered:
            return outbox.Claim(None)
    return outbox.claim(conn, webhook_id, ordered=ordered)


def retry_after_delay(hook: webhooks.Webhook, retry_after_s: float) -> float:
    """The delay a receiver's Retry-After asks for, kept between the policy's first retry and MAX_RETRY_AFTER_S.

    The floor means `Retry-After: 0`, a negative value or a date in the past never makes
    linkhub retry in a tight loop; a policy whose first retry is later than the cap wins.
    """
    floor = outbox.retry_delay(hook, 1)
    return max(floor, min(retry_after_s, MAX_RETRY_AFTER_S))


def _record(conn: Connection, *, hook: webhooks.Webhook, batch: outbox.Batch, result: sender.Outcome,
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
        delay = retry_after_delay(hook, result.retry_after_s)
    outbox.failed(conn, batch, result.error or "failed", delay)
    if result.status_code == 410:
        webhooks.set_status(conn, hook.id, "disabled",
                            f"receiver answered 410 Gone at {now_rfc3339()}; events are kept pending")
        log.warning("webhook %s disabled: receiver answered 410 Gone", hook.id)
