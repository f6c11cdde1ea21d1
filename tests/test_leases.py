"""Leases, at the level of the core functions: two owners on one real SQLite file, as two processes
would be. The lease clock is the database's, so expiry is made to happen now rather than waited
for: a holder whose last renewal was for 0 seconds has let its lease expire (its process froze)."""

from __future__ import annotations

import asyncio
import functools
import threading

import pytest

from linkhub.core import events as event_store
from linkhub.core import leases, outbox
from linkhub.core import webhooks as webhook_store
from linkhub.delivery import loop, sender
from linkhub.delivery.leases import LeaseKeeper
from linkhub.delivery.retention import NotHolder, Pruner
from linkhub.store import connect, open_database, transaction

from conftest import ON_POSTGRESQL, query
from delivery_support import states, wait_until

LONG = 3600.0  # a lease nobody takes over during a test


def make_webhook(conn, account, **spec):
    return webhook_store.insert(conn, webhook_store.draft(account.id, webhook_store.parse(
        webhook_store.WebhookSpec, {"url": "https://example.com/hook", "active": True, **spec})))


def queue_events(conn, account, prefix, count):
    batch = [event_store.Event(id=f"{prefix}-{n}", account_id=account.id, type="open",
                               occurred_at="2026-03-02T10:00:00.000Z", received_at="2026-03-02T10:00:00.000Z",
                               source="api", email="a@example.com") for n in range(count)]
    outbox.store_events(conn, batch)


def claim(conn, lease, hook):
    return loop._claim_fenced(conn, lease=lease, length_s=LONG, webhook_id=hook.id, ordered=hook.ordered)


def record(conn, lease, batch, status=200):
    outcome = sender.Outcome(status, 5, None if status < 300 else f"HTTP {status}", "", None,
                             "delivered" if status < 300 else "http_error")
    return loop._record_then_claim(conn, lease=lease, length_s=LONG, webhook_id=batch.hook.id, batch=batch,
                                   poisoned=[], result=outcome, attempted_at="2026-03-02T10:00:01.000Z",
                                   ordered=batch.hook.ordered)


@pytest.fixture
def conn(db_path):
    connection = connect(db_path)
    yield connection
    connection.close()


def test_one_holder_at_a_time_until_it_releases_or_lets_the_lease_expire(conn):
    a = leases.acquire(conn, leases.TASK, "retention", "A", LONG)
    assert a == leases.Lease(leases.TASK, "retention", "A", 1)
    assert leases.acquire(conn, leases.TASK, "retention", "B", LONG) is None  # held, not expired
    assert leases.acquire(conn, leases.TASK, "retention", "A", LONG) is None  # not twice either
    assert leases.hold(conn, a, LONG)

    assert leases.release(conn, a)
    b = leases.acquire(conn, leases.TASK, "retention", "B", LONG)
    assert b == leases.Lease(leases.TASK, "retention", "B", 2)  # a new epoch at each change of hands
    assert not leases.hold(conn, a, LONG) and not leases.release(conn, a)

    assert leases.hold(conn, b, 0.0)  # B's last renewal: it froze
    c = leases.acquire(conn, leases.TASK, "retention", "A", LONG)
    assert c == leases.Lease(leases.TASK, "retention", "A", 3)
    assert not leases.hold(conn, b, LONG)
    [row] = leases.listing(conn)
    assert (row["owner"], row["epoch"], row["expired"]) == ("A", 3, 0)


