"""Bearer API keys for /v1: the key names the account, and everything is scoped to it."""

from __future__ import annotations

from starlette.requests import Request

from . import accounts
from .accounts import Account
from .responses import JSON, error
from .state import State


def account_of(request: Request) -> Account | None:
    """The account whose API key the request carries, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    state: State = request.app.state.linkhub
    return accounts.by_api_key(state.db.reader(), key.strip())


def unauthorized() -> JSON:
    response = error(401, "unauthorized", "missing or invalid API key (Authorization: Bearer <key>)")
    response.headers["WWW-Authenticate"] = 'Bearer realm="linkhub"'
    return response
