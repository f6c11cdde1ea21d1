"""Minting short links inside the writer's transaction: new links, races and code collisions."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import string
import threading
from pathlib import Path

import pytest

from linkhub.core import accounts, outreach
from linkhub.store import schema
from linkhub.store.db import Database, connect
from linkhub.util import ids


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
    monkeypatch.setattr(ids, "link_codes", lambda first, count: next(draws)[:count])
    codes, created = outreach.mint(conn, recipient(conn), links("https://a.example/1", "https://a.example/2"))
    assert created == 2
    assert codes == {"https://a.example/1": "fresh-code-2", "https://a.example/2": "fresh-code-1"}
    assert stored(conn)[("p0", "https://a.example/x")] == taken_code


def test_codes_sort_after_those_minted_before(conn: sqlite3.Connection) -> None:
    # New codes go in at one place of the code index instead of on random pages: this is what
    # keeps the write-ahead log small when thousands of links are minted a second.
    minted = []
    for n in range(70):  # past rowid 64, the numbers in the codes grow a digit
        codes, _ = outreach.mint(conn, recipient(conn, prospect=f"p{n}"),
                                 links("https://a.example/1", "https://a.example/2"))
        minted.append(sorted(codes.values()))
    for earlier, later in itertools.pairwise(minted):
        assert earlier[-1] < later[0]
    assert len(minted[0][0]) < len(minted[-1][0])


def test_codes_with_the_same_number_differ_in_their_random_part() -> None:
    drawn = ids.link_codes(4096, 1000)
    assert {code[: -ids.RANDOM_CHARS] for code in drawn} == {"20--"}  # 4096 = 1·64² + 0·64 + 0
    random_parts = [code[-ids.RANDOM_CHARS :] for code in drawn]
    assert len(set(random_parts)) == 1000
    # 9,000 characters from a 64-letter alphabet: every letter turns up (all but certainly).
    assert set("".join(random_parts)) == set(string.ascii_letters + string.digits + "-_")


def test_codes_are_numbered_by_rowid_after_the_writer_undoes_a_batch(tmp_path: Path) -> None:
    """A batch that fails is run again job by job; the mint it undid must not leave its count behind."""
    path = tmp_path / "undo.db"
    setup = connect(path)
    list(schema.migrate(setup))
    who = recipient(setup)
    setup.close()
    gate = threading.Event()

    def refuse(conn: sqlite3.Connection) -> None:
        raise ValueError("refused")

    async def main() -> dict[str, str]:
        db = Database(path)
        db.start()
        held = asyncio.ensure_future(db.write(lambda conn: gate.wait(10)))
        await asyncio.sleep(0)  # the writer is held, so the next two are queued into one batch
        minted = asyncio.ensure_future(db.write(lambda conn: outreach.mint(conn, who, links("https://a.example/1"))))
        failed = asyncio.ensure_future(db.write(refuse))
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(held, minted, failed, return_exceptions=True)
        again, _ = await db.write(lambda conn: outreach.mint(conn, who, links("https://a.example/2")))
        await db.close()
        assert isinstance(failed.exception(), ValueError)
        return {**minted.result()[0], **again}

    codes = asyncio.run(main())
    conn = connect(path)
    rowid = dict(conn.execute("SELECT code, rowid FROM links").fetchall())
    conn.close()
    assert len(rowid) == 2
    for code in codes.values():  # each code begins with its link's rowid, as a fresh server would number it
        assert code[: -ids.RANDOM_CHARS] == ids.link_codes(rowid[code], 1)[0][: -ids.RANDOM_CHARS]
