"""Reports: a mailing's numbers, its links', one recipient's activity, read from the reporting views
(`mailing_stats`, `link_stats`, `recipient_activity`; docs/schema.md documents their columns).

Each function reads one account's rows. Which account a mailing or an address belongs to, when the
caller does not say, is `accounts_with_mailing` / `accounts_with_recipient`: a mailing id or an
address may exist in several accounts, and a report never mixes them.
"""

from __future__ import annotations

import base64
from typing import Any, NamedTuple

import msgspec

from linkhub.core.errors import LinkhubError
from linkhub.store import Connection, Row
from linkhub.store.dialect import Sql
from linkhub.util.wording import ascii_lower

# The bound of one page of `mailings`, whatever a caller asks for.
MAX_LIMIT = 10_000


def _dicts(rows: list[Row]) -> list[dict[str, Any]]:
    return [{key: row[key] for key in row.keys()} for row in rows]  # noqa: SIM118 - a Row iterates its values


VIEWS = ("mailing_stats", "link_stats", "recipient_activity")


def columns(conn: Connection, view: str) -> list[str]:
    """The view's columns, in order (a CSV's header even when no row matches)."""
    assert view in VIEWS, view
    cursor = conn.execute(f"SELECT * FROM {view} LIMIT 0")  # one of VIEWS: never a caller's text
    return [column[0] for column in cursor.description]


def recipient_key(identifier: str) -> str:
    """The views' `recipient` for an address (lower-cased, as the views store it) or a recipient id (as is)."""
    return ascii_lower(identifier) if "@" in identifier else identifier


def account_exists(conn: Connection, account_id: str) -> bool:
    return conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is not None


def accounts_with_mailing(conn: Connection, mailing_id: str) -> list[str]:
    """The accounts that have links or events of this mailing, by id. One index probe per account."""
    rows = conn.execute(
        "SELECT id FROM accounts a WHERE"
        " EXISTS (SELECT 1 FROM events e WHERE e.account_id = a.id AND e.mailing_id = ?)"
        " OR EXISTS (SELECT 1 FROM links l WHERE l.account_id = a.id AND l.mailing_id = ?) ORDER BY id",
        (mailing_id, mailing_id),
    ).fetchall()
    return [row[0] for row in rows]


def accounts_with_recipient(conn: Connection, identifier: str) -> list[str]:
    """The accounts that have events of this recipient (an address, any case, or a recipient id), by id."""
    rows = conn.execute(
        "SELECT id FROM accounts a WHERE EXISTS (SELECT 1 FROM events e WHERE e.account_id = a.id"
        " AND coalesce(lower(e.email), e.recipient_id) = ?) ORDER BY id",
        (recipient_key(identifier),),
    ).fetchall()
    return [row[0] for row in rows]


def which_account(candidates: list[str], account_id: str | None, what: str) -> str:
    """The account a report of `what` (e.g. "mailing 'm-1'") is about: the one given, else the only
    candidate; a refusal names the candidates when there are several, and says so when there is none."""
    if account_id is not None:
        if account_id not in candidates:
            raise LinkhubError(f"account {account_id!r} has no {what}", status=404, code="not_found")
        return account_id
    if not candidates:
        raise LinkhubError(f"no {what} in any account", status=404, code="not_found")
    if len(candidates) > 1:
        raise LinkhubError(f"{what} exists in {len(candidates)} accounts ({', '.join(candidates)}): "
                           f"say which with --account", status=422, code="invalid_parameter", field="account")
    return candidates[0]


class After(NamedTuple):
    """Where a page of `mailings` ended: its last mailing's (first_at, account_id, mailing_id)."""

    first_at: str
    account_id: str
    mailing_id: str

    def cursor(self) -> str:
        """The opaque text a caller hands back for the next page."""
        return base64.urlsafe_b64encode(msgspec.json.encode(list(self))).decode().rstrip("=")

    @classmethod
    def parse(cls, cursor: str) -> After:
        try:
            first_at, account_id, mailing_id = msgspec.json.decode(
                base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)), type=tuple[str, str, str])
        except (ValueError, msgspec.DecodeError):  # binascii.Error is a ValueError
            raise LinkhubError("not a cursor returned by this report", status=422, code="invalid_parameter",
                               field="cursor") from None
        return cls(first_at, account_id, mailing_id)


# The page of mailings: from the `mailings` table by its start index, newest first; a full key in the
# order, so a cursor resumes exactly (ties on first_at included).
# (SQLite is told the index: PostgreSQL has no INDEXED BY, and its planner finds the same one.)
_PAGE = Sql(
    sqlite=("SELECT account_id, mailing_id, first_at FROM mailings INDEXED BY {index} WHERE {where}"
            " ORDER BY first_at DESC, account_id DESC, mailing_id DESC LIMIT ?"),
    postgresql=("SELECT account_id, mailing_id, first_at FROM mailings WHERE {where}"
                " ORDER BY first_at DESC, account_id DESC, mailing_id DESC LIMIT ?"),
)


