"""Erasing a recipient of the key's account: `DELETE /v1/recipients?email=…` (or `?recipient_id=…`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from linkhub.core.accounts import Account
from linkhub.core.erasure import Target
from linkhub.services import erasure
from linkhub.web.auth import authenticated
from linkhub.web.responses import JSON, InvalidParameter, accepts, route
from linkhub.web.state import State


def _dry_run(request: Request) -> bool:
    value = {"true": True, "1": True, "false": False, "0": False}.get(request.query_params.get("dry_run", "false"))
    if value is None:
        raise InvalidParameter("dry_run must be true or false", field="dry_run")
    return value


@authenticated
@accepts("email", "recipient_id", "dry_run")
async def erase_recipient(request: Request, state: State, account: Account) -> Response:
    params = request.query_params
    target = Target.of(params.get("email") or None, params.get("recipient_id") or None)
    # Through the server's own writer, which also truncates the WAL between two of its transactions.
    erased = await erasure.erase(state.db, account.id, target, via="api", dry_run=_dry_run(request))
    return JSON(erased.document())


routes = [route("/v1/recipients", DELETE=erase_recipient)]
