"""`linkhub copy-to postgresql://…`: a SQLite database filled through the real app (Outreach links, clicks
through /r/, posted events, a webhook's outbox and deliveries to a real receiver, an erasure, an inbound
endpoint, a pixel and its open, the delivery lease) copied into a real PostgreSQL database (tests/pgserver.py),
compared row by row and view by view; an interrupted copy resumed; the targets it refuses; the identity
sequences after it; and `linkhub backup` on a URL pointing at pg_dump."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from linkhub.settings import parse_networks
from linkhub.store import connect, copyto, postgresql

from conftest import Account, create_account, linkhub, outreach_body, post_links, query
from delivery_support import bearer, create_webhook, event, post_events, wait_until
from inbound_examples import OPTIMIZELY_CLICK, OPTIMIZELY_SENT

# Its source is a SQLite file and it makes its own PostgreSQL target (pgserver.py's pg_url): run once,
# in the SQLite run.
pytestmark = pytest.mark.sqlite_file


CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/154.0.0.0 Safari/537.36")
PUBLIC = "https://t.example.com"
VIEWS_ORDER = {
    "mailing_stats": "account_id, mailing_id",
    "link_stats": "account_id, mailing_id, original_url",
    "recipient_activity": "account_id, recipient",
    "clicks": "seq",
    "opens": "seq",
}
# Tables the app fills below: each must hold rows, or the comparison proves less than it says.
FILLED = {"accounts", "links", "events", "webhooks", "outbox", "deliveries", "verdict_changes", "erasures",
          "pixels", "mailings", "inbound_endpoints", "leases", "erasure_salt"}


def populate(make_app: Any, db_path: Path, receiver_url: str) -> Account:
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"), allow_private_targets=True, public_url=PUBLIC)
    account = create_account(db_path)
    with app.client() as client:
        hook = create_webhook(client, account, receiver_url)
        links = {}
        for prospect, email in (("p-ann", "Ann@Example.com"), ("p-bob", "bob@corp.example")):
            answer = post_links(client, account, outreach_body(
                ["https://example.com/pricing", "https://example.com/docs", "https://example.com/blog",
                 "https://example.com/jobs"], prospect=prospect, email=email))
            assert answer.status_code == 200, answer.text
            links[prospect] = [short.removeprefix(PUBLIC) for short in answer.json()["data"].values()]
        # A burst over Ann's links from one address changes a verdict (verdict_changes); a person's click.
        for path in links["p-ann"]:
            assert client.get(path, headers={"user-agent": CHROME, "accept-language": "en-US",
                                             "x-forwarded-for": "198.51.100.80"}).status_code == 302
        assert client.get(links["p-bob"][0], headers={"user-agent": CHROME, "x-forwarded-for": "203.0.113.9"}
                          ).status_code == 302
        minted = client.post("/v1/links", headers=bearer(account), json={"messages": [
            {"mailing_id": "m-2", "recipient": {"id": "r-cy", "email": "cy@example.com"}, "message_id": "msg-1",
             "urls": ["https://example.com/offer"]}]})
        assert minted.status_code == 200, minted.text
        pixel = minted.json()["messages"][0]["open_pixel"].removeprefix(PUBLIC)
        assert client.get(pixel, headers={"user-agent": CHROME, "x-forwarded-for": "203.0.113.20"}).status_code == 200
        post_events(client, account, [
            event("e-sent", "sent", 1, email="cy@example.com", recipient_id="r-cy", mailing_id="m-2"),
            event("e-bounce", "bounce", 2, email="dan@example.com", details={"category": "hard", "note": "ü €"}),
            event("e-open", "open", 3, email="Cy@Example.com", mailing_id="m-2"),
        ])
        endpoint = client.post("/v1/inbound", json={"provider": "optimizely"}, headers=bearer(account))
        assert endpoint.status_code == 201, endpoint.text
        path = endpoint.json()["url"].removeprefix(PUBLIC)
        for body in (OPTIMIZELY_CLICK, OPTIMIZELY_SENT):
            answer = client.post(path, content=body, headers={"content-type": "application/json"})
            assert answer.status_code == 200, answer.text
        erased = client.delete("/v1/recipients", params={"email": "dan@example.com"}, headers=bearer(account))
        assert erased.status_code == 200, erased.text
        # Every event reaches the receiver: deliveries and delivered outbox rows.
        wait_until(lambda: query(db_path, "SELECT count(*) FROM outbox WHERE webhook_id = ? AND state <> 'delivered'",
                                 (hook["id"],))[0][0] == 0
                   and query(db_path, "SELECT count(*) FROM deliveries")[0][0] > 0, what="every event delivered")
    app.stop()
    return account


@pytest.fixture
def source(make_app: Any, db_path: Path, make_receiver: Any) -> Path:
    populate(make_app, db_path, make_receiver().url)
    empty = [t for t in FILLED if not query(db_path, f"SELECT count(*) FROM {t}")[0][0]]
    assert not empty, f"the app left these tables empty: {empty}"
    return db_path


def _tables(url: str) -> list[copyto.Table]:
    with psycopg.connect(url) as pg:
        return copyto._tables(pg)


def _normal(value: Any, pg_type: str) -> Any:
    if isinstance(value, str) and pg_type == "jsonb":
        return json.loads(value)
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def assert_same_rows(lite_path: Path, url: str) -> dict[str, int]:
    """Every table's rows, in key order, equal on both after normalising types; returns the row counts."""
    counts = {}
    lite = sqlite3.connect(lite_path)
    try:
        with psycopg.connect(url) as pg:
            for table in _tables(url):
                columns = ", ".join(table.columns)
                keys = ", ".join(table.key)
                text_keys = ", ".join(f'{k} COLLATE "C"' if table.types[table.columns.index(k)] == "text" else k
                                      for k in table.key)
                lite_rows = [tuple(_normal(v, t) for v, t in zip(row, table.types, strict=True))
                             for row in lite.execute(f"SELECT {columns} FROM {table.name} ORDER BY {keys}")]
                pg_rows = [tuple(_normal(v, t) for v, t in zip(row, table.types, strict=True))
                           for row in pg.execute(f"SELECT {columns} FROM {table.name} ORDER BY {text_keys}")]
                assert pg_rows == lite_rows, table.name
                counts[table.name] = len(lite_rows)
    finally:
        lite.close()
    return counts


