"""Forgetting events once the retention period (`--keep-events-days`) is over: the events themselves,
clicks included, with the outbox rows that would deliver them and the record of their verdicts' changes.

An event is old by when it happened (`occurred_at`), not by when linkhub received it: a sender that
reports last year's events gets them deleted at the next round. Its outbox rows go with it whatever
their state (a delivery still waiting for an event that is past its retention would deliver data that
should be gone); rows of younger events are never touched. Reports count what is kept; the one
summary kept beside the events, when each mailing began (the `mailings` table), keeps that moment and
forgets a mailing once nothing of it is left.

The newest event of the table is always kept, even when it is old: `seq` is SQLite's rowid, and with the
highest one deleted the next event would be given that number again, which a client that reads events
after a `seq` (GET /v1/events?after_seq=…) has already passed. (PostgreSQL's identity never hands a
number out twice; the same rule is kept there, so both keep the same events.)
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from linkhub.core import mailings
from linkhub.store import Connection
from linkhub.store.dialect import json_values
from linkhub.util.times import clamped_later

# Events per transaction: what a click that shares the transaction (or queues behind it) waits in
# addition. Measured on 200,000 clicks with an outbox row each (2 shared cores, medians): 100 events
# 10 ms, 250 12 ms, 500 20 ms, 1,000 60-85 ms (an event has five indexes; outbox.PRUNE_CHUNK's rows two).
CHUNK = 250


class Pruned(NamedTuple):
    events: int = 0
    clicks: int = 0  # of `events`, how many were clicks
    outbox: int = 0
    verdict_changes: int = 0

    def plus(self, other: Pruned) -> Pruned:
        return Pruned(*(mine + theirs for mine, theirs in zip(self, other, strict=True)))


def cutoff(days: int) -> str:
    """The `before` of prune_chunk that keeps `days` days of events."""
    return clamped_later(-days * 86_400)


# The events named by a JSON array of seqs.
_SEQS = json_values("?", "bigint")
_DELETE_OUTBOX = "DELETE FROM outbox WHERE event_seq IN {seqs}"
_DELETE_CHANGES = "DELETE FROM verdict_changes WHERE event_seq IN {seqs}"
_DELETE_EVENTS = "DELETE FROM events WHERE seq IN {seqs}"
_MAILINGS_OF = "SELECT DISTINCT account_id, mailing_id FROM events WHERE seq IN {seqs} AND mailing_id IS NOT NULL"
# Per account, so the (account_id, occurred_at) index finds the old events instead of a scan of the table.
# (Its boolean is 1/0 on SQLite, true/false on PostgreSQL: either reads as one in Python.)
_OLD = (
    "SELECT seq, type = 'click' FROM events WHERE account_id = :account AND occurred_at < :before"
    " AND seq < :newest ORDER BY occurred_at LIMIT :limit"
)


def old_events(conn: Connection, before: str, *, limit: int) -> list[tuple[int, bool]]:
    """Up to `limit` (seq, is a click) of events that happened before `before`, the newest event excepted."""
    newest = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
    if newest is None:
        return []
    found: list[tuple[int, bool]] = []
    for (account,) in conn.execute("SELECT id FROM accounts ORDER BY id").fetchall():
        rows = conn.execute(_OLD, {"account": account, "before": before, "newest": newest,
                                   "limit": limit - len(found)}).fetchall()
        found.extend((row[0], bool(row[1])) for row in rows)
        if len(found) >= limit:
            break
    return found


def prune_chunk(conn: Connection, before: str, *, limit: int = CHUNK) -> Pruned:
    """Delete up to `limit` events that happened before `before`, their outbox rows and verdict changes,
    in the caller's transaction. Called in a loop of short transactions until it deletes nothing."""
    found = old_events(conn, before, limit=limit)
    if not found:
        return Pruned()
    seqs = msgspec.json.encode([seq for seq, _ in found]).decode()
    # Outbox rows first: they reference the events.
    among = _SEQS.on(conn)
    outbox_rows = conn.execute(_DELETE_OUTBOX.format(seqs=among), (seqs,)).rowcount
    changes = conn.execute(_DELETE_CHANGES.format(seqs=among), (seqs,)).rowcount
    touched = conn.execute(_MAILINGS_OF.format(seqs=among), (seqs,)).fetchall()
    events = conn.execute(_DELETE_EVENTS.format(seqs=among), (seqs,)).rowcount
    mailings.forget_empty(conn, [(row[0], row[1]) for row in touched])
    return Pruned(events, sum(1 for _, is_click in found if is_click), outbox_rows, changes)


def count_old(conn: Connection, before: str) -> Pruned:
    """What pruning everything before `before` would delete (`--dry-run`)."""
    newest = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
    if newest is None:
        return Pruned()
    old = "SELECT seq FROM events WHERE occurred_at < :before AND seq < :newest"
    params = {"before": before, "newest": newest}
    events, clicks = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE type = 'click') FROM events"
        " WHERE occurred_at < :before AND seq < :newest", params).fetchone()
    outbox_rows = conn.execute(f"SELECT count(*) FROM outbox WHERE event_seq IN ({old})", params).fetchone()[0]
    changes = conn.execute(f"SELECT count(*) FROM verdict_changes WHERE event_seq IN ({old})", params).fetchone()[0]
    return Pruned(events, clicks, outbox_rows, changes)
