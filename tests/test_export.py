"""`linkhub events export` and `linkhub clicks export`: what they write equals what the database holds
(read back here with queries of the test's own), in both formats, filtered, resumed exactly after the
last seq written, streamed a page at a time; and an output file that is whole or absent."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from linkhub.cli import common
from linkhub.core import export
from linkhub.core.events import Event, from_row, insert_many, public
from linkhub.store import Connection, connect, transaction

from conftest import ON_POSTGRESQL, create_account, linkhub, query

TYPES = ("sent", "delivered", "open", "click", "bounce")
# Values CSV must quote and JSON must escape, and text beyond ASCII.
AWKWARD = 'Ünïcode, "quoted"\nand a new line'


def _event(account_id: str, i: int) -> Event:
    type_ = TYPES[i % len(TYPES)]
    details: dict[str, Any] = {"n": i}
    if type_ == "click":
        verdict = ("human", "unknown", "scanner", "bot")[i % 4]
        details = {"ip": f"203.0.113.{i % 250}", "user_agent": "Mozilla/5.0", "device": "iPhone", "os": "iOS 17",
                   "browser": "Safari", "verdict": verdict, "score": i % 100, "classifier": "test-1",
                   "reasons": [{"code": "ua_browser", "weight": -20, "evidence": AWKWARD}], "target": f"https://t.example/{i}"}
    return Event(id=f"e-{i}", account_id=account_id, type=type_,
                 occurred_at=f"2026-11-{1 + i % 28:02d}T09:{i % 60:02d}:00.000Z",
                 received_at="2026-11-30T00:00:00.000Z",
                 source="redirect" if type_ == "click" else "api", email=f"p{i}@example.com" if i % 7 else None,
                 recipient_id=str(i), mailing_id=f"m-{i % 3}", message_id=None,
                 url=f"https://example.com/{i}" if type_ == "click" else None,
                 code=f"c{i}" if type_ == "click" else None,
                 details={**details, "note": AWKWARD} if i % 11 == 0 else details)


def seed(db_path: Path, count: int, accounts: int = 2) -> list[str]:
    """`count` events spread over `accounts` new accounts, stored by the event store's own insert."""
    ids = [create_account(db_path).id for _ in range(accounts)]
    conn = connect(db_path)
    try:
        with transaction(conn):
            insert_many(conn, [_event(ids[i % accounts], i) for i in range(count)])
    finally:
        conn.close()
    return ids


