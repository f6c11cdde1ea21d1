"""Leases: which process may do a piece of work now, when several share one database.

A lease names a webhook's deliveries (kind WEBHOOK, key the webhook id) or a periodic task
(kind TASK, key its name). One process holds it at a time, as (owner, epoch): `owner` is unique
per process start, `epoch` a fencing token bumped at every change of hands. The holder does
the work and writes its results only while the row still says (owner, epoch) (`hold`, in the
same transaction as the result), which pushes the expiry on; a holder that finds it changed has
lost the lease and stops. Another process takes a lease over only when it is free (released)
or expired (its holder crashed, or froze past its expiry), and taking over a webhook's lease
puts the rows its old holder left 'sending' back in the queue, in the same transaction. So a
late outcome of a holder that lost its lease changes nothing, and at most one process claims a
webhook's batches at any moment.

The clock is the database's: every time here is computed in SQL (`store.dialect.NOW`, `_LATER`), never on the
host, so processes on hosts whose clocks disagree still agree on who holds what. The statements
are written for both SQL dialects linkhub targets: upserts with `ON CONFLICT … DO UPDATE … WHERE`
and `RETURNING` are the same in SQLite and PostgreSQL, and the two time expressions are the only
part that differs. In PostgreSQL they are
    to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
and the same of `clock_timestamp() + make_interval(secs => :length_s)`; there an UPDATE of the
lease row also locks it until commit, which is what makes `hold` and a takeover exclude each other
as SQLite's single writer does (and every write transaction takes turns with the others anyway:
`store.pg.PgConnection.begin`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from linkhub.core import outbox
from linkhub.store import Connection
from linkhub.store.dialect import NOW, Sql, fill

T = TypeVar("T")

WEBHOOK = "webhook"
TASK = "task"

# `:length_s` seconds from the database's clock, as linkhub stores times (RFC 3339, milliseconds, Z).
_LATER = Sql(
    sqlite="strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('%+.3f seconds', :length_s))",
    postgresql="to_char((clock_timestamp() + make_interval(secs => :length_s)) AT TIME ZONE 'UTC',"
               " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
)


def _both(template: str) -> Sql:
    """The statement of `template` in each dialect: its {now} and {later} are the clock's expressions."""
    return fill(template, now=NOW, later=_LATER)


_ACQUIRE = _both(
    "INSERT INTO leases (kind, key, owner, epoch, acquired_at, expires_at)"
    " VALUES (:kind, :key, :owner, 1, {now}, {later})"
    " ON CONFLICT (kind, key) DO UPDATE SET owner = excluded.owner, epoch = leases.epoch + 1,"
    " acquired_at = excluded.acquired_at, expires_at = excluded.expires_at"
    " WHERE leases.owner IS NULL OR leases.expires_at <= {now}"
    " RETURNING epoch"
)
_HOLD = _both(
    "UPDATE leases SET expires_at = {later}"
    " WHERE kind = :kind AND key = :key AND owner = :owner AND epoch = :epoch"
)
_RENEW = _both("UPDATE leases SET expires_at = {later} WHERE owner = :owner RETURNING kind, key, epoch")
_RELEASE = _both(
    "UPDATE leases SET owner = NULL, expires_at = {now}"
    " WHERE kind = :kind AND key = :key AND owner = :owner AND epoch = :epoch"
)
_RELEASE_ALL = _both("UPDATE leases SET owner = NULL, expires_at = {now} WHERE owner = :owner RETURNING kind, key")
_HOLDERS = _both("SELECT key, owner, epoch, owner IS NULL OR expires_at <= {now} FROM leases WHERE kind = ?")
_LISTED = _both("SELECT kind, key, owner, epoch, acquired_at, expires_at,"
                " CASE WHEN expires_at <= {now} THEN 1 ELSE 0 END AS expired FROM leases ORDER BY kind, key")


@dataclass(frozen=True)
class Lease:
    """A lease as its holder knows it: what it covers, and the (owner, epoch) its writes are fenced on."""

    kind: str
    key: str
    owner: str
    epoch: int
    # As it was taken (not part of what the lease is): the holder it was taken over from, if it had
    # lapsed rather than been released, and how many of its rows in flight went back to the queue.
    taken_from: str | None = field(default=None, compare=False)
    requeued: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Holder:
    """A lease as the table has it (read by anyone): who holds it, and whether others may take it."""

    owner: str | None
    epoch: int
    takeable: bool  # released, or past its expiry


