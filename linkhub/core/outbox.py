"""The outbox: one row per (event, webhook) still to deliver, and every state change of it.

All functions here take a connection and run inside the caller's transaction (in the
server, the writer's), so the delivery loop never holds state that exists only in memory:
a row is 'pending' until a batch carrying it is claimed ('sending', attempts + 1), then
'delivered' after the receiver's 2xx, back to 'pending' with a later `next_attempt_at`
after a failure, or 'dead' once it is older than the webhook's max_age_s.

A click (or an open) is queued for a webhook only if its verdict is one the webhook takes, or if the webhook
waits for the settled verdict: then its row is due only after the settle window, and `claim`
takes it out of the queue (deletes it) if the verdict it has by then is not one the webhook takes.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

from linkhub.core import events, formats, webhooks
from linkhub.core.events import VERDICTS, Event
from linkhub.settings import Settings
from linkhub.store import Connection, Row
from linkhub.store.dialect import Sql
from linkhub.util.times import clamped_later, format_ms, now_rfc3339

EXPONENTIAL_FIRST_S = 10.0
EXPONENTIAL_CAP_S = 3600.0
# Expiry is checked at the head of each queue in slices, so a huge backlog never makes
# one write transaction long (clicks are waiting on the same writer).
EXPIRY_SLICE = 1000
# The settle window when the caller names none: the server's default (`--classify-settle-s`).
DEFAULT_SETTLE_S: int = Settings.classify_settle_s
# A click for a webhook that waits for its verdict is due this long after the settle window ends.
# A hit that changes the click's verdict is judged at the redirect when it arrives, inside the
# window, and its write then waits in the writer's queue behind the clicks and claims already
# there; the claim of the waiting click is submitted no earlier than the row is due. The margin
# covers the time between the hit's arrival and its write reaching that queue (the event loop
# busy with other requests), so that a change made at the window's very edge is in the database
# before the claim reads the click. The writer runs its jobs in order, so once the change is
# queued ahead of the claim, the claim sees it.
SETTLE_MARGIN_S = 2.0

log = logging.getLogger("linkhub.outbox")

_QUEUE = "INSERT INTO outbox (webhook_id, event_seq, queued_at, next_attempt_at) VALUES (?, ?, ?, ?)"


def _accepted_by_format(false: str) -> str:
    """SQL true when webhook `w`'s format can express event `e`'s type (formats.SUPPORTED_TYPES);
    `false` is the dialect's false (a CASE of booleans must not end in an integer on PostgreSQL)."""
    cases = " ".join(
        f"WHEN '{fmt}' THEN e.type IN ({', '.join(repr(t) for t in sorted(types))})"
        for fmt, types in formats.SUPPORTED_TYPES.items()
    )
    return f"CASE w.format {cases} ELSE {false} END"


_QUOTED_VERDICTS = ", ".join(f"'{v}'" for v in VERDICTS)
# The events a classifier judged, whose verdict a webhook chooses (and may wait for): clicks on short
# links and opens of open pixels. Any other event is sent whatever its details say.
JUDGED = ("click", "open")
# events.verdict_of in SQL: event `e`'s details.verdict when it is one of the four, 'unknown' otherwise.
# (details is jsonb on PostgreSQL, where `->>` reads a top-level text value.)
_VERDICT = Sql(
    sqlite=(f"CASE WHEN json_extract(e.details, '$.verdict') IN ({_QUOTED_VERDICTS})"
            " THEN json_extract(e.details, '$.verdict') ELSE 'unknown' END"),
    postgresql=(f"CASE WHEN e.details ->> 'verdict' IN ({_QUOTED_VERDICTS})"
                " THEN e.details ->> 'verdict' ELSE 'unknown' END"),
)
# Webhook.takes_verdict in SQL for event `e`, webhook `w`. A webhook's verdicts are never empty and
# hold each verdict at most once (webhooks._check_verdicts), so four of them are all of them: the
# default, answered without reading the click's details. On PostgreSQL `w.verdicts` is a jsonb array,
# and `@>` with a string asks whether the array holds it.
_TAKES_VERDICT = Sql(
    sqlite=(f"(json_array_length(w.verdicts) = {len(VERDICTS)}"
            f" OR {_VERDICT.sqlite} IN (SELECT value FROM json_each(w.verdicts)))"),
    postgresql=(f"(jsonb_array_length(w.verdicts) = {len(VERDICTS)}"
                f" OR w.verdicts @> to_jsonb({_VERDICT.postgresql}))"),
)