def mailings(conn: Connection, account_id: str | None = None, *, since: str | None = None,
             until: str | None = None, after: After | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """`mailing_stats` rows, newest first (by when each began), at most `limit` (bounded by MAX_LIMIT),
    after the mailing `after` names when it is given.

    `since` and `until` bound when the mailing began (`since <= first_at < until`): "the mailings of
    November" are those whose first link or event is in November, however late their clicks come.
    The page is read from the `mailings` table's start index, then each mailing's row through its own
    indexes: a page costs its mailings' events, whatever the size of the file.
    """
    where, params = ["TRUE"], []
    if account_id is not None:
        where.append("account_id = ?")
        params.append(account_id)
    if since is not None:
        where.append("first_at >= ?")
        params.append(since)
    if until is not None:
        where.append("first_at < ?")
        params.append(until)
    if after is not None:
        where.append("(first_at, account_id, mailing_id) < (?, ?, ?)")
        params.extend(after)
    index = "mailings_by_start" if account_id is not None else "mailings_by_start_all"
    page = conn.execute(
        _PAGE.on(conn).format(index=index, where=" AND ".join(where)),  # fixed fragments; values bound
        # One row past the bound: a caller asking for MAX_LIMIT + 1 learns whether there are more.
        (*params, max(1, min(limit, MAX_LIMIT + 1))),
    ).fetchall()
    rows = []
    for account, mailing_id, _ in page:
        row = mailing(conn, account, mailing_id)
        if row is not None:  # a mailing is in the table exactly while it has links or events
            rows.append(row)
    return rows


def mailing(conn: Connection, account_id: str, mailing_id: str) -> dict[str, Any] | None:
    """One mailing's `mailing_stats` row (index look-ups only), or None when the account has no such mailing."""
    rows = conn.execute("SELECT * FROM mailing_stats WHERE account_id = ? AND mailing_id = ?",
                        (account_id, mailing_id)).fetchall()
    return _dicts(rows)[0] if rows else None


def links(conn: Connection, account_id: str, mailing_id: str) -> list[dict[str, Any]]:
    """One mailing's `link_stats` rows, most clicked by people first (index look-ups only)."""
    rows = conn.execute(
        "SELECT * FROM link_stats WHERE account_id = ? AND mailing_id = ?"
        " ORDER BY people_clicks DESC, clicks DESC, original_url",
        (account_id, mailing_id),
    ).fetchall()
    return _dicts(rows)


def recipient(conn: Connection, account_id: str, identifier: str) -> dict[str, Any] | None:
    """One recipient's `recipient_activity` row (an address, any case, or a recipient id), or None."""
    rows = conn.execute("SELECT * FROM recipient_activity WHERE account_id = ? AND recipient = ?",
                        (account_id, recipient_key(identifier))).fetchall()
    return _dicts(rows)[0] if rows else None


def account_name(conn: Connection, account_id: str) -> str | None:
    """The account's name alone: what a report shows of it (never its secrets)."""
    row = conn.execute("SELECT name FROM accounts WHERE id = ?", (account_id,)).fetchone()
    return None if row is None else str(row[0])


# One mailing's clicks per UTC hour (see click_hours); a constant so a test can EXPLAIN it.
# (A verdict's test is a boolean on PostgreSQL, which coalesce then meets with false, not 0.)
CLICK_HOURS = Sql(
    sqlite=("SELECT substr(occurred_at, 1, 13) AS hour,"
            " count(*) FILTER (WHERE NOT coalesce(verdict IN ('scanner', 'bot'), 0)) AS people,"
            " count(*) FILTER (WHERE coalesce(verdict IN ('scanner', 'bot'), 0)) AS machines"
            " FROM events WHERE account_id = ? AND mailing_id = ? AND type = 'click' GROUP BY hour ORDER BY hour"),
    postgresql=("SELECT substr(occurred_at, 1, 13) AS hour,"
                " count(*) FILTER (WHERE NOT coalesce(verdict IN ('scanner', 'bot'), false)) AS people,"
                " count(*) FILTER (WHERE coalesce(verdict IN ('scanner', 'bot'), false)) AS machines"
                " FROM events WHERE account_id = ? AND mailing_id = ? AND type = 'click' GROUP BY hour ORDER BY hour"),
)


def click_hours(conn: Connection, account_id: str, mailing_id: str) -> list[tuple[str, int, int]]:
    """One mailing's clicks per UTC hour that has any: (hour as `YYYY-MM-DDTHH`, people's, machines').

    People and machines are split as the reporting views split them (a click without a verdict is a
    person's), so the two columns add up to the mailing's `people_clicks` and `machine_clicks`.
    events_by_mailing holds every column it reads: the cost is that mailing's clicks' index entries.
    Coarser buckets (days, months) are sums of these, made by the caller.
    """
    rows = conn.execute(CLICK_HOURS.on(conn), (account_id, mailing_id)).fetchall()
    return [(str(row[0]), int(row[1]), int(row[2])) for row in rows]
