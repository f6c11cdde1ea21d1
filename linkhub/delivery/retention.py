"""Forgetting on a schedule what is no longer needed: old successful deliveries, so the outbox
and the delivery log stay bounded, and webhook secrets whose overlap after a rotation has ended.

Only delivered outbox rows and delivery-log entries are pruned (`outbox.prune_chunk`): events
are the store and stay, and waiting or dead rows stay until they are delivered or handled with
`linkhub outbox`. `linkhub outbox prune` does the same by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from linkhub.core import outbox, webhooks
from linkhub.store import Store
from linkhub.util.times import now_rfc3339

log = logging.getLogger("linkhub.retention")

PRUNE_EVERY_S = 3600


class Pruner:
    """Prunes at start-up, then every PRUNE_EVERY_S, through the writer, one short chunk per transaction.

    `keep_days` 0 keeps every delivery; expired secrets are forgotten whatever it is.
    """

    def __init__(self, db: Store, keep_days: int) -> None:
        self._db = db
        self._keep_days = keep_days
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

    async def forget_secrets(self) -> int:
        """Erase the previous webhook secrets that no longer sign; return how many."""
        forgotten = await self._db.write(functools.partial(webhooks.forget_expired_secrets, now=now_rfc3339()))
        if forgotten:
            log.info("erased the previous secret of %d webhook(s): its day of overlap after a rotation is over",
                     forgotten)
        return forgotten

    async def _run(self) -> None:
        while True:
            rounds = (("pruning old deliveries", self.prune), ("erasing expired secrets", self.forget_secrets))
            for what, step in rounds:
                try:
                    await step()
                except Exception as exc:  # the database may be busy or full: try again at the next round
                    log.error("%s failed: %s", what, exc)
            await asyncio.sleep(PRUNE_EVERY_S)