# Webhook.accepts in SQL: every event in a seq range, for each active webhook of its account that
# takes its type, and for clicks its verdict (or waits for the settled one, which `claim` judges).
# One statement instead of a query and a row per event from Python (each step of the sqlite3 module
# releases the GIL, which costs the redirect path a hand-over each time); ordered by event, so each
# webhook's queue follows the order of events. A waiting webhook's clicks are due at :settled, the
# rest at once. PostgreSQL's differs in its JSON (types and verdicts are jsonb arrays) and in its
# booleans (wait_for_verdict is an integer column, which PostgreSQL does not take as a condition).
_FAN_OUT = Sql(
    sqlite=(
        "INSERT INTO outbox (webhook_id, event_seq, queued_at, next_attempt_at)"
        " SELECT w.id, e.seq, :now,"
        " CASE WHEN e.type IN ('click', 'open') AND w.wait_for_verdict THEN :settled ELSE :now END FROM events e"
        " JOIN webhooks w ON w.account_id = e.account_id AND w.status = 'active'"
        " WHERE e.seq BETWEEN :first AND :last"
        " AND (json_array_length(w.types) = 0 OR e.type IN (SELECT value FROM json_each(w.types)))"
        f" AND {_accepted_by_format('0')}"
        f" AND (e.type NOT IN ('click', 'open') OR w.wait_for_verdict OR {_TAKES_VERDICT.sqlite})"
        " ORDER BY e.seq, w.id"
    ),
    postgresql=(
        "INSERT INTO outbox (webhook_id, event_seq, queued_at, next_attempt_at)"
        " SELECT w.id, e.seq, :now,"
        " CASE WHEN e.type IN ('click', 'open') AND w.wait_for_verdict = 1 THEN :settled ELSE :now END"
        " FROM events e"
        " JOIN webhooks w ON w.account_id = e.account_id AND w.status = 'active'"
        " WHERE e.seq BETWEEN :first AND :last"
        " AND (jsonb_array_length(w.types) = 0 OR w.types @> to_jsonb(e.type))"
        f" AND {_accepted_by_format('false')}"
        f" AND (e.type NOT IN ('click', 'open') OR w.wait_for_verdict = 1 OR {_TAKES_VERDICT.postgresql})"
        " ORDER BY e.seq, w.id"
    ),
)


def store_events(conn: Connection, batch: list[Event], *,
                 settle_s: float = DEFAULT_SETTLE_S) -> tuple[list[bool], int]:
    """Store events and queue each for its account's matching active webhooks, in the caller's transaction.

    A click is queued only for webhooks that take its verdict, or that wait for the settled one:
    for those it is due `settle_s` (the server's `classify_settle_s`) plus SETTLE_MARGIN_S from now.

    Returns, per event, whether it was stored (False for a duplicate: an id the account
    already has, or had earlier in the batch; neither stored nor queued again), and how many
    deliveries were queued in all.
    """
    seqs = events.insert_many(conn, batch)
    new = [seq for seq in seqs if seq is not None]
    queued = 0
    if new:  # no other transaction's events fall between its first and last seq (see events.insert_many)
        now_ms = time.time_ns() // 1_000_000
        settled_ms = now_ms + round((settle_s + SETTLE_MARGIN_S) * 1000)
        queued = conn.execute(_FAN_OUT.on(conn), {"now": format_ms(now_ms), "settled": format_ms(settled_ms),
                                         "first": new[0], "last": new[-1]}).rowcount
    return [seq is not None for seq in seqs], queued


