"""Link replacement: which links of an email get short links, minted by the writer before the answer deadline.

Outreach waits 2 s for the answer and then sends the email with its original links, so this
use case is bounded: an account's link filter gets `FILTER_BUDGET_S`, and the minting write
whatever is left of the caller's deadline. Past it the caller hears `Unavailable` at once.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.to_thread

from linkhub.core import outreach
from linkhub.core.accounts import Account
from linkhub.core.errors import Unavailable
from linkhub.store import UNAVAILABLE, Store

log = logging.getLogger("linkhub.outreach")

# Worker threads for link filters, apart from the default pool other handlers use; matching
# releases the GIL, so this many run on as many cores.
FILTER_THREADS = 2

T = TypeVar("T")


@dataclass
class FilterThreads:
    """Where link filters run: never on the event loop, and one call of an account at a time.

    A catastrophic pattern may take its whole budget, which must not stall the event loop
    (redirects, /healthz). The limiter bounds how many threads filters hold, so a flood of such
    calls cannot take those other handlers use; one account's calls take one of them at a time,
    so its flood leaves the others to the other accounts. A call that waits spends its budget
    waiting, and then matches nothing.
    """

    limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(FILTER_THREADS))
    turns: dict[str, anyio.Lock] = field(default_factory=dict)  # account id → its one filter call at a time

    async def run(self, account: Account, fn: Callable[[], T]) -> T:
        """`fn()` (which matches the account's filter) in one of these threads, in the account's turn."""
        async with self.turns.setdefault(account.id, anyio.Lock()):
            return await anyio.to_thread.run_sync(fn, limiter=self.limiter)

    async def choose(self, account: Account, payload: outreach.Payload) -> outreach.Choice:
        deadline = time.monotonic() + outreach.FILTER_BUDGET_S  # before the wait, which spends it
        return await self.run(account, functools.partial(outreach.choose_links, account, payload, deadline=deadline))


@dataclass(frozen=True)
class Replaced:
    codes: dict[str, str]  # each replaced link's target → its code, in the email's order
    minted: int  # codes new in this call (a retry mints none)
    timed_out: int  # links the filter ran out of time on (left out)


async def replace_links(db: Store, filters: FilterThreads, account: Account, payload: outreach.Payload, *,
                        answer_by: float) -> Replaced:
    """The email's replaceable links with their codes, minted (or found, for a retry) by `answer_by` (monotonic)."""
    # Most accounts have no filter: no thread hop for them, so that path stays as fast as it was.
    choice = await filters.choose(account, payload) if account.link_filter else outreach.choose_links(account, payload)
    if not choice.links:
        return Replaced({}, 0, choice.timed_out)
    # Straight to the writer, even for a retry: mint() finds the codes minted before.
    try:
        codes, minted = await db.write(
            functools.partial(outreach.mint, who=outreach.recipient(account, payload), links=choice.links),
            timeout=max(answer_by - time.monotonic(), 0.001))
    except UNAVAILABLE as exc:
        log.warning("link store failed (%s): answered 503 to account %s; Outreach keeps the original links",
                    exc, account.id)
        raise Unavailable("the link store did not answer in time; try again") from exc
    return Replaced({link.target: codes[link.target] for link in choice.links}, minted, choice.timed_out)