def test_a_takeover_requeues_the_old_holders_batch_and_its_late_outcome_changes_nothing(conn, account, db_path):
    hook = make_webhook(conn, account, batch_size=2)  # ordered, the default
    queue_events(conn, account, "t", 3)
    a = leases.acquire(conn, leases.WEBHOOK, hook.id, "A", LONG)
    first = claim(conn, a, hook).batch
    assert [event.id for event, _ in first.items] == ["t-0", "t-1"]
    assert states(db_path, hook.id) == ["sending", "sending", "pending"]
    assert leases.acquire(conn, leases.WEBHOOK, hook.id, "B", LONG) is None  # A holds it: B waits

    assert leases.hold(conn, a, 0.0)  # A froze mid-batch: its lease expires
    b = leases.acquire(conn, leases.WEBHOOK, hook.id, "B", LONG)
    assert b is not None and b.epoch == a.epoch + 1
    # In the same transaction as the takeover: A's unconfirmed batch is back in the queue.
    assert states(db_path, hook.id) == ["pending"] * 3
    again = claim(conn, b, hook).batch
    assert again.row_ids == first.row_ids and again.message_id == first.message_id
    assert [attempt for _, attempt in again.items] == [2, 2]

    # A wakes up: its receiver's 2xx arrives late. Fenced: nothing is recorded, nothing claimed.
    assert record(conn, a, first) is None
    assert claim(conn, a, hook) is None
    assert states(db_path, hook.id) == ["sending", "sending", "pending"]  # B's batch, as B claimed it
    assert query(db_path, "SELECT count(*) FROM deliveries WHERE webhook_id = ?", (hook.id,))[0][0] == 0
    assert leases.release_claims(conn, a, LONG) == 0  # a stale worker's failure releases nothing either
    assert not leases.release(conn, a)
    assert leases.release_all(conn, "A") == (0, 0)
    assert states(db_path, hook.id) == ["sending", "sending", "pending"]

    # B's outcome counts, and B goes on with the queue in order.
    after = record(conn, b, again)
    assert [event.id for event, _ in after.batch.items] == ["t-2"]
    assert states(db_path, hook.id) == ["delivered", "delivered", "sending"]


def test_a_graceful_stop_releases_only_its_own_leases_and_rows(conn, account, db_path):
    mine, theirs = make_webhook(conn, account), make_webhook(conn, account)
    queue_events(conn, account, "g", 2)  # for each of the two
    a = leases.acquire(conn, leases.WEBHOOK, mine.id, "A", LONG)
    b = leases.acquire(conn, leases.WEBHOOK, theirs.id, "B", LONG)
    task = leases.acquire(conn, leases.TASK, "retention", "A", LONG)
    claim(conn, a, mine)
    claim(conn, b, theirs)

    assert leases.release_all(conn, "A") == (2, 2)  # its webhook's lease and its task's; its two rows
    assert states(db_path, mine.id) == ["pending", "pending"]
    assert states(db_path, theirs.id) == ["sending", "sending"]  # B's batch is still B's
    assert leases.hold(conn, b, LONG)
    assert not leases.hold(conn, task, LONG)
    assert [lease.key for lease in leases.renew(conn, "B", LONG)] == [theirs.id]
    assert leases.renew(conn, "A", LONG) == []


def test_a_deleted_webhooks_lease_goes_with_it(conn, account):
    hook, other = make_webhook(conn, account), make_webhook(conn, account)
    held = leases.acquire(conn, leases.WEBHOOK, hook.id, "A", LONG)
    leases.acquire(conn, leases.WEBHOOK, other.id, "A", LONG)
    conn.execute("UPDATE webhooks SET status = 'inactive' WHERE id = ?", (hook.id,))
    with transaction(conn):
        webhook_store.delete(conn, hook.id)
    assert [row["key"] for row in leases.listing(conn)] == [other.id]
    assert not leases.hold(conn, held, LONG)  # its holder hears it lost, and stops working on it
    assert [lease.key for lease in leases.renew(conn, "A", LONG)] == [other.id]


def test_taking_a_lease_never_held_requeues_rows_a_process_before_leases_left_sending(conn, account, db_path):
    """A database from before leases: a killed process left a batch 'sending', and no lease names it."""
    hook = make_webhook(conn, account)
    queue_events(conn, account, "old", 2)
    conn.execute("UPDATE outbox SET state = 'sending' WHERE webhook_id = ?", (hook.id,))
    lease = leases.acquire(conn, leases.WEBHOOK, hook.id, "A", LONG)
    assert lease is not None and lease.epoch == 1
    assert states(db_path, hook.id) == ["pending", "pending"]