def store_clicks(conn: Connection, clicks: list[Event], *, settle_s: float = DEFAULT_SETTLE_S) -> list[int]:
    """`store_events` for `Database.add`, which hands concurrent clicks to one call: each click
    hears how many deliveries its transaction queued (so the redirect knows to wake the deliverer).

    `Database.add` merges the items of one function object, so a caller with its own `settle_s`
    makes `functools.partial(store_clicks, settle_s=…)` once and passes that same object each time.
    """
    _stored, queued = store_events(conn, clicks, settle_s=settle_s)
    return [queued] * len(clicks)


@dataclass(frozen=True)
class Batch:
    hook: webhooks.Webhook  # the webhook as it was when the batch was claimed
    row_ids: tuple[int, ...]
    items: list[tuple[Event, int]]  # (event, attempt number carried by this POST)

    @property
    def message_id(self) -> str:
        """The same rows always make the same webhook-id, so a resent batch can be recognised."""
        digest = hashlib.sha256(f"{self.hook.id}:{','.join(map(str, self.row_ids))}".encode()).hexdigest()
        return f"msg_{digest[:32]}"


class Claim(NamedTuple):
    """What `claim` took: the batch to send (None: nothing due), and the verdict of each click it took
    out of the queue instead (its verdict, read now, is not one the webhook takes).

    The clicks are reported rather than counted here: a writer job can be run twice (the writer
    replays a failed transaction job by job), and only the run that commits is the caller's answer.
    """

    batch: Batch | None
    filtered: tuple[str, ...] = ()


def _later(seconds: float) -> str:
    return clamped_later(seconds)


def expire(conn: Connection, hook: webhooks.Webhook) -> int:
    """Move the oldest pending rows that outlived max_age_s to 'dead', keeping their last error."""
    cutoff = _later(-hook.max_age_s)
    head = conn.execute(
        "SELECT queued_at FROM outbox WHERE webhook_id = ? AND state IN ('pending', 'sending') ORDER BY id LIMIT 1",
        (hook.id,),
    ).fetchone()
    if head is None or head[0] >= cutoff:  # the common case, checked on one row: the head is not that old
        return 0
    cursor = conn.execute(
        "UPDATE outbox SET state = 'dead',"
        " last_error = 'expired: not delivered within ' || ? || ' s' || coalesce('; last error: ' || last_error, '')"
        " WHERE id IN (SELECT id FROM outbox WHERE webhook_id = ? AND state IN ('pending', 'sending')"
        "              ORDER BY id LIMIT ?)"
        " AND state = 'pending' AND queued_at < ?",
        (hook.max_age_s, hook.id, EXPIRY_SLICE, cutoff),
    )
    if cursor.rowcount:  # one line per expiry run, never one per row
        reason = f"not delivered within max_age_s={hook.max_age_s}"
        log.warning("%d events for webhook %s expired to dead: %s", cursor.rowcount, hook.id, reason,
                    extra={"webhook": hook.id, "count": cursor.rowcount, "reason": reason})
    return cursor.rowcount


