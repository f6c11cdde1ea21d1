"""A server on PostgreSQL outlives its connections: PostgreSQL restarted, or a failover, drops every
connection linkhub holds, and the next requests are served on new connections, as if nothing had
happened: a read that met a lost connection runs again on a new one, and so does a write that lost its
connection before its commit, so the visitor's click is not lost.

The connections are dropped with pg_terminate_backend, which is what a restart or a failover does to
them. It uses its own database of the throwaway cluster (pgserver.py's `pg_url`), so it runs in the
SQLite run too.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from linkhub.store import connect, migrate
from linkhub.store.pg import READ_POOL_MAX

from conftest import create_account, outreach_body, post_links, query
from delivery_support import bearer, wait_until
from servers import Server, start_server


@pytest.fixture
def server(pg_url: str) -> Iterator[Server]:
    conn = connect(pg_url)
    try:
        migrate(conn)
    finally:
        conn.close()
    started = start_server(pg_url)
    try:
        yield started
        assert started.stop() == 0, started.output
    finally:
        if started.proc.poll() is None:
            started.kill()


def _database(pg_url: str) -> str:
    return urlsplit(pg_url).path.lstrip("/")


def _admin(pg_url: str) -> psycopg.Connection[Any]:
    """A connection to the cluster's maintenance database, to act on the test's database from outside."""
    return psycopg.connect(urlsplit(pg_url)._replace(path="/postgres").geturl(), autocommit=True)


def _drop_connections(pg_url: str) -> int:
    """Terminate every connection to the test's database; return once their server processes are gone."""
    with _admin(pg_url) as admin:
        pids = [row[0] for row in admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (_database(pg_url),))]
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_until(lambda: not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)",
                                             (pids,)).fetchall(), what="the dropped connections gone")
    return len(pids)


def test_lost_connections_are_made_again_and_nothing_is_refused(server: Server, pg_url: str) -> None:
    account = create_account(pg_url)
    with server.client() as client:
        answer = post_links(client, account, outreach_body(["https://example.com/pricing"]))
        assert answer.status_code == 200, answer.text
        code = answer.json()["data"]["https://example.com/pricing"].rsplit("/r/", 1)[1]
        assert client.get(f"/r/{code}").status_code == 302

        assert _drop_connections(pg_url) >= 2  # at least the writer's and the event loop's reader
        # The redirect's look-up meets a lost reader, its click the lost writer: both run again.
        assert client.get(f"/r/{code}").status_code == 302
        answer = post_links(client, account, outreach_body(["https://example.com/after"], prospect="p-2"))
        assert answer.status_code == 200, answer.text

        assert _drop_connections(pg_url) >= 2  # and once more, right after its connections were made again
        assert [client.get(f"/r/{code}").status_code for _ in range(3)] == [302] * 3
        assert client.get("/healthz").status_code == 200
    assert server.stop() == 0, server.output
    assert query(pg_url, "SELECT count(*) FROM events WHERE type = 'click'")[0][0] == 5  # every 302's click
    assert "click LOST" not in server.output
    assert "Traceback" not in server.output
    assert server.output.count("connection was lost") == 2  # the writer's, each time


def test_while_the_database_is_away_requests_are_refused_at_once_and_served_again_after(
        server: Server, pg_url: str) -> None:
    """An outage (the database refusing every connection, as a server down or restarting does): a
    redirect and an Outreach call answer 503 (Outreach then sends the original links), never a 500 or
    a hang; once the database is back the next requests are served without restarting linkhub, and
    every redirect that was answered 302 has its click."""
    account = create_account(pg_url)
    database = _database(pg_url)
    with server.client() as client:
        answer = post_links(client, account, outreach_body(["https://example.com/pricing"]))
        code = answer.json()["data"]["https://example.com/pricing"].rsplit("/r/", 1)[1]
        with _admin(pg_url) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            try:
                _drop_connections(pg_url)
                assert [client.get(f"/r/{code}").status_code for _ in range(3)] == [503] * 3
                refused = post_links(client, account, outreach_body(["https://example.com/x"], prospect="p-3"))
                assert refused.status_code == 503, refused.text
                assert client.get("/healthz").status_code == 503
            finally:
                admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        wait_until(lambda: client.get(f"/r/{code}").status_code == 302, what="a redirect served again")
        assert post_links(client, account, outreach_body(["https://example.com/x"], prospect="p-3")).status_code == 200
    assert server.stop() == 0, server.output
    assert query(pg_url, "SELECT count(*) FROM events WHERE type = 'click'")[0][0] == 1
    assert "Traceback" not in server.output
    password = urlsplit(pg_url).password
    assert password and password not in server.output  # in no error text


def test_reads_share_a_bounded_pool_of_connections(server: Server, pg_url: str) -> None:
    """Forty event pages read at once, each held up by a lock, are read on at most READ_POOL_MAX
    connections: a process's connections stay within what docs/scaling.md tells operators to allow
    for, whatever the load. A page that waited too long for a connection is refused (503), never left
    hanging; the others are served once the lock is gone. Meanwhile the event loop's reads (a
    redirect's look-up, the health check) are answered on a connection of their own."""
    account = create_account(pg_url)

    def connections(where: str = "") -> int:
        [[count]] = watcher.execute(f"SELECT count(*) FROM pg_stat_activity WHERE datname = %s {where}",
                                    (_database(pg_url),)).fetchall()
        return int(count)

    with (psycopg.connect(pg_url) as locker, _admin(pg_url) as watcher,
          server.client(limits=httpx.Limits(max_connections=40)) as client,
          concurrent.futures.ThreadPoolExecutor(40) as clients):
        locker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")  # until its transaction ends
        pages = [clients.submit(client.get, "/v1/events", headers=bearer(account)) for _ in range(40)]
        wait_until(lambda: connections("AND wait_event_type = 'Lock'") >= READ_POOL_MAX - 1,
                   what="the worker threads' connections all waiting for the lock")
        assert client.get("/r/AAAAAAAAAAAA").status_code == 404  # looked up (no such link), not refused
        assert client.get("/healthz").status_code == 200
        locker.rollback()
        assert {page.result().status_code for page in pages} <= {200, 503}
        # The pool's, the writer's and the two of wake-ups (the test's own two are not the server's).
        assert connections() - 1 <= READ_POOL_MAX + 3
