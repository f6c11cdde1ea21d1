"""The `linkhub` command: every admin task, for people and for scripts (`--json`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from . import __version__, accounts, backup, linkfilter, logs, schema
from .config import Settings, normalize_public_url, parse_networks
from .cli_common import db_option, emit, json_option, open_db
from .cli_outbox import outbox_group
from .cli_webhooks import webhooks_group
from .db import connect

# -- shared options -------------------------------------------------------------------


def _public_url(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_public_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--public-url") from None


def _link_filter(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return linkfilter.validate(value)
    except linkfilter.InvalidFilter as exc:
        raise click.BadParameter(str(exc), param_hint="--link-filter") from None


def env_settings() -> Settings:
    """Server settings as a running server sees them, from LINKHUB_* (for URLs the CLI prints)."""
    return Settings(
        host=os.environ.get("LINKHUB_HOST", Settings.host),
        port=int(os.environ.get("LINKHUB_PORT", Settings.port)),
        public_url=os.environ.get("LINKHUB_PUBLIC_URL") or None,
    )


def outreach_url(account: accounts.Account) -> str:
    base = account.public_url or env_settings().base_url
    return f"{base}/outreach/{account.id}/links"


# -- commands -------------------------------------------------------------------------


@click.group()
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
          allow_private_targets: bool, keep_deliveries_days: int, log_level: str, log_format: str,
          access_log: bool) -> None:
    """Apply pending migrations and serve HTTP until SIGTERM/SIGINT."""
    from .server import run

    try:
        proxies = parse_networks(trusted_proxies)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trusted-proxies") from None
    logs.configure(log_level.lower(), log_format.lower())
    run(Settings(db=db, host=host, port=port, public_url=_public_url(public_url), trusted_proxies=proxies,
                 allow_private_targets=allow_private_targets, keep_deliveries_days=keep_deliveries_days,
                 access_log=access_log))


@cli.command()
@db_option
def migrate(db: Path) -> None:
    """Apply pending schema migrations (serve does this too)."""
    conn = connect(db)
    try:
        done = schema.migrate(conn)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        conn.close()
    for change in done:
        click.echo(change)
    if not done:
        click.echo("database is up to date")


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


# -- accounts ---------------------------------------------------------------------------


@cli.group("accounts")
def accounts_group() -> None:
    """Create and manage accounts (tenants)."""


@accounts_group.command("create")
@click.argument("name")
@click.option("--outreach-secret", required=True, help="The secret shown on your Outreach app's configuration page.")
@click.option("--public-url", default=None, help="Base URL for this account's short links (a custom tracking domain).")
@click.option("--link-filter", default=None, help="Only replace links whose ORIGINAL URL matches this PCRE-style regex.")
@json_option
@db_option
def accounts_create(name: str, outreach_secret: str, public_url: str | None, link_filter: str | None,
                    as_json: bool, db: Path) -> None:
    """Create an account: prints its id, its API key (shown once) and the URL for Outreach."""
    with open_db(db) as conn:
        try:
            account, key = accounts.create(conn, name, outreach_secret, public_url=_public_url(public_url),
                                           link_filter=_link_filter(link_filter))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    url = outreach_url(account)
    emit(
        as_json,
        {"id": account.id, "name": account.name, "api_key": key, "outreach_url": url},
        f"Created account {account.name!r}\n"
        f"  id:           {account.id}\n"
        f"  API key:      {key}\n"
        f"                (shown only now: store it; `linkhub accounts rotate-key` issues a new one)\n"
        f"  Outreach URL: {url}\n"
        f"                (paste into the Mailing links custom tracker extension of your Outreach app)",
    )


@accounts_group.command("list")
@json_option
@db_option
def accounts_list(as_json: bool, db: Path) -> None:
    """List accounts (secrets are never shown)."""
    with open_db(db) as conn:
        found = accounts.list_all(conn)
    documents = [{**a.public(), "outreach_url": outreach_url(a)} for a in found]
    lines = [f"{a.id}  {a.name}  filter={a.link_filter or '-'}  public_url={a.public_url or '-'}" for a in found]
    emit(as_json, documents, "\n".join(lines) if lines else "no accounts")


@accounts_group.command("update")
@click.argument("account_id")
@click.option("--name", default=None)
@click.option("--outreach-secret", default=None)
@click.option("--public-url", default=None)
@click.option("--link-filter", default=None)
@click.option("--clear-link-filter", is_flag=True, help="Remove the link filter: replace every http(s) link.")
@json_option
@db_option
def accounts_update(account_id: str, name: str | None, outreach_secret: str | None, public_url: str | None,
                    link_filter: str | None, clear_link_filter: bool, as_json: bool, db: Path) -> None:
    """Change an account; a running server sees the change at once."""
    if link_filter is not None and clear_link_filter:
        raise click.UsageError("--link-filter and --clear-link-filter exclude each other")
    changes: dict[str, Any] = {"name": name, "outreach_secret": outreach_secret,
                               "public_url": _public_url(public_url)}
    if clear_link_filter:
        changes["link_filter"] = None
    elif link_filter is not None:
        changes["link_filter"] = _link_filter(link_filter)
    with open_db(db) as conn:
        try:
            account = accounts.update(conn, account_id, **changes)
        except accounts.AccountNotFound:
            raise click.ClickException(f"no account with id {account_id!r}") from None
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    emit(as_json, {**account.public(), "outreach_url": outreach_url(account)}, f"Updated account {account.id}")


@accounts_group.command("rotate-key")
@click.argument("account_id")
@json_option
@db_option
def accounts_rotate_key(account_id: str, as_json: bool, db: Path) -> None:
    """Issue a new API key; the old one stops working at once."""
    with open_db(db) as conn:
        try:
            key = accounts.rotate_key(conn, account_id)
        except accounts.AccountNotFound:
            raise click.ClickException(f"no account with id {account_id!r}") from None
    emit(as_json, {"id": account_id, "api_key": key}, f"New API key for {account_id} (shown only now):\n  {key}")


# -- filter ------------------------------------------------------------------------------


@cli.group("filter")
def filter_group() -> None:
    """Work with link filters."""


@filter_group.command("test")
@click.argument("pattern")
@click.argument("urls", nargs=-1, required=True)
@json_option
def filter_test(pattern: str, urls: tuple[str, ...], as_json: bool) -> None:
    """Show which URLs PATTERN matches, as linkhub will apply it to original links."""
    _link_filter(pattern)
    results = [{"url": url, "match": linkfilter.matches(pattern, url)} for url in urls]

    def label(match: bool | None) -> str:
        return {True: "match   ", False: "no match", None: "TIMEOUT "}[match]

    emit(as_json, results, "\n".join(f"{label(r['match'])}  {r['url']}" for r in results))


cli.add_command(outbox_group)
cli.add_command(webhooks_group)
