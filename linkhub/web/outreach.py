"""POST /outreach/{account_id}/links — Outreach's link-replacement call."""

from __future__ import annotations

import functools
import logging
import time

import anyio
import anyio.to_thread
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from linkhub.core import accounts, outreach
from linkhub.core.errors import LinkhubError, Unavailable
from linkhub.store import UNAVAILABLE
from linkhub.web.auth import Unauthorized
from linkhub.web.responses import JSON, read_body, validation_error
from linkhub.web.state import State

log = logging.getLogger("linkhub.outreach")

MAX_BODY = 1024 * 1024
# Outreach waits 2 s (network included) and then sends the original links. Past this,
# a fast 503 is better than an answer that arrives too late to be used.
ANSWER_DEADLINE_S = 1.0
# Checked against unknown accounts too, so that they take as long as a wrong signature.
_DUMMY_SECRET = "linkhub-no-such-account"


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

    if account.link_filter:
        # In a worker thread: a catastrophic pattern may take its whole budget, which must not
        # stall the event loop (redirects, /healthz). The filters' own limiter bounds how many
        # threads they hold, so a flood of such calls cannot take those other handlers use, and
        # one account's calls take one of them at a time, so its flood leaves the others to the
        # other accounts. A call that waits spends its budget waiting, and then matches nothing.
        deadline = time.monotonic() + outreach.FILTER_BUDGET_S
        async with state.filter_turns.setdefault(account.id, anyio.Lock()):
            choice = await anyio.to_thread.run_sync(
                functools.partial(outreach.choose_links, account, payload, deadline=deadline),
                limiter=state.filter_limiter,
            )
    else:  # no thread hop: this is most calls, and the filter-free path stays as fast as it was
        choice = outreach.choose_links(account, payload)
    links = choice.links
    if choice.timed_out:
        state.metrics.inc("linkhub_filter_timeouts_total", choice.timed_out)
    codes: dict[str, str] = {}
    if links:
        # Straight to the writer, even for a retry: mint() finds the codes minted before.
        remaining = ANSWER_DEADLINE_S - (time.monotonic() - started)
        who = outreach.recipient(account, payload)
        try:
            codes, created = await state.db.write(
                functools.partial(outreach.mint, who=who, links=links), timeout=max(remaining, 0.001)
            )
        except UNAVAILABLE as exc:
            log.warning("link store failed (%s): answered 503 to account %s; Outreach keeps the original links",
                        exc, account.id)
            raise Unavailable("the link store did not answer in time; try again") from exc
        state.metrics.inc("linkhub_links_minted_total", created)

    base = account.public_url or state.settings.base_url
    return JSON({"data": {link.target: f"{base}/r/{codes[link.target]}" for link in links}})