def test_the_periodic_tasks_run_in_one_process_at_a_time(account, db_path):
    """Two processes' pruners (two owners) on one database: only the lease holder forgets anything, and
    a holder that lost the lease stops at its next chunk."""
    conn = connect(db_path)
    hook = make_webhook(conn, account)
    with transaction(conn):
        webhook_store.rotate_secret(conn, hook.id)
    conn.execute("UPDATE webhooks SET previous_secret_until = '2020-01-01T00:00:00.000Z'")

    def previous_secret():
        return query(db_path, "SELECT previous_secret FROM webhooks WHERE id = ?", (hook.id,))[0][0]

    async def two_processes() -> None:
        db = open_database(db_path)
        db.start()
        try:
            first, second = LeaseKeeper(db, length_s=LONG, owner="A"), LeaseKeeper(db, length_s=LONG, owner="B")
            pruner_a, pruner_b = (Pruner(db, 30, keeper=keeper) for keeper in (first, second))
            assert await first.acquire_task("retention") is not None
            with pytest.raises(NotHolder):
                await pruner_b.forget_secrets()
            assert previous_secret() is not None  # B did nothing
            assert await pruner_a.forget_secrets() == 1
            assert previous_secret() is None

            # A froze past its lease; B takes the task over, and A's next step does nothing.
            lease = first.held(leases.TASK, "retention")
            await db.write(functools.partial(leases.hold, lease=lease, length_s=0.0))
            assert await second.acquire_task("retention") is not None
            with pytest.raises(NotHolder):
                await pruner_a.prune()
            assert first.held(leases.TASK, "retention") is None  # A knows it lost it
            assert await pruner_b.prune() == 0
        finally:
            await db.close()

    asyncio.run(two_processes())
    conn.close()


def test_a_renewal_tells_the_worker_of_a_lease_taken_over(account, db_path):
    conn = connect(db_path)
    hook = make_webhook(conn, account)
    conn.close()

    async def renewals() -> None:
        db = open_database(db_path)
        db.start()
        try:
            keeper = LeaseKeeper(db, length_s=LONG, owner="A")
            [lease] = await keeper.acquire(leases.WEBHOOK, [hook.id])
            told: list[leases.Lease] = []
            keeper.on_lost(lease, told.append)
            await keeper.renew()
            assert told == [] and keeper.held(leases.WEBHOOK, hook.id) == lease
            await db.write(functools.partial(leases.hold, lease=lease, length_s=0.0))
            taken = await db.write(functools.partial(leases.acquire, kind=leases.WEBHOOK, key=hook.id, owner="B",
                                                     length_s=LONG))
            assert taken is not None
            await keeper.renew()
            assert told == [lease] and keeper.held(leases.WEBHOOK, hook.id) is None
            await keeper.stop()  # releases nothing of B's
            assert leases.listing(db.reader())[0]["owner"] == "B"
        finally:
            await db.close()

    asyncio.run(renewals())


@pytest.mark.skipif(not ON_POSTGRESQL, reason="SQLite's one writer takes one lock for the whole transaction")
def test_a_lease_write_and_an_event_write_in_two_processes_never_deadlock(account, db_path):
    """Two processes' writers, each a group commit: one stores events and then holds its webhook's lease; the
    other takes that lease (its row) in a group that then stores events. If each locked its rows as it went,
    each would wait for the other: PostgreSQL would break the cycle after a second by failing one of the
    transactions (a click refused). Every write transaction takes linkhub's write lock at its start
    (PgConnection.begin), so the second waits there, and both commit."""
    setup = connect(db_path)
    hook = make_webhook(setup, account)
    first_conn, second_conn = connect(db_path), connect(db_path)
    try:
        with transaction(first_conn):
            held = leases.acquire(first_conn, leases.WEBHOOK, hook.id, "A", LONG)
        assert held is not None
        leases.hold(first_conn, held, 0.0)  # it lapsed: B may take it over
        errors: list[BaseException] = []
        taken: list[leases.Lease | None] = []

        def second() -> None:
            try:
                with transaction(second_conn):
                    taken.append(leases.acquire(second_conn, leases.WEBHOOK, hook.id, "B", LONG))
                    queue_events(second_conn, account, "b", 1)
            except BaseException as exc:  # heard by the test below
                errors.append(exc)

        [(second_pid,)] = second_conn.execute("SELECT pg_backend_pid()").fetchall()
        with transaction(first_conn):
            queue_events(first_conn, account, "a", 1)
            thread = threading.Thread(target=second)
            thread.start()
            # The second transaction waits for a lock the first holds (where it waits is the point).
            wait_until(lambda: setup.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = ?",
                                             (second_pid,)).fetchone()[0] == "Lock", what="the second waiting")
            leases.hold(first_conn, held, LONG)  # A's fenced write: its lease row
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert errors == [], errors
        # B's look came after A's commit, which pushed the lease on: held, so not taken; B's events stored.
        assert taken == [None] and [row["owner"] for row in leases.listing(setup)] == ["A"]
        assert query(db_path, "SELECT count(*) FROM outbox WHERE webhook_id = ?", (hook.id,))[0][0] == 2
    finally:
        for conn in (setup, first_conn, second_conn):
            conn.close()
