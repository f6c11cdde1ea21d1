"""The `linkhub` command: every admin task, for people and for scripts (`--json`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from linkhub import __version__
from linkhub.cli.check import check_command
from linkhub.cli.common import (
    LinkhubGroup,
    db_option,
    emit,
    environ_settings,
    json_option,
    open_db,
    secret_value,
    setting_options,
    table,
)
from linkhub.cli.outbox import outbox_group
from linkhub.cli.webhooks import webhooks_group
from linkhub.core import accounts, linkfilter, outreach
from linkhub.settings import Settings, normalize_public_url
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


def outreach_url(account: accounts.Account) -> str:
    base = account.public_url or environ_settings("host", "port", "public_url").base_url
    return f"{base}/outreach/{account.id}/links"


def outreach_url_warning(account: accounts.Account) -> str | None:
    """Why Outreach could not use the printed URL, or None: it calls from the internet, over HTTPS."""
    if not (account.public_url or environ_settings("public_url").public_url):
        return ("this URL is local: Outreach needs a public HTTPS URL; set the server's --public-url "
                "(LINKHUB_PUBLIC_URL) or the account's --public-url")
    if not outreach_url(account).startswith("https://"):
        return "Outreach needs an HTTPS URL: set a https:// public URL"
    return None


def _account_document(account: accounts.Account) -> dict[str, Any]:
    return {**account.public(), "outreach_url": outreach_url(account), "warning": outreach_url_warning(account)}


def _account_text(account: accounts.Account) -> str:
    warning = outreach_url_warning(account)
    rows = [("id", account.id), ("name", account.name), ("public URL", account.public_url or "- (the server's)"),
            ("link filter", account.link_filter or "- (every http(s) link)"), ("created", account.created_at),
            ("updated", account.updated_at), ("Outreach URL", outreach_url(account))]
    text = "\n".join(f"  {label + ':':<14}{value}" for label, value in rows)
    return text + (f"\n  {'':<14}(warning: {warning})" if warning else "")


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


# -- accounts ---------------------------------------------------------------------------


@cli.group("accounts")
def accounts_group() -> None:
    """Create and manage accounts (tenants)."""


SECRET_HELP = "`-` reads it from stdin, which keeps it out of `ps` and shell history."


@accounts_group.command("create")
@click.argument("name")
@click.option("--outreach-secret", required=True, envvar="LINKHUB_OUTREACH_SECRET",
              help="The secret shown on your Outreach app's configuration page [env LINKHUB_OUTREACH_SECRET]; "
                   + SECRET_HELP)
@click.option("--public-url", default=None, help="Base URL for this account's short links (a custom tracking domain).")
@click.option("--link-filter", default=None,
              help="Only replace links whose ORIGINAL URL matches this PCRE-style regex.")
@json_option
@db_option
def accounts_create(name: str, outreach_secret: str, public_url: str | None, link_filter: str | None,
                    as_json: bool, db: Path) -> None:
    """Create an account (and the database, if there is none): prints its id, its API key (shown once)
    and the URL for Outreach."""
    secret = secret_value(outreach_secret, "--outreach-secret")
    assert secret is not None
    checked_url = _public_url(public_url or None)
    with open_db(db, create=True) as conn:
        try:
            account, key = accounts.create(conn, name, secret, public_url=checked_url, link_filter=link_filter)
        except linkfilter.InvalidFilter as exc:
            raise click.BadParameter(str(exc), param_hint="--link-filter") from None
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    url, warning = outreach_url(account), outreach_url_warning(account)
    emit(
        as_json,
        {"id": account.id, "name": account.name, "api_key": key, "outreach_url": url, "warning": warning},
        f"Created account {account.name!r}\n"
        f"  id:           {account.id}\n"
        f"  API key:      {key}\n"
        f"                (shown only now: store it; `linkhub accounts rotate-key` issues a new one)\n"
        f"  Outreach URL: {url}\n"
        f"                (paste into the Mailing links custom tracker extension of your Outreach app)"
        + (f"\n  Warning:      {warning}" if warning else ""),
    )


@accounts_group.command("list")
@json_option
@db_option
def accounts_list(as_json: bool, db: Path) -> None:
    """List accounts (secrets are never shown)."""
    with open_db(db, readonly=True) as conn:
        found = accounts.list_all(conn)
        documents = [_account_document(a) for a in found]
    rows = [[a.id, a.name, a.public_url or "-", a.link_filter or "-"] for a in found]
    text = table(["id", "name", "public URL", "link filter"], rows) if rows else "no accounts"
    emit(as_json, documents, text)


@accounts_group.command("show")
@click.argument("account_id")
@json_option
@db_option
def accounts_show(account_id: str, as_json: bool, db: Path) -> None:
    """Show one account and its Outreach URL (never its secret nor its API key)."""
    with open_db(db, readonly=True) as conn:
        account = accounts.get(conn, account_id)
    if account is None:
        raise click.ClickException(f"no account with id {account_id!r}")
    emit(as_json, _account_document(account), f"Account {account.id}\n{_account_text(account)}")


@accounts_group.command("update")
@click.argument("account_id")
@click.option("--name", default=None)
@click.option("--outreach-secret", default=None, help="A new Outreach secret; " + SECRET_HELP)
@click.option("--public-url", default=None, help="A new base URL for short links; '' clears it.")
@click.option("--clear-public-url", is_flag=True, help="Remove the account's public URL: use the server's.")
@click.option("--link-filter", default=None)
@click.option("--clear-link-filter", is_flag=True, help="Remove the link filter: replace every http(s) link.")
@json_option
@db_option
def accounts_update(account_id: str, name: str | None, outreach_secret: str | None, public_url: str | None,
                    clear_public_url: bool, link_filter: str | None, clear_link_filter: bool, as_json: bool,
                    db: Path) -> None:
    """Change an account; a running server sees the change at once."""
    if link_filter is not None and clear_link_filter:
        raise click.UsageError("--link-filter and --clear-link-filter exclude each other")
    if public_url is not None and clear_public_url:
        raise click.UsageError("--public-url and --clear-public-url exclude each other")
    given = (name, outreach_secret, public_url, link_filter)
    if all(value is None for value in given) and not (clear_public_url or clear_link_filter):
        raise click.UsageError("nothing to change: give --name, --outreach-secret, --public-url, "
                               "--clear-public-url, --link-filter or --clear-link-filter")
    changes: dict[str, Any] = {"name": name, "outreach_secret": secret_value(outreach_secret, "--outreach-secret")}
    if clear_public_url or public_url == "":
        changes["public_url"] = None
    elif public_url is not None:
        changes["public_url"] = _public_url(public_url)
    if clear_link_filter:
        changes["link_filter"] = None
    elif link_filter is not None:
        changes["link_filter"] = link_filter
    with open_db(db) as conn:
        try:
            account = accounts.update(conn, account_id, **changes)
        except accounts.AccountNotFound:
            raise click.ClickException(f"no account with id {account_id!r}") from None
        except linkfilter.InvalidFilter as exc:
            raise click.BadParameter(str(exc), param_hint="--link-filter") from None
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    emit(as_json, _account_document(account), f"Updated account {account.id}\n{_account_text(account)}")


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


cli.add_command(check_command)
cli.add_command(outbox_group)
cli.add_command(webhooks_group)
