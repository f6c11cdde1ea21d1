"""`linkhub report …`: a mailing's numbers, its links', one recipient's activity, for people who do
not write SQL: aligned tables, or `--json`, or `--csv` (every column of the view, a header row first)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from linkhub.cli.common import db_option, emit, json_option, moment, store, table
from linkhub.core.reports import MAX_LIMIT
from linkhub.services import report_html
from linkhub.services import reports as use
from linkhub.util.times import now_rfc3339

F = Callable[..., Any]
DEFAULT_LIMIT = 100

# What the terminal table of `mailings` and `links` shows (the view's column, its heading); --json and
# --csv carry every column.
MAILING_COLUMNS = [("account_id", "account"), ("mailing_id", "mailing"), ("first_at", "first"),
                   ("recipients", "recipients"), ("sent", "sent"), ("delivered", "delivered"),
                   ("bounces", "bounces"), ("unique_people_opens", "opened"), ("people_clicks", "clicks"),
                   ("unique_people_clicks", "clickers"), ("machine_clicks", "machine"),
                   ("click_through_rate", "CTR"), ("unsubscribes", "unsubs")]
LINK_COLUMNS = [("original_url", "link"), ("recipients", "recipients"), ("people_clicks", "clicks"),
                ("unique_people_clicks", "clickers"), ("machine_clicks", "machine"), ("clicks", "all clicks"),
                ("unique_clicks", "all clickers"), ("last_click_at", "last click")]
# The one-row reports, as label: value lines.
MAILING_LINES = [
    ("account", "account_id"), ("mailing", "mailing_id"), ("recipients", "recipients"), ("sent", "sent"),
    ("delivered", "delivered"), ("undelivered", "undelivered"), ("bounces", "bounces"),
    ("  hard", "hard_bounces"), ("  soft", "soft_bounces"), ("opens", "opens"), ("  unique", "unique_opens"),
    ("people's opens", "people_opens"), ("  unique", "unique_people_opens"),
    ("  through an image proxy", "proxied_opens"), ("Apple MPP prefetches", "apple_mpp_opens"),
    ("scanner/bot opens", "machine_opens"), ("open rate", "open_rate"),
    ("people's clicks", "people_clicks"), ("  unique", "unique_people_clicks"),
    ("scanner/bot clicks", "machine_clicks"), ("all clicks", "clicks"), ("  unique", "unique_clicks"),
    ("click-through rate", "click_through_rate"), ("unsubscribes", "unsubscribes"),
    ("spam complaints", "spam_complaints"), ("first click", "first_click_at"), ("last click", "last_click_at"),
    ("first activity", "first_at"), ("last activity", "last_at"),
]
RECIPIENT_LINES = [
    ("account", "account_id"), ("recipient", "recipient"), ("recipient id", "recipient_id"), ("email", "email"),
    ("events", "events"), ("mailings", "mailings"), ("sent", "sent"), ("delivered", "delivered"),
    ("bounces", "bounces"), ("people's opens", "people_opens"), ("first open", "first_open_at"),
    ("last open", "last_open_at"), ("Apple MPP opens", "apple_mpp_opens"), ("scanner/bot opens", "machine_opens"),
    ("all opens", "opens"),
    ("people's clicks", "clicks"), ("first click", "first_click_at"), ("last click", "last_click_at"),
    ("scanner/bot clicks", "machine_clicks"), ("unsubscribes", "unsubscribes"),
    ("spam complaints", "spam_complaints"), ("last event", "last_event_at"), ("last event type", "last_event_type"),
]


def _shown(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in ("click_through_rate", "open_rate"):
        return f"{value * 100:.1f} %"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if row[column] is None else row[column] for column in columns] for row in rows])
    return out.getvalue()


def _one_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise click.UsageError("--json and --csv: choose one")


def _output(as_json: bool, as_csv: bool, document: Any, rows: list[dict[str, Any]], columns: list[str],
            text: Callable[[], str]) -> None:
    if as_csv:
        click.echo(_csv(rows, columns), nl=False)
    else:
        emit(as_json, document, "" if as_json else text())


def _grid(rows: list[dict[str, Any]], spec: list[tuple[str, str]]) -> str:
    numeric = frozenset(i for i, (key, _) in enumerate(spec)
                        if key == "click_through_rate" or all(isinstance(row[key], int) for row in rows))
    return table([heading for _, heading in spec], [[_shown(key, row[key]) for key, _ in spec] for row in rows],
                 right=numeric)


def _lines(row: dict[str, Any], spec: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in spec) + 2
    return "\n".join(f"{label + ':':<{width}}{_shown(key, row[key])}" for label, key in spec)


def report_options(fn: F) -> F:
    fn = click.option("--account", "account_id", default=None, metavar="ID",
                      help="The account (needed when the id exists in several).")(fn)
    fn = click.option("--csv", "as_csv", is_flag=True, help="Print CSV: a header row, then every column.")(fn)
    return db_option(json_option(fn))


@click.group("report")
def report_group() -> None:
    """Mailing, link and recipient reports from the reporting views (read only)."""


@report_group.command("mailings")
@click.option("--since", default=None, help="Mailings that began at or after this RFC 3339 time (or date, UTC).")
@click.option("--until", default=None, help="Mailings that began before this RFC 3339 time (or date, UTC).")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=DEFAULT_LIMIT, show_default=True,
              help="At most this many mailings, newest first.")
@click.option("--cursor", default=None, metavar="CURSOR",
              help="Start after the page that printed this cursor (its next page).")
@report_options
def report_mailings(since: str | None, until: str | None, limit: int, cursor: str | None, account_id: str | None,
                    as_csv: bool, as_json: bool, db: Path) -> None:
    """Every mailing's numbers, newest first (by when each began)."""
    _one_format(as_json, as_csv)
    since_at, until_at = moment(since, "--since"), moment(until, "--until")
    with store(db, readonly=True) as opened:
        page = use.mailings(opened, account_id, since=since_at, until=until_at, limit=limit, cursor=cursor)
    if page.more:
        click.echo(f"(the {limit} newest shown: more mailings match; the next page: --cursor {page.next_cursor})",
                   err=True)
    _output(as_json, as_csv, {"mailings": page.rows, "next_cursor": page.next_cursor}, page.rows, page.columns,
            lambda: _grid(page.rows, MAILING_COLUMNS) if page.rows else "no mailings")


