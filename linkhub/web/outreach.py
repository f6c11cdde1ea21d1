"""POST /outreach/{account_id}/links — Outreach's link-replacement call."""

from __future__ import annotations

import time

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from linkhub.core import accounts, outreach
from linkhub.core.errors import LinkhubError
from linkhub.services.outreach import replace_links as replace
from linkhub.web.auth import Unauthorized
from linkhub.web.contract import OUTREACH_SIGNATURE, Answer, Operation, Param
from linkhub.web.responses import JSON, read_body, validation_error
from linkhub.web.state import State

MAX_BODY = 1024 * 1024
# Outreach waits 2 s (network included) and then sends the original links. Past this,
# a fast 503 is better than an answer that arrives too late to be used.
ANSWER_DEADLINE_S = 1.0
# Checked against unknown accounts too, so that they take as long as a wrong signature.
_DUMMY_SECRET = "linkhub-no-such-account"


class LinksOut(msgspec.Struct, forbid_unknown_fields=True):
    """Each replaced URL of the email → its short link; URLs not replaced are left out (Outreach keeps them)."""

    data: dict[str, str]


async def replace_links(request: Request) -> Response:
    started = time.monotonic()
    state: State = request.app.state.linkhub
    try:
        response = await _replace_links(request, state, started)
    except LinkhubError as exc:  # a refusal is an answer too; a reader failing is the app's 503, not counted here
        _measure(state, exc.status, started)
        raise
    _measure(state, response.status_code, started)
    return response


def _measure(state: State, status: int, started: float) -> None:
    state.metrics.inc("linkhub_outreach_requests_total", status=str(status))
    state.metrics.observe("linkhub_link_replacement_duration_seconds", time.monotonic() - started)


async def _replace_links(request: Request, state: State, started: float) -> Response:
    body = await read_body(request, MAX_BODY)

    account = accounts.get(state.db.reader(), request.path_params["account_id"])
    signature = request.headers.get(outreach.SIGNATURE_HEADER)
    signed = outreach.signature_ok(account.outreach_secret if account else _DUMMY_SECRET, body, signature)
    if account is None or not signed:
        raise Unauthorized("missing or invalid Outreach-Webhook-Signature")

    try:
        payload = outreach.decode(body)
    except msgspec.DecodeError as exc:
        raise validation_error(exc) from None

    replaced = await replace(state.db, state.filters, account, payload, answer_by=started + ANSWER_DEADLINE_S)
    if replaced.timed_out:
        state.metrics.inc("linkhub_filter_timeouts_total", replaced.timed_out)
    if replaced.minted:
        state.metrics.inc("linkhub_links_minted_total", replaced.minted)
    base = account.public_url or state.settings.base_url
    return JSON(LinksOut(data={target: f"{base}/r/{code}" for target, code in replaced.codes.items()}))


operations = [
    Operation(
        "post", "/outreach/{account_id}/links", "Outreach's link replacement: short links for an email's URLs",
        "outreach", replace_links, body=outreach.Payload, security=[OUTREACH_SIGNATURE], strict_query=False,
        params=[Param("account_id", where="path")],
        answers={200: Answer("the short links", LinksOut)},
        errors={400: "the body is JSON of the wrong shape (`invalid_body`, with `path`)",
                401: "unknown account, or a missing or wrong `Outreach-Webhook-Signature` (`unauthorized`)",
                503: f"no answer within {ANSWER_DEADLINE_S:g} s (Outreach then keeps the original links), "
                     "or the database did not answer (`unavailable`)"},
    ),
]