def claim(conn: Connection, webhook_id: str, *, ordered: bool | None = None) -> Claim:
    """Take the webhook's next batch: mark its rows 'sending' and count the attempt.

    The webhook is read afresh here, so a deactivation, a new URL, secret or batch_size
    applies from the next batch on. `ordered` is the mode the caller's lanes run in: if the
    webhook has been switched since, nothing is claimed, and the caller starts again with
    the lanes the new mode allows (the deliverer runs one lane for an ordered webhook, and
    only once all of its unordered lanes have stopped: that is what keeps a second batch
    from going out while one is in flight, without scanning the queue for 'sending' rows).
    Ordered webhooks take the head of the queue when it is due (up to the first row that is
    not: a click waiting for its verdict), and nothing while a row of the head is still
    'sending'; unordered ones take the oldest pending rows that are due.

    Rows that cannot be sent become 'dead' with the reason, rather than blocking the queue:
    types the webhook no longer takes (its types or format changed since they were queued),
    and events that cannot be read back.

    A click whose verdict, as the event is now (settling rewrites it in place), is not one the
    webhook takes is deleted from the queue: the webhook asked not to receive it. Not 'dead':
    nothing failed, and dead rows are what an operator is told to look at and replay. Not
    'delivered': it was not. The outbox holds what is still to be delivered and what was, and
    `state` can hold nothing else (its CHECK constraint); a click the webhook does not take has
    no row, just as one whose first verdict it does not take was never queued. The event stays
    in the event store, and `verdict_changes` says why its verdict changed. This applies to
    every webhook, waiting or not, so no click ever reaches a webhook with a verdict it excluded
    (a click queued as `human` and settled to `scanner` before a backed-up queue sent it).
    """
    hook = webhooks.get(conn, webhook_id)
    if hook is None or hook.status != "active":
        return Claim(None)
    if ordered is not None and hook.ordered != ordered:
        return Claim(None)
    expire(conn, hook)
    now = now_rfc3339()
    filtered: list[str] = []
    while True:
        # `state IN ('pending', 'sending')` matches the partial index outbox_queue, so it can be used.
        if hook.ordered:
            head = conn.execute(
                "SELECT id, state, next_attempt_at FROM outbox WHERE webhook_id = ? AND state IN ('pending', 'sending')"
                " ORDER BY id LIMIT ?",
                (hook.id, hook.batch_size),
            ).fetchall()
            if not head or any(row["state"] == "sending" for row in head) or head[0]["next_attempt_at"] > now:
                return Claim(None, tuple(filtered))
            # Up to the first row not yet due (a click waiting for its verdict): the queue's order
            # holds, so what is behind it waits too. Otherwise every row behind a due head is due.
            ids = [row["id"] for row in itertools.takewhile(lambda row: row["next_attempt_at"] <= now, head)]
        else:
            ids = [row[0] for row in conn.execute(
                "SELECT id FROM outbox WHERE webhook_id = ? AND state IN ('pending', 'sending')"
                " AND state = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?",
                (hook.id, now, hook.batch_size),
            )]
        if not ids:
            return Claim(None, tuple(filtered))
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT o.id AS outbox_id, o.attempts, {_event_columns('e')} FROM outbox o"
            f" JOIN events e ON e.seq = o.event_seq WHERE o.id IN ({marks}) ORDER BY o.id",
            ids,
        ).fetchall()
        kept: list[tuple[Row, Event]] = []
        refused: list[tuple[int, str]] = []
        unwanted: list[int] = []
        for row in rows:
            if not hook.accepts(row["type"]):
                refused.append((row["outbox_id"], f"not sent: this webhook no longer takes {row['type']} events"
                                                  " (its types or format changed)"))
                continue
            try:
                event = events.from_row(row)
            except (msgspec.DecodeError, msgspec.ValidationError, TypeError, ValueError) as exc:
                refused.append((row["outbox_id"], f"not sent: the stored event {row['id']!r} cannot be read: {exc}"))
                continue
            if event.type in JUDGED:
                verdict = events.verdict_of(event.details)
                if not hook.takes_verdict(verdict):
                    unwanted.append(row["outbox_id"])
                    filtered.append(verdict)
                    continue
            kept.append((row, event))
        set_aside(conn, refused)
        if unwanted:
            conn.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(unwanted))})", unwanted)
        if kept:
            break
        if len(filtered) >= EXPIRY_SLICE:
            # A long run of clicks the webhook no longer takes (its verdicts were narrowed over a
            # backlog): end this write, so clicks waiting on the writer are not held up; the
            # deliverer claims again at once, since the rows behind are still due.
            return Claim(None, tuple(filtered))
    kept_ids = [row["outbox_id"] for row, _ in kept]
    conn.execute(
        f"UPDATE outbox SET state = 'sending', attempts = attempts + 1, last_attempt_at = ?"
        f" WHERE id IN ({','.join('?' * len(kept_ids))})",
        (now, *kept_ids),
    )
    batch = Batch(
        hook=hook,
        row_ids=tuple(kept_ids),
        items=[(event, row["attempts"] + 1) for row, event in kept],
    )
    return Claim(batch, tuple(filtered))


