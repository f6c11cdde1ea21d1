"""Several `linkhub serve` processes on one database (a SQLite file, or with LINKHUB_TEST_BACKEND=postgresql
a PostgreSQL database), with real receivers: the lease owner killed mid-batch, a graceful stop beside a live
process, `--workers 2`, a reader's cursor while two processes write; on PostgreSQL, the wake-ups one process
sends the others (NOTIFY) and the listening connection made again when it is lost.

Which process holds a webhook is read from the `leases` table (its owner is `host:pid:token`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from linkhub.store import connect, wakeups

from conftest import ON_POSTGRESQL, create_account, linkhub, outreach_body, post_links, query
from delivery_support import bearer, create_webhook, event, ids_of, post_events, states, wait_until
from sink import Answer, Sink

LEASE_S = 3  # short, so that a takeover is quick; the default's bound is checked with --workers
POLL_S = 1.0  # delivery/loop.py POLL_INTERVAL_S: how soon a process looks for webhooks it may take


def lease_owner_pid(db_path: Path, webhook_id: str) -> tuple[int, int] | None:
    """(pid, epoch) of the process holding the webhook's lease, or None if nobody does."""
    rows = query(db_path, "SELECT owner, epoch FROM leases WHERE kind = 'webhook' AND key = ?", (webhook_id,))
    if not rows or rows[0]["owner"] is None:
        return None
    return int(rows[0]["owner"].split(":")[1]), rows[0]["epoch"]


def lease_epoch(db_path: Path, webhook_id: str) -> int:
    return query(db_path, "SELECT epoch FROM leases WHERE kind = 'webhook' AND key = ?", (webhook_id,))[0]["epoch"]


def first_seen(sink: Sink) -> list[str]:
    """Event ids in the order the receiver first saw each, over every request (answered or not)."""
    seen: list[str] = []
    for request in list(sink.requests):
        seen.extend(item["id"] for item in request.json() if item["id"] not in seen)
    return seen


def numbered(prefix: str, first: int, count: int) -> list[dict]:
    return [event(f"{prefix}-{n:03d}", "open", n) for n in range(first, first + count)]


def test_the_other_process_takes_over_when_the_lease_owner_is_killed_mid_batch(make_server, account, make_sink,
                                                                               db_path):
    sink = make_sink()
    sink.script(Answer(200, hold=sink.hang()))  # the first batch arrives and is never answered
    options = ("--allow-private-targets", "--lease-s", str(LEASE_S))
    servers = [make_server(*options), make_server(*options)]
    with servers[0].client() as client:
        hook = create_webhook(client, account, sink.url, batch_size=3)  # ordered (the default)
    sent = numbered("k", 0, 12)
    for server, part in zip(servers, (sent[:6], sent[6:]), strict=True):  # each process takes events
        with server.client() as client:
            post_events(client, account, part)
    sink.wait_for(1)
    pid, epoch = wait_until(lambda: lease_owner_pid(db_path, hook["id"]), what="the webhook's lease held")
    [(owner_name,)] = query(db_path, "SELECT owner FROM leases WHERE kind = 'webhook' AND key = ?", (hook["id"],))
    [owner] = [server for server in servers if server.proc.pid == pid]
    [survivor] = [server for server in servers if server is not owner]
    assert "sending" in states(db_path, hook["id"])  # mid-batch
    status = linkhub("outbox", "status", "--json", "--db", str(db_path))
    [mine] = [row for row in json.loads(status.stdout) if row["webhook_id"] == hook["id"]]
    assert mine["held_by"].split(":")[1] == str(owner.proc.pid), mine

    owner.kill()
    killed = time.monotonic()
    later = numbered("k", 12, 3)
    with survivor.client() as client:
        post_events(client, account, later)
    sink.wait_for(2, timeout=LEASE_S + 15)
    # The lease lapses at most LEASE_S after the owner's last renewal; the survivor takes it at its next look
    # (and a few writes and a POST later, on a busy machine, the batch arrives again).
    assert sink.requests[1].arrived - killed <= LEASE_S + POLL_S + 5.0, sink.requests[1].arrived - killed
    received = sink.wait_events(len(sent) + len(later))
    assert f"took over webhook {hook['id']} (epoch {epoch + 1}) from {owner_name}" in survivor.output
    assert lease_epoch(db_path, hook["id"]) == epoch + 1  # held by the survivor, or released once it was done

    everything = ids_of(sent + later)
    assert set(ids_of(received)) == set(everything)  # every event at least once…
    assert first_seen(sink) == everything  # …and the order never went backwards (each is first seen in order)
    assert ids_of(sink.requests[1].json()) == ids_of(sink.requests[0].json())  # the cut-off batch, sent again
    assert sink.requests[1].headers["webhook-id"] == sink.requests[0].headers["webhook-id"]
    wait_until(lambda: states(db_path, hook["id"]) == ["delivered"] * len(everything), what="all delivered")


