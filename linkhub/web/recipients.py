"""Erasing a recipient of the key's account: `DELETE /v1/recipients?email=…` (or `?recipient_id=…`)."""

from __future__ import annotations

from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from linkhub.core.accounts import Account
from linkhub.core.erasure import Kind, Target
from linkhub.services import erasure
from linkhub.web.contract import BEARER, Answer, Operation, Param
from linkhub.web.responses import JSON, InvalidParameter
from linkhub.web.state import State


class RemovedOut(msgspec.Struct, forbid_unknown_fields=True):
    """What the erasure deleted (a dry run: would delete)."""

    events: int
    clicks: int
    outbox: int
    verdict_changes: int
    links_kept: int
    links_deleted: int
    pixels: int
    inbound_rejects: int


class ErasedOut(msgspec.Struct, forbid_unknown_fields=True):
    """The erasure's receipt; `id` is null, and nothing stored, for a dry run."""

    id: int | None
    account_id: str
    erased_at: str
    identifier_kind: Kind
    identifier_hash: str
    via: str
    removed: RemovedOut
    earlier: list[str]
    dry_run: bool
    wal_truncated: bool | None


def _dry_run(request: Request) -> bool:
    value = {"true": True, "1": True, "false": False, "0": False}.get(request.query_params.get("dry_run", "false"))
    if value is None:
        raise InvalidParameter("dry_run must be true or false", field="dry_run")
    return value


async def erase_recipient(request: Request, state: State, account: Account) -> Response:
    params = request.query_params
    target = Target.of(params.get("email") or None, params.get("recipient_id") or None)
    # Through the server's own writer, which also truncates the WAL between two of its transactions.
    erased = await erasure.erase(state.db, account.id, target, via="api", dry_run=_dry_run(request))
    return JSON(msgspec.convert(erased.document(), ErasedOut))


Flag = Literal["true", "false", "1", "0"]

operations = [
    Operation(
        "delete", "/v1/recipients", "Erase a recipient: their events, clicks and links", "recipients",
        erase_recipient, security=[BEARER],
        params=[Param("email", description="the address (any case); or recipient_id"),
                Param("recipient_id"), Param("dry_run", Flag, description="say what would be erased, erase nothing")],
        answers={200: Answer("the erasure's receipt", ErasedOut)},
        errors={400: "neither email nor recipient_id (`missing_parameter`)",
                422: "both given, an email that is not an address, or a bad dry_run (`invalid_parameter`)"},
    ),
]