def acquire(conn: Connection, kind: str, key: str, owner: str, length_s: float) -> Lease | None:
    """Take the lease if nobody holds it, or its holder released it or let it expire; None if it is held.

    A new epoch begins (1 for a lease never held). Taking a webhook's lease puts every row of its
    queue left 'sending' back to 'pending': they were claimed in an earlier epoch and never
    confirmed, and only this epoch's holder may claim them again.
    """
    before = conn.execute("SELECT owner FROM leases WHERE kind = ? AND key = ?", (kind, key)).fetchone()
    row = conn.execute(_ACQUIRE.on(conn), {"kind": kind, "key": key, "owner": owner, "length_s": length_s}).fetchone()
    if row is None:
        return None
    requeued = outbox.release_claims(conn, webhook_id=key) if kind == WEBHOOK else 0
    return Lease(kind, key, owner, row[0], taken_from=before[0] if before is not None else None, requeued=requeued)


def acquire_many(conn: Connection, kind: str, keys: list[str], owner: str, length_s: float) -> list[Lease]:
    """`acquire` for each key, in one transaction: the leases taken."""
    taken = [acquire(conn, kind, key, owner, length_s) for key in keys]
    return [lease for lease in taken if lease is not None]


def hold(conn: Connection, lease: Lease, length_s: float) -> bool:
    """The fence: True if `lease` is still held as (owner, epoch), and then its expiry is pushed `length_s` on.

    Call it in the transaction whose writes it guards, before them: when it answers False, write nothing.
    """
    params = {"kind": lease.kind, "key": lease.key, "owner": lease.owner, "epoch": lease.epoch,
              "length_s": length_s}
    return bool(conn.execute(_HOLD.on(conn), params).rowcount == 1)


def fenced(conn: Connection, lease: Lease, length_s: float, work: Callable[[Connection], T]) -> tuple[bool, T | None]:
    """`work(conn)` if `lease` is still held (`hold`): (True, its result); (False, None), nothing done, if not."""
    if not hold(conn, lease, length_s):
        return False, None
    return True, work(conn)


def renew(conn: Connection, owner: str, length_s: float) -> list[Lease]:
    """Push on the expiry of every lease `owner` still holds; return them (any missing was taken over)."""
    return [Lease(row[0], row[1], owner, row[2])
            for row in conn.execute(_RENEW.on(conn), {"owner": owner, "length_s": length_s}).fetchall()]


def release(conn: Connection, lease: Lease, *, only_if_idle: bool = False) -> bool:
    """Give the lease up, if it is still held as (owner, epoch); True if it was.

    A webhook's rows its holder left 'sending' go back to 'pending' with it. `only_if_idle`: only
    when the webhook has nothing queued (a holder whose worker ran out of work keeps the lease
    while retries wait, and gives it up once the queue is empty).
    """
    if only_if_idle and lease.kind == WEBHOOK and conn.execute(
            "SELECT 1 FROM outbox WHERE webhook_id = ? AND state IN ('pending', 'sending') LIMIT 1",
            (lease.key,)).fetchone() is not None:
        return False
    released = conn.execute(_RELEASE.on(conn), {"kind": lease.kind, "key": lease.key, "owner": lease.owner,
                                       "epoch": lease.epoch}).rowcount == 1
    if released and lease.kind == WEBHOOK:
        outbox.release_claims(conn, webhook_id=lease.key)
    return bool(released)


def release_claims(conn: Connection, lease: Lease, length_s: float) -> int:
    """Put the webhook's 'sending' rows back in the queue if `lease` still holds it (its worker failed);
    the lease itself is kept (and pushed on). Returns how many rows."""
    if not hold(conn, lease, length_s):
        return 0
    return outbox.release_claims(conn, webhook_id=lease.key)


def release_all(conn: Connection, owner: str) -> tuple[int, int]:
    """A graceful stop: give up every lease `owner` holds, and put its webhooks' 'sending' rows back.

    Rows and leases of other processes are left alone. Returns (leases released, rows returned).
    """
    released = conn.execute(_RELEASE_ALL.on(conn), {"owner": owner}).fetchall()
    rows = sum(outbox.release_claims(conn, webhook_id=key) for kind, key in released if kind == WEBHOOK)
    return len(released), rows


def holders(conn: Connection, kind: str) -> dict[str, Holder]:
    """Every lease of `kind` as the table has it now, by key (a read: no transaction needed)."""
    return {row[0]: Holder(row[1], row[2], bool(row[3])) for row in conn.execute(
        _HOLDERS.on(conn), (kind,)).fetchall()}


def listing(conn: Connection) -> list[dict[str, object]]:
    """Every lease, for operators: kind, key, owner (None: released), epoch, times, and whether it has expired."""
    return [dict(row) for row in conn.execute(
        _LISTED.on(conn)).fetchall()]
