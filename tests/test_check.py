"""`linkhub check`: integrity, schema, WAL and queue of a database, read-only, as an operator runs it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from linkhub.store import schema

from conftest import Ran, create_account, linkhub
from delivery_support import create_webhook, events, post_events
from sink import closed_port

# `linkhub check` reads a SQLite file itself (integrity, WAL): on PostgreSQL it refuses a URL.
pytestmark = pytest.mark.sqlite_file


LATEST = max(m.version for m in schema.available())


def check(*args: str) -> Ran:
    return linkhub("check", *args)


def one_line_error(result: Ran) -> str:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_serving_database_checks_ok_and_shows_its_wal_and_queue(make_server, db_path):
    # A real server: the check reads a database another process holds open and writes to.
    server = make_server("--allow-private-targets")
    account = create_account(db_path)
    with server.client() as client:
        # A receiver that refuses every connection: the events wait in its queue.
        create_webhook(client, account, f"http://127.0.0.1:{closed_port()}/hook",
                       retry={"policy": "fixed", "interval_s": 3600})
        post_events(client, account, events("c", 5))
        result = check("--db", str(db_path), "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert report["ok"] is True and report["problems"] == []
        assert report["integrity"] == {"check": "quick_check", "result": ["ok"]}
        assert report["schema"] == {"version": LATEST, "pending": [], "unknown": []}
        assert report["journal_mode"] == "wal" and report["wal_bytes"] > 0  # the server's commits are in it
        queue = report["queue"]
        assert queue["pending"] + queue["in_flight"] == 5 and queue["dead"] == 0
        assert queue["oldest_waiting_since"]

        text = check("--db", str(db_path), "--full")
        assert text.returncode == 0, text.stdout
        assert "integrity   ok (integrity_check)" in text.stdout
        assert f"schema      version {LATEST}, up to date" in text.stdout
        assert text.stdout.rstrip().endswith("OK")
    assert server.stop() == 0


def test_a_missing_database_is_not_created(tmp_path):
    path = tmp_path / "none.db"
    line = one_line_error(check("--db", str(path)))
    assert "no database" in line and "linkhub migrate" in line
    assert not path.exists()


def test_a_file_that_is_not_sqlite_is_named(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"not a database at all\n" * 300)
    assert "is not a SQLite database" in one_line_error(check("--db", str(path)))


def test_pending_migrations_fail_the_check_and_are_not_applied(tmp_path):
    path = tmp_path / "plain.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    before = digest(path)
    result = check("--db", str(path), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["schema"]["version"] is None
    assert len(report["schema"]["pending"]) == len(schema.available())  # every one (their numbers may have gaps)
    assert any("linkhub migrate" in problem for problem in report["problems"])
    assert digest(path) == before  # read-only: nothing migrated, nothing written


def test_a_damaged_database_fails_the_check(db_path):
    conn = sqlite3.connect(db_path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    conn.close()
    with open(db_path, "r+b") as file:  # what a bad disk or a torn copy leaves behind
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * page_size)
    for args in ((), ("--full",)):
        result = check("--db", str(db_path), *args)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "integrity   FAILED" in result.stdout
        assert "restore a backup" in result.stdout
