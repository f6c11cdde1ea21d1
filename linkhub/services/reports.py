"""Reports, for the CLI and (account-scoped) for HTTP: the same rows, the same refusals.

What this adds to core.reports is the account: a caller that names none gets the one account
the mailing or recipient belongs to, or a refusal naming every candidate; one that names an
account that does not exist is told so rather than shown an empty report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from linkhub.core import reports
from linkhub.core.accounts import AccountNotFound
from linkhub.core.errors import LinkhubError
from linkhub.services.report_html import MailingReport
from linkhub.services.storage import Storage
from linkhub.store import Connection


@dataclass(frozen=True)
class Page:
    columns: list[str]  # the view's, in order
    rows: list[dict[str, Any]]
    more: bool = False  # more rows matched than the page holds
    next_cursor: str | None = None  # where the next page starts, when there is one (mailings only)


def _known(conn: Connection, account_id: str | None) -> None:
    if account_id is not None and not reports.account_exists(conn, account_id):
        raise AccountNotFound(account_id)


def mailings(store: Storage, account_id: str | None, *, since: str | None, until: str | None,
             limit: int, cursor: str | None = None) -> Page:
    """The newest mailings' stats (of one account, or of all), at most `limit`, after `cursor` (the
    `next_cursor` of the page before)."""
    after = None if cursor is None else reports.After.parse(cursor)
    conn = store.reader()
    _known(conn, account_id)
    rows = reports.mailings(conn, account_id, since=since, until=until, after=after, limit=limit + 1)
    rows, more = rows[:limit], len(rows) > limit
    last = reports.After(rows[-1]["first_at"], rows[-1]["account_id"], rows[-1]["mailing_id"]) if more else None
    return Page(reports.columns(conn, "mailing_stats"), rows, more, None if last is None else last.cursor())


def _mailing_account(conn: Connection, mailing_id: str, account_id: str | None) -> str:
    _known(conn, account_id)
    return reports.which_account(reports.accounts_with_mailing(conn, mailing_id), account_id,
                                 f"mailing {mailing_id!r}")


def mailing(store: Storage, mailing_id: str, account_id: str | None) -> dict[str, Any]:
    conn = store.reader()
    row = reports.mailing(conn, _mailing_account(conn, mailing_id, account_id), mailing_id)
    if row is None:  # gone between the two reads (erased)
        raise LinkhubError(f"no mailing {mailing_id!r}", status=404, code="not_found")
    return row


# How many links the HTML report lists (most clicked by people first); it says how many more there are.
TOP_LINKS = 20


def mailing_report(store: Storage, mailing_id: str, account_id: str | None, *, generated_at: str,
                   top_links: int = TOP_LINKS) -> MailingReport:
    """What the HTML report of one mailing shows: its numbers, its top links, its clicks per hour, the
    account's name (nothing else of the account). Every read is through the mailing's indexes."""
    conn = store.reader()
    chosen = _mailing_account(conn, mailing_id, account_id)
    row = reports.mailing(conn, chosen, mailing_id)
    if row is None:  # gone between the two reads (erased)
        raise LinkhubError(f"no mailing {mailing_id!r}", status=404, code="not_found")
    every_link = reports.links(conn, chosen, mailing_id)
    return MailingReport(account_id=chosen, account_name=reports.account_name(conn, chosen), mailing_id=mailing_id,
                         stats=row, links=every_link[:top_links], more_links=max(len(every_link) - top_links, 0),
                         hours=reports.click_hours(conn, chosen, mailing_id), generated_at=generated_at)


def links(store: Storage, mailing_id: str, account_id: str | None) -> Page:
    """The mailing's links, most clicked by people first."""
    conn = store.reader()
    rows = reports.links(conn, _mailing_account(conn, mailing_id, account_id), mailing_id)
    return Page(reports.columns(conn, "link_stats"), rows)


def recipient(store: Storage, identifier: str, account_id: str | None) -> dict[str, Any]:
    """One recipient's activity, by address (any case) or recipient id."""
    conn = store.reader()
    _known(conn, account_id)
    chosen = reports.which_account(reports.accounts_with_recipient(conn, identifier), account_id,
                                   f"recipient {identifier!r}")
    row = reports.recipient(conn, chosen, identifier)
    if row is None:  # gone between the two reads (erased)
        raise LinkhubError(f"no recipient {identifier!r}", status=404, code="not_found")
    return row
