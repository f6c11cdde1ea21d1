"""The benches' databases, built in-process before a server opens them: an account, and links.

Only linkhub's public entry points are used (`connect`, `migrate`, `accounts.create`); the
links are inserted with SQL in the documented schema (docs/schema.md), codes in the documented
format (docs/outreach.md, "Codes"), as linkhub's link replacement would store them.
"""

from __future__ import annotations

import base64
import random
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linkhub.core import accounts
from linkhub.store.db import connect
from linkhub.store.schema import migrate

MAILINGS = 20  # mailings the seeded links belong to
SECRET = "bench-outreach-secret"
_ORDERED = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"  # digits of the sequence number
_RANDOM_CHARS = 9


@dataclass(frozen=True)
class Account:
    id: str
    secret: str  # the Outreach secret that signs link-replacement calls
    api_key: str


@contextmanager
def _migrated(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to `db_path`, migrated first (a new file becomes a linkhub database)."""
    conn = connect(db_path)
    try:
        migrate(conn)
        yield conn
    finally:
        conn.close()


def account(db_path: Path, name: str = "bench", secret: str = SECRET) -> Account:
    """A new account in `db_path` (migrated first)."""
    with _migrated(db_path) as conn:
        created, key = accounts.create(conn, name, secret)
    return Account(id=created.id, secret=secret, api_key=key)


def link_codes(number: int, count: int) -> list[str]:
    """`count` codes of sequence number `number`: the number in an alphabet in ASCII order led by
    its own length, then 9 random base64url characters, so codes sort as linkhub's do."""
    digits = []
    while number:
        digits.append(_ORDERED[number & 63])
        number >>= 6
    prefix = _ORDERED[len(digits)] + "".join(reversed(digits))
    pool = base64.urlsafe_b64encode(secrets.token_bytes(3 * -(-count * _RANDOM_CHARS // 4))).decode()
    return [prefix + pool[i : i + _RANDOM_CHARS] for i in range(0, count * _RANDOM_CHARS, _RANDOM_CHARS)]


def _rows(account_id: str, codes: list[str], per_email: int, age_s: float) -> Iterator[tuple[Any, ...]]:
    # 50 links per email by default, the emails dealt round-robin to 20 mailings (1,000 prospects
    # each with 1 M links). Every database spreads its clicks over the same 20 mailings, so the
    # redirect runs differ only in the number of links stored.
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - age_s))
    for i, code in enumerate(codes):
        email, link = divmod(i, per_email)
        prospect, mailing = divmod(email, MAILINGS)
        url = f"https://www.example.com/blog/post-{link}?utm_source=outreach&utm_campaign=m{mailing}"
        yield (code, account_id, url, url, f"m{mailing}", f"p{prospect}",
               f"prospect{prospect}@example.org", "u1", "sender@example.com", now)


def links(db_path: Path, account_id: str, count: int, per_email: int = 50, age_s: float = 0) -> list[str]:
    """Store `count` links of one account in one transaction (minted as one batch is: one
    sequence number), `per_email` links to each email, minted `age_s` ago; returns their codes,
    each email's together."""
    codes = link_codes(1, count)
    with _migrated(db_path) as conn:
        conn.execute("PRAGMA cache_size = -1000000")  # 1 GB page cache: the random-key index fits
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO links (code, account_id, target_url, original_url, mailing_id, prospect_id,"
            " prospect_email, user_id, user_email, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _rows(account_id, codes, per_email, age_s),
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
    return codes


def pixels(db_path: Path, account_id: str, count: int) -> list[str]:
    """Store `count` open pixels of one account (one message each, of 20 mailings) in one transaction,
    in the documented schema (docs/schema.md, `pixels`); returns their codes."""
    codes = link_codes(2, count)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    with _migrated(db_path) as conn:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO pixels (code, account_id, mailing_id, message_id, recipient_id, email, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(code, account_id, f"mailing-{n % MAILINGS}", f"message-{n}", f"p-{n}", f"reader{n}@example.org", now)
             for n, code in enumerate(codes)],
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return codes


def codes_file(path: Path, codes: list[str], sample: int) -> Path:
    """`sample` of `codes` chosen at random, one a line: what wrk (bench/redirect.lua) requests."""
    path.write_text("\n".join(random.sample(codes, min(sample, len(codes)))) + "\n")
    return path


def count(db_path: Path, sql: str, *params: Any) -> int:
    """One number read from `db_path` (read-only: a server may be writing it meanwhile)."""
    conn = connect(db_path, readonly=True)
    try:
        return int(conn.execute(sql, params).fetchone()[0])
    finally:
        conn.close()
