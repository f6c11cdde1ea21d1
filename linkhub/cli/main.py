"""The `linkhub` command: every admin task, for people and for scripts (`--json`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from linkhub import __version__
from linkhub.cli.accounts import accounts_group
from linkhub.cli.check import check_command
from linkhub.cli.common import LinkhubGroup, db_option, emit, json_option, open_db, setting_options
from linkhub.cli.outbox import outbox_group
from linkhub.cli.webhooks import webhooks_group
from linkhub.core import linkfilter, outreach
from linkhub.settings import Settings
from linkhub.store import backup, schema
from linkhub.util import logs

# -- commands -------------------------------------------------------------------------


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
def migrate(db: Path, as_json: bool) -> None:
    """Create the database if it does not exist, and apply pending schema migrations (serve does this too)."""
    created = not db.exists()
    with open_db(db, create=True, apply_migrations=False) as conn:
        try:
            done = schema.migrate(conn)
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


# -- filter ------------------------------------------------------------------------------


@cli.group("filter")
def filter_group() -> None:
    """Work with link filters."""


@filter_group.command("test")
@click.argument("pattern")
@click.argument("urls", nargs=-1, required=True)
@json_option
def filter_test(pattern: str, urls: tuple[str, ...], as_json: bool) -> None:
    """Show which URLs PATTERN matches, as linkhub will apply it to original links.

    Each URL is reported as `match`, `no match`, `timed out` (the match took longer than
    linkhub allows one link: the link would be left out) or `not replaced` (not an absolute
    http(s) URL: linkhub leaves it alone whatever the filter).
    """
    try:
        linkfilter.validate(pattern)
    except linkfilter.InvalidFilter as exc:
        raise click.BadParameter(str(exc), param_hint="PATTERN") from None
    results = [{"url": url, "result": _filter_result(pattern, url)} for url in urls]
    width = max(len(_FILTER_LABELS[r["result"]]) for r in results)
    emit(as_json, results, "\n".join(f"{_FILTER_LABELS[r['result']]:<{width}}  {r['url']}" for r in results))


_FILTER_LABELS = {"match": "match", "no match": "no match", "timed out": "timed out",
                  "not replaced": "not replaced (not an absolute http(s) URL)"}


def _filter_result(pattern: str, url: str) -> str:
    if not outreach.replaceable(url):
        return "not replaced"
    return {True: "match", False: "no match", None: "timed out"}[linkfilter.matches(pattern, url)]


cli.add_command(accounts_group)
cli.add_command(check_command)
cli.add_command(outbox_group)
cli.add_command(webhooks_group)
