"""Events a sender reports: stored all-or-nothing with their deliveries queued, then delivery woken."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from linkhub.core import outbox
from linkhub.core.clicks import Origins
from linkhub.core.errors import Unavailable
from linkhub.core.events import Event
from linkhub.delivery.loop import Deliverer
from linkhub.store import UNAVAILABLE, Connection, Store

# An API client can wait longer than Outreach, but not forever behind a locked database.
STORE_DEADLINE_S = 10.0


@dataclass(frozen=True)
class Ingested:
    accepted: int
    duplicates: int  # ids the account already had, or had earlier in the batch: neither stored nor queued


async def ingest(db: Store, deliverer: Deliverer, batch: list[Event], *,
                 settle_s: float = outbox.DEFAULT_SETTLE_S, origins: Origins | None = None,
                 also: Callable[[Connection, int, int], None] | None = None) -> Ingested:
    """Store the batch in one transaction, each new event queued for the account's matching webhooks.

    `settle_s` is the server's settle window (`classify_settle_s`): a click is due for a webhook that
    waits for the settled verdict that long after it is stored, as a click of `/r/` is. `origins`
    learns the `sent` and `delivered` events stored: clicks on those emails count from them. `also`, if
    given, runs in the same transaction after the events are stored, with how many were new and how
    many duplicates (an inbound endpoint's counts and rejects commit with its events, or not at all).
    """

    def store(conn: Connection) -> tuple[list[bool], int]:
        result = outbox.store_events(conn, batch=batch, settle_s=settle_s)
        if also is not None:
            new = sum(result[0])
            also(conn, new, len(batch) - new)
        return result

    try:
        stored, queued = await db.write(store, timeout=STORE_DEADLINE_S)
    except UNAVAILABLE as exc:
        # It may still commit: retrying is safe for events that carry their own id (duplicates are dropped).
        raise Unavailable(f"the event store did not confirm the batch ({exc}); "
                          "retry it — events with an id are never stored twice") from exc
    if queued:
        deliverer.wake()
    if origins is not None:  # on the event loop, where the redirect reads them
        origins.note(event for event, new in zip(batch, stored, strict=True) if new)
    accepted = sum(stored)
    return Ingested(accepted, len(stored) - accepted)
