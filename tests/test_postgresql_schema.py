"""PostgreSQL's schema against a real server (tests/pgserver.py): the migrations apply once, under a lock,
and make the tables, views and columns SQLite's make — and the reporting views count the same."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from linkhub.store import connect, postgresql, schema

from conftest import linkhub
from pgserver import Cluster
from servers import start_server

# Every test here makes PostgreSQL databases of its own (pgserver.py's pg_url) and several compare them with
# a SQLite file: the module runs once, in the SQLite run.
pytestmark = pytest.mark.sqlite_file


def _versions(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return [(int(v), str(n)) for v, n in conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1")]


def test_every_sqlite_migration_has_its_postgresql_twin() -> None:
    """Same numbers, same names: a SQLite migration added alone fails here (and so does a PostgreSQL one)."""
    assert [(m.version, m.name) for m in postgresql.available()] == [(m.version, m.name) for m in schema.available()]


def test_all_migrations_apply_and_a_second_run_applies_nothing(pg_url: str) -> None:
    expected = [(m.version, m.name) for m in schema.available()]
    assert postgresql.migrate_url(pg_url) == [f"applied {v:04d}_{n}" for v, n in expected]
    assert _versions(pg_url) == expected
    assert postgresql.migrate_url(pg_url) == []
    assert _versions(pg_url) == expected


def test_the_erasure_salt_is_random_per_database(postgresql_server: Cluster, pg_url: str) -> None:
    postgresql.migrate_url(pg_url)
    with psycopg.connect(pg_url) as conn:
        first = conn.execute("SELECT salt FROM erasure_salt").fetchall()
    with psycopg.connect(postgresql_server.url(), autocommit=True) as admin:
        admin.execute('DROP DATABASE IF EXISTS "salt_two" WITH (FORCE)')
        admin.execute('CREATE DATABASE "salt_two"')
    postgresql.migrate_url(postgresql_server.url("salt_two"))
    with psycopg.connect(postgresql_server.url("salt_two")) as conn:
        second = conn.execute("SELECT salt FROM erasure_salt").fetchall()
    assert len(first) == len(second) == 1
    assert len(first[0][0]) == len(second[0][0]) == 32
    assert first[0][0] != second[0][0]


def test_four_threads_migrating_at_once_apply_each_migration_once(pg_url: str) -> None:
    """Four connections released together: the advisory lock lets one apply each migration, once."""
    start = threading.Barrier(4)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with postgresql.connect(pg_url) as conn:
                start.wait(timeout=60)
                results.append(postgresql.migrate(conn))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(results) == 4
    applied = sorted(line for lines in results for line in lines)
    assert applied == sorted(f"applied {m.version:04d}_{m.name}" for m in schema.available())
    assert len(_versions(pg_url)) == len(schema.available())


def test_four_migrate_processes_at_once_migrate_once(pg_url: str) -> None:
    """`linkhub migrate --db postgresql://…` in four processes started together: each migration once in all."""
    processes = [subprocess.Popen([sys.executable, "-m", "linkhub", "migrate", "--db", pg_url, "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], [err for _, err in outputs]
    documents = [json.loads(out) for out, _ in outputs]
    changes = sorted(line for document in documents for line in document["changes"])
    assert changes == sorted(f"applied {m.version:04d}_{m.name}" for m in schema.available())
    assert sum(document["up_to_date"] for document in documents) == 4 - sum(bool(d["changes"]) for d in documents)
    assert all(pg_url.split("@")[1] in document["url"] and "***" in document["url"] for document in documents)
    assert len(_versions(pg_url)) == len(schema.available())


def test_migrate_refuses_an_unreachable_server_in_one_line_without_the_password() -> None:
    url = f"postgresql://someone:hunter2-secret@127.0.0.1:{_closed_port()}/nowhere"
    ran = linkhub("migrate", "--db", url)
    assert ran.returncode == 1
    assert ran.stderr.startswith("Error: cannot connect to postgresql://someone:***@127.0.0.1:")
    assert len(ran.stderr.strip().splitlines()) == 1
    assert "hunter2" not in ran.stderr + ran.stdout
    assert "Traceback" not in ran.stderr


def test_migrate_with_a_path_still_makes_a_sqlite_file(tmp_path: Path) -> None:
    ran = linkhub("migrate", "--db", str(tmp_path / "x.db"), "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["created"] is True
    assert (tmp_path / "x.db").exists()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the same schema ------------------------------------------------------------------------------------


def _sqlite_shape(path: Path) -> dict[str, tuple[str, list[str]]]:
    conn = sqlite3.connect(path)
    try:
        objects = conn.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view')"
                               " AND name NOT LIKE 'sqlite_%'").fetchall()
        return {name: ("view" if kind == "view" else "table",
                       [row[0] for row in conn.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (name,))])
                for name, kind in objects}
    finally:
        conn.close()


def _postgresql_shape(url: str) -> dict[str, tuple[str, list[str]]]:
    with psycopg.connect(url) as conn:
        objects = conn.execute("SELECT table_name, table_type FROM information_schema.tables"
                               " WHERE table_schema = 'public'").fetchall()
        return {str(name): ("view" if kind == "VIEW" else "table",
                            [str(row[0]) for row in conn.execute(
                                "SELECT column_name FROM information_schema.columns"
                                " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
                                (name,))])
                for name, kind in objects}


def test_both_dialects_have_the_same_tables_views_and_columns_in_order(migrated: Path, pg_url: str) -> None:
    postgresql.migrate_url(pg_url)
    sqlite_shape, postgresql_shape = _sqlite_shape(migrated), _postgresql_shape(pg_url)
    assert {"events", "links", "outbox", "leases", "mailings", "clicks", "opens", "mailing_stats"} <= set(sqlite_shape)
    assert sorted(postgresql_shape) == sorted(sqlite_shape)
    for name, shape in sqlite_shape.items():
        assert postgresql_shape[name] == shape, name


def test_both_dialects_have_the_same_indexes(migrated: Path, pg_url: str) -> None:
    postgresql.migrate_url(pg_url)
    conn = sqlite3.connect(migrated)
    try:
        sqlite_indexes = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'")}
    finally:
        conn.close()
    with psycopg.connect(pg_url) as pg:
        # A primary key's or UNIQUE column's index is implicit on SQLite (sqlite_autoindex_…): leave those out.
        pg_indexes = {str(row[0]) for row in pg.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
            " AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'")}
    assert pg_indexes == sqlite_indexes


# -- the same numbers -----------------------------------------------------------------------------------

ACCOUNT = ("acct-1", "Acme", "secret", "sha", None, None, "2026-11-01T00:00:00.000Z", "2026-11-01T00:00:00.000Z")
# (code, account, target, original, mailing, prospect id, prospect email, created)
LINKS = [
    ("c1", "acct-1", "https://t.example/a1", "https://a.example", "m1", "p1", "Ann@Ex.com", "2026-11-02T08:00:00.000Z"),
    ("c2", "acct-1", "https://t.example/b1", "https://b.example", "m1", "p1", "Ann@Ex.com", "2026-11-02T08:00:00.000Z"),
    ("c3", "acct-1", "https://t.example/a2", "https://a.example", "m1", "p2", None, "2026-11-02T08:01:00.000Z"),
    ("c4", "acct-1", "https://t.example/a3", "https://a.example", "m2", "p3", "cy@ex.com", "2026-11-03T08:00:00.000Z"),
]
MAILINGS = [("acct-1", "m1", "2026-11-02T07:59:00.000Z"), ("acct-1", "m2", "2026-11-03T08:00:00.000Z"),
            ("acct-1", "m3", "2026-11-04T00:00:00.000Z")]


def _event(n: int, kind: str, mailing: str | None, email: str | None, recipient: str | None, *,
           url: str | None = None, details: dict[str, Any] | None = None, via: str | None = None,
           minute: int = 0) -> tuple[Any, ...]:
    details = details or {}
    verdict = details.get("verdict") if kind in ("click", "open") else None
    at = f"2026-11-02T09:{minute:02d}:{n % 60:02d}.000Z"
    return (n, f"ev{n}", "acct-1", kind, at, at, "api", email, recipient, mailing, None, url,
            "c1" if kind == "click" else None, json.dumps(details), verdict, via)


MALFORMED = 16
EVENTS = [
    _event(1, "sent", "m1", "ann@ex.com", "p1"),
    _event(2, "sent", "m1", None, "p2"),
    _event(3, "sent", "m1", "Bob@Example.com", None),
    _event(4, "delivered", "m1", "ann@ex.com", "p1"),
    _event(5, "bounce", "m1", "bob@example.com", None, details={"category": "hard"}),
    _event(6, "bounce", "m1", None, "p2", details={"category": "soft"}),
    _event(7, "open", "m1", "ANN@ex.com", "p1", details={"verdict": "human", "first_open": True}, minute=1),
    _event(8, "open", "m1", "ann@ex.com", "p1", details={"verdict": "human", "proxy": "gmail"}, via="proxy"),
    _event(9, "open", "m1", None, "p2", details={"verdict": "unknown", "apple_mpp": True}, via="apple_mpp"),
    _event(10, "open", "m1", "bob@example.com", None, details={"verdict": "scanner", "bot": True, "score": 90}),
    _event(11, "open", "m1", "bob@example.com", None),  # posted by a sender: no verdict, a person's
    _event(12, "click", "m1", "ann@ex.com", "p1", url="https://a.example",
           details={"verdict": "human", "score": 5, "reasons": [{"code": "ok", "weight": 0}]}, minute=2),
    _event(13, "click", "m1", "Ann@Ex.com", "p1", url="https://a.example",
           details={"verdict": "bot", "bot": True, "method": "HEAD"}, minute=3),
    _event(14, "click", "m1", None, "p2", url="https://a.example", minute=4),
    _event(15, "click", "m1", "bob@example.com", None, url="https://b.example",
           details={"verdict": "scanner", "bot": 1, "target": "https://t.example/b1"}, minute=5),
    # What a sender may post in details: the views must not fail on it (SQLite's json_extract never does).
    _event(MALFORMED, "click", "m1", "dan@example.com", None, url="https://b.example",
           details={"score": "high", "bot": "yes", "first_open": "no", "reasons": "none"}, minute=6),
    _event(17, "unsubscribe", "m1", "bob@example.com", None, minute=7),
    _event(18, "spamcomplaint", "m1", None, "p2", minute=8),
    _event(19, "sent", "m2", "cy@ex.com", "p3"),
    _event(20, "open", None, "erin@example.com", None),  # names a recipient, no mailing
]
EVENT_COLUMNS = ("seq, id, account_id, type, occurred_at, received_at, source, email, recipient_id, mailing_id,"
                 " message_id, url, code, details, verdict, via")


def _fill(execute: Any, mark: str) -> None:
    def insert(table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join([mark] * len(rows[0]))
        for row in rows:
            execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", row)

    insert("accounts", "id, name, outreach_secret, api_key_sha256, public_url, link_filter, created_at, updated_at",
           [ACCOUNT])
    insert("links", "code, account_id, target_url, original_url, mailing_id, prospect_id, prospect_email, created_at",
           LINKS)
    insert("mailings", "account_id, mailing_id, first_at", MAILINGS)
    insert("events", EVENT_COLUMNS, EVENTS)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


VIEWS_ORDER = {
    "mailing_stats": "account_id, mailing_id",
    "link_stats": "account_id, mailing_id, original_url",
    "recipient_activity": "account_id, recipient",
    "clicks": "seq",
    "opens": "seq",
}


@pytest.fixture
def filled(migrated: Path, tmp_path: Path, pg_url: str) -> Iterator[tuple[sqlite3.Connection, psycopg.Connection[Any]]]:
    lite_path = tmp_path / "filled.db"
    lite_path.write_bytes(migrated.read_bytes())
    lite = connect(lite_path)
    with lite:
        _fill(lite.execute, "?")
    postgresql.migrate_url(pg_url)
    pg = psycopg.connect(pg_url)
    with pg.transaction():
        _fill(pg.execute, "%s")
    try:
        yield lite, pg
    finally:
        pg.close()
        lite.close()


@pytest.mark.parametrize("view", sorted(VIEWS_ORDER))
def test_the_reporting_views_count_the_same_on_both(filled: tuple[sqlite3.Connection, psycopg.Connection[Any]],
                                                    view: str) -> None:
    lite, pg = filled
    # Event 16's details are not what linkhub writes: there the dialects differ on purpose (below).
    where = f"WHERE seq <> {MALFORMED}" if view in ("clicks", "opens") else ""
    query = f"SELECT * FROM {view} {where} ORDER BY {VIEWS_ORDER[view]}"
    lite_rows = [tuple(row) for row in lite.execute(query).fetchall()]
    pg_rows = [tuple(_plain(v) for v in row) for row in pg.execute(query).fetchall()]
    if view in ("clicks", "opens"):
        # reasons: SQLite's json_extract answers JSON text for an array, PostgreSQL's -> a jsonb value.
        lite_names = [d[0] for d in lite.execute(query).description]
        at = lite_names.index("reasons")
        lite_rows = [(*r[:at], None if r[at] is None else json.loads(r[at]), *r[at + 1:]) for r in lite_rows]
    assert lite_rows, view
    assert pg_rows == lite_rows


def test_details_of_the_wrong_type_read_as_null_on_postgresql(
        filled: tuple[sqlite3.Connection, psycopg.Connection[Any]]) -> None:
    """SQLite's json_extract answers whatever a sender put in details; PostgreSQL's typed columns answer NULL
    (or the default) for a value of the wrong type instead of failing the whole query."""
    _, pg = filled
    row = pg.execute("SELECT score, bot, reasons, verdict FROM clicks WHERE seq = %s", (MALFORMED,)).fetchone()
    assert row == (None, 0, "none", None)


def test_mailing_stats_numbers_are_the_ones_counted_by_hand(
        filled: tuple[sqlite3.Connection, psycopg.Connection[Any]]) -> None:
    """The dataset above, counted independently of either view, on PostgreSQL."""
    _, pg = filled
    cursor = pg.execute("SELECT * FROM mailing_stats WHERE account_id = 'acct-1' AND mailing_id = 'm1'")
    row = dict(zip([d.name for d in cursor.description or ()], cursor.fetchone() or (), strict=True))
    # recipients: ann (links + sent), p2 (links + sent), bob (sent) → 3
    assert row["recipients"] == 3
    assert (row["sent"], row["delivered"], row["bounces"], row["hard_bounces"], row["soft_bounces"]) == (3, 1, 2, 1, 1)
    # opens 7–11: people's are 7, 8 (proxied) and 11 (posted); 9 is Apple MPP's, 10 a scanner's
    assert (row["opens"], row["unique_opens"], row["people_opens"], row["unique_people_opens"]) == (5, 3, 3, 2)
    assert (row["proxied_opens"], row["apple_mpp_opens"], row["machine_opens"]) == (1, 1, 1)
    # clicks 12–16: people's are 12 (human), 14 (no verdict), 16 (no valid verdict) → ann, p2, dan
    assert (row["clicks"], row["unique_clicks"], row["people_clicks"], row["unique_people_clicks"]) == (5, 4, 3, 3)
    assert row["machine_clicks"] == 2
    assert (row["unsubscribes"], row["spam_complaints"]) == (1, 1)
    assert row["click_through_rate"] == pytest.approx(3 / 3)
    assert row["open_rate"] == pytest.approx(2 / 3)
    assert row["first_at"] == "2026-11-02T07:59:00.000Z"


def test_every_postgresql_view_can_be_queried(pg_url: str) -> None:
    postgresql.migrate_url(pg_url)
    with psycopg.connect(pg_url) as conn:
        views = [str(row[0]) for row in conn.execute(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'public' ORDER BY 1")]
        assert views == sorted(["clicks", "opens", "mailing_stats", "link_stats", "recipient_activity"])
        for view in views:
            conn.execute(f"SELECT * FROM {view} LIMIT 0").fetchall()


def test_serve_and_the_commands_take_a_url(pg_url: str, tmp_path: Path) -> None:
    """--db (or LINKHUB_DB) a postgresql:// URL: the server serves on it, and a command works on it."""
    postgresql.migrate_url(pg_url)
    server = start_server(pg_url)
    try:
        with server.client() as client:
            assert client.get("/healthz").status_code == 200
    finally:
        assert server.stop() == 0, server.output
    ran = linkhub("accounts", "create", "A", "--outreach-secret", "s", "--json", "--db", pg_url, cwd=tmp_path)
    assert ran.returncode == 0, ran.output
    ran = linkhub("accounts", "list", "--json", env={"LINKHUB_DB": pg_url.replace("postgresql://", "postgres://", 1)},
                  cwd=tmp_path)
    assert ran.returncode == 0, ran.output
    assert [account["name"] for account in json.loads(ran.stdout)] == ["A"]
    assert list(tmp_path.iterdir()) == []  # no file made of the URL


@pytest.mark.parametrize(("command", "says"), [
    (["backup", "out.db"], "pg_dump"),
    (["check"], "checks a SQLite file"),
    (["copy-to", "postgresql://someone@127.0.0.1:5432/target"], "copies from a SQLite file"),
])
def test_the_commands_on_the_file_itself_refuse_a_url_in_one_line(tmp_path: Path, command: list[str],
                                                                   says: str) -> None:
    """backup, check and copy-to's --db work on a SQLite file: a URL is refused in one line saying what to use,
    its password never shown, and no file is made of it."""
    ran = linkhub(*command, "--db", "postgresql://someone:pw-secret@127.0.0.1:5432/linkhub", cwd=tmp_path)
    assert ran.returncode == 2
    assert says in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert "pw-secret" not in ran.output and "Traceback" not in ran.stderr
    assert list(tmp_path.iterdir()) == []
    ran = linkhub(*command, env={"LINKHUB_DB": "postgres://someone:pw-secret@127.0.0.1/linkhub"}, cwd=tmp_path)
    assert ran.returncode == 2 and says in ran.stderr and "pw-secret" not in ran.output
