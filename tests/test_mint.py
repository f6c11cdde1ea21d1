"""Minting short links inside the writer's transaction: new links, races and code collisions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from linkhub import accounts, ids, outreach, schema
from linkhub.db import connect


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    conn = connect(tmp_path / "mint.db")
    list(schema.migrate(conn))
    return conn


def recipient(conn: sqlite3.Connection, prospect: str = "p1") -> outreach.Recipient:
    row = conn.execute("SELECT id FROM accounts").fetchone()
    account_id = row[0] if row else accounts.create(conn, "a", "secret")[0].id
    return outreach.Recipient(account_id=account_id, mailing_id="m1", prospect_id=prospect,
                              prospect_email="p@example.com", user_id=None, user_email=None)


def links(*targets: str) -> list[outreach.Link]:
    return [outreach.Link(target=t, original=t) for t in targets]


def stored(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
    return {(row[0], row[1]): row[2] for row in conn.execute("SELECT prospect_id, target_url, code FROM links")}


def test_new_links_get_the_codes_drawn(conn: sqlite3.Connection) -> None:
    who = recipient(conn)
    codes, created = outreach.mint(conn, who, links("https://a.example/1", "https://a.example/2"))
    assert created == 2
    assert stored(conn) == {("p1", target): code for target, code in codes.items()}


def test_a_link_minted_meanwhile_keeps_its_code(conn: sqlite3.Connection) -> None:
    who = recipient(conn)
    first, _ = outreach.mint(conn, who, links("https://a.example/1"))
    codes, created = outreach.mint(conn, who, links("https://a.example/1", "https://a.example/2"))
    assert created == 1
    assert codes["https://a.example/1"] == first["https://a.example/1"]
    assert len(stored(conn)) == 2


def test_a_colliding_code_is_drawn_again(conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    other = recipient(conn, prospect="p0")
    taken, _ = outreach.mint(conn, other, links("https://a.example/x"))
    taken_code = taken["https://a.example/x"]
    draws = iter([[taken_code, "fresh-code-1"], ["fresh-code-2"]])
    monkeypatch.setattr(ids, "link_codes", lambda count: next(draws)[:count])
    codes, created = outreach.mint(conn, recipient(conn), links("https://a.example/1", "https://a.example/2"))
    assert created == 2
    assert codes == {"https://a.example/1": "fresh-code-2", "https://a.example/2": "fresh-code-1"}
    assert stored(conn)[("p0", "https://a.example/x")] == taken_code