def assert_same_views(lite_path: Path, url: str) -> None:
    lite = sqlite3.connect(lite_path)
    try:
        with psycopg.connect(url) as pg:
            for view, order in VIEWS_ORDER.items():
                query_ = f"SELECT * FROM {view} ORDER BY {order}"
                cursor = lite.execute(query_)
                names = [d[0] for d in cursor.description]
                lite_rows = [list(row) for row in cursor]
                if "reasons" in names:  # JSON text on SQLite, jsonb on PostgreSQL
                    at = names.index("reasons")
                    for row in lite_rows:
                        row[at] = None if row[at] is None else json.loads(row[at])
                pg_rows = [[_normal(v, "") for v in row] for row in pg.execute(query_)]
                assert lite_rows, view
                assert pg_rows == lite_rows, view
    finally:
        lite.close()


def source_counts(path: Path) -> dict[str, int]:
    names = [r[0] for r in query(path, "SELECT name FROM sqlite_master WHERE type = 'table'"
                                       " AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'")]
    return {name: query(path, f"SELECT count(*) FROM {name}")[0][0] for name in names}


def test_a_copy_has_every_row_and_view_of_the_source_and_says_what_it_copied(source: Path, pg_url: str) -> None:
    password = psycopg.conninfo.conninfo_to_dict(pg_url)["password"]
    want = source_counts(source)
    ran = linkhub("copy-to", pg_url, "--db", str(source), "--json")
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr == ""  # no progress bar when stderr is not a terminal
    document = json.loads(ran.stdout)
    assert document["resumed"] is False
    assert document["url"] == postgresql.redact(pg_url) and "***" in document["url"]
    assert document["rows"] == {t: n for t, n in want.items() if t != "erasure_salt"}
    assert document["copied"] == document["rows"]
    assert password not in ran.stdout + ran.stderr
    assert assert_same_rows(source, pg_url) == want
    assert_same_views(source, pg_url)


def test_the_text_closes_with_the_counts_per_table(source: Path, pg_url: str) -> None:
    want = source_counts(source)
    ran = linkhub("copy-to", pg_url, "--db", str(source))
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.strip().splitlines()
    assert len(lines) == 1
    assert f"events {want['events']:,}" in lines[0] and f"outbox {want['outbox']:,}" in lines[0]
    assert f"{sum(n for t, n in want.items() if t != 'erasure_salt'):,} rows" in lines[0]
    assert psycopg.conninfo.conninfo_to_dict(pg_url)["password"] not in ran.stdout + ran.stderr


