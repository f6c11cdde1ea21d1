"""This process's leases (core/leases.py): taken for the delivery loop and the pruner, renewed while
they work, given up at a graceful stop.

One `LeaseKeeper` per process holds its owner name and the leases it believes it holds, and renews
them all every third of the lease length with one statement. A lease missing from a renewal's answer
was taken over (this process froze, or could not reach the database, for longer than the lease):
whoever works under it is told (`on_lost`) and stops. If renewals keep failing for a whole lease
length, every lease is treated as lost in the same way, since another process may hold them by now.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable

from linkhub.core import leases
from linkhub.core.leases import Lease
from linkhub.store import UNAVAILABLE, Store

log = logging.getLogger("linkhub.leases")

# Renewals per lease length: two may fail (or be late behind a busy writer) before the lease lapses.
RENEWALS_PER_LEASE = 3


def new_owner() -> str:
    """A name for this process's leases, unique to this start of it, that an operator can read."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class LeaseKeeper:
    def __init__(self, db: Store, *, length_s: float, owner: str | None = None) -> None:
        self.db = db
        self.length_s = length_s
        self.owner = owner or new_owner()
        self._held: dict[tuple[str, str], Lease] = {}
        self._lost_callbacks: dict[tuple[str, str], Callable[[Lease], None]] = {}
        # Leases whose release is being written: a renewal that misses them is not news.
        self._releasing: set[Lease] = set()
        self._acquiring = 0  # acquisitions being written: their leases may be in a renewal's answer first
        self._task: asyncio.Task[None] | None = None
        self._last_renewed = time.monotonic()

    # -- what this process holds -----------------------------------------------------------

    def held(self, kind: str, key: str) -> Lease | None:
        return self._held.get((kind, key))

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self._held if k == kind)

    def on_lost(self, lease: Lease, callback: Callable[[Lease], None]) -> None:
        """Call `callback(lease)` (on the event loop) if `lease` turns out to be lost."""
        self._lost_callbacks[(lease.kind, lease.key)] = callback

    def forget(self, lease: Lease) -> None:
        """`lease` is no longer this process's (released, or found taken over)."""
        key = (lease.kind, lease.key)
        if self._held.get(key) == lease:
            del self._held[key]
            self._lost_callbacks.pop(key, None)

    def lost(self, lease: Lease) -> None:
        """A fenced write found `lease` taken over: forget it, and tell whoever works under it."""
        key = (lease.kind, lease.key)
        if self._held.get(key) != lease or lease in self._releasing:
            return
        callback = self._lost_callbacks.get(key)
        self.forget(lease)
        log.warning("lease of %s %s lost (epoch %d): another process took it over", lease.kind, lease.key, lease.epoch)
        if callback is not None:
            callback(lease)

    # -- taking and giving up --------------------------------------------------------------

    async def acquire(self, kind: str, keys: list[str]) -> list[Lease]:
        """Take those of `keys` nobody holds (or whose holder released them or let them expire), in one write."""
        self._acquiring += 1
        try:
            taken = await self.db.write(functools.partial(leases.acquire_many, kind=kind, keys=keys,
                                                          owner=self.owner, length_s=self.length_s))
        finally:
            self._acquiring -= 1
        for lease in taken:
            self._held[(lease.kind, lease.key)] = lease
            if lease.taken_from is not None:  # not released: its holder crashed or froze
                log.info("took over %s %s (epoch %d) from %s, whose lease had lapsed; %d rows it had in flight go "
                         "back to the queue", lease.kind, lease.key, lease.epoch, lease.taken_from, lease.requeued,
                         extra={"lease": f"{lease.kind}:{lease.key}", "epoch": lease.epoch,
                                "taken_from": lease.taken_from, "requeued": lease.requeued})
            else:
                log.debug("took the lease of %s %s (epoch %d)", lease.kind, lease.key, lease.epoch)
        return taken

    async def acquire_task(self, name: str) -> Lease | None:
        """The task's lease: held already, or taken now; None while another process holds it."""
        lease = self.held(leases.TASK, name)
        if lease is not None:
            return lease
        taken = await self.acquire(leases.TASK, [name])
        return taken[0] if taken else None

    async def release(self, lease: Lease, *, only_if_idle: bool = False) -> bool:
        """Give `lease` up (fenced); True if it was given up, False if kept (not idle) or already lost."""
        self._releasing.add(lease)
        try:
            released: bool = await self.db.write(functools.partial(leases.release, lease=lease,
                                                                   only_if_idle=only_if_idle))
        finally:
            self._releasing.discard(lease)
        if released:
            self.forget(lease)
        return released

    # -- renewing --------------------------------------------------------------------------

    def start(self) -> None:
        self._last_renewed = time.monotonic()
        self._task = asyncio.create_task(self._renew_loop(), name="linkhub-leases")

    async def stop(self) -> None:
        """Stop renewing and give up every lease of this process, with its webhooks' 'sending' rows.

        Call it once the work under the leases has stopped; other processes' rows are not touched.
        """
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            released, rows = await self.db.write(functools.partial(leases.release_all, owner=self.owner))
        except UNAVAILABLE as exc:  # they expire instead, and another process (or the next start) takes them
            log.error("leases not released on the way out (%s): they are taken over once they expire", exc)
            return
        self._held.clear()
        self._lost_callbacks.clear()
        if rows:
            log.info("%d outbox rows in flight go back to the queue", rows)
        log.debug("released %d leases", released)

    async def renew(self) -> None:
        """Push on every lease this process holds; tell the workers of those found taken over."""
        # Only what was held when the renewal was written is judged by its answer: a lease taken
        # meanwhile (in a later transaction) is not in it, and is not lost.
        before = dict(self._held)
        renewed = await self.db.write(functools.partial(leases.renew, owner=self.owner, length_s=self.length_s))
        self._last_renewed = time.monotonic()
        current = {(lease.kind, lease.key): lease for lease in renewed}
        for key, lease in before.items():
            if current.get(key) != lease:
                self.lost(lease)
        for key, lease in current.items():
            if key not in self._held and key not in before and not self._acquiring:
                # The table says this process holds it but nothing here works under it (a release
                # that did not commit): give it up, so that it need not wait to expire.
                await self.db.write(functools.partial(leases.release, lease=lease))

    async def _renew_loop(self) -> None:
        interval = self.length_s / RENEWALS_PER_LEASE
        while True:
            await asyncio.sleep(interval)
            if not self._held:  # nothing to renew: no write (a lease left behind by a failed release lapses)
                self._last_renewed = time.monotonic()
                continue
            try:
                await self.renew()
            except UNAVAILABLE as exc:
                log.error("could not renew leases: %s", exc)
                if time.monotonic() - self._last_renewed >= self.length_s:
                    # Another process may hold them by now: stop working under them.
                    for lease in list(self._held.values()):
                        self.lost(lease)