def rows(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    return [dict(row) for row in query(db_path, sql, params)]


def view_columns(db_path: Path) -> list[str]:
    """The clicks view's columns in the schema's order, as the database describes them."""
    conn = connect(db_path, readonly=True)
    try:
        return [column[0] for column in conn.execute("SELECT * FROM clicks LIMIT 0").description]
    finally:
        conn.close()


def expected_events(db_path: Path, where: str = "TRUE", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    found = rows(db_path, f"SELECT * FROM events WHERE {where} ORDER BY seq", params)
    # Every column but `verdict` and `via`, the reporting index's copies of details (which is exported).
    return [{**{k: v for k, v in row.items() if k not in ("verdict", "via")}, "details": json.loads(row["details"])}
            for row in found]


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def last_seq_said(stderr: str) -> int:
    return int(stderr.strip().rsplit("last seq ", 1)[1])


def test_events_as_json_lines_equal_the_table_and_the_read_api(db_path: Path) -> None:
    seed(db_path, 300)
    ran = linkhub("events", "export", "--db", str(db_path))
    assert ran.returncode == 0, ran.output
    got = jsonl(ran.stdout)
    want = expected_events(db_path)
    assert len(got) == len(want) == 300
    assert got == want
    assert list(got[0]) == list(export.EVENT_COLUMNS)
    # Each object is the read API's view of the event, with the account it belongs to.
    conn = connect(db_path, readonly=True)
    try:
        for line, row in zip(got, conn.execute(f"SELECT {export.EVENT_COLUMNS[0]}, * FROM events ORDER BY seq"),
                             strict=True):
            assert {k: v for k, v in line.items() if k != "account_id"} == public(from_row(row), row["seq"])
    finally:
        conn.close()
    assert ran.stderr == f"exported 300 events to stdout; last seq {want[-1]['seq']}\n"


def test_events_as_csv_have_a_header_and_one_column_per_field(db_path: Path) -> None:
    seed(db_path, 120)
    ran = linkhub("events", "export", "--format", "csv", "--db", str(db_path))
    assert ran.returncode == 0, ran.output
    reader = csv.DictReader(io.StringIO(ran.stdout, newline=""))
    assert tuple(reader.fieldnames or ()) == export.EVENT_COLUMNS
    got = list(reader)
    want = expected_events(db_path)
    assert len(got) == len(want) == 120
    for line, row in zip(got, want, strict=True):
        assert json.loads(line.pop("details")) == row.pop("details")
        # CSV has no null: an absent value is an empty cell.
        assert line == {k: "" if v is None else str(v) for k, v in row.items()}


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_clicks_have_the_views_columns(db_path: Path, fmt: str) -> None:
    seed(db_path, 200)
    ran = linkhub("clicks", "export", "--format", fmt, "--db", str(db_path))
    assert ran.returncode == 0, ran.output
    want = rows(db_path, "SELECT * FROM clicks ORDER BY seq")
    names = view_columns(db_path)
    assert len(want) == 40 and {"verdict", "score", "reasons", "prospect_email", "target_url"} <= set(names)
    if fmt == "jsonl":
        got = jsonl(ran.stdout)
        assert [list(line) for line in got] == [names] * len(want)
        # reasons is a JSON list in JSON Lines; the view holds it as JSON text.
        assert got == [{**row, "reasons": json.loads(row["reasons"])} for row in want]
    else:
        reader = csv.DictReader(io.StringIO(ran.stdout, newline=""))
        assert reader.fieldnames == names
        got_csv = list(reader)
        assert got_csv == [{k: "" if v is None else str(v) for k, v in row.items()} for row in want]
        assert json.loads(got_csv[0]["reasons"])[0]["evidence"] == AWKWARD
    assert last_seq_said(ran.stderr) == want[-1]["seq"]


def test_filters_choose_the_same_rows_as_a_query(db_path: Path) -> None:
    first, _second = seed(db_path, 500)
    ran = linkhub("events", "export", "--account", first, "--type", "open", "--type", "bounce",
                  "--since", "2026-11-05", "--until", "2026-11-20T12:00:00Z", "--db", str(db_path))
    assert ran.returncode == 0, ran.output
    want = expected_events(db_path, "account_id = ? AND type IN ('open', 'bounce') AND occurred_at >= ? AND "
                           "occurred_at < ?", (first, "2026-11-05T00:00:00.000Z", "2026-11-20T12:00:00.000Z"))
    assert 10 < len(want) < 100
    assert jsonl(ran.stdout) == want

    clicks = linkhub("clicks", "export", "--account", first, "--since", "2026-11-10", "--db", str(db_path))
    assert clicks.returncode == 0, clicks.output
    want_clicks = rows(db_path, "SELECT seq FROM clicks WHERE account_id = ? AND occurred_at >= ? ORDER BY seq",
                       (first, "2026-11-10T00:00:00.000Z"))
    assert [line["seq"] for line in jsonl(clicks.stdout)] == [row["seq"] for row in want_clicks]
    assert want_clicks


def test_after_seq_continues_exactly_after_the_last_line(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(db_path, 1000)
    monkeypatch.setattr(export, "PAGE_ROWS", 64)
    whole = linkhub("events", "export", "--type", "open", "--type", "click", "--db", str(db_path))
    lines = whole.stdout.splitlines(keepends=True)
    assert len(lines) == 400
    # Stopped after any line: that line's seq continues it, with no gap and no row twice.
    for cut in (1, 63, 64, 65, 257, 399):
        resumed = linkhub("events", "export", "--type", "open", "--type", "click",
                          "--after-seq", str(json.loads(lines[cut - 1])["seq"]), "--db", str(db_path))
        assert resumed.returncode == 0, resumed.output
        assert "".join(lines[:cut]) + resumed.stdout == whole.stdout
    # After the last one: nothing, and the same seq said again, so the loop "resume until empty" ends.
    end = last_seq_said(whole.stderr)
    done = linkhub("events", "export", "--type", "open", "--type", "click", "--after-seq", str(end),
                   "--db", str(db_path))
    assert done.returncode == 0 and done.stdout == "" and last_seq_said(done.stderr) == end


def test_an_interrupted_export_keeps_its_rows_and_says_where_to_continue(
        db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(db_path, 600)
    monkeypatch.setattr(export, "PAGE_ROWS", 100)
    render = export.render
    pages_done = 0

    def failing(*args: Any) -> bytes:
        nonlocal pages_done
        pages_done += 1
        if pages_done == 4:
            raise OSError(28, "No space left on device")
        return render(*args)

    monkeypatch.setattr(export, "render", failing)
    out = tmp_path / "events.jsonl"
    ran = linkhub("events", "export", "--output", str(out), "--db", str(db_path))
    assert ran.returncode == 1 and "Traceback" not in ran.output
    assert not out.exists()  # never a half file under the final name
    partial = tmp_path / "events.jsonl.partial"
    kept = jsonl(partial.read_text())
    assert len(kept) == 300
    assert f"300 events up to seq {kept[-1]['seq']} are in {partial}; continue with --after-seq {kept[-1]['seq']}" \
        in ran.stderr
    assert "No space left on device" in ran.stderr

    monkeypatch.setattr(export, "render", render)
    rest = tmp_path / "rest.jsonl"
    again = linkhub("events", "export", "--after-seq", str(kept[-1]["seq"]), "--output", str(rest),
                    "--db", str(db_path))
    assert again.returncode == 0, again.output
    assert kept + jsonl(rest.read_text()) == expected_events(db_path)


def test_output_is_written_whole_private_and_never_over_a_file(db_path: Path, tmp_path: Path) -> None:
    seed(db_path, 50)
    out = tmp_path / "clicks.csv"
    ran = linkhub("clicks", "export", "--format", "csv", "--output", str(out), "--db", str(db_path))
    assert ran.returncode == 0 and ran.stdout == ""
    assert ran.stderr == f"exported 10 clicks to {out}; last seq {last_seq_said(ran.stderr)}\n"
    assert len(out.read_text().splitlines()) == 11
    assert out.stat().st_mode & 0o777 == 0o600  # addresses and IPs: the owner's only, as the database is
    assert list(tmp_path.glob("*.partial")) == []

    out.write_text("keep me")
    refused = linkhub("clicks", "export", "--output", str(out), "--db", str(db_path))
    assert refused.returncode == 1
    assert refused.stderr == f"Error: {out} exists: choose another name, or add --force to replace it\n"
    assert out.read_text() == "keep me"
    forced = linkhub("clicks", "export", "--output", str(out), "--force", "--db", str(db_path))
    assert forced.returncode == 0 and len(jsonl(out.read_text())) == 10


def test_the_export_reads_in_pages_of_bounded_size(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streaming, counted: a fetch of everything would be one statement without a LIMIT."""
    seed(db_path, 1050, accounts=1)
    monkeypatch.setattr(export, "PAGE_ROWS", 100)
    statements: list[str] = []
    opened = common.connect

    def traced(path: Path, **options: Any) -> Connection:
        conn = opened(path, **options)
        if ON_POSTGRESQL:  # no trace callback: each statement as it is asked for, its LIMIT's value spelt out
            execute = conn.execute

            def execute_traced(sql: str, params: Any = (), /) -> Any:
                statements.append(sql[:-1] + str(params[-1]) if sql.endswith("LIMIT ?") else sql)
                return execute(sql, params)

            conn.execute = execute_traced  # type: ignore[method-assign]
        else:
            conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(common, "connect", traced)
    ran = linkhub("events", "export", "--db", str(db_path))
    assert ran.returncode == 0 and len(ran.stdout.splitlines()) == 1050
    reads = [s for s in statements if "FROM events WHERE" in s]
    assert len(reads) == 11  # 10 full pages and the short last one
    assert all(s.endswith("ORDER BY seq LIMIT 100") for s in reads)


def _peak(db_path: Path, out: Path) -> int:
    tracemalloc.start()
    try:
        ran = linkhub("events", "export", "--output", str(out), "--force", "--db", str(db_path))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert ran.returncode == 0, ran.output


@pytest.mark.sqlite_file  # copies the migrated file, measures what SQLite's pages cost the process
def test_memory_does_not_grow_with_the_database(tmp_path: Path, migrated: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's own peak allocation (tracemalloc, in this process) on a database 4× larger is about
    the same: a page, not the table."""
    monkeypatch.setattr(export, "PAGE_ROWS", 200)
    peaks = []
    for count in (1000, 4000):
        db = tmp_path / f"{count}.db"
        db.write_bytes(migrated.read_bytes())
        seed(db, count, accounts=1)
        peaks.append(_peak(db, tmp_path / "out.jsonl"))
    small, large = peaks
    assert large < small * 1.5, peaks


@pytest.mark.skipif(ON_POSTGRESQL, reason="SQLite's query plan: PostgreSQL's planner chooses its own")
def test_pages_walk_the_table_by_seq_without_sorting(db_path: Path) -> None:
    """Each page is a range of the rowid: a short read, however large the file, with no sort of the
    account's rows per page."""
    conn = connect(db_path, readonly=True)
    try:
        for source in ("events", "clicks"):
            q = export.Query(account_id="a", types=("open",) if source == "events" else (), since="2026-01-01",
                             until="2027-01-01", after=10)
            sql, params = export.sql(q, source, 10, 1000, 100)  # type: ignore[arg-type]
            plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
            assert "INTEGER PRIMARY KEY" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        conn.close()


@pytest.mark.skipif(not ON_POSTGRESQL, reason="PostgreSQL's plan")
def test_pages_can_walk_the_table_by_seq_without_sorting_on_postgresql(db_path: Path) -> None:
    """Each page can be a range of the primary key in seq order, with no sort of the account's rows per page.
    (PostgreSQL's planner reads a table this small whole; told not to, what it can do instead shows.)"""
    conn = connect(db_path, readonly=True)
    try:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        conn.execute("SET enable_sort = off")
        for source in ("events", "clicks"):
            q = export.Query(account_id="a", types=("open",) if source == "events" else (), since="2026-01-01",
                             until="2027-01-01", after=10)
            sql, params = export.sql(q, source, 10, 1000, 100, postgresql=True)  # type: ignore[arg-type]
            plan = " ".join(row[0] for row in conn.execute("EXPLAIN " + sql, params))
            assert "Index Scan using events_pkey" in plan and "Sort" not in plan, plan
    finally:
        conn.close()


@pytest.mark.parametrize(("args", "message"), [
    (["--account", "nope"], "Error: no account with id 'nope'"),
    (["--since", "yesterday"], "--since"),
    (["--since", "2026-11-10", "--until", "2026-11-01"], "--until"),
    (["--type", "purchase"], "--type"),
    (["--format", "xml"], "--format"),
    (["--after-seq", "-1"], "--after-seq"),
])
def test_bad_options_are_one_line(db_path: Path, args: list[str], message: str) -> None:
    seed(db_path, 5)
    ran = linkhub("events", "export", *args, "--db", str(db_path))
    assert ran.returncode != 0 and ran.stdout == "" and "Traceback" not in ran.output
    assert len(ran.stderr.splitlines()) == 1 and message in ran.stderr, ran.stderr


def test_a_missing_database_is_said_not_created(tmp_path: Path) -> None:
    ran = linkhub("clicks", "export", "--db", str(tmp_path / "none.db"))
    assert ran.returncode == 1 and "no database at" in ran.stderr
    assert not (tmp_path / "none.db").exists()


def test_json_summary_and_no_bar_when_piped(db_path: Path) -> None:
    seed(db_path, 30)
    ran = linkhub("events", "export", "--json", "--db", str(db_path))
    summary = json.loads(ran.stderr)
    assert summary == {"source": "events", "format": "jsonl", "output": "stdout", "rows": 30,
                       "last_seq": summary["through_seq"], "through_seq": jsonl(ran.stdout)[-1]["seq"]}
    piped = linkhub("events", "export", "--db", str(db_path))
    assert piped.stderr.startswith("exported") and "exporting" not in piped.stderr


def _stderr_on_a_terminal(*args: str) -> tuple[int, str]:
    """`python -m linkhub ARGS` with stderr on a pseudo-terminal (stdout to /dev/null): what it showed there."""
    leader, follower = pty.openpty()
    with open(os.devnull, "wb") as devnull:
        process = subprocess.Popen([sys.executable, "-m", "linkhub", *args], stdout=devnull, stderr=follower,
                                   stdin=subprocess.DEVNULL,
                                   env={k: v for k, v in os.environ.items() if not k.startswith("LINKHUB_")})
    os.close(follower)
    shown = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 60)
            if not ready:
                break
            try:
                data = os.read(leader, 4096)
            except OSError:  # the process closed its end
                break
            if not data:
                break
            shown += data
    finally:
        os.close(leader)
        code = process.wait(timeout=60)
    return code, shown.decode(errors="replace")


def test_a_progress_bar_when_stderr_is_a_terminal(db_path: Path) -> None:
    seed(db_path, 200)
    code, shown = _stderr_on_a_terminal("events", "export", "--db", str(db_path))
    assert code == 0
    assert "exporting events" in shown and "100%" in shown and "exported 200 events to stdout" in shown
    code, shown = _stderr_on_a_terminal("events", "export", "--json", "--db", str(db_path))
    assert code == 0 and "exporting" not in shown and json.loads(shown)["rows"] == 200


def test_a_posted_click_whose_reasons_are_not_json_keeps_them_as_text(db_path: Path) -> None:
    account_id = create_account(db_path).id
    conn = connect(db_path)
    try:
        with transaction(conn):
            insert_many(conn, [Event(id="p-1", account_id=account_id, type="click",
                                     occurred_at="2026-11-02T10:00:00.000Z", received_at="2026-11-02T10:00:01.000Z",
                                     source="api", details={"reasons": "clicked twice", "verdict": "maybe"})])
    finally:
        conn.close()
    ran = linkhub("clicks", "export", "--db", str(db_path))
    assert ran.returncode == 0, ran.output
    [line] = jsonl(ran.stdout)
    assert line["reasons"] == "clicked twice" and line["verdict"] == "maybe" and line["method"] == "GET"


def test_an_output_in_a_missing_directory_is_one_line(db_path: Path, tmp_path: Path) -> None:
    seed(db_path, 5)
    ran = linkhub("events", "export", "--output", str(tmp_path / "no" / "such.jsonl"), "--db", str(db_path))
    assert ran.returncode == 1 and "Traceback" not in ran.output
    assert ran.stderr.startswith("Error: ") and "No such file or directory" in ran.stderr
    assert len(ran.stderr.splitlines()) == 1
