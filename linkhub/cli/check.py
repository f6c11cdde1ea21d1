"""`linkhub check`: the database's health for an operator or a monitoring script."""

from __future__ import annotations

from pathlib import Path

import click

from linkhub.cli.common import db_option, emit, json_option
from linkhub.store import check
from linkhub.util.wording import plural


@click.command("check")
@click.option("--full", is_flag=True,
              help="Run SQLite's integrity_check and foreign_key_check (every page and index; slow on large "
                   "files) instead of quick_check.")
@db_option
@json_option
@click.pass_context
def check_command(ctx: click.Context, full: bool, db: Path, as_json: bool) -> None:
    """Check the database: integrity, schema version, pending migrations, WAL size, queue.

    Opens the file read-only, so it is safe while the server runs. Exits 1 when something
    is wrong (damage, missing or pending migrations); warnings alone exit 0.
    """
    try:
        report = check.check(db, full=full)
    except check.CheckError as exc:
        raise click.ClickException(str(exc)) from None
    emit(as_json, report.document(), _text(report))
    if not report.ok:
        ctx.exit(1)


def _text(report: check.Report) -> str:
    version = "none" if report.schema_version is None else str(report.schema_version)
    pending = report.pending_migrations
    queue = report.queue
    lines = [
        f"database    {report.path} ({report.database_bytes:,} bytes, journal {report.journal_mode})",
        f"WAL         {report.wal_bytes:,} bytes",
        f"integrity   {'ok' if report.integrity == ['ok'] else 'FAILED'} ({report.integrity_check})",
        f"schema      version {version}, "
        + (plural(len(pending), "pending migration") if pending else "up to date"),
    ]
    if queue:
        since = f", oldest waiting since {queue['oldest_waiting_since']}" if queue["oldest_waiting_since"] else ""
        lines.append(f"queue       {queue['pending']:,} pending, {queue['in_flight']:,} in flight, "
                     f"{queue['dead']:,} dead{since}")
    lines += [f"problem:    {problem}" for problem in report.problems]
    lines += [f"warning:    {warning}" for warning in report.warnings]
    lines.append("OK" if report.ok else f"{plural(len(report.problems), 'problem')} found")
    return "\n".join(lines)
