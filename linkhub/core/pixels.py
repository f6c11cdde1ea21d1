"""Minting open pixels: one row of `pixels` per (account, mailing, message), whose code is the <code> of
`/o/<code>`.

A pixel's code has the form of a link's (`util.ids.link_codes`): a sequence number in an ordered
alphabet, so new codes go in at one place of the code index, then 54 random bits, which alone make it
unguessable. Its characters are `[A-Za-z0-9_-]`, 11 or more of them. Minting is idempotent on the
unique index pixels_by_message: minting a message's pixel again answers the code minted first, with
the recipient it was first minted for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgspec

from linkhub.store import Connection
from linkhub.store.dialect import Sql
from linkhub.util import ids
from linkhub.util.times import now_rfc3339

# Pixels per INSERT: 7 bound parameters each, 700 a statement, far below SQLite's limit (32766).
_PIXELS_PER_INSERT = 100
_NEXT_NUMBER = Sql(sqlite="SELECT coalesce(max(rowid), 0) + 1 FROM pixels",
                   postgresql="SELECT nextval('pixel_numbers')")
# What a message id derived by linkhub begins with (`derived_message_id`).
DERIVED_PREFIX = "lh-"


@dataclass(frozen=True)
class Message:
    """The message a pixel is minted for, and whom it was sent to."""

    mailing_id: str
    message_id: str
    recipient_id: str | None
    email: str | None


def derived_message_id(account_id: str, mailing_id: str, recipient_key: str) -> str:
    """The message id of a message its sender named none for: the same for the same (account, mailing,
    recipient), so asking again answers the same pixel. `recipient_key` is the recipient's key in
    `links.prospect_id` (their id, or their lower-cased address)."""
    digest = hashlib.sha256(f"{account_id}\n{mailing_id}\n{recipient_key}".encode()).hexdigest()
    return DERIVED_PREFIX + digest[:32]


def mint(conn: Connection, account_id: str, messages: list[Message]) -> list[str]:
    """The pixel code of each message, in order (runs in the caller's transaction): new rows for new
    messages, the existing code for a message minted before (or twice in `messages`)."""
    now = now_rfc3339()
    codes: dict[tuple[str, str], str] = {}
    missing = list({(m.mailing_id, m.message_id): m for m in reversed(messages)}.values())[::-1]
    while missing:
        number = conn.execute(_NEXT_NUMBER.on(conn)).fetchone()[0]
        for start in range(0, len(missing), _PIXELS_PER_INSERT):
            chunk = missing[start : start + _PIXELS_PER_INSERT]
            drawn = ids.link_codes(number, len(chunk))
            values: list[str | None] = []
            for message, code in zip(chunk, drawn, strict=True):
                values += [code, account_id, message.mailing_id, message.message_id, message.recipient_id,
                           message.email, now]
            inserted = conn.execute(
                "INSERT INTO pixels (code, account_id, mailing_id, message_id, recipient_id, email, created_at)"
                " VALUES " + ",".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk)) + " ON CONFLICT DO NOTHING",
                values,
            ).rowcount
            number += inserted
            if inserted == len(chunk):
                codes.update(((m.mailing_id, m.message_id), code) for m, code in zip(chunk, drawn, strict=True))
            else:  # minted before, or a code that collided (in theory only): read back what is there
                codes.update(existing(conn, account_id, chunk))
        missing = [m for m in missing if (m.mailing_id, m.message_id) not in codes]
    return [codes[(m.mailing_id, m.message_id)] for m in messages]


# The pairs [mailing id, message id] of a JSON array, each looked up in pixels_by_message.
_EXISTING = Sql(
    sqlite=("SELECT p.mailing_id, p.message_id, p.code FROM json_each(?) AS j"
            " JOIN pixels AS p ON p.account_id = ? AND p.mailing_id = json_extract(j.value, '$[0]')"
            " AND p.message_id = json_extract(j.value, '$[1]')"),
    postgresql=("SELECT p.mailing_id, p.message_id, p.code FROM jsonb_array_elements(CAST(? AS jsonb)) AS j(value)"
                " JOIN pixels AS p ON p.account_id = ? AND p.mailing_id = j.value ->> 0"
                " AND p.message_id = j.value ->> 1"),
)


def existing(conn: Connection, account_id: str, messages: list[Message]) -> dict[tuple[str, str], str]:
    """The codes minted before for these messages: one seek each in pixels_by_message."""
    rows = conn.execute(_EXISTING.on(conn), (_pairs(messages), account_id))
    return {(row[0], row[1]): row[2] for row in rows}


def _pairs(messages: list[Message]) -> str:
    return msgspec.json.encode([[m.mailing_id, m.message_id] for m in messages]).decode()
