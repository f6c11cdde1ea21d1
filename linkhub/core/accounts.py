"""Accounts: linkhub's tenants (Optimizely calls them clients)."""

from __future__ import annotations

from dataclasses import dataclass

from linkhub.core import linkfilter
from linkhub.core.errors import LinkhubError
from linkhub.settings import normalize_public_url
from linkhub.store import Connection, Row
from linkhub.util import ids
from linkhub.util.times import now_rfc3339

_COLUMNS = "id, name, outreach_secret, public_url, link_filter, created_at, updated_at"


class AccountNotFound(LinkhubError):
    status = 404
    code = "not_found"

    def __init__(self, account_id: str) -> None:
        super().__init__(f"no account with id {account_id!r}")
        self.account_id = account_id


class InvalidAccount(ValueError):
    """A name, secret, public URL or link filter an account cannot have; `field` names which.

    Only the CLI changes accounts, so this is no `LinkhubError`: there is no HTTP answer for it.
    """

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    outreach_secret: str
    public_url: str | None
    link_filter: str | None
    created_at: str
    updated_at: str

    def public(self) -> dict[str, str | None]:
        """What may be shown: everything but the Outreach secret."""
        return {
            "id": self.id,
            "name": self.name,
            "public_url": self.public_url,
            "link_filter": self.link_filter,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _row(row: Row | None) -> Account | None:
    return Account(**dict(row)) if row is not None else None


def get(conn: Connection, account_id: str) -> Account | None:
    return _row(conn.execute(f"SELECT {_COLUMNS} FROM accounts WHERE id = ?", (account_id,)).fetchone())


def by_api_key(conn: Connection, api_key: str) -> Account | None:
    digest = ids.api_key_digest(api_key)
    return _row(conn.execute(f"SELECT {_COLUMNS} FROM accounts WHERE api_key_sha256 = ?", (digest,)).fetchone())


def list_all(conn: Connection) -> list[Account]:
    return [Account(**dict(r)) for r in conn.execute(f"SELECT {_COLUMNS} FROM accounts ORDER BY created_at, id")]


def check_public_url(public_url: str) -> str:
    """The account's base URL for short links, normalised as the server's is."""
    try:
        return normalize_public_url(public_url)
    except ValueError as exc:
        raise InvalidAccount(str(exc), "public_url") from None


def _check_name(name: str) -> str:
    if not name.strip():
        raise InvalidAccount("the account name must not be empty", "name")
    return name.strip()


def _check(outreach_secret: str | None, public_url: str | None, link_filter: str | None) -> str | None:
    if outreach_secret is not None and not outreach_secret.strip():
        raise InvalidAccount("the Outreach secret must not be empty", "outreach_secret")
    if link_filter is not None:
        try:
            linkfilter.validate(link_filter)
        except linkfilter.InvalidFilter as exc:
            raise InvalidAccount(str(exc), "link_filter") from None
    return check_public_url(public_url) if public_url is not None else None


def create(
    conn: Connection,
    name: str,
    outreach_secret: str,
    *,
    public_url: str | None = None,
    link_filter: str | None = None,
) -> tuple[Account, str]:
    """Create an account; return it with its new API key (the only time the key exists in clear)."""
    name = _check_name(name)
    public_url = _check(outreach_secret, public_url, link_filter)
    key = ids.api_key()
    account_id = ids.account_id()
    now = now_rfc3339()
    record = {
        "id": account_id,
        "name": name,
        "outreach_secret": outreach_secret,
        "api_key_sha256": ids.api_key_digest(key),
        "public_url": public_url,
        "link_filter": link_filter,
        "created_at": now,
        "updated_at": now,
    }
    conn.execute(f"INSERT INTO accounts ({', '.join(record)}) VALUES ({', '.join(':' + k for k in record)})", record)
    account = get(conn, account_id)
    assert account is not None
    return account, key


_UNSET = object()


def update(
    conn: Connection,
    account_id: str,
    *,
    name: str | None = None,
    outreach_secret: str | None = None,
    public_url: object = _UNSET,
    link_filter: object = _UNSET,
) -> Account:
    """Change the given fields. `link_filter=None` or `public_url=None` clears it; leaving it out keeps it."""
    if get(conn, account_id) is None:
        raise AccountNotFound(account_id)
    new_filter = None if link_filter is _UNSET else link_filter
    assert new_filter is None or isinstance(new_filter, str)
    new_url = None if public_url is _UNSET else public_url
    assert new_url is None or isinstance(new_url, str)
    checked_url = _check(outreach_secret, new_url, new_filter)
    changes: dict[str, object] = {}
    if name is not None:
        changes["name"] = _check_name(name)
    if outreach_secret is not None:
        changes["outreach_secret"] = outreach_secret
    if public_url is not _UNSET:
        changes["public_url"] = checked_url
    if link_filter is not _UNSET:
        changes["link_filter"] = new_filter
    if changes:
        changes["updated_at"] = now_rfc3339()
        _set(conn, account_id, changes)
    account = get(conn, account_id)
    assert account is not None
    return account


def rotate_key(conn: Connection, account_id: str) -> str:
    """Replace the account's API key; the old one stops working at once. Returns the new key."""
    if get(conn, account_id) is None:
        raise AccountNotFound(account_id)
    key = ids.api_key()
    _set(conn, account_id, {"api_key_sha256": ids.api_key_digest(key), "updated_at": now_rfc3339()})
    return key


def _set(conn: Connection, account_id: str, changes: dict[str, object]) -> None:
    # The column names are this module's own keys, never a caller's text.
    assignments = ", ".join(f"{column} = :{column}" for column in changes)
    conn.execute(f"UPDATE accounts SET {assignments} WHERE id = :account_id", {**changes, "account_id": account_id})
