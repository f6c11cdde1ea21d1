"""`linkhub datasette-config` with Datasette itself: browsing a linkhub database shows what people want
to read and never a secret (Datasette's own in-process test client, on a real database file)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import create_account, linkhub, query

datasette_app = pytest.importorskip("datasette.app")

WEBHOOK_PASSWORD = "receiver-password-8c41"


def test_a_postgresql_url_is_refused_in_one_line() -> None:
    ran = linkhub("datasette-config", "--db", "postgresql://linkhub:pw-41f@127.0.0.1:9/linkhub")
    assert ran.returncode == 2 and "Datasette opens SQLite files only" in ran.stderr
    assert "Traceback" not in ran.stderr and "pw-41f" not in ran.stderr


@pytest.fixture
def browsed(db_path: Path) -> tuple[Any, Any, str]:
    """A database with an account, a webhook with Basic-auth credentials, and the metadata for it."""
    account = create_account(db_path, secret="outreach-signing-secret-5f2a")
    ran = linkhub("webhooks", "create", "--account", account.id, "--url", "http://93.184.215.14/hook",
                  "--auth", "basic", "--username", "crm", "--password", WEBHOOK_PASSWORD, "--db", str(db_path))
    assert ran.returncode == 0, ran.stderr
    config = linkhub("datasette-config", "--db", str(db_path))
    assert config.returncode == 0, config.stderr
    metadata = json.loads(config.stdout)
    return datasette_app.Datasette([str(db_path)], metadata=metadata), account, db_path.stem


def get(ds: Any, path: str) -> Any:
    return asyncio.run(ds.client.get(path))


def secrets_of(db_path: Path) -> list[str]:
    """Every credential the database holds, read straight from it."""
    values: list[str] = []
    for row in query(db_path, "SELECT outreach_secret, api_key_sha256 FROM accounts"):
        values += list(row)
    for row in query(db_path, "SELECT secret FROM webhooks"):
        values.append(row[0])
    return [*values, WEBHOOK_PASSWORD]


@pytest.mark.sqlite_file  # Datasette reads a SQLite file
def test_the_tables_with_credentials_and_arbitrary_sql_are_refused(browsed: Any, db_path: Path) -> None:
    ds, _account, name = browsed
    assert get(ds, f"/{name}/accounts.json").status_code == 403
    assert get(ds, f"/{name}/webhooks.json").status_code == 403
    assert get(ds, f"/{name}/erasure_salt.json").status_code == 403
    sql = get(ds, f"/{name}.json?sql=select+outreach_secret+from+accounts")
    assert sql.status_code in (400, 403)


@pytest.mark.sqlite_file  # Datasette reads a SQLite file
def test_no_page_a_visitor_can_reach_shows_a_secret(browsed: Any, db_path: Path) -> None:
    ds, _account, name = browsed
    pages = ["/", f"/{name}", f"/{name}.json", f"/{name}/accounts", f"/{name}/webhooks", f"/{name}/accounts.json",
             f"/{name}/accounts.json?_shape=array", "/-/metadata.json", f"/{name}/events.json", f"/{name}/clicks.json",
             f"/{name}/accounts.json?sql=select+*+from+accounts", f"/{name}/accounts.json?_col=outreach_secret",
             f"/{name}/accounts.json?_facet=outreach_secret"]
    pages += [f"/{name}/{query_name}.json" for query_name in ("account_list", "webhook_list")]
    seen = "".join(get(ds, page).text for page in pages)
    for secret in secrets_of(db_path):
        assert secret not in seen


@pytest.mark.sqlite_file  # Datasette reads a SQLite file
def test_the_canned_queries_answer_without_their_secrets(browsed: Any, db_path: Path) -> None:
    ds, account, name = browsed
    accounts = get(ds, f"/{name}/account_list.json?_shape=array")
    assert accounts.status_code == 200
    assert [row["id"] for row in accounts.json()] == [account.id]
    assert "outreach_secret" not in accounts.json()[0]
    webhooks = get(ds, f"/{name}/webhook_list.json?_shape=array").json()
    assert webhooks[0]["auth_type"] == "basic" and webhooks[0]["url"] == "http://93.184.215.14/hook"
    assert get(ds, f"/{name}/people_clicks_by_mailing.json").status_code == 200
    assert get(ds, f"/{name}/top_links.json?mailing=m-1").status_code == 200


@pytest.mark.sqlite_file  # Datasette reads a SQLite file
def test_the_readable_tables_are_browsable_with_descriptions_and_facets(browsed: Any) -> None:
    ds, _account, name = browsed
    clicks = get(ds, f"/{name}/clicks.json?_extra=facet_results")
    assert clicks.status_code == 200
    events = get(ds, f"/{name}/events")
    assert events.status_code == 200
    assert "Every email event" in events.text
    for report in ("mailing_stats", "link_stats", "recipient_activity"):
        assert get(ds, f"/{name}/{report}.json").status_code == 200


def test_the_metadata_names_the_database_after_its_file(tmp_path: Path) -> None:
    ran = linkhub("datasette-config", "--db", str(tmp_path / "tracking.db"))
    assert list(json.loads(ran.stdout)["databases"]) == ["tracking"]
