"""`linkhub accounts …`: create and manage accounts (tenants), straight on the SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
from msgspec import UNSET, UnsetType

from linkhub.cli.common import db_option, emit, environ_settings, json_option, secret_value, store, table
from linkhub.core import accounts
from linkhub.core.accounts import Account
from linkhub.services import accounts as use
from linkhub.settings import Settings

T = TypeVar("T")
SECRET_HELP = "`-` reads it from stdin, which keeps it out of `ps` and shell history."
# InvalidAccount.field → the option its refusal names; the others are one sentence.
OPTION_OF_FIELD = {"link_filter": "--link-filter", "public_url": "--public-url"}


def _server() -> Settings:
    """The server's settings that make the Outreach URL, as `linkhub serve` would read them."""
    return environ_settings("host", "port", "public_url")


def _run(use_case: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(use_case)
    except accounts.InvalidAccount as exc:
        if exc.field not in OPTION_OF_FIELD:
            raise click.ClickException(exc.message) from None
        raise click.BadParameter(exc.message, param_hint=OPTION_OF_FIELD[exc.field]) from None


def _account_text(account: Account) -> str:
    shown = use.document(account, _server)
    rows = [("id", account.id), ("name", account.name), ("public URL", account.public_url or "- (the server's)"),
            ("link filter", account.link_filter or "- (every http(s) link)"), ("created", account.created_at),
            ("updated", account.updated_at), ("Outreach URL", shown["outreach_url"])]
    text = "\n".join(f"  {label + ':':<14}{value}" for label, value in rows)
    return text + (f"\n  {'':<14}(warning: {shown['warning']})" if shown["warning"] else "")


@click.group("accounts")
def accounts_group() -> None:
    """Create and manage accounts (tenants)."""


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
    with store(db, create=True) as opened:
        account, key = _run(use.create(opened, name, secret, public_url=public_url, link_filter=link_filter))
    shown = use.document(account, _server)
    url, warning = shown["outreach_url"], shown["warning"]
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
    with store(db, readonly=True) as opened:
        found = accounts.list_all(opened.reader())
    documents = [use.document(a, _server) for a in found]
    rows = [[a.id, a.name, a.public_url or "-", a.link_filter or "-"] for a in found]
    text = table(["id", "name", "public URL", "link filter"], rows) if rows else "no accounts"
    emit(as_json, documents, text)


@accounts_group.command("show")
@click.argument("account_id")
@json_option
@db_option
def accounts_show(account_id: str, as_json: bool, db: Path) -> None:
    """Show one account and its Outreach URL (never its secret nor its API key)."""
    with store(db, readonly=True) as opened:
        account = use.find(opened, account_id)
    emit(as_json, use.document(account, _server), f"Account {account.id}\n{_account_text(account)}")


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
    secret = secret_value(outreach_secret, "--outreach-secret")
    new_url: str | UnsetType | None = UNSET if public_url is None else public_url or None
    if clear_public_url:
        new_url = None
    new_filter: str | UnsetType | None = UNSET if link_filter is None else link_filter
    if clear_link_filter:
        new_filter = None
    with store(db) as opened:
        account = _run(use.update(opened, account_id, name=name, outreach_secret=secret, public_url=new_url,
                                  link_filter=new_filter))
    emit(as_json, use.document(account, _server), f"Updated account {account.id}\n{_account_text(account)}")


@accounts_group.command("rotate-key")
@click.argument("account_id")
@json_option
@db_option
def accounts_rotate_key(account_id: str, as_json: bool, db: Path) -> None:
    """Issue a new API key; the old one stops working at once."""
    with store(db) as opened:
        key = _run(use.rotate_key(opened, account_id))
    emit(as_json, {"id": account_id, "api_key": key}, f"New API key for {account_id} (shown only now):\n  {key}")
