"""The key's account's reports: `GET /v1/reports/mailings`, `…/mailings/{mailing_id}` and
`…/mailings/{mailing_id}/links` — the rows of the reporting views, as `linkhub report` prints them."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from linkhub.core.accounts import Account
from linkhub.services import reports
from linkhub.web.auth import authenticated
from linkhub.web.responses import JSON, accepts, int_param, route, time_param
from linkhub.web.state import State

DEFAULT_MAILINGS = 100
MAX_MAILINGS = 500


@authenticated
@accepts("since", "until", "limit", "cursor")
async def list_mailings(request: Request, state: State, account: Account) -> Response:
    since, until = time_param(request, "since"), time_param(request, "until")
    limit = int_param(request, "limit", DEFAULT_MAILINGS, 1, MAX_MAILINGS)
    cursor = request.query_params.get("cursor")
    # A page reads its own mailings' events (docs/schema.md): off the event loop.
    page = await run_in_threadpool(
        lambda: reports.mailings(state.db, account.id, since=since, until=until, limit=limit, cursor=cursor))
    return JSON({"mailings": page.rows, "next_cursor": page.next_cursor})


@authenticated
@accepts()
async def show_mailing(request: Request, state: State, account: Account) -> Response:
    mailing_id = request.path_params["mailing_id"]
    return JSON(await run_in_threadpool(lambda: reports.mailing(state.db, mailing_id, account.id)))


@authenticated
@accepts()
async def mailing_links(request: Request, state: State, account: Account) -> Response:
    mailing_id = request.path_params["mailing_id"]
    page = await run_in_threadpool(lambda: reports.links(state.db, mailing_id, account.id))
    return JSON({"mailing_id": mailing_id, "links": page.rows})


routes = [
    route("/v1/reports/mailings", GET=list_mailings),
    route("/v1/reports/mailings/{mailing_id}", GET=show_mailing),
    route("/v1/reports/mailings/{mailing_id}/links", GET=mailing_links),
]
