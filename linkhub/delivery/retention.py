"""Forgetting on a schedule what is no longer needed: old successful deliveries, so the outbox
and the delivery log stay bounded; events past the operator's retention period; and webhook secrets
whose overlap after a rotation has ended.

Deliveries: only delivered outbox rows and delivery-log entries are pruned (`outbox.prune_chunk`);
waiting or dead rows stay until they are delivered or handled with `linkhub outbox`, and
`linkhub outbox prune` does the same by hand. Events are kept unless `--keep-events-days` is set;
then those that happened before it go, with every outbox row and verdict change of theirs
(`core.retention.prune_chunk`).

When several processes share the database, one at a time does all this: the holder of the
RETENTION_TASK lease, and each chunk is written only while it still holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import TypeVar

from linkhub.core import leases, outbox, retention, webhooks
from linkhub.delivery.leases import LeaseKeeper
from linkhub.settings import Settings
from linkhub.store import Connection, Store
from linkhub.util.times import now_rfc3339

T = TypeVar("T")

log = logging.getLogger("linkhub.retention")

PRUNE_EVERY_S = 3600
# The task lease under which one process at a time prunes and forgets.
RETENTION_TASK = "retention"


class NotHolder(Exception):
    """Another process holds the retention lease (or took it over during a round)."""


class Pruner:
    """Prunes at start-up, then every PRUNE_EVERY_S, through the writer, one short chunk per transaction.

    `keep_days` 0 keeps every delivery, `keep_events_days` 0 every event; expired secrets are forgotten
    whatever they are. Each step does its work only under the RETENTION_TASK lease, taken from
    `keeper` (the process's; one of its own, never renewed, when none is given) and kept between
    rounds (the keeper renews it), and raises NotHolder when another process has it.
    """

    def __init__(self, db: Store, keep_days: int, *, keep_events_days: int = 0,
                 keeper: LeaseKeeper | None = None) -> None:
        self._db = db
        self._keep_days = keep_days
        self._keep_events_days = keep_events_days
        self._leases = keeper if keeper is not None else LeaseKeeper(db, length_s=Settings.lease_s)
        self._task: asyncio.Task[None] | None = None

    async def _write(self, work: Callable[[Connection], T]) -> T:
        """`work` in a write of its own, if this process holds (or can take) the retention lease."""
        lease = await self._leases.acquire_task(RETENTION_TASK)
        if lease is None:
            raise NotHolder
        held, result = await self._db.write(functools.partial(leases.fenced, lease=lease,
                                                              length_s=self._leases.length_s, work=work))
        if not held:
            self._leases.lost(lease)
            raise NotHolder
        return result  # type: ignore[return-value]  # held: `work` ran and answered

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
        while removed := await self._write(functools.partial(outbox.prune_chunk, before=before)):
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
        while (chunk := await self._write(functools.partial(retention.prune_chunk, before=before,
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
        forgotten = await self._write(functools.partial(webhooks.forget_expired_secrets, now=now_rfc3339()))
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
                except NotHolder:
                    log.debug("%s: another process holds the %s lease", what, RETENTION_TASK)
                    break
                except Exception as exc:  # the database may be busy or full: try again at the next round
                    log.error("%s failed: %s", what, exc)
            await asyncio.sleep(PRUNE_EVERY_S)
