"""The key's account's reports: `GET /v1/reports/mailings`, `…/mailings/{mailing_id}` and
`…/mailings/{mailing_id}/links` — the rows of the reporting views, as `linkhub report` prints them."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from linkhub.core.accounts import Account
from linkhub.services import reports
from linkhub.web.contract import BEARER, Answer, Operation, Param
from linkhub.web.responses import JSON, Time, int_param, time_param
from linkhub.web.state import State

DEFAULT_MAILINGS = 100
MAX_MAILINGS = 500


class MailingOut(msgspec.Struct, forbid_unknown_fields=True):
    """A row of the `mailing_stats` view (docs/schema.md says what each column counts)."""

    account_id: str
    mailing_id: str
    recipients: int
    sent: int
    delivered: int
    undelivered: int
    bounces: int
    hard_bounces: int
    soft_bounces: int
    opens: int
    unique_opens: int
    people_opens: int
    unique_people_opens: int
    proxied_opens: int
    apple_mpp_opens: int
    machine_opens: int
    first_open_at: str | None
    clicks: int
    unique_clicks: int
    people_clicks: int
    unique_people_clicks: int
    machine_clicks: int
    unsubscribes: int
    spam_complaints: int
    first_click_at: str | None
    last_click_at: str | None
    first_at: str | None
    last_at: str | None
    click_through_rate: float | None
    open_rate: float | None


class LinkStatsOut(msgspec.Struct, forbid_unknown_fields=True):
    """A row of the `link_stats` view: one link of a mailing."""

    account_id: str
    mailing_id: str
    original_url: str
    recipients: int
    clicks: int
    unique_clicks: int
    people_clicks: int
    unique_people_clicks: int
    machine_clicks: int
    first_click_at: str | None
    last_click_at: str | None


class MailingsOut(msgspec.Struct, forbid_unknown_fields=True):
    mailings: list[MailingOut]
    next_cursor: Annotated[str | None, msgspec.Meta(description="the next page's ?cursor=; null: no more")]


class MailingLinksOut(msgspec.Struct, forbid_unknown_fields=True):
    mailing_id: str
    links: list[LinkStatsOut]


def _rows(rows: list[dict[str, Any]], kind: type[Any]) -> list[Any]:
    # A column the view gains (a migration) fails here, in the tests, before the document goes stale.
    return [msgspec.convert(row, kind) for row in rows]


async def list_mailings(request: Request, state: State, account: Account) -> Response:
    since, until = time_param(request, "since"), time_param(request, "until")
    limit = int_param(request, "limit", DEFAULT_MAILINGS, 1, MAX_MAILINGS)
    cursor = request.query_params.get("cursor")
    # A page reads its own mailings' events (docs/schema.md): off the event loop.
    page = await run_in_threadpool(
        lambda: reports.mailings(state.db, account.id, since=since, until=until, limit=limit, cursor=cursor))
    return JSON(MailingsOut(mailings=_rows(page.rows, MailingOut), next_cursor=page.next_cursor))


async def show_mailing(request: Request, state: State, account: Account) -> Response:
    mailing_id = request.path_params["mailing_id"]
    row = await run_in_threadpool(lambda: reports.mailing(state.db, mailing_id, account.id))
    return JSON(msgspec.convert(row, MailingOut))


async def mailing_links(request: Request, state: State, account: Account) -> Response:
    mailing_id = request.path_params["mailing_id"]
    page = await run_in_threadpool(lambda: reports.links(state.db, mailing_id, account.id))
    return JSON(MailingLinksOut(mailing_id=mailing_id, links=_rows(page.rows, LinkStatsOut)))


_MAILING = Param("mailing_id", where="path")
_NO_MAILING = "the account has no such mailing (`not_found`)"

operations = [
    Operation(
        "get", "/v1/reports/mailings", "Each mailing's numbers, newest first", "reports", list_mailings,
        security=[BEARER],
        params=[Param("since", Time, description="mailings that began at or after"),
                Param("until", Time, description="mailings that began before"),
                Param("limit", Annotated[int, msgspec.Meta(ge=1, le=MAX_MAILINGS)],
                      description=f"default {DEFAULT_MAILINGS}"),
                Param("cursor", description="a `next_cursor` of an earlier page")],
        answers={200: Answer("a page of mailings", MailingsOut)},
        errors={422: "a bad since, until, limit or cursor (`invalid_parameter`)"},
    ),
    Operation(
        "get", "/v1/reports/mailings/{mailing_id}", "One mailing's numbers", "reports", show_mailing,
        security=[BEARER], params=[_MAILING],
        answers={200: Answer("the mailing's row", MailingOut)}, errors={404: _NO_MAILING},
    ),
    Operation(
        "get", "/v1/reports/mailings/{mailing_id}/links", "Each link of a mailing: people's clicks and machines'",
        "reports", mailing_links, security=[BEARER], params=[_MAILING],
        answers={200: Answer("the mailing's links, most clicked by people first", MailingLinksOut)},
        errors={404: _NO_MAILING},
    ),
]
