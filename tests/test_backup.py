"""`linkhub backup`: a copy made while the server runs holds every commit and can be served."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import Ran, linkhub, outreach_body, post_links, query
from delivery_support import bearer, events, post_events

# `linkhub backup` copies a SQLite file: on PostgreSQL it points at pg_dump (test_postgresql_schema.py).
pytestmark = pytest.mark.sqlite_file


def backup(*args: str) -> Ran:
    return linkhub("backup", *args)


def test_a_backup_taken_while_serving_holds_every_commit_and_serves_them(make_server, account, db_path, tmp_path):
    # A real server: the copy is taken from outside the process that writes.
    server = make_server()
    with server.client() as client:
        post_events(client, account, events("b", 50))  # answered 202: committed
        short = post_links(client, account, outreach_body(["https://example.com/landing"])).json()["data"]
        code = short["https://example.com/landing"].rsplit("/", 1)[1]
        assert client.get(f"/r/{code}").status_code == 302  # a click, committed before its answer

        dest = tmp_path / "copy.db"
        made = backup(str(dest), "--json", "--db", str(db_path))
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["bytes"] == dest.stat().st_size > 0

    counts = "SELECT type, count(*) FROM events WHERE account_id = ? GROUP BY type ORDER BY type"
    assert [tuple(row) for row in query(dest, counts, (account.id,))] == [("click", 1), ("open", 50)]
    conn = sqlite3.connect(dest)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file, no WAL beside it
    conn.close()
    assert not Path(f"{dest}-wal").exists() and not Path(f"{dest}.partial").exists()

    again = backup(str(dest), "--db", str(db_path))
    assert again.returncode != 0 and "already exists" in again.stderr
    assert [tuple(row) for row in query(dest, counts, (account.id,))] == [("click", 1), ("open", 50)]

    server.stop()
    restored = make_server(path=dest)
    with restored.client() as client:
        answer = client.get(f"/r/{code}")
        listed = client.get("/v1/events", params={"type": "open"}, headers=bearer(account))
    assert answer.status_code == 302 and answer.headers["location"] == "https://example.com/landing"
    assert len(listed.json()["events"]) == 50


def test_backup_refuses_a_missing_database_and_writes_nothing(tmp_path):
    made = backup(str(tmp_path / "copy.db"), "--db", str(tmp_path / "nothing-here.db"))
    assert made.returncode != 0 and "no database at" in made.stderr
    assert list(tmp_path.iterdir()) == []
