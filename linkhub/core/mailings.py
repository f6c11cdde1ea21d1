"""The `mailings` table: every mailing of an account that has links or events, and when it began
(its first link minted or its first event, whichever is earlier) — what the list of mailings pages
through, newest first.

The inserts of events and links note what they wrote in the same transaction; pruning and erasure
forget a mailing once nothing of it is left.
"""

from __future__ import annotations

from collections.abc import Iterable

from linkhub.store import Connection

# Writes only when the moment is earlier than the one kept: the usual batch (later clicks of a known
# mailing) reads one page of this small table and writes nothing.
_BEGAN = (
    "INSERT INTO mailings (account_id, mailing_id, first_at) VALUES (?, ?, ?)"
    " ON CONFLICT (account_id, mailing_id) DO UPDATE SET first_at = excluded.first_at"
    " WHERE excluded.first_at < mailings.first_at"
)


def began(conn: Connection, moments: Iterable[tuple[str, str, str]]) -> None:
    """Note (account_id, mailing_id, at) of links or events just inserted, in the caller's transaction:
    one statement per mailing, with the earliest moment of each."""
    earliest: dict[tuple[str, str], str] = {}
    for account_id, mailing_id, at in moments:
        key = (account_id, mailing_id)
        if key not in earliest or at < earliest[key]:
            earliest[key] = at
    if earliest:
        conn.executemany(_BEGAN, [(*key, at) for key, at in earliest.items()])


def forget_empty(conn: Connection, pairs: Iterable[tuple[str, str]]) -> int:
    """Delete from `mailings` those of `pairs` (account_id, mailing_id) that have no event and no link
    left, after events or links were deleted (pruning, erasure). Returns how many."""
    forgotten = 0
    for account, mailing_id in set(pairs):
        forgotten += conn.execute(
            "DELETE FROM mailings WHERE account_id = :a AND mailing_id = :m"
            " AND NOT EXISTS (SELECT 1 FROM events WHERE account_id = :a AND mailing_id = :m)"
            " AND NOT EXISTS (SELECT 1 FROM links WHERE account_id = :a AND mailing_id = :m)",
            {"a": account, "m": mailing_id}).rowcount
    return forgotten
