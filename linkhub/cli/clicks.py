"""`linkhub clicks …`: clicks as the `clicks` view flattens them."""

from __future__ import annotations

from pathlib import Path

import click

from linkhub.cli import export


@click.group("clicks")
def clicks_group() -> None:
    """Read clicks out, flattened (the `clicks` view's columns)."""


@clicks_group.command("export")
@export.options
def export_command(account: str | None, since: str | None, until: str | None, after_seq: int, fmt: str,
                   output: Path | None, force: bool, as_json: bool, db: Path) -> None:
    """Every click (or those the options choose) in seq order, with the `clicks` view's columns (verdict,
    score, reasons, device, …), as JSON Lines or CSV, to stdout or FILE.

    Streams and resumes as `linkhub events export` does (`--after-seq` the last seq written).
    """
    export.run("clicks", db=db, account=account, types=(), since=since, until=until, after_seq=after_seq,
               fmt=fmt, output=output, force=force, as_json=as_json)
