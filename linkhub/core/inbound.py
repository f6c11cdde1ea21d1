"""Inbound endpoints: the URLs (`/in/<token>`) the sending platforms post their webhooks to, and the
last items each refused.

The token in the path is the capability, as an API key is: it is made here, shown once, and only its
SHA-256 is stored. The optional Basic password is stored as scrypt with a salt of its own (a person
chose it, so a fast hash would not do); checking it costs ~50 ms, so callers do it off the event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from linkhub.core.errors import LinkhubError
from linkhub.core.formats_in import PROVIDERS, Rejected
from linkhub.store import Connection, Row
from linkhub.util import ids
from linkhub.util.times import now_rfc3339

KEEP_REJECTS = 100
MAX_USER = 256
MAX_PASSWORD = 1024
# scrypt's cost for a Basic password: the same as erasure receipts' (~50 ms, 16 MiB).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_COLUMNS = ("id, account_id, provider, basic_user, created_at, token_rotated_at, last_received_at, accepted,"
            " duplicates, rejected")


class EndpointNotFound(LinkhubError):
    """No such endpoint, or (with an account) not that account's: answered alike."""

    status = 404
    code = "not_found"

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"no inbound endpoint {endpoint_id!r}")


class InvalidEndpoint(LinkhubError):
    status = 422
    code = "invalid_inbound"


@dataclass(frozen=True)
class Endpoint:
    id: str
    account_id: str
    provider: str
    basic_user: str | None
    created_at: str
    token_rotated_at: str
    last_received_at: str | None
    accepted: int
    duplicates: int
    rejected: int


@dataclass(frozen=True)
class Reject:
    received_at: str
    index: int
    reason: str
    item: str  # JSON text, cut to 4096 characters


def new_token() -> str:
    return "inb_" + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    # 256 random bits: a fast hash makes a leaked table useless, as for API keys.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


# What a password is checked against when there is no endpoint to check it against: the same work,
# so the time of an answer does not tell a known token from an unknown one.
_DUMMY = hash_password(secrets.token_urlsafe(16))


def password_matches(stored: str | None, password: str) -> bool:
    """Whether `password` is the one `stored` hashes (scrypt; ~50 ms). None: compared to nothing, False."""
    _, n, r, p, salt, digest = (stored or _DUMMY).split("$")
    given = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                           dklen=32)
    return hmac.compare_digest(given.hex(), digest) and stored is not None


def check_basic(user: str, password: str) -> None:
    if not user or len(user) > MAX_USER or ":" in user or any(ord(c) < 32 for c in user):
        raise InvalidEndpoint(f"the Basic user must be 1 to {MAX_USER} characters, without ':' or control characters",
                              field="basic_auth.username")
    if not password or len(password) > MAX_PASSWORD:
        raise InvalidEndpoint(f"the Basic password must be 1 to {MAX_PASSWORD} characters",
                              field="basic_auth.password")


def _endpoint(row: Row) -> Endpoint:
    return Endpoint(**{key: row[key] for key in row.keys()})  # noqa: SIM118 (a Row iterates its values)


def create(conn: Connection, account_id: str, provider: str, basic: tuple[str, str] | None) -> tuple[Endpoint, str]:
    """A new endpoint and its token (the only time the token exists in clear). `basic` is (user, password hash)."""
    if provider not in PROVIDERS:
        raise InvalidEndpoint(f"provider must be one of {', '.join(PROVIDERS)}", field="provider")
    token = new_token()
    endpoint_id = "in_" + ids.account_id()
    now = now_rfc3339()
    conn.execute(
        "INSERT INTO inbound_endpoints (id, account_id, provider, token_sha256, basic_user, basic_password_scrypt,"
        " created_at, token_rotated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (endpoint_id, account_id, provider, token_digest(token), basic[0] if basic else None,
         basic[1] if basic else None, now, now))
    found = get(conn, endpoint_id)
    assert found is not None
    return found, token


def get(conn: Connection, endpoint_id: str, account_id: str | None = None) -> Endpoint | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM inbound_endpoints WHERE id = ?", (endpoint_id,)).fetchone()
    if row is None or (account_id is not None and row["account_id"] != account_id):
        return None
    return _endpoint(row)


