"""Several `linkhub serve` processes on one SQLite file, with real receivers: the lease owner killed
mid-batch, a graceful stop beside a live process, and `--workers 2`.

Which process holds a webhook is read from the `leases` table (its owner is `host:pid:token`).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx

from conftest import create_account, linkhub, outreach_body, post_links, query
from delivery_support import create_webhook, event, ids_of, post_events, states, wait_until
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
        late.set()  # its receiver answers 2xx while it is frozen: it reads that answer as it resumes
    finally:
        frozen.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: f"lease of webhook {hook['id']} lost" in frozen.output, what="the frozen owner told")
    assert sink.requests[0].answered == 200
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