def test_a_frozen_owner_that_wakes_up_late_changes_nothing(make_server, account, make_sink, db_path):
    """The owner freezes mid-batch (SIGSTOP) past its lease; the other process takes the webhook over and
    delivers everything. Then the frozen one's receiver answers and it resumes: that late outcome is fenced
    (no delivery recorded, no row changed), and it stops working on the webhook."""
    sink = make_sink()
    late = sink.hang()
    sink.script(Answer(200, hold=late))
    options = ("--allow-private-targets", "--lease-s", str(LEASE_S))
    servers = [make_server(*options), make_server(*options)]
    with servers[0].client() as client:
        hook = create_webhook(client, account, sink.url, batch_size=2)
        post_events(client, account, numbered("f", 0, 4))
    sink.wait_for(1)
    pid, epoch = wait_until(lambda: lease_owner_pid(db_path, hook["id"]), what="the webhook's lease held")
    [frozen] = [server for server in servers if server.proc.pid == pid]
    frozen.proc.send_signal(signal.SIGSTOP)
    try:
        sink.wait_events(4, timeout=LEASE_S + 15)
        wait_until(lambda: states(db_path, hook["id"]) == ["delivered"] * 4, what="delivered by the other")
        attempts = query(db_path, "SELECT count(*) FROM deliveries WHERE webhook_id = ?", (hook["id"],))[0][0]
        assert attempts == len(sink.requests) - 1  # every attempt but the frozen process's, still hanging
        late.set()  # its receiver answers 2xx while it is frozen: the answer waits in its socket as it resumes
        # Answered before the process runs again: resumed, it may cancel the request at once (its lease is lost).
        wait_until(lambda: sink.requests[0].answered == 200, what="the frozen owner's request answered")
    finally:
        frozen.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: f"lease of webhook {hook['id']} lost" in frozen.output, what="the frozen owner told")
    assert query(db_path, "SELECT count(*) FROM deliveries WHERE webhook_id = ?", (hook["id"],))[0][0] == attempts
    assert states(db_path, hook["id"]) == ["delivered"] * 4
    assert lease_epoch(db_path, hook["id"]) == epoch + 1


def test_a_graceful_stop_releases_only_its_own_batches(make_server, account, make_sink, db_path):
    """Two processes each mid-batch on a webhook of their own: the one that stops puts back its batch only;
    the other's stays claimed throughout, from the second process's start to after its stop."""
    other_account = create_account(db_path)
    sinks = [make_sink(), make_sink()]
    for sink in sinks:
        sink.script(Answer(200, hold=sink.hang()))
    first = make_server("--allow-private-targets")
    with first.client() as client:
        held_first = create_webhook(client, account, sinks[0].url)
        post_events(client, account, numbered("a", 0, 2))
    sinks[0].wait_for(1)
    first_lease = lease_owner_pid(db_path, held_first["id"])
    assert first_lease is not None and first_lease[0] == first.proc.pid

    second = make_server("--allow-private-targets")  # starting beside it requeues nothing of the first's
    assert states(db_path, held_first["id"]) == ["sending", "sending"]
    # The first process is frozen while the second takes the other webhook (so that the second, not the
    # first, holds it), and again while the second stops (so that nobody takes it back meanwhile).
    first.proc.send_signal(signal.SIGSTOP)
    try:
        with second.client() as client:
            held_second = create_webhook(client, other_account, sinks[1].url)
            post_events(client, other_account, numbered("b", 0, 2))
        sinks[1].wait_for(1)
        assert lease_owner_pid(db_path, held_second["id"])[0] == second.proc.pid
        assert second.stop() == 0
        assert states(db_path, held_second["id"]) == ["pending", "pending"]  # its own batch, put back
        assert states(db_path, held_first["id"]) == ["sending", "sending"]  # the first's, untouched
        assert lease_owner_pid(db_path, held_first["id"]) == first_lease
        assert lease_owner_pid(db_path, held_second["id"]) is None  # released, not left to expire
    finally:
        first.proc.send_signal(signal.SIGCONT)
    # The first process takes the released webhook at its next look and delivers its events.
    sinks[1].wait_events(2)
    assert ids_of(sinks[1].requests[1].json()) == ["b-000", "b-001"]
    wait_until(lambda: states(db_path, held_second["id"]) == ["delivered"] * 2, what="delivered by the first")


def worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def test_workers_serve_redirects_and_deliver_and_one_killed_is_replaced(make_server, account, make_sink, db_path):
    """`--workers 2` with the default lease: a worker killed mid-batch is started again, and its webhook
    is taken over within the lease (at most 30 s)."""
    sink = make_sink()
    sink.script(Answer(200, hold=sink.hang()))
    server = make_server("--allow-private-targets", "--workers", "2")
    workers = wait_until(lambda: len(pids := worker_pids(server.proc.pid)) == 2 and pids, what="two workers")

    data = [f"https://example.com/page/{i}" for i in range(20)]
    with server.client() as client:
        hook = create_webhook(client, account, sink.url, batch_size=5, types=["open"])
        answer = post_links(client, account, outreach_body(data))
        assert answer.status_code == 200, answer.text
    paths = [answer.json()["data"][url][len(server.url):] for url in data]
    # A connection each: the kernel spreads new connections over the two workers' sockets.
    for path in paths:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get(path).status_code == 302
    assert query(db_path, "SELECT count(*) FROM clicks")[0][0] == len(paths)  # each committed before its 302
    # /metrics is the answering worker's own: over new connections both answer, and their counts add up
    # (one count seen 40 times over: the two workers served as many redirects each).
    counts = set()
    for _ in range(40):
        with httpx.Client(base_url=server.url, timeout=10) as client:
            counts.add(redirects_counted(client.get("/metrics").text))
        if len(counts) == 2:
            break
    assert sum(counts) * (3 - len(counts)) == len(paths), counts

    sent = numbered("w", 0, 15)
    with server.client() as client:
        post_events(client, account, sent)
    sink.wait_for(1)
    pid, epoch = wait_until(lambda: lease_owner_pid(db_path, hook["id"]), what="the webhook's lease held")
    assert pid in workers
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    sink.wait_for(2, timeout=40)
    assert sink.requests[1].arrived - killed <= 30
    received = sink.wait_events(len(sent))
    assert set(ids_of(received)) == set(ids_of(sent)) and first_seen(sink) == ids_of(sent)
    replaced = wait_until(lambda: len(pids := worker_pids(server.proc.pid)) == 2 and pids, what="a new worker")
    assert pid not in replaced
    assert f"took over webhook {hook['id']} (epoch {epoch + 1})" in server.output
    assert lease_epoch(db_path, hook["id"]) == epoch + 1
    assert "starting another" in server.output

    [(task_owner,)] = query(db_path, "SELECT owner FROM leases WHERE kind = 'task' AND key = 'retention'")
    assert int(task_owner.split(":")[1]) in workers + replaced  # one worker prunes, not each
    assert server.stop() == 0
    assert "sending" not in states(db_path, hook["id"])
    assert server.output.count("database writer drained and closed") == 2  # each worker stopped gracefully


def redirects_counted(metrics: str) -> int:
    [line] = [line for line in metrics.splitlines() if line.startswith("linkhub_redirect_duration_seconds_count")]
    return int(float(line.split()[-1]))


# -- a reader's cursor while two processes write ---------------------------------------------------------


def test_a_reader_paging_with_its_cursor_sees_every_event_once_while_two_processes_write(make_server, account):
    """Two processes store events at once (two posting clients each) while a reader pages GET /v1/events with
    its cursor: every event is read exactly once, in increasing `seq`, none skipped. On PostgreSQL a seq is
    taken before commit, so if writers did not take turns a later seq could commit first and be passed over."""
    servers = [make_server(), make_server()]
    writers, batches, size = 2, 40, 5  # per process
    failures: list[BaseException] = []

    def write(server: Any, prefix: str) -> None:
        try:
            with server.client() as client:
                for b in range(batches):
                    post_events(client, account, [event(f"{prefix}-{b:03d}-{n}", "open", n) for n in range(size)])
        except BaseException as exc:  # said by the test itself, below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(server, f"p{i}w{w}"))
               for i, server in enumerate(servers) for w in range(writers)]
    seen: list[tuple[int, str]] = []
    cursor = "0"

    def page(client: httpx.Client) -> int:
        nonlocal cursor
        answer = client.get("/v1/events", params={"cursor": cursor, "limit": 7}, headers=bearer(account))
        assert answer.status_code == 200, answer.text
        listed = answer.json()["events"]
        seen.extend((item["seq"], item["id"]) for item in listed)
        if listed:
            cursor = str(listed[-1]["seq"])
        return len(listed)

    for thread in threads:
        thread.start()
    try:
        with servers[1].client() as reader:
            while any(thread.is_alive() for thread in threads):
                page(reader)
            for thread in threads:
                thread.join()
            while page(reader):  # what committed after the reader's last page during the writes
                pass
    finally:
        for thread in threads:
            thread.join()
    assert not failures, failures
    expected = len(threads) * batches * size
    seqs = [seq for seq, _ in seen]
    assert seqs == sorted(set(seqs))  # increasing, never one twice
    assert len({event_id for _, event_id in seen}) == len(seen) == expected  # every event, exactly once


# -- wake-ups between processes (PostgreSQL) -------------------------------------------------------------

