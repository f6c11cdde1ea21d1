"""The `linkhub` command: every admin task, for people and for scripts (`--json`)."""

from __future__ import annotations

from pathlib import Path

import click

from linkhub import __version__
from linkhub.cli.accounts import accounts_group
from linkhub.cli.check import check_command
from linkhub.cli.common import LinkhubGroup, db_option, emit, json_option, open_db
from linkhub.cli.outbox import outbox_group
from linkhub.cli.webhooks import webhooks_group
from linkhub.core import linkfilter, outreach
from linkhub.settings import Settings, normalize_public_url, parse_networks
from linkhub.store import backup, schema
from linkhub.util import logs

# -- shared options -------------------------------------------------------------------


def _public_url(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_public_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--public-url") from None


# -- commands -------------------------------------------------------------------------


@click.group(cls=LinkhubGroup)
@click.version_option(__version__, prog_name="linkhub")
def cli() -> None:
    """linkhub: email link tracking and event webhooks on one SQLite file."""


@cli.command()
@db_option
@click.option("--host", envvar="LINKHUB_HOST", default="127.0.0.1", show_default=True,
              help="Address to listen on [env LINKHUB_HOST].")
@click.option("--port", envvar="LINKHUB_PORT", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free one [env LINKHUB_PORT].")
@click.option("--public-url", envvar="LINKHUB_PUBLIC_URL", default=None,
              help="Base URL of short links, as recipients reach this server [env LINKHUB_PUBLIC_URL; "
                   "default http://HOST:PORT].")
@click.option("--trusted-proxies", envvar="LINKHUB_TRUSTED_PROXIES", default="",
              help="Comma-separated CIDRs whose X-Forwarded-For is believed [env LINKHUB_TRUSTED_PROXIES].")
@click.option("--allow-private-targets", envvar="LINKHUB_ALLOW_PRIVATE_TARGETS", is_flag=True,
              help="Let webhooks deliver to loopback/private addresses, for local set-ups and tests "
                   "[env LINKHUB_ALLOW_PRIVATE_TARGETS=1].")
@click.option("--keep-deliveries-days", envvar="LINKHUB_KEEP_DELIVERIES_DAYS", default=30, show_default=True,
              type=click.IntRange(0), metavar="DAYS",
              help="Delete delivered outbox rows and delivery-log entries older than this, hourly; 0 keeps "
                   "them [env LINKHUB_KEEP_DELIVERIES_DAYS]. Events are never deleted.")
@click.option("--body-timeout", envvar="LINKHUB_BODY_TIMEOUT", default=Settings.body_timeout_s, show_default=True,
              type=click.FloatRange(0.1, 3600), metavar="SECONDS",
              help="A request body must have arrived this long after its headers, or the request is answered "
                   "408 and its connection closed [env LINKHUB_BODY_TIMEOUT].")
@click.option("--log-level", envvar="LINKHUB_LOG_LEVEL", default="info", show_default=True,
              type=click.Choice(logs.LEVELS, case_sensitive=False),
              help="Least severe log records written [env LINKHUB_LOG_LEVEL].")
@click.option("--log-format", envvar="LINKHUB_LOG_FORMAT", default="text", show_default=True,
              type=click.Choice(logs.FORMATS, case_sensitive=False),
              help="Log lines as text, or as one JSON object each [env LINKHUB_LOG_FORMAT].")
@click.option("--access-log", envvar="LINKHUB_ACCESS_LOG", is_flag=True,
              help="Log one line per HTTP request: method, path without query string, status, duration, "
                   "client [env LINKHUB_ACCESS_LOG=1].")
def serve(db: Path, host: str, port: int, public_url: str | None, trusted_proxies: str,
          allow_private_targets: bool, keep_deliveries_days: int, body_timeout: float, log_level: str,
          log_format: str, access_log: bool) -> None:
    """Apply pending migrations and serve HTTP until SIGTERM/SIGINT."""
    from linkhub.web.server import StartupError, run

    try:
        proxies = parse_networks(trusted_proxies)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trusted-proxies") from None
    logs.configure(log_level.lower(), log_format.lower())
    settings = Settings(db=db, host=host, port=port, public_url=_public_url(public_url), trusted_proxies=proxies,
                        allow_private_targets=allow_private_targets, keep_deliveries_days=keep_deliveries_days,
                        body_timeout_s=body_timeout, access_log=access_log)
    try:
        run(settings)
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
