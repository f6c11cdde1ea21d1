"""The `linkhub` command: every admin task, for people and for scripts (`--json`)."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import click

from linkhub import __version__
from linkhub.cli.accounts import accounts_group
from linkhub.cli.check import check_command
from linkhub.cli.classify import classify_group
from linkhub.cli.clicks import clicks_group
from linkhub.cli.common import LinkhubGroup, db_option, emit, json_option, open_db, setting_options
from linkhub.cli.datasette import datasette_config
from linkhub.cli.erase import erase_command
from linkhub.cli.events import events_group
from linkhub.cli.filter import filter_group
from linkhub.cli.inbound import inbound_group
from linkhub.cli.links import links_group
from linkhub.cli.outbox import outbox_group
from linkhub.cli.report import report_group
from linkhub.cli.webhooks import webhooks_group
from linkhub.settings import Settings
from linkhub.store import backup, copyto, postgresql
from linkhub.store import migrate as store_migrate
from linkhub.util import logs


@click.group(cls=LinkhubGroup)
@click.version_option(__version__, prog_name="linkhub")
def cli() -> None:
    """linkhub: email link tracking and event webhooks on one SQLite file."""


@cli.command()
@setting_options()
def serve(log_level: str, log_format: str, **settings: Any) -> None:
    """Apply pending migrations and serve HTTP until SIGTERM/SIGINT."""
    from linkhub.web.server import StartupError, run

    logs.configure(log_level.lower(), log_format.lower())
    try:
        run(Settings(**settings))
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@db_option
@json_option
def migrate(db: Path | str, as_json: bool) -> None:
    """Create the database if it does not exist, and apply pending schema migrations (serve does this too).

    --db may also be a postgresql:// URL: the migrations are applied to that (existing) PostgreSQL
    database, under a lock, so several processes may run this at once.
    """
    if isinstance(db, str):
        try:
            done = postgresql.migrate_url(db)
        except (postgresql.PostgresError, RuntimeError) as exc:
            raise click.ClickException(str(exc)) from None
        text = "\n".join(done) if done else "database is up to date"
        emit(as_json, {"url": postgresql.redact(db), "changes": done, "up_to_date": not done}, text)
        return
    created = not db.exists()
    with open_db(db, create=True, apply_migrations=False) as conn:
        try:
            done = store_migrate(conn)
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None
    text = "\n".join(done) if done else "database is up to date"
    emit(as_json, {"path": str(db), "created": created, "changes": done, "up_to_date": not done}, text)


@cli.command("backup")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@db_option
@json_option
def backup_command(dest: Path, db: Path, as_json: bool) -> None:
    """Copy the database into the new file DEST, safely while the server runs.

    DEST holds every commit up to the moment of the copy, in one file that `linkhub serve
    --db DEST` can run on. An existing DEST is never overwritten.
    """
    try:
        made = backup.backup(db, dest)
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    emit(as_json, {"path": str(made.path), "bytes": made.bytes, "seconds": round(made.seconds, 3)},
         f"backed up {db} to {made.path} ({made.bytes:,} bytes in {made.seconds:.1f} s)")


@cli.command("copy-to")
@click.argument("url", metavar="URL")
@db_option
@click.option("--chunk-rows", type=click.IntRange(1, 1_000_000), default=copyto.CHUNK_ROWS, show_default=True,
              help="Rows per committed chunk (what an interrupted copy may have to redo is less than one).")
@json_option
def copy_to_command(url: str, db: Path, chunk_rows: int, as_json: bool) -> None:
    """Copy the SQLite database into the empty PostgreSQL database of URL (postgresql://user@host/db).

    URL's database is migrated first; every table is copied with its numbering (event seq, outbox
    ids), in committed chunks: run it again after an interruption and it resumes. A database that
    holds other data, or a finished copy, is refused. The copy of a database in use is of the
    moment the copy started.
    """
    if not postgresql.is_url(url):
        raise click.BadParameter("not a postgresql:// or postgres:// URL", param_hint="'URL'")
    if not db.exists():
        raise click.ClickException(f"no database at {db}")
    shown = postgresql.redact(url)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        bar: list[Any] = []

        def on_start(total: int, done: int) -> None:
            if not as_json and sys.stderr.isatty():
                bar.append(stack.enter_context(click.progressbar(
                    length=total, label=f"copying to {shown}", file=sys.stderr, show_pos=True)))
                bar[0].update(done)

        def progress(table: str, rows: int) -> None:
            if bar:
                bar[0].update(rows)

        try:
            result = copyto.copy_to(db, url, chunk_rows=chunk_rows, on_start=on_start, progress=progress)
        except copyto.CopyError as exc:
            raise click.ClickException(str(exc)) from None
    seconds = time.monotonic() - started
    counts = {name: n for name, n in result.rows.items() if name != copyto.SALT_TABLE}
    document = {"source": str(db), "url": shown, "resumed": result.resumed, "rows": counts,
                "copied": result.copied, "nul_replaced": result.nul_replaced, "seconds": round(seconds, 3)}
    per_table = ", ".join(f"{name} {n:,}" for name, n in counts.items())
    nul = (f"; {result.nul_replaced:,} values held U+0000, which PostgreSQL cannot store: copied with U+FFFD"
           if result.nul_replaced else "")
    emit(as_json, document, f"copied {db} to {shown} ({sum(result.copied.values()):,} rows in {seconds:.1f} s"
                            f"{', resumed' if result.resumed else ''}): {per_table}{nul}")


cli.add_command(accounts_group)
cli.add_command(check_command)
cli.add_command(erase_command)
cli.add_command(classify_group)
cli.add_command(datasette_config)
cli.add_command(clicks_group)
cli.add_command(events_group)
cli.add_command(filter_group)
cli.add_command(links_group)
cli.add_command(inbound_group)
cli.add_command(outbox_group)
cli.add_command(report_group)
cli.add_command(webhooks_group)