@report_group.command("mailing")
@click.argument("mailing_id", metavar="ID")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Write the report as one self-contained HTML page (numbers, top links, a chart of clicks) to FILE.")
@click.option("--force", is_flag=True, help="Let --html replace an existing FILE.")
@report_options
def report_mailing(mailing_id: str, html_file: Path | None, force: bool, account_id: str | None, as_csv: bool,
                   as_json: bool, db: Path) -> None:
    """One mailing's numbers: recipients, deliveries, bounces, opens, people's and machines' clicks."""
    _one_format(as_json, as_csv)
    if html_file is not None and (as_json or as_csv):
        raise click.UsageError("--html and --json/--csv: choose one")
    if force and html_file is None:
        raise click.UsageError("--force replaces an existing --html FILE: it needs --html")
    if html_file is not None:
        _write_html(html_file, force, db, mailing_id, account_id)
        return
    with store(db, readonly=True) as opened:
        row = use.mailing(opened, mailing_id, account_id)
    _output(as_json, as_csv, row, [row], list(row), lambda: _lines(row, MAILING_LINES))


def _write_html(path: Path, force: bool, db: Path, mailing_id: str, account_id: str | None) -> None:
    # Refused before the database is read, and again when the file is created: one that appears
    # meanwhile is not replaced either.
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists: choose another name, or add --force to replace it")
    with store(db, readonly=True) as opened:
        report = use.mailing_report(opened, mailing_id, account_id, generated_at=now_rfc3339())
    page = report_html.render(report)
    try:
        with path.open("w" if force else "x", encoding="utf-8") as file:
            file.write(page)
    except FileExistsError:
        raise click.ClickException(f"{path} exists: choose another name, or add --force to replace it") from None
    click.echo(f"wrote the report of mailing {mailing_id!r} (account {report.account_id}) to {path}")


@report_group.command("links")
@click.option("--mailing", "mailing_id", required=True, metavar="ID", help="The mailing whose links to show.")
@report_options
def report_links(mailing_id: str, account_id: str | None, as_csv: bool, as_json: bool, db: Path) -> None:
    """One mailing's links: recipients, people's clicks and machines' clicks on each, most clicked first."""
    _one_format(as_json, as_csv)
    with store(db, readonly=True) as opened:
        page = use.links(opened, mailing_id, account_id)
    rows = page.rows
    document = {"mailing_id": mailing_id, "account_id": rows[0]["account_id"] if rows else account_id,
                "links": rows}
    _output(as_json, as_csv, document, rows, page.columns,
            lambda: _grid(rows, LINK_COLUMNS) if rows else "no links")


@report_group.command("recipient")
@click.argument("email", metavar="EMAIL")
@report_options
def report_recipient(email: str, account_id: str | None, as_csv: bool, as_json: bool, db: Path) -> None:
    """One recipient's activity (by address, any case, or by recipient id): opens, clicks, last event."""
    _one_format(as_json, as_csv)
    with store(db, readonly=True) as opened:
        row = use.recipient(opened, email, account_id)
    _output(as_json, as_csv, row, [row], list(row), lambda: _lines(row, RECIPIENT_LINES))
