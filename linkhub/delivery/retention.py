"""Forgetting on a schedule what is no longer needed: old successful deliveries, so the outbox
and the delivery log stay bounded; events past the operator's retention period; and webhook secrets
whose overlap after a rotation has ended.

Deliveries: only delivered outbox rows and delivery-log entries are pruned (`outbox.prune_chunk`);
waiting or dead rows stay until they are delivered or handled with `linkhub outbox`, and
`linkhub outbox prune` does the same by hand. Events are kept unless `--keep-events-days` is set;
then those that happened before it go, with every outbox row and verdict change of theirs
(`core.retention.prune_chunk`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from linkhub.core import outbox, retention, webhooks
from linkhub.store import Store
from linkhub.util.times import now_rfc3339

log = logging.getLogger("linkhub.retention")

PRUNE_EVERY_S = 3600


class Pruner:
    """Prunes at start-up, then every PRUNE_EVERY_S, through the writer, one short chunk per transaction.

    `keep_days` 0 keeps every delivery, `keep_events_days` 0 every event; expired secrets are forgotten
    whatever they are.
    """

    def __init__(self, db: Store, keep_days: int, *, keep_events_days: int = 0) -> None:
        self._db = db
        self._keep_days = keep_days
        self._keep_events_days = keep_events_days
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="linkhub-pruner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def prune(self) -> int:
        """Delete the deliveries older than the retention period; return how many rows went."""
        if not self._keep_days:
            return 0
        before = outbox.prune_cutoff(self._keep_days)
        total = 0
        while removed := await self._db.write(functools.partial(outbox.prune_chunk, before=before)):
            total += removed
        if total:
            log.info("pruned %d delivered outbox rows and delivery-log entries older than %s", total, before)
        return total

    async def prune_events(self) -> retention.Pruned:
        """Delete the events that happened before the retention period, a chunk per transaction."""
        if not self._keep_events_days:
            return retention.Pruned()
        before = retention.cutoff(self._keep_events_days)
        total = retention.Pruned()
        while (chunk := await self._db.write(functools.partial(retention.prune_chunk, before=before,
                                                                  limit=retention.CHUNK))).events:
            total = total.plus(chunk)
            # Each chunk is its own write: the writer commits it (with whatever clicks were queued beside
            # it) and answers; this turn of the loop lets the redirects' clicks queue before the next one.
            await asyncio.sleep(0)
        if total.events:
            log.info("deleted %d events (%d clicks) that happened before %s, with %d outbox rows and %d verdict "
                     "changes", total.events, total.clicks, before, total.outbox, total.verdict_changes)
        return total

    async def forget_secrets(self) -> int:
        """Erase the previous webhook secrets that no longer sign; return how many."""
        forgotten = await self._db.write(functools.partial(webhooks.forget_expired_secrets, now=now_rfc3339()))
        if forgotten:
            log.info("erased the previous secret of %d webhook(s): its day of overlap after a rotation is over",
                     forgotten)
        return forgotten

    async def _run(self) -> None:
        while True:
            rounds = (("pruning old deliveries", self.prune), ("deleting old events", self.prune_events),
                      ("erasing expired secrets", self.forget_secrets))
            for what, step in rounds:
                try:
                    await step()
                except Exception as exc:  # the database may be busy or full: try again at the next round
                    log.error("%s failed: %s", what, exc)
            await asyncio.sleep(PRUNE_EVERY_S)
