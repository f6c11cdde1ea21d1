"""Account use cases: create, update, rotate the API key, show, and the URL Outreach is configured with.

Refusals: AccountNotFound (a `LinkhubError`); InvalidAccount naming the field, which only the CLI meets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from msgspec import UNSET, UnsetType

from linkhub.core import accounts
from linkhub.core.accounts import Account
from linkhub.services.storage import Storage
from linkhub.settings import Settings
from linkhub.store import Connection


def outreach_url(account: Account, server: Callable[[], Settings]) -> str:
    """The URL to paste into the Outreach app: on the account's public URL, else the server's.

    `server` gives the server's settings; it is called only for an account without a public URL
    of its own, so a server setting that cannot be read does not get in the way of the others.
    """
    base = account.public_url or server().base_url
    return f"{base}/outreach/{account.id}/links"


def outreach_url_warning(account: Account, server: Callable[[], Settings]) -> str | None:
    """Why Outreach could not use the URL, or None: it calls from the internet, over HTTPS."""
    if not (account.public_url or server().public_url):
        return ("this URL is local: Outreach needs a public HTTPS URL; set the server's --public-url "
                "(LINKHUB_PUBLIC_URL) or the account's --public-url")
    if not outreach_url(account, server).startswith("https://"):
        return "Outreach needs an HTTPS URL: set a https:// public URL"
    return None


def document(account: Account, server: Callable[[], Settings]) -> dict[str, Any]:
    """The account as shown (never its secret nor its API key), with its Outreach URL."""
    return {**account.public(), "outreach_url": outreach_url(account, server),
            "warning": outreach_url_warning(account, server)}


def find(store: Storage, account_id: str) -> Account:
    account = accounts.get(store.reader(), account_id)
    if account is None:
        raise accounts.AccountNotFound(account_id)
    return account


async def create(store: Storage, name: str, outreach_secret: str, *, public_url: str | None,
                 link_filter: str | None) -> tuple[Account, str]:
    """A new account and its API key (the only time the key exists in clear)."""
    # Checked before the store is touched: a refused URL creates no database.
    checked_url = accounts.check_public_url(public_url) if public_url else None

    def insert(conn: Connection) -> tuple[Account, str]:
        return accounts.create(conn, name, outreach_secret, public_url=checked_url, link_filter=link_filter)

    return await store.write(insert)


async def update(store: Storage, account_id: str, *, name: str | None = None, outreach_secret: str | None = None,
                 public_url: str | UnsetType | None = UNSET, link_filter: str | UnsetType | None = UNSET) -> Account:
    """Change what is given; `None` clears the public URL or the link filter, UNSET keeps it."""
    changes: dict[str, Any] = {"name": name, "outreach_secret": outreach_secret}
    if public_url is not UNSET:
        changes["public_url"] = accounts.check_public_url(public_url) if public_url is not None else None
    if link_filter is not UNSET:
        changes["link_filter"] = link_filter
    return await store.write(lambda conn: accounts.update(conn, account_id, **changes))


async def rotate_key(store: Storage, account_id: str) -> str:
    """A new API key; the old one stops working at once."""
    return await store.write(lambda conn: accounts.rotate_key(conn, account_id))
