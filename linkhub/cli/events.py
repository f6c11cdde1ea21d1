"""`linkhub events …`: the event store itself: read out, and pruned."""

from __future__ import annotations

from pathlib import Path

import click

from linkhub.cli import export
from linkhub.cli.common import db_option, emit, json_option, open_db
from linkhub.core import retention
from linkhub.core.events import EVENT_TYPES
from linkhub.store import transaction
from linkhub.util.wording import plural


@click.group("events")
def events_group() -> None:
    """Read the event store out, and prune it."""


@events_group.command("prune")
@click.option("--older-than", "days", type=click.IntRange(1), required=True, metavar="DAYS",
              help="Delete events that happened more than this many days ago.")
@click.option("--dry-run", is_flag=True, help="Print what would be deleted; delete nothing.")
@json_option
@db_option
def prune(days: int, dry_run: bool, as_json: bool, db: Path) -> None:
    """Delete old events (clicks included) with their outbox rows and verdict changes, as the server's
    --keep-events-days does every hour; the newest event is always kept."""
    before = retention.cutoff(days)
    total = retention.Pruned()
    with open_db(db, readonly=dry_run) as conn:
        if dry_run:
            total = retention.count_old(conn, before)
        else:
            while True:
                with transaction(conn):  # one short transaction per chunk: a running server keeps writing
                    chunk = retention.prune_chunk(conn, before)
                if not chunk.events:
                    break
                total = total.plus(chunk)
    verb = "would delete" if dry_run else "deleted"
    emit(as_json, {"before": before, "dry_run": dry_run, **total._asdict()},
         f"{verb} {plural(total.events, 'event')} ({plural(total.clicks, 'click')}) that happened before {before},"
         f" with {plural(total.outbox, 'outbox row')} and {plural(total.verdict_changes, 'verdict change')}")




@events_group.command("export")
@click.option("--type", "types", multiple=True, type=click.Choice(EVENT_TYPES), help="Only this type (repeatable).")
@export.options
def export_command(types: tuple[str, ...], account: str | None, since: str | None, until: str | None,
                   after_seq: int, fmt: str, output: Path | None, force: bool, as_json: bool, db: Path) -> None:
    """Every event (or those the options choose) in seq order, as JSON Lines or CSV, to stdout or FILE.

    Streams in constant memory on any size of database. Each row carries its seq; the closing line on
    stderr names the last one written, and `--after-seq` with it continues an interrupted export
    exactly after it. The export ends at the newest event stored when it began.
    """
    export.run("events", db=db, account=account, types=types, since=since, until=until, after_seq=after_seq,
               fmt=fmt, output=output, force=force, as_json=as_json)
