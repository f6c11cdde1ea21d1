"""A server on PostgreSQL outlives its connections: PostgreSQL restarted, or a failover, drops every
connection linkhub holds; the requests meeting a lost connection answer 503 (never a 500, never a
hang), and the next ones are served on new connections, clicks committed as before: a write that lost
its connection before its commit runs again on a new one, so the visitor's click is not lost.

The connections are dropped with pg_terminate_backend, which is what a restart or a failover does to
them. It uses its own database of the throwaway cluster (pgserver.py's `pg_url`), so it runs in the
SQLite run too.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from linkhub.store import connect, migrate

from conftest import create_account, outreach_body, post_links, query
from servers import Server, start_server

# Requests each kind of path may need before it meets a new connection: each thread of the server
# that holds a lost connection answers one request with a 503 and then opens a new one.
ATTEMPTS = 50


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


def _drop_connections(pg_url: str) -> int:
    database = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchall()
    return len(rows)


def test_lost_connections_are_made_again_and_nothing_answered_is_lost(server: Server, pg_url: str) -> None:
    account = create_account(pg_url)
    with server.client() as client:
        answer = post_links(client, account, outreach_body(["https://example.com/pricing"]))
        assert answer.status_code == 200, answer.text
        code = answer.json()["data"]["https://example.com/pricing"].rsplit("/r/", 1)[1]
        assert client.get(f"/r/{code}").status_code == 302

        assert _drop_connections(pg_url) >= 2  # at least the writer's and the redirect's reader

        statuses = []
        for _ in range(ATTEMPTS):
            status = client.get(f"/r/{code}").status_code
            statuses.append(status)
            assert status in (302, 503), statuses
            if status == 302:
                break
        assert statuses[-1] == 302, f"no redirect served again after {ATTEMPTS} attempts: {statuses}"
        redirected = 1 + statuses.count(302)

        for _ in range(ATTEMPTS):  # a new email's links: the writer's own connection made again
            answer = post_links(client, account, outreach_body(["https://example.com/after"], prospect="p-2"))
            assert answer.status_code in (200, 503), answer.text
            if answer.status_code == 200:
                break
        assert answer.status_code == 200, answer.text
        assert client.get("/healthz").status_code == 200
    assert server.stop() == 0, server.output
    clicks = query(pg_url, "SELECT count(*) FROM events WHERE type = 'click'")[0][0]
    # Every 302 committed its click first: a click's write that met the lost connection ran again on a
    # new one (a look-up that met it answered 503 and recorded nothing).
    assert clicks == redirected
    assert "click LOST" not in server.output
    assert "Traceback" not in server.output
    assert server.output.count("connection was lost") <= 1
