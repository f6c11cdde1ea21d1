"""`linkhub events …`: the event store, read out."""

from __future__ import annotations

from pathlib import Path

import click

from linkhub.cli import export
from linkhub.core.events import EVENT_TYPES


@click.group("events")
def events_group() -> None:
    """Read the event store out."""


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
