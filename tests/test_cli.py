"""The `linkhub` command on a database in tmp_path: in-process with click's CliRunner (conftest.linkhub), and
as a real process where reading its own stdin is the point."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import regex

from conftest import Ran, finished, linkhub, linkhub_process, linkhub_started, query

MIGRATIONS = Path(__file__).parent.parent / "linkhub" / "store" / "migrations"


def ok(*args: str, **kwargs) -> Ran:
    result = linkhub(*args, **kwargs)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


def create(db: Path, name: str = "Acme", secret: str = "outreach-s3cret", *extra: str) -> dict:
    result = ok("accounts", "create", name, "--outreach-secret", secret, *extra, "--json", "--db", str(db))
    return json.loads(result.stdout)  # the whole of stdout is one JSON document


def every_value(db: Path) -> list[str]:
    """Every text value stored in every table of the database."""
    values: list[str] = []
    for (table,) in query(db, "SELECT name FROM sqlite_master WHERE type = 'table'"):
        for row in query(db, f'SELECT * FROM "{table}"'):
            values.extend(str(v) for v in tuple(row) if v is not None)
    return values


# -- accounts create ---------------------------------------------------------------------


def test_accounts_create_json_prints_exactly_one_object(db):
    result = ok("accounts", "create", "Acme Inc", "--outreach-secret", "s3cret", "--json", "--db", str(db))
    document = json.loads(result.stdout)
    assert isinstance(document, dict)
    assert set(document) == {"id", "name", "api_key", "outreach_url", "warning"}
    assert document["name"] == "Acme Inc"
    assert document["id"] and document["api_key"]
    assert document["outreach_url"] == f"http://127.0.0.1:8080/outreach/{document['id']}/links"
    assert "s3cret" not in result.stdout


def test_accounts_create_text_shows_id_key_and_outreach_url(db):
    result = ok("accounts", "create", "Acme", "--outreach-secret", "s3cret", "--db", str(db))
    [row] = query(db, "SELECT id FROM accounts")
    assert row["id"] in result.stdout
    assert f"/outreach/{row['id']}/links" in result.stdout
    assert "s3cret" not in result.stdout


def test_outreach_url_uses_the_public_url(db):
    own = create(db, "Own", "s", "--public-url", "https://track.example.com/")
    assert own["outreach_url"] == f"https://track.example.com/outreach/{own['id']}/links"
    server_wide = json.loads(ok("accounts", "create", "Env", "--outreach-secret", "s", "--json", "--db", str(db),
                                env={"LINKHUB_PUBLIC_URL": "https://links.example.org"}).stdout)
    assert server_wide["outreach_url"] == f"https://links.example.org/outreach/{server_wide['id']}/links"


def test_api_key_is_not_stored_in_clear(db):
    account = create(db)
    key = account["api_key"]
    assert len(key) >= 32
    values = every_value(db)
    assert not any(key in value for value in values)
    [row] = query(db, "SELECT api_key_sha256 FROM accounts WHERE id = ?", (account["id"],))
    assert row["api_key_sha256"] == hashlib.sha256(key.encode()).hexdigest()


@pytest.mark.parametrize(("args", "fragment"), [
    (("--outreach-secret", "s", "--link-filter", "("), "--link-filter"),
    (("--outreach-secret", "s", "--public-url", "ftp://example.com"), "--public-url"),
    (("--outreach-secret", "   "), "secret"),
    ((), "--outreach-secret"),
])
def test_accounts_create_refuses_bad_input(db, args, fragment):
    result = linkhub("accounts", "create", "Acme", *args, "--db", str(db))
    assert result.returncode != 0
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    if db.exists():
        assert query(db, "SELECT count(*) FROM accounts")[0][0] == 0


# -- accounts list -----------------------------------------------------------------------


def test_accounts_list_json_never_shows_secrets(db):
    a = create(db, "A", "first-secret-value", "--link-filter", r"example\.com")
    b = create(db, "B", "second-secret-value")
    result = ok("accounts", "list", "--json", "--db", str(db))
    listed = json.loads(result.stdout)
    assert a["id"] != b["id"] and a["api_key"] != b["api_key"]
    assert [item["id"] for item in listed] == [a["id"], b["id"]]
    assert listed[0]["link_filter"] == r"example\.com"
    assert listed[0]["name"] == "A"
    for secret in ("first-secret-value", "second-secret-value", a["api_key"], b["api_key"]):
        assert secret not in result.stdout
    [digest] = query(db, "SELECT api_key_sha256 FROM accounts WHERE id = ?", (a["id"],))
    assert digest[0] not in result.stdout
    for item in listed:
        assert not {"outreach_secret", "api_key", "api_key_sha256"} & set(item)
    text = ok("accounts", "list", "--db", str(db)).stdout
    assert a["id"] in text and b["id"] in text
    assert "first-secret-value" not in text and a["api_key"] not in text


def test_accounts_list_empty(db):
    ok("migrate", "--db", str(db))
    assert json.loads(ok("accounts", "list", "--json", "--db", str(db)).stdout) == []
    assert ok("accounts", "list", "--db", str(db)).stdout.strip() == "no accounts"


# -- accounts update ---------------------------------------------------------------------


def _account_row(db: Path, account_id: str):
    return query(db, "SELECT * FROM accounts WHERE id = ?", (account_id,))[0]


def test_update_link_filter_and_clear_it(db):
    account = create(db)
    ok("accounts", "update", account["id"], "--link-filter", r"^https://www\.example\.com/", "--db", str(db))
    assert _account_row(db, account["id"])["link_filter"] == r"^https://www\.example\.com/"
    ok("accounts", "update", account["id"], "--clear-link-filter", "--db", str(db))
    assert _account_row(db, account["id"])["link_filter"] is None


def test_update_with_an_invalid_filter_is_refused_clearly(db):
    account = create(db, "A", "s", "--link-filter", "keep")
    result = linkhub("accounts", "update", account["id"], "--link-filter", "(unclosed", "--db", str(db))
    assert result.returncode != 0
    assert "--link-filter" in result.stderr
    assert "invalid" in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert _account_row(db, account["id"])["link_filter"] == "keep"  # unchanged


def test_update_secret_and_public_url(db):
    account = create(db)
    before = _account_row(db, account["id"])
    result = ok("accounts", "update", account["id"], "--outreach-secret", "new-secret",
                "--public-url", "https://go.example.com", "--json", "--db", str(db))
    assert "new-secret" not in result.stdout
    after = _account_row(db, account["id"])
    assert after["outreach_secret"] == "new-secret"
    assert after["public_url"] == "https://go.example.com"
    assert after["updated_at"] >= before["updated_at"]
    assert json.loads(result.stdout)["outreach_url"] == f"https://go.example.com/outreach/{account['id']}/links"


def test_unknown_account_is_refused_by_update_and_rotate_key(db):
    ok("migrate", "--db", str(db))
    for args in (("update", "no-such-id", "--outreach-secret", "x"), ("rotate-key", "no-such-id")):
        result = linkhub("accounts", *args, "--db", str(db))
        assert result.returncode != 0, args
        assert "no-such-id" in result.stderr, args
        assert "Traceback" not in result.stderr


def test_filter_and_clear_filter_exclude_each_other(db):
    result = linkhub("accounts", "update", "some-id", "--link-filter", "a", "--clear-link-filter", "--db", str(db))
    assert result.returncode != 0
    assert "--clear-link-filter" in result.stderr


# -- rotate-key --------------------------------------------------------------------------


def test_rotate_key_changes_the_digest(db):
    account = create(db)
    before = _account_row(db, account["id"])["api_key_sha256"]
    result = ok("accounts", "rotate-key", account["id"], "--json", "--db", str(db))
    rotated = json.loads(result.stdout)
    assert rotated["id"] == account["id"]
    assert rotated["api_key"] != account["api_key"]
    after = _account_row(db, account["id"])["api_key_sha256"]
    assert after != before
    assert after == hashlib.sha256(rotated["api_key"].encode()).hexdigest()
    assert not any(rotated["api_key"] in value for value in every_value(db))


# -- filter test -------------------------------------------------------------------------


def test_filter_test_prints_match_or_no_match_per_url(tmp_path):
    urls = ["https://www.example.com/a", "https://other.example.org/", "https://www.example.com/b"]
    result = ok("filter", "test", r"^https://www\.example\.com/", *urls, cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    verdicts = [line.split(urls[i])[0].strip() for i, line in enumerate(lines)]
    assert verdicts == ["match", "no match", "match"]
    for url, line in zip(urls, lines, strict=True):
        assert line.rstrip().endswith(url)


def test_filter_test_json(tmp_path):
    result = ok("filter", "test", "b", "https://a.example/", "https://b.example/", "--json", cwd=tmp_path)
    assert json.loads(result.stdout) == [
        {"url": "https://a.example/", "result": "no match"},
        {"url": "https://b.example/", "result": "match"},
    ]


def test_filter_test_says_which_urls_are_never_replaced(tmp_path):
    # Not absolute http(s) URLs: left alone whatever the filter, though the pattern matches them.
    urls = ["mailto:a@example.com", "/relative/example", "https://example.com/", "ftp://example.com/"]
    result = ok("filter", "test", "example", *urls, cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert [line.split(url)[0].strip() for url, line in zip(urls, lines, strict=True)] == [
        "not replaced (not an absolute http(s) URL)", "not replaced (not an absolute http(s) URL)", "match",
        "not replaced (not an absolute http(s) URL)",
    ]
    assert len({line.index(url) for url, line in zip(urls, lines, strict=True)}) == 1  # URLs aligned
    as_json = json.loads(ok("filter", "test", "example", *urls, "--json", cwd=tmp_path).stdout)
    assert [r["result"] for r in as_json] == ["not replaced", "not replaced", "match", "not replaced"]


def test_filter_test_reports_a_timeout(tmp_path):
    slow = "https://example.com/" + "a" * 40 + "!"
    result = ok("filter", "test", r"(a|aa)+$", slow, "https://example.com/b", cwd=tmp_path)
    assert result.stdout.splitlines()[0].split(slow)[0].strip() == "timed out"
    as_json = json.loads(ok("filter", "test", r"(a|aa)+$", slow, "--json", cwd=tmp_path).stdout)
    assert as_json == [{"url": slow, "result": "timed out"}]


@pytest.mark.parametrize("pattern", ["(unclosed", "x" * 1001, "(?:(?:a{1000}){1000}){1000}"])
def test_filter_test_with_an_invalid_pattern_names_the_pattern_argument(tmp_path, pattern):
    result = linkhub("filter", "test", pattern, "https://example.com/", cwd=tmp_path)
    assert result.returncode == 2
    error = result.stderr.splitlines()[-1]
    assert error.startswith("Error: Invalid value for PATTERN: invalid link filter")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(("pattern", "says"), [
    ("x" * 1001, "longer than 1000 characters"),
    ("(?:(?:a{1000}){1000}){1000}", "needs more than 64 MiB"),  # nested repeats: gigabytes to compile
])
def test_a_filter_beyond_the_compile_bounds_is_refused(db, pattern, says):
    result = linkhub("accounts", "create", "A", "--outreach-secret", "s", "--link-filter", pattern, "--db", str(db))
    assert result.returncode == 2
    error = result.stderr.splitlines()[-1]  # after click's usage lines
    assert error.startswith("Error: Invalid value for --link-filter: invalid link filter") and says in error
    assert "Traceback" not in result.stderr
    account = create(db)
    result = linkhub("accounts", "update", account["id"], "--link-filter", pattern, "--db", str(db))
    assert result.returncode == 2
    error = result.stderr.splitlines()[-1]
    assert error.startswith("Error: Invalid value for --link-filter: invalid link filter") and says in error
    assert pattern not in result.stderr  # one line, not a screenful of pattern
    assert _account_row(db, account["id"])["link_filter"] is None
    assert len(query(db, "SELECT * FROM accounts")) == 1


# -- migrate -----------------------------------------------------------------------------


def test_migrate_twice(db):
    first = ok("migrate", "--db", str(db))
    assert "applied 0001_accounts_links_events" in first.stdout
    applied = query(db, "SELECT version FROM schema_migrations ORDER BY version")
    assert applied[0][0] == 1
    second = ok("migrate", "--db", str(db))
    assert "up to date" in second.stdout
    assert "applied" not in second.stdout
    assert query(db, "SELECT version FROM schema_migrations ORDER BY version") == applied


def test_migrate_adds_a_column_that_an_edit_of_a_landed_migration_added(db):
    """0002 gained webhooks.timeout_s by an edit after it had landed; older databases lack it."""
    migrations = MIGRATIONS
    timeout_line = regex.compile(r"^ *timeout_s INTEGER[^\n]*\n", regex.M)
    part_2, edits = timeout_line.subn("", (migrations / "0002_webhooks_outbox.sql").read_text())
    assert edits == 1
    conn = sqlite3.connect(db)
    conn.executescript((migrations / "0001_accounts_links_events.sql").read_text() + part_2 + """
        CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
        INSERT INTO schema_migrations VALUES (1, 'accounts_links_events', '2026-11-01T00:00:00.000Z'),
                                             (2, 'webhooks_outbox', '2026-11-01T00:00:00.000Z');
        INSERT INTO accounts VALUES ('acc_old', 'Old', 's', 'x', NULL, NULL, '2026-11-01T00:00:00.000Z',
                                     '2026-11-01T00:00:00.000Z');
        INSERT INTO webhooks (id, account_id, url, secret, created_at, updated_at)
            VALUES ('wh_old', 'acc_old', 'http://93.184.215.14/hook', 'whsec_AAAA', '2026-11-01T00:00:00.000Z',
                    '2026-11-01T00:00:00.000Z');
    """)
    conn.close()

    # A command that only reads changes nothing and says what is needed; one that writes repairs the
    # schema first; the webhook made before keeps working.
    refused = linkhub("webhooks", "list", "--json", "--db", str(db))
    assert refused.returncode == 1 and "linkhub migrate" in refused.stderr and "webhooks.timeout_s" in refused.stderr
    assert "Traceback" not in refused.stderr
    ok("webhooks", "update", "wh_old", "--timeout", "30", "--db", str(db))
    listed = ok("webhooks", "list", "--json", "--db", str(db))
    assert [(w["id"], w["timeout_s"]) for w in json.loads(listed.stdout)] == [("wh_old", 30)]
    shown = ok("webhooks", "show", "wh_old", "--json", "--db", str(db))
    assert json.loads(shown.stdout)["timeout_s"] == 30
    assert "up to date" in ok("migrate", "--db", str(db)).stdout


def test_migrate_reports_the_repair_it_makes(db):
    ok("migrate", "--db", str(db))
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE webhooks DROP COLUMN timeout_s")
    conn.close()
    assert "added webhooks.timeout_s" in ok("migrate", "--db", str(db)).stdout
    assert "up to date" in ok("migrate", "--db", str(db)).stdout
    assert any(r[0] == "timeout_s" for r in query(db, "SELECT name FROM pragma_table_info('webhooks')"))


# -- --db and LINKHUB_DB -----------------------------------------------------------------


def test_linkhub_db_env_var_is_used_when_no_flag(tmp_path):
    env_db = tmp_path / "from-env.db"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    result = ok("accounts", "create", "Env", "--outreach-secret", "s", "--json",
                env={"LINKHUB_DB": str(env_db)}, cwd=elsewhere)
    account = json.loads(result.stdout)
    assert [r["id"] for r in query(env_db, "SELECT id FROM accounts")] == [account["id"]]
    assert not (elsewhere / "linkhub.db").exists()


def test_db_flag_wins_over_the_env_var(tmp_path):
    env_db, flag_db = tmp_path / "env.db", tmp_path / "flag.db"
    result = ok("accounts", "create", "Flag", "--outreach-secret", "s", "--json", "--db", str(flag_db),
                env={"LINKHUB_DB": str(env_db)}, cwd=tmp_path)
    account = json.loads(result.stdout)
    assert [r["id"] for r in query(flag_db, "SELECT id FROM accounts")] == [account["id"]]
    assert not env_db.exists()


def test_default_db_is_linkhub_db_in_the_working_directory(tmp_path):
    ok("migrate", cwd=tmp_path)
    assert (tmp_path / "linkhub.db").exists()


# -- failures are one line, never a traceback ---------------------------------------------------

READERS = [("accounts", "list"), ("accounts", "show", "acc"), ("webhooks", "list"), ("webhooks", "show", "wh"),
           ("webhooks", "deliveries", "wh"), ("outbox", "status"), ("outbox", "replay", "--webhook", "wh", "--dry-run")]
WRITERS = [("accounts", "update", "acc", "--name", "N"), ("accounts", "rotate-key", "acc"),
           ("webhooks", "create", "--account", "acc", "--url", "http://93.184.215.14/h"),
           ("webhooks", "activate", "wh"), ("webhooks", "delete", "wh"), ("outbox", "prune", "--older-than", "1")]


def one_line_error(result: Ran | subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    return line


@pytest.mark.parametrize("args", READERS + WRITERS, ids=" ".join)
def test_commands_on_a_missing_database_say_how_to_create_one_and_create_nothing(tmp_path, args):
    db = tmp_path / "none.db"
    line = one_line_error(linkhub(*args, "--db", str(db)))
    assert f"no database at {db}" in line and "linkhub migrate" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [("migrate",), ("accounts", "create", "A", "--outreach-secret", "s"),
                                  ("accounts", "list"), ("webhooks", "list"), ("outbox", "status"),
                                  ("webhooks", "delete", "wh")], ids=" ".join)
def test_a_file_that_is_not_a_database_is_one_line(tmp_path, args):
    db = tmp_path / "notes.txt"
    db.write_text("not a database, just some text that is long enough to fill a header. " * 20)
    line = one_line_error(linkhub(*args, "--db", str(db)))
    assert "is not a SQLite database" in line


def test_a_directory_as_db_is_one_line(tmp_path):
    for args in (("migrate",), ("accounts", "list")):
        line = one_line_error(linkhub(*args, "--db", str(tmp_path)))
        assert "is a directory" in line


def test_a_missing_directory_is_one_line(tmp_path):
    line = one_line_error(linkhub("accounts", "create", "A", "--outreach-secret", "s",
                                  "--db", str(tmp_path / "no" / "such" / "x.db")))
    assert "cannot open" in line


def test_a_read_only_command_on_an_old_schema_asks_for_migrate_and_changes_nothing(db):
    conn = sqlite3.connect(db)
    conn.executescript((MIGRATIONS / "0001_accounts_links_events.sql").read_text()
                       + "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                         " applied_at TEXT NOT NULL);"
                         "INSERT INTO schema_migrations VALUES (1, 'accounts_links_events',"
                         " '2026-11-01T00:00:00.000Z');")
    conn.close()
    before = db.read_bytes()
    line = one_line_error(linkhub("accounts", "list", "--db", str(db)))
    assert "needs `linkhub migrate`" in line and "0002_webhooks_outbox is pending" in line
    assert db.read_bytes() == before
    ok("migrate", "--db", str(db))
    assert ok("accounts", "list", "--db", str(db)).stdout.strip() == "no accounts"


def test_the_installed_command_is_the_same_group(db):
    # pyproject's [project.scripts] entry point, as an operator runs it: a process of its own.
    script = Path(sys.executable).with_name("linkhub")
    if not script.exists():
        pytest.skip(f"no {script}: the package is not installed beside this Python")
    result = subprocess.run([str(script), "migrate", "--json", "--db", str(db)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["created"] is True
    assert ok("accounts", "list", "--db", str(db)).stdout.strip() == "no accounts"


def test_migrate_json(db):
    first = json.loads(ok("migrate", "--json", "--db", str(db)).stdout)
    assert first["created"] is True and first["up_to_date"] is False and first["path"] == str(db)
    assert "applied 0001_accounts_links_events" in first["changes"]
    second = json.loads(ok("migrate", "--json", "--db", str(db)).stdout)
    assert second == {"path": str(db), "created": False, "changes": [], "up_to_date": True}


# -- accounts: secrets out of ps, Outreach URL warning, show, clearing -------------------------------


def test_outreach_secret_from_stdin_and_from_the_environment(db):
    # A real process: the secret comes through its own stdin, a pipe.
    piped = linkhub_process("accounts", "create", "Piped", "--outreach-secret", "-", "--json", "--db", str(db),
                            input="from-stdin\n")
    assert piped.returncode == 0, piped.stderr
    from_env = json.loads(ok("accounts", "create", "Env", "--json", "--db", str(db),
                             env={"LINKHUB_OUTREACH_SECRET": "from-env"}).stdout)
    secrets = {r["id"]: r["outreach_secret"] for r in query(db, "SELECT id, outreach_secret FROM accounts")}
    assert secrets == {json.loads(piped.stdout)["id"]: "from-stdin", from_env["id"]: "from-env"}
    assert "from-stdin" not in piped.stdout

    account_id = from_env["id"]
    rotated = linkhub("accounts", "update", account_id, "--outreach-secret", "-", "--db", str(db), input="rotated\n")
    assert rotated.returncode == 0 and "rotated" not in rotated.stdout
    assert _account_row(db, account_id)["outreach_secret"] == "rotated"


def test_outreach_secret_dash_with_empty_stdin_is_refused(db):
    result = linkhub("accounts", "create", "A", "--outreach-secret", "-", "--db", str(db), input="")
    assert "--outreach-secret" in one_line_error(result) and not db.exists()


def test_create_warns_when_the_outreach_url_is_local_or_not_https(db):
    local = create(db, "Local", "s")
    assert "public HTTPS URL" in local["warning"] and "LINKHUB_PUBLIC_URL" in local["warning"]
    text = ok("accounts", "create", "Text", "--outreach-secret", "s", "--db", str(db)).stdout
    assert "Warning:" in text and "this URL is local" in text
    plain = create(db, "Plain", "s", "--public-url", "http://t.example.com")
    assert "HTTPS" in plain["warning"]
    good = create(db, "Good", "s", "--public-url", "https://t.example.com")
    assert good["warning"] is None
    server_wide = json.loads(ok("accounts", "create", "Env", "--outreach-secret", "s", "--json", "--db", str(db),
                                env={"LINKHUB_PUBLIC_URL": "https://links.example.org"}).stdout)
    assert server_wide["warning"] is None
    assert "Warning" not in ok("accounts", "show", good["id"], "--db", str(db)).stdout


def test_accounts_show(db):
    account = create(db, "Shown", "show-secret", "--link-filter", "keep", "--public-url", "https://go.example.com")
    shown = json.loads(ok("accounts", "show", account["id"], "--json", "--db", str(db)).stdout)
    assert shown["id"] == account["id"] and shown["name"] == "Shown" and shown["link_filter"] == "keep"
    assert shown["outreach_url"] == f"https://go.example.com/outreach/{account['id']}/links"
    assert shown["warning"] is None
    text = ok("accounts", "show", account["id"], "--db", str(db)).stdout
    assert account["id"] in text and "https://go.example.com" in text and "keep" in text
    for output in (json.dumps(shown), text):
        assert "show-secret" not in output and account["api_key"] not in output
    missing = one_line_error(linkhub("accounts", "show", "nope", "--db", str(db)))
    assert "no account with id 'nope'" in missing


@pytest.mark.parametrize("clear", [("--public-url", ""), ("--clear-public-url",)])
def test_public_url_can_be_cleared(db, clear):
    account = create(db, "A", "s", "--public-url", "https://go.example.com")
    result = json.loads(ok("accounts", "update", account["id"], *clear, "--json", "--db", str(db)).stdout)
    assert result["public_url"] is None and _account_row(db, account["id"])["public_url"] is None
    assert result["outreach_url"] == f"http://127.0.0.1:8080/outreach/{account['id']}/links"
    assert result["warning"]


def test_update_with_nothing_to_change_is_refused(db):
    account = create(db)
    before = _account_row(db, account["id"])
    result = linkhub("accounts", "update", account["id"], "--db", str(db))
    assert result.returncode == 2 and "nothing to change" in one_line_error(result)
    assert _account_row(db, account["id"]) == before
    both = linkhub("accounts", "update", account["id"], "--public-url", "https://a.example", "--clear-public-url",
                   "--db", str(db))
    assert "--clear-public-url" in one_line_error(both)


def test_accounts_list_text_is_aligned(db):
    a = create(db, "A", "s")
    b = create(db, "Longer name", "s", "--public-url", "https://go.example.com", "--link-filter", "x")
    lines = ok("accounts", "list", "--db", str(db)).stdout.splitlines()
    assert lines[0].split() == ["id", "name", "public", "URL", "link", "filter"]
    assert lines[1].startswith(a["id"]) and lines[2].startswith(b["id"])
    column = lines[0].index("public URL")
    assert lines[1][column:].startswith("-") and lines[2][column:].startswith("https://go.example.com")


# -- a locked database: a second process, waiting while the tests above run ------------------------


@pytest.fixture(scope="module", autouse=True)
def create_on_a_locked_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[str]]:
    """`linkhub accounts create`, a process of its own, on a database whose write lock this one holds.

    It can say so only once SQLite's busy timeout (5 s) has passed: started with the module, its wait
    overlaps the module's other tests. The database and its lock are its alone."""
    db = tmp_path_factory.mktemp("locked") / "cli.db"
    ok("migrate", "--db", str(db))
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock past the busy timeout
    process = linkhub_started("accounts", "create", "A", "--outreach-secret", "s", "--db", str(db))
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        holder.execute("ROLLBACK")
        holder.close()


def test_a_locked_database_is_one_line(create_on_a_locked_database):
    # Last in the module: by now the process has waited out the busy timeout.
    line = one_line_error(finished(create_on_a_locked_database))
    assert "is locked by another process" in line