def set_aside(conn: Connection, rows: list[tuple[int, str]]) -> None:
    """Rows that can never be sent, as (outbox id, reason): 'dead' at once, keeping why (replay brings them back)."""
    conn.executemany("UPDATE outbox SET state = 'dead', last_error = ? WHERE id = ?",
                     [(reason, row_id) for row_id, reason in rows])


def _event_columns(alias: str) -> str:
    return ", ".join(f"{alias}.{name}" for name in events.Event.__struct_fields__)


def next_due(conn: Connection, hook: webhooks.Webhook) -> str | None:
    """When the webhook's next batch may go: the head's time if ordered (None while the head is in
    flight), the earliest pending row's if not."""
    if hook.ordered:
        row = conn.execute(
            "SELECT state, next_attempt_at FROM outbox WHERE webhook_id = ? AND state IN ('pending', 'sending')"
            " ORDER BY id LIMIT 1",
            (hook.id,),
        ).fetchone()
        if row is None or row["state"] == "sending":
            return None
        head_due: str = row["next_attempt_at"]
        return head_due
    row = conn.execute(
        "SELECT min(next_attempt_at) FROM outbox WHERE webhook_id = ? AND state IN ('pending', 'sending')"
        " AND state = 'pending'",
        (hook.id,),
    ).fetchone()
    earliest_due: str | None = row[0]  # min() over no rows is NULL
    return earliest_due