class Interrupted(Exception):
    pass


def test_an_interrupted_copy_resumes_where_it_stopped_and_ends_with_the_same_rows(source: Path, pg_url: str) -> None:
    want = source_counts(source)
    chunks: list[tuple[str, int]] = []

    def fail_after_five(table: str, rows: int) -> None:
        chunks.append((table, rows))
        if len(chunks) == 5:
            raise Interrupted

    with pytest.raises(Interrupted):
        copyto.copy_to(source, pg_url, chunk_rows=2, progress=fail_after_five)
    committed = sum(rows for _, rows in chunks)
    with psycopg.connect(pg_url) as pg:
        there = sum(int(pg.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0])  # type: ignore[index]
                    for t in _tables(pg_url) if t.name != "erasure_salt")
        assert pg.execute("SELECT finished_at FROM copied_from").fetchall() == [(None,)]
    assert len(chunks) == 5 and all(rows <= 2 for _, rows in chunks)
    assert there == committed > 5  # every chunk that was done is committed; the one it failed in is not

    ran = linkhub("copy-to", pg_url, "--db", str(source), "--json", "--chunk-rows", "3")
    assert ran.returncode == 0, ran.stderr
    document = json.loads(ran.stdout)
    assert document["resumed"] is True
    total = sum(n for t, n in want.items() if t != "erasure_salt")
    assert sum(document["copied"].values()) == total - committed  # nothing copied twice
    assert assert_same_rows(source, pg_url) == want
    assert_same_views(source, pg_url)


def test_a_second_copy_and_a_target_with_other_data_are_refused(source: Path, pg_url: str, tmp_path: Path,
                                                                migrated: Path, postgresql_server: Any) -> None:
    assert linkhub("copy-to", pg_url, "--db", str(source)).returncode == 0
    again = linkhub("copy-to", pg_url, "--db", str(source))
    assert again.returncode == 1
    assert "already holds a finished copy of this database" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1

    other = tmp_path / "other.db"
    other.write_bytes(migrated.read_bytes())
    conn = connect(other)  # its own erasure salt: another database
    conn.execute("UPDATE erasure_salt SET salt = randomblob(32)")
    conn.close()
    refused = linkhub("copy-to", pg_url, "--db", str(other))
    assert refused.returncode == 1 and "a copy of another SQLite database" in refused.stderr

    # A database with rows that copy-to did not put there.
    with psycopg.connect(postgresql_server.url(), autocommit=True) as admin:
        admin.execute('DROP DATABASE IF EXISTS "copy_filled" WITH (FORCE)')
        admin.execute('CREATE DATABASE "copy_filled"')
    filled = postgresql_server.url("copy_filled")
    postgresql.migrate_url(filled)
    with psycopg.connect(filled) as pg:
        pg.execute("INSERT INTO accounts (id, name, outreach_secret, api_key_sha256, created_at, updated_at)"
                   " VALUES ('a', 'A', 's', 'h', 'now', 'now')")
    refused = linkhub("copy-to", filled, "--db", str(source))
    assert refused.returncode == 1
    assert "the target is not empty (rows in accounts)" in refused.stderr
    assert postgresql_server.password not in refused.stderr
    with psycopg.connect(filled) as pg:
        assert pg.execute("SELECT count(*) FROM events").fetchone() == (0,)


def test_new_rows_after_the_copy_are_numbered_past_the_copied_ones(source: Path, pg_url: str) -> None:
    assert linkhub("copy-to", pg_url, "--db", str(source)).returncode == 0
    top_seq = query(source, "SELECT max(seq) FROM events")[0][0]
    top_outbox = query(source, "SELECT max(id) FROM outbox")[0][0]
    account, webhook = query(source, "SELECT account_id, id FROM webhooks")[0]
    with psycopg.connect(pg_url) as pg:
        seq = pg.execute("INSERT INTO events (id, account_id, type, occurred_at, received_at, source)"
                         " VALUES ('new', %s, 'open', 'x', 'x', 'api') RETURNING seq", (account,)).fetchone()
        assert seq == (top_seq + 1,)
        outbox = pg.execute("INSERT INTO outbox (webhook_id, event_seq, queued_at, next_attempt_at)"
                            " VALUES (%s, %s, 'x', 'x') RETURNING id", (webhook, top_seq + 1)).fetchone()
        assert outbox == (top_outbox + 1,)
        # Every other numbered column too: its next number is past the highest copied one.
        for table in _tables(pg_url):
            for column in table.identity:
                top = query(source, f"SELECT coalesce(max({column}), 0) FROM {table.name}")[0][0]
                following = pg.execute("SELECT nextval(pg_get_serial_sequence(%s, %s))",
                                       (table.name, column)).fetchone()
                assert following is not None and following[0] > top, table.name


