"""Forgetting old successful deliveries on a schedule, so the outbox and the delivery log stay bounded.

Only delivered outbox rows and delivery-log entries are pruned (`outbox.prune_chunk`): events
are the store and stay, and waiting or dead rows stay until they are delivered or handled with
`linkhub outbox`. `linkhub outbox prune` does the same by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from . import outbox
from .db import Database

log = logging.getLogger("linkhub.retention")

PRUNE_EVERY_S = 3600


class Pruner:
    """Prunes at start-up, then every PRUNE_EVERY_S, through the writer, one short chunk per transaction."""

    def __init__(self, db: Database, keep_days: int) -> None:
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
        """Delete what is older than the retention period; return how many rows went."""
        before = outbox.prune_cutoff(self._keep_days)
        total = 0
        while removed := await self._db.write(functools.partial(outbox.prune_chunk, before=before)):
            total += removed
        if total:
            log.info("pruned %d delivered outbox rows and delivery-log entries older than %s", total, before)
        return total

    async def _run(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception as exc:  # the database may be busy or full: try again at the next round
                log.error("pruning old deliveries failed: %s", exc)
            await asyncio.sleep(PRUNE_EVERY_S)