def list_for(conn: Connection, account_id: str | None) -> list[Endpoint]:
    if account_id is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM inbound_endpoints ORDER BY created_at, id")
    else:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM inbound_endpoints WHERE account_id = ? ORDER BY created_at, id",
                            (account_id,))
    return [_endpoint(row) for row in rows]


@dataclass(frozen=True)
class Credentials:
    endpoint: Endpoint
    password_scrypt: str | None


def by_token(conn: Connection, token: str) -> Credentials | None:
    row = conn.execute(f"SELECT {_COLUMNS}, basic_password_scrypt FROM inbound_endpoints WHERE token_sha256 = ?",
                       (token_digest(token),)).fetchone()
    if row is None:
        return None
    values = {key: row[key] for key in row.keys() if key != "basic_password_scrypt"}  # noqa: SIM118
    return Credentials(Endpoint(**values), row["basic_password_scrypt"])


def rotate(conn: Connection, endpoint_id: str, account_id: str | None) -> tuple[Endpoint, str]:
    """A new token; the old URL stops working at once."""
    if get(conn, endpoint_id, account_id) is None:
        raise EndpointNotFound(endpoint_id)
    token = new_token()
    conn.execute("UPDATE inbound_endpoints SET token_sha256 = ?, token_rotated_at = ? WHERE id = ?",
                 (token_digest(token), now_rfc3339(), endpoint_id))
    found = get(conn, endpoint_id)
    assert found is not None
    return found, token


def delete(conn: Connection, endpoint_id: str, account_id: str | None) -> Endpoint:
    """Delete the endpoint and its rejects; the events it stored stay (they are the account's)."""
    found = get(conn, endpoint_id, account_id)
    if found is None:
        raise EndpointNotFound(endpoint_id)
    conn.execute("DELETE FROM inbound_rejects WHERE endpoint_id = ?", (endpoint_id,))
    conn.execute("DELETE FROM inbound_endpoints WHERE id = ?", (endpoint_id,))
    return found


def record(conn: Connection, endpoint: Endpoint, *, received_at: str, accepted: int, duplicates: int,
           rejects: list[Rejected]) -> None:
    """Count a committed POST and keep its rejects, trimmed to the last KEEP_REJECTS of the endpoint;
    in the transaction that stores its events."""
    conn.execute("UPDATE inbound_endpoints SET accepted = accepted + ?, duplicates = duplicates + ?,"
                 " rejected = rejected + ?, last_received_at = ? WHERE id = ?",
                 (accepted, duplicates, len(rejects), received_at, endpoint.id))
    if not rejects:
        return
    kept = rejects[-KEEP_REJECTS:]
    conn.executemany(
        "INSERT INTO inbound_rejects (endpoint_id, account_id, received_at, item_index, reason, email, recipient_id,"
        " item) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(endpoint.id, endpoint.account_id, received_at, r.index, r.reason, r.email, r.recipient_id, r.item_json())
         for r in kept])
    conn.execute("DELETE FROM inbound_rejects WHERE endpoint_id = :id AND id <= (SELECT id FROM inbound_rejects"
                 " WHERE endpoint_id = :id ORDER BY id DESC LIMIT 1 OFFSET :keep)",
                 {"id": endpoint.id, "keep": KEEP_REJECTS})


def rejects(conn: Connection, endpoint_id: str, limit: int = KEEP_REJECTS) -> list[Reject]:
    """The endpoint's rejected items, newest first."""
    return [Reject(row[0], row[1], row[2], row[3]) for row in conn.execute(
        "SELECT received_at, item_index, reason, item FROM inbound_rejects WHERE endpoint_id = ?"
        " ORDER BY id DESC LIMIT ?", (endpoint_id, limit))]


def public(endpoint: Endpoint) -> dict[str, Any]:
    return {"id": endpoint.id, "account_id": endpoint.account_id, "provider": endpoint.provider,
            "basic_auth_user": endpoint.basic_user, "created_at": endpoint.created_at,
            "token_rotated_at": endpoint.token_rotated_at, "last_received_at": endpoint.last_received_at,
            "accepted": endpoint.accepted, "duplicates": endpoint.duplicates, "rejected": endpoint.rejected}