def test_an_unreachable_server_or_a_bad_url_is_one_line_without_the_password(source: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://someone:hunter2-secret@127.0.0.1:{port}/nowhere"
    ran = linkhub("copy-to", url, "--db", str(source))
    assert ran.returncode == 1
    assert ran.stderr.startswith("Error: cannot connect to postgresql://someone:***@127.0.0.1:")
    assert len(ran.stderr.strip().splitlines()) == 1
    assert "hunter2" not in ran.stdout + ran.stderr and "Traceback" not in ran.stderr

    ran = linkhub("copy-to", "mysql://someone:hunter2@127.0.0.1/x", "--db", str(source))
    assert ran.returncode == 2 and "not a postgresql:// or postgres:// URL" in ran.stderr
    assert "hunter2" not in ran.stderr

    missing = source.parent / "missing.db"
    ran = linkhub("copy-to", url, "--db", str(missing))
    assert ran.returncode == 1 and f"no database at {missing}" in ran.stderr
    assert not missing.exists()


def test_backup_of_a_postgresql_database_points_at_pg_dump(tmp_path: Path) -> None:
    ran = linkhub("backup", str(tmp_path / "copy.db"), "--db", "postgresql://someone:pw-secret@127.0.0.1/linkhub")
    assert ran.returncode == 2
    assert "pg_dump" in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1
    assert "pw-secret" not in ran.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_terminal_gets_a_progress_bar_of_rows_without_the_password(source: Path, pg_url: str) -> None:
    """stderr a terminal (a pty): click's bar counts the rows; stdout still gets the closing line alone."""
    import os
    import pty
    import subprocess
    import sys
    import threading

    want = sum(n for t, n in source_counts(source).items() if t != "erasure_salt")
    master, slave = pty.openpty()
    drawn = bytearray()

    def read() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the process closed its end
                return
            if not data:
                return
            drawn.extend(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    process = subprocess.Popen([sys.executable, "-m", "linkhub", "copy-to", pg_url, "--db", str(source),
                                "--chunk-rows", "7"], stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    out, _ = process.communicate(timeout=120)
    reader.join(timeout=30)
    os.close(master)
    assert process.returncode == 0, drawn.decode(errors="replace")
    bar = drawn.decode(errors="replace")
    assert "copying to postgresql://linkhub_test:***@" in bar
    assert f"{want}/{want}" in bar
    assert psycopg.conninfo.conninfo_to_dict(pg_url)["password"] not in bar + out
    assert out.count("\n") == 1 and out.startswith(f"copied {source} to ")


def test_a_nul_character_sqlite_took_is_copied_as_the_replacement_character(app: Any, db_path: Path,
                                                                             pg_url: str) -> None:
    """SQLite stores U+0000 like any character and a sender may post it; PostgreSQL's text and jsonb refuse
    it, so the copy puts U+FFFD in its place, says how many values it changed, and copies everything."""
    account = create_account(db_path)
    with app.client() as client:
        post_events(client, account, [
            event("nul-details", "open", 1, details={"note": "a\u0000b", "k\u0000": ["x\u0000"], "plain": "\\u0000"}),
            event("nul-email", "open", 2, email="a\u0000b@example.com"),
            event("clean", "open", 3),
        ])
    ran = linkhub("copy-to", pg_url, "--db", str(db_path), "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["nul_replaced"] == 2
    with psycopg.connect(pg_url) as pg:
        rows = pg.execute("SELECT id, email, details FROM events ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == ["nul-details", "nul-email", "clean"]
    # The literal six characters `\u0000` (an escaped backslash, then u0000) are text, not a NUL: kept.
    assert rows[0][2] == {"note": "a\ufffdb", "k\ufffd": ["x\ufffd"], "plain": "\\u0000"}
    assert rows[1][1] == "a\ufffdb@example.com"
    assert rows[2][2] == json.loads(query(db_path, "SELECT details FROM events WHERE id = 'clean'")[0][0])