pg_only = pytest.mark.skipif(not ON_POSTGRESQL, reason="LISTEN/NOTIFY is PostgreSQL's: processes on one SQLite "
                                                       "file find each other's deliveries by the poll")


def wakeups_received(server: Any) -> float:
    with server.client() as client:
        for family in text_string_to_metric_families(client.get("/metrics").text):
            for sample in family.samples:
                if sample.name == "linkhub_wakeups_received_total":
                    return float(sample.value)
    raise AssertionError("no linkhub_wakeups_received_total in /metrics")


def test_events_stored_by_one_process_reach_the_process_that_delivers_their_webhook(make_server, account, make_sink,
                                                                                    db_path):
    """Events stored by one process, for a webhook another holds (it keeps the lease while a retry waits an
    hour): the holder delivers them. On PostgreSQL the storing process NOTIFYs the others after its commit, and
    the holder is woken by it; on SQLite it finds them at its next poll. Both print how long it took."""
    sink = make_sink()
    sink.script(Answer(503, headers={"Retry-After": "3600"}))  # the first batch's retry: an hour away
    servers = [make_server("--allow-private-targets"), make_server("--allow-private-targets")]
    with servers[0].client() as client:
        hook = create_webhook(client, account, sink.url, ordered=False)
        post_events(client, account, [event("n-000")])
    sink.wait_for(1)
    wait_until(lambda: query(db_path, "SELECT count(*) FROM deliveries WHERE webhook_id = ?", (hook["id"],))[0][0],
               what="the failure recorded")
    pid, _ = wait_until(lambda: lease_owner_pid(db_path, hook["id"]), what="the lease kept while the retry waits")
    [holder] = [server for server in servers if server.proc.pid == pid]
    [other] = [server for server in servers if server is not holder]
    heard = wakeups_received(holder)

    posted = time.monotonic()
    with other.client() as client:  # the other process stores it; it cannot deliver it (the lease is held)
        post_events(client, account, [event("n-001", n=1)])
    sink.wait_for(2)
    took = sink.requests[1].arrived - posted
    assert ids_of(sink.requests[1].json()) == ["n-001"]
    assert lease_owner_pid(db_path, hook["id"])[0] == holder.proc.pid  # delivered by the holder
    if ON_POSTGRESQL:
        assert wakeups_received(holder) > heard  # which the other process's NOTIFY woke
    else:
        assert wakeups_received(holder) == heard == 0
    # Not asserted (a loaded machine can take longer), shown: a wake-up takes milliseconds, the poll up to 1 s.
    how = "woken by NOTIFY" if ON_POSTGRESQL else "by the poll"
    print(f"stored by one process, delivered by the other {took * 1000:.0f} ms later ({how}; poll: {POLL_S:.0f} s)")


@pg_only
def test_a_lost_listening_connection_is_made_again_with_one_line_said(db_path, postgresql_server, caplog):
    """The listening connection is cut, and for a while the database refuses new ones: one warning, no
    password; once it answers again, LISTEN is in force and another process's NOTIFY wakes this one (its own
    are not news to it)."""
    database = db_path.rsplit("/", 1)[1]
    admin = connect(postgresql_server.url())
    woken: list[str] = []
    hub = wakeups.Wakeups(db_path, name="here",
                          on_wake=lambda notified: woken.append("notified" if notified else "listening"))

    async def until(check: Any) -> None:
        async with asyncio.timeout(20):
            while not check():  # noqa: ASYNC110 - a count of another task's; each step is an await of its own
                await asyncio.sleep(0.02)

    async def scenario() -> None:
        hub.start()
        try:
            await hub.listening.wait()
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ?",
                          ("linkhub listen",))
            await until(lambda: hub.failures >= 3)  # the loss, and attempts refused since: one line for all
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            await hub.listening.wait()
            assert hub.connections == 2
            assert woken[-1] == "listening"  # it looks once: rows may have been announced while it could not hear
            woken.clear()
            sender = connect(db_path)
            try:
                sender.execute("SELECT pg_notify(?, ?)", (wakeups.CHANNEL, "here"))  # its own: not news
                sender.execute("SELECT pg_notify(?, ?)", (wakeups.CHANNEL, "there"))
            finally:
                sender.close()
            await until(lambda: hub.received == 1)
            assert woken == ["notified"]
        finally:
            await hub.stop()

    with caplog.at_level(logging.INFO, logger="linkhub.wakeups"):
        try:
            asyncio.run(scenario())
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            admin.close()
    said = [record for record in caplog.records if record.name == "linkhub.wakeups"]
    warnings = [record.getMessage() for record in said if record.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "terminat" in warnings[0] or "closed" in warnings[0], warnings[0]
    assert all(postgresql_server.password not in record.getMessage() for record in said)
