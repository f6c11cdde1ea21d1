"""`linkhub links …`: mint short links (and a message's open pixel) for any sender, and list minted links,
straight on the SQLite file, through the use case of `POST /v1/links` and `GET /v1/links`."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import click
import msgspec

from linkhub.cli.common import db_option, emit, environ_settings, json_option, store, table
from linkhub.core import accounts
from linkhub.services import accounts as account_use
from linkhub.services import links as use
from linkhub.web.links import answer, listed

# InvalidLinks' field → the option that gave it.
_OPTION_OF_FIELD = {"email": "--email", "id": "--recipient", "message_id": "--message", "expires_at": "--expires-at",
                    "expired_url": "--expired-url"}


@functools.cache
def _server_base() -> str:
    """Where short links point unless the account says otherwise, as `linkhub serve` would read it."""
    return environ_settings("host", "port", "public_url").base_url


@click.group("links")
def links_group() -> None:
    """Mint short links for any sender, and list the links minted."""


@links_group.command("mint")
@click.argument("urls", nargs=-1, metavar="URL...")
@click.option("--account", "account_id", required=True, help="The account the links are minted for.")
@click.option("--mailing", "mailing_id", required=True, help="The mailing (campaign) the message belongs to.")
@click.option("--recipient", "recipient_id", default=None, help="The recipient's id (this or --email, or both).")
@click.option("--email", default=None, help="The recipient's address.")
@click.option("--message", "message_id", default=None,
              help="The message's id; by default one derived from the account, mailing and recipient.")
@click.option("--apply-link-filter", is_flag=True, help="Mint only the URLs the account's link filter matches.")
@click.option("--expires-at", default=None, help="After this RFC 3339 time the links stop redirecting to their URL.")
@click.option("--expired-url", default=None, help="Where the links send visitors after --expires-at "
                                                  "(default: a 'link expired' page).")
@db_option
@json_option
def links_mint(urls: tuple[str, ...], account_id: str, mailing_id: str, recipient_id: str | None, email: str | None,
               message_id: str | None, apply_link_filter: bool, expires_at: str | None, expired_url: str | None,
               db: Path, as_json: bool) -> None:
    """Mint a short link for each URL, and the message's open pixel; print them. Minting again prints the
    same links. URLs that are not absolute http(s) URLs are listed as refused."""
    if recipient_id is None and email is None:
        raise click.UsageError("one of --recipient or --email is required")
    spec = use.MintSpec([use.MessageSpec(mailing_id, [use.UrlSpec(url) for url in urls], message_id=message_id,
                                         recipient_id=recipient_id, email=email)],
                        apply_link_filter=apply_link_filter, expires_at=expires_at, expired_url=expired_url)
    with store(db) as opened:
        account = account_use.find(opened, account_id)
        try:
            minted = asyncio.run(use.mint(opened, account, spec))
        except use.InvalidLinks as exc:
            option = _OPTION_OF_FIELD.get(str(exc.where.get("field")))
            if option is None:
                raise click.ClickException(exc.reason) from None
            raise click.BadParameter(exc.reason, param_hint=option) from None
    document = answer(minted, account.public_url or _server_base())
    message = document.messages[0]
    rows = [[url, short] for url, short in message.links.items()]
    rows += [[refused.url, f"refused: {use.REASONS[refused.reason]}"] for refused in message.refused]
    text = table(["URL", "short link"], rows) if rows else "no URLs given"
    text += f"\nopen pixel: {message.open_pixel}\nmessage id: {message.message_id}"
    emit(as_json, msgspec.to_builtins(message), text)


@links_group.command("list")
@click.option("--account", "account_id", default=None, help="Only this account's links (default: every account's).")
@click.option("--mailing", "mailing_id", default=None, help="Only this mailing's links.")
@click.option("--recipient", "recipient_id", default=None,
              help="Only this recipient's links (their id, or their address in lower case when minted by address).")
@click.option("--limit", type=click.IntRange(1, use.MAX_LIMIT), default=use.DEFAULT_LIMIT, show_default=True,
              help="At most this many links.")
@click.option("--cursor", default=None, help="Continue after the page whose next_cursor this is.")
@db_option
@json_option
def links_list(account_id: str | None, mailing_id: str | None, recipient_id: str | None, limit: int,
               cursor: str | None, db: Path, as_json: bool) -> None:
    """List minted links, by account, mailing, recipient and URL."""
    with store(db, readonly=True) as opened:
        if account_id is not None:
            account_use.find(opened, account_id)

        @functools.cache
        def base_of(owner: str) -> str:
            account = accounts.get(opened.reader(), owner)
            return (account.public_url if account else None) or _server_base()

        page = use.listing(opened, account_id=account_id, mailing_id=mailing_id, recipient_id=recipient_id,
                           cursor=cursor, limit=limit, base_of=base_of)
    document = listed(page)
    rows = [[link.code, link.mailing_id, link.recipient_id, link.original_url, link.expires_at or "-"]
            for link, _ in page.links]
    text = table(["code", "mailing", "recipient", "URL", "expires"], rows) if rows else "no links"
    if page.next_cursor is not None:
        text += f"\nmore: --cursor {page.next_cursor}"
    emit(as_json, msgspec.to_builtins(document), text)
