"""Bearer API keys for /v1: the key names the account, and everything is scoped to it."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from linkhub.core import accounts
from linkhub.core.accounts import Account
from linkhub.core.errors import LinkhubError
from linkhub.web.state import State


class Unauthorized(LinkhubError):
    status = 401
    code = "unauthorized"


def account_of(request: Request) -> Account | None:
    """The account whose API key the request carries, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    state: State = request.app.state.linkhub
    return accounts.by_api_key(state.db.reader(), key.strip())


Handler = Callable[[Request, State, Account], Awaitable[Response]]
# The endpoints `authenticated` made: the contract (web/contract.py) refuses to wrap one a second time.
AUTHENTICATED: weakref.WeakSet[Callable[[Request], Awaitable[Response]]] = weakref.WeakSet()


def authenticated(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that answers 401 without a valid key, else calls `handler(request, state, account)`."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        account = account_of(request)
        if account is None:
            raise Unauthorized("missing or invalid API key (Authorization: Bearer <key>)",
                               headers={"WWW-Authenticate": 'Bearer realm="linkhub"'})
        return await handler(request, request.app.state.linkhub, account)

    AUTHENTICATED.add(endpoint)
    return endpoint