def retry_delay(hook: webhooks.Webhook, attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones, per the webhook's policy."""
    if hook.retry_policy == "fixed":
        return float(hook.retry_interval_s or EXPONENTIAL_FIRST_S)
    delay = min(EXPONENTIAL_CAP_S, EXPONENTIAL_FIRST_S * 2.0 ** max(0, attempts - 1))
    # ±20 % jitter keeps many webhooks that failed together from retrying in lock-step.
    return min(EXPONENTIAL_CAP_S, delay * random.uniform(0.8, 1.2))


def delivered(conn: Connection, batch: Batch) -> None:
    marks = ",".join("?" * len(batch.row_ids))
    conn.execute(
        f"UPDATE outbox SET state = 'delivered', delivered_at = ?, last_error = NULL WHERE id IN ({marks})",
        (now_rfc3339(), *batch.row_ids),
    )


def failed(conn: Connection, batch: Batch, error: str, delay_s: float) -> None:
    """Back to 'pending', not before `delay_s` from now, remembering why."""
    marks = ",".join("?" * len(batch.row_ids))
    conn.execute(
        f"UPDATE outbox SET state = 'pending', next_attempt_at = ?, last_error = ? WHERE id IN ({marks})",
        (_later(delay_s), error, *batch.row_ids),
    )


def release_claims(conn: Connection, webhook_id: str) -> int:
    """The webhook's rows left 'sending' (by a stopped or killed process, or a failed worker) go back to
    'pending'. Only whoever holds the webhook's lease may call it (core/leases.py does): the rows may
    be another live process's batch in flight otherwise."""
    # Written so that only the partial index of queued rows is read, never the delivered history.
    return conn.execute(
        "UPDATE outbox SET state = 'pending' WHERE id IN (SELECT id FROM outbox WHERE webhook_id = ?"
        " AND state IN ('pending', 'sending') AND state = 'sending')",
        (webhook_id,),
    ).rowcount


# -- reports and admin ------------------------------------------------------------------


def status(conn: Connection) -> list[dict[str, Any]]:
    """Per webhook: pending, in flight, dead, age of the oldest pending event, last error, and beside it
    the last successful delivery and when the next attempt is due, so a recovered queue reads as one."""
    report = []
    now = datetime.now(UTC)
    # Who delivers each webhook now (several processes on one database): the lease's owner, if not released.
    holders = dict(conn.execute("SELECT key, owner FROM leases WHERE kind = 'webhook' AND owner IS NOT NULL"))
    for hook in webhooks.list_for(conn):
        counts = dict(
            conn.execute(
                "SELECT state, count(*) FROM outbox WHERE webhook_id = ? AND state IN ('pending', 'sending')"
                " GROUP BY state",
                (hook.id,),
            ).fetchall()
        )
        dead = conn.execute(
            "SELECT count(*) FROM outbox WHERE webhook_id = ? AND state = 'dead'", (hook.id,)
        ).fetchone()[0]
        oldest = conn.execute(
            "SELECT min(queued_at) FROM outbox WHERE webhook_id = ? AND state IN ('pending', 'sending')", (hook.id,)
        ).fetchone()[0]
        last_error = conn.execute(
            "SELECT attempted_at, error FROM deliveries WHERE webhook_id = ? AND error IS NOT NULL"
            " ORDER BY id DESC LIMIT 1",
            (hook.id,),
        ).fetchone()
        # The newest real (not verify) POST without an error: the receiver answered 2xx.
        last_success = conn.execute(
            "SELECT attempted_at FROM deliveries WHERE webhook_id = ? AND error IS NULL AND test = 0"
            " ORDER BY id DESC LIMIT 1",
            (hook.id,),
        ).fetchone()
        report.append({
            "webhook_id": hook.id,
            "account_id": hook.account_id,
            "status": hook.status,
            "pending": counts.get("pending", 0),
            "in_flight": counts.get("sending", 0),
            "dead": dead,
            "oldest_pending_age_s": (
                round((now - datetime.fromisoformat(oldest)).total_seconds(), 1) if oldest else None
            ),
            "last_error": dict(last_error) if last_error else None,
            "last_success_at": last_success[0] if last_success else None,
            "next_attempt_at": next_due(conn, hook) if hook.status == "active" else None,
            "held_by": holders.get(hook.id),
        })
    return report


def webhooks_with_work(conn: Connection, *, active: bool) -> list[str]:
    """The webhooks, active or not (paused: inactive or disabled), with rows waiting in their queue."""
    return [row[0] for row in conn.execute(
        f"SELECT w.id FROM webhooks w WHERE w.status {'=' if active else '!='} 'active' AND EXISTS ("
        " SELECT 1 FROM outbox o WHERE o.webhook_id = w.id AND o.state IN ('pending', 'sending'))"
    ).fetchall()]


@dataclass(frozen=True)
class QueueSize:
    webhook_id: str
    waiting: int  # pending or being sent
    dead: int
    head_queued_at: str | None  # when the head of the queue (its oldest row by id) was queued


def queue_sizes(conn: Connection) -> list[QueueSize]:
    """Every webhook's queue, cheaply enough for each /metrics scrape.

    The counts read only the partial indexes outbox_queue and outbox_dead, never a table row
    (telling 'pending' from 'sending' would need one per queued event); the head costs one row
    per webhook. The head's queued_at is what `expire` measures max_age_s against.
    """
    waiting = dict(conn.execute(
        "SELECT webhook_id, count(*) FROM outbox WHERE state IN ('pending', 'sending') GROUP BY webhook_id"
    ).fetchall())
    dead = dict(conn.execute(
        "SELECT webhook_id, count(*) FROM outbox WHERE state = 'dead' GROUP BY webhook_id"
    ).fetchall())
    sizes = []
    for (webhook_id,) in conn.execute("SELECT id FROM webhooks ORDER BY id").fetchall():
        head = None
        if waiting.get(webhook_id):
            row = conn.execute(
                "SELECT queued_at FROM outbox WHERE webhook_id = ? AND state IN ('pending', 'sending')"
                " ORDER BY id LIMIT 1",
                (webhook_id,),
            ).fetchone()
            # The statements see the database one after the other: the queue may have emptied (delivered,
            # or a click taken out at claim) since it was counted.
            head = row[0] if row is not None else None
        sizes.append(QueueSize(webhook_id, waiting.get(webhook_id, 0), dead.get(webhook_id, 0), head))
    return sizes


def replay(
    conn: Connection,
    hook: webhooks.Webhook,
    *,
    since: str | None = None,
    until: str | None = None,
    types: tuple[str, ...] = (),
    dead_only: bool = False,
    dry_run: bool = False,
) -> int:
    """Queue the account's matching events for this webhook again; return how many.

    Events already waiting (pending or sending) are left alone. Dead or delivered rows go
    back to 'pending'; events the webhook never had (stored while it was inactive, or clicks
    with a verdict it did not take then) get a row. Clicks are matched on their verdict now:
    only those the webhook takes, due at once (their verdict is settled, or `claim` checks it).
    """
    where = ["e.account_id = ?"]
    params: list[Any] = [hook.account_id]
    if since:
        where.append("e.occurred_at >= ?")
        params.append(since)
    if until:
        where.append("e.occurred_at < ?")
        params.append(until)
    wanted = [t for t in (types or events.EVENT_TYPES) if hook.accepts(t)]
    where.append(f"e.type IN ({','.join('?' * len(wanted))})")
    params.extend(wanted)
    if len(hook.verdicts) < len(VERDICTS):
        marks = ",".join("?" * len(hook.verdicts))
        where.append(f"(e.type NOT IN ('click', 'open') OR {_VERDICT.on(conn)} IN ({marks}))")
        params.extend(hook.verdicts)
    if dead_only:
        where.append("o.state = 'dead'")
    else:
        where.append("(o.state IS NULL OR o.state IN ('dead', 'delivered'))")
    rows = conn.execute(
        f"SELECT e.seq, o.id AS outbox_id FROM events e"
        f" LEFT JOIN outbox o ON o.event_seq = e.seq AND o.webhook_id = ?"
        f" WHERE {' AND '.join(where)} ORDER BY e.seq",
        (hook.id, *params),
    ).fetchall()
    if dry_run or not rows:
        return len(rows)
    now = now_rfc3339()
    conn.executemany(
        "UPDATE outbox SET state = 'pending', queued_at = ?, next_attempt_at = ?, last_error = NULL WHERE id = ?",
        [(now, now, row["outbox_id"]) for row in rows if row["outbox_id"] is not None],
    )
    conn.executemany(_QUEUE, [(hook.id, row["seq"], now, now) for row in rows if row["outbox_id"] is None])
    return len(rows)


# Rows of each table per prune transaction: 1000 + 1000 took 4.6-4.9 ms here (5000 + 5000:
# 24-25 ms), which is what a click sharing that transaction with the pruner waits in addition.
PRUNE_CHUNK = 1000


def prune_cutoff(days: int) -> str:
    """The `before` of prune_chunk for keeping `days` days (the CLI's --older-than, serve's retention)."""
    return _later(-days * 86_400)


def prune_chunk(conn: Connection, before: str) -> int:
    """Delete up to PRUNE_CHUNK delivered outbox rows and delivery-log rows older than `before`.

    Dead and waiting rows are never pruned, nor are events (the event store keeps them). Called
    in a loop of short transactions so a running server's writer never waits long for the lock.
    """
    rows = conn.execute(
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE state = 'delivered' AND delivered_at < ?"
        " ORDER BY id LIMIT ?)",
        (before, PRUNE_CHUNK),
    ).rowcount
    rows += conn.execute(
        "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE attempted_at < ? ORDER BY id LIMIT ?)",
        (before, PRUNE_CHUNK),
    ).rowcount
    return rows
