"""The ASGI application: /r/ and /o/ go straight to their lean handlers, the rest through Starlette."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import msgspec
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from linkhub import __version__
from linkhub.core.errors import Unavailable
from linkhub.core.metrics import Metrics, ScrapeTime
from linkhub.delivery import sender
from linkhub.delivery.retention import Pruner
from linkhub.settings import Settings
from linkhub.store import UNAVAILABLE, open_database
from linkhub.web import contract, errors
from linkhub.web import events as event_api
from linkhub.web import inbound as inbound_api
from linkhub.web import links as link_api
from linkhub.web import outreach as outreach_api
from linkhub.web import recipients as recipient_api
from linkhub.web import reports as report_api
from linkhub.web import webhooks as webhook_api
from linkhub.web.access_log import AccessLog
from linkhub.web.contract import Answer, Operation, Param
from linkhub.web.deadline import within
from linkhub.web.pixel import PixelApp
from linkhub.web.redirect import RedirectApp
from linkhub.web.responses import JSON
from linkhub.web.state import State

log = logging.getLogger("linkhub.app")


class HealthOut(msgspec.Struct, forbid_unknown_fields=True):
    status: Literal["ok"]


async def healthz(request: Request) -> Response:
    state: State = request.app.state.linkhub
    try:
        state.db.ping()
    except UNAVAILABLE as exc:
        raise Unavailable(f"database does not answer: {exc}") from exc
    if not state.db.writer_alive():
        raise Unavailable("database writer is not running")
    return JSON(HealthOut(status="ok"))


async def metrics(request: Request) -> Response:
    state: State = request.app.state.linkhub
    # The queue gauges read the database: in a thread, so a large backlog never holds up a redirect.
    return Response(await asyncio.to_thread(state.metrics.render), media_type=CONTENT_TYPE_PLAIN_0_0_4)


async def openapi(request: Request) -> Response:
    return Response(openapi_document(), media_type="application/json")


_SERVICE = "service"
_PAGE = {"type": "string", "description": "a small fixed HTML page"}
# /r/{code} and /o/{code} are answered by RedirectApp and PixelApp, outside Starlette: operations without a
# handler, in the document only.
_REDIRECT_ANSWERS = {
    302: Answer("the link's target, in `Location` (past the link's expiry: its expired_url); the click is recorded "
                "(GET and HEAD alike)", media_type=None, headers={"Location": "the URL to go to"}),
    404: Answer("no such link", media_type="text/html", schema=_PAGE),
    410: Answer("the link has expired and names no expired_url: a \"link expired\" page", media_type="text/html",
                schema=_PAGE),
    503: Answer("the link could not be looked up (a page), or the server is shutting down (JSON `unavailable`)",
                media_type="text/html", schema=_PAGE, headers={"Retry-After": "seconds: 1"},
                also={"application/json": errors.ErrorOut}),
}

# Every HTTP route of the app. Starlette's routes are made from it (`contract.routes`) and so is
# GET /v1/openapi.json: a new endpoint is one `Operation` in its module's `operations`, added here.
OPERATIONS: list[Operation] = [
    Operation("get", "/healthz", "Liveness of the database and its writer", _SERVICE, healthz, strict_query=False,
              answers={200: Answer("the database answers and its writer runs", HealthOut)},
              errors={503: "the database does not answer, or its writer is not running (`unavailable`)"}),
    Operation("get", "/metrics", "Prometheus metrics", _SERVICE, metrics, strict_query=False,
              answers={200: Answer("the Prometheus text exposition format, version 0.0.4", media_type="text/plain",
                                   schema={"type": "string"})}),
    Operation("get", "/v1/openapi.json", "This document: the OpenAPI contract of every route", _SERVICE, openapi,
              answers={200: Answer("an OpenAPI 3.1 document", schema={"type": "object"})}),
    *outreach_api.operations,
    *(Operation(method, "/r/{code}", "Redirect a short link (and record the click)", "redirects", None,
                params=[Param("code", where="path")], answers=_REDIRECT_ANSWERS)
      for method in ("get", "head")),
    *(Operation(method, "/o/{code}", "An open pixel: a 1×1 transparent GIF (and the open recorded)", "pixels", None,
                params=[Param("code", where="path", description="the pixel's code; a `.gif` suffix is taken too")],
                answers={200: Answer("the GIF, whatever the code (an unknown one records nothing), and while the "
                                     "server is stopping (recording nothing); HEAD records nothing",
                                     media_type="image/gif", schema={"type": "string", "format": "binary"},
                                     headers={"Cache-Control": "no-store, private"})})
      for method in ("get", "head")),
    *event_api.operations,
    *link_api.operations,
    *inbound_api.operations,
    *recipient_api.operations,
    *report_api.operations,
    *webhook_api.operations,
]


@functools.cache
def openapi_document() -> bytes:
    """GET /v1/openapi.json's body, made once from OPERATIONS."""
    return msgspec.json.encode(contract.document(
        OPERATIONS, title="linkhub", version=__version__,
        description="Self-hosted email link tracker and event-webhook hub. docs/api.md says what a schema "
                    "cannot: limits, ordering, idempotency, and what each refusal means."))


class LinkhubApp:
    """Dispatches /r/<code> to `RedirectApp`, /o/<code> to `PixelApp` and everything else to Starlette."""

    def __init__(self, settings: Settings) -> None:
        counts = Metrics()
        db = open_database(settings.db, on_commit=counts.observer("linkhub_write_commit_duration_seconds"))
        self.state = State(settings=settings, db=db, metrics=counts)
        counts.add(ScrapeTime(db, self.state.deliverer.in_flight))
        self.stopping = False
        self._pruner: Pruner | None = None
        self._closed: asyncio.Future[None] | None = None
        self.redirects = RedirectApp(self.state)
        self.pixels = PixelApp(self.state)
        self._observe_redirect = counts.observer("linkhub_redirect_duration_seconds")
        self.access_log = (AccessLog(settings.trusted_proxies, anonymize_ip=settings.anonymize_ip)
                           if settings.access_log else None)
        self.starlette = Starlette(
            routes=contract.routes(OPERATIONS),
            lifespan=self._lifespan,
            exception_handlers=errors.HANDLERS,
        )
        self.starlette.state.linkhub = self.state
        # `/healthz/` → a JSON 404, not a redirect: Starlette's would point at http:// behind a
        # TLS proxy, and clients that POST do not follow redirects anyway.
        self.starlette.router.redirect_slashes = False

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        state = self.state
        state.db.start()
        state.http = sender.new_client()
        state.leases.start()
        await state.deliverer.start(state.http)
        self._pruner = Pruner(state.db, state.settings.keep_deliveries_days,
                              keep_events_days=state.settings.keep_events_days, keeper=state.leases)
        self._pruner.start()
        try:
            yield
        finally:
            # Hypercorn has finished the in-flight requests.
            await self.close()

    async def close(self) -> None:
        """Stop deliveries (this process's unconfirmed batches go back to the queue, its leases are given
        up), then commit whatever the requests queued.

        It runs once: from the lifespan, or from `serve` when Hypercorn cannot finish closing its
        connections in time; a second call waits for the first.
        """
        if self._closed is None:
            self._closed = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closed)

    async def _close(self) -> None:
        state = self.state
        if self._pruner is None or state.http is None:
            return  # the lifespan never started: nothing runs, nothing is queued
        await self._pruner.stop()
        await state.deliverer.stop()
        # Nothing works under the leases now: give them up, with this process's rows in flight only.
        await state.leases.stop()
        await state.http.aclose()
        await state.db.close()
        log.info("database writer drained and closed")

    def begin_shutdown(self) -> None:
        """Called on SIGTERM/SIGINT, as Hypercorn starts closing connections.

        Requests already running finish normally. One that starts from now on is refused
        with a 503 and has no effect: Hypercorn may close its connection before any answer
        could reach the client, and a click must never be stored for a redirect that was
        not delivered.
        """
        self.stopping = True

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.access_log is not None and scope["type"] == "http":
            send = self.access_log.wrap(scope, send)
        if scope["type"] == "http" and _has_body(scope):
            receive, send = _close_if_body_unread(receive, send)
        if scope["type"] == "http" and self.stopping:
            if scope["path"].startswith("/o/"):
                await self.pixels.while_stopping(scope, send)
            else:
                await _refuse_while_stopping(send)
        elif scope["type"] == "http" and scope["path"].startswith("/r/"):
            started = time.perf_counter()
            await self.redirects(scope, receive, send)
            self._observe_redirect(time.perf_counter() - started)
        elif scope["type"] == "http" and scope["path"].startswith("/o/"):
            await self.pixels(scope, receive, send)
        elif scope["type"] == "http":
            await self.starlette(scope, within(receive, self.state.settings.body_timeout_s), send)
        else:
            await self.starlette(scope, receive, send)


def _has_body(scope: dict[str, Any]) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"0", b"")):
            return True
    return False


def _close_if_body_unread(receive: Any, send: Any) -> tuple[Any, Any]:
    """Wrap `receive`/`send` so an answer given before the request body was read says `Connection: close`.

    Many answers never read the body (401 before it, 404, 405, a GET handler). Hypercorn then
    cannot reuse the connection and closes it after the answer, but without saying so: the
    client sends its next request on it and sees the connection drop without an answer.
    """
    body_read = False

    async def tracked_receive() -> dict[str, Any]:
        nonlocal body_read
        message: dict[str, Any] = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            body_read = True
        return message

    async def announcing_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and not body_read:
            headers = list(message.get("headers", []))
            if not any(name.lower() == b"connection" for name, _ in headers):
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)

    return tracked_receive, announcing_send


async def _refuse_while_stopping(send: Any) -> None:
    body = b'{"error":"unavailable","message":"server is shutting down; retry"}'
    await send({
        "type": "http.response.start",
        "status": 503,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"1"), (b"connection", b"close"), (b"cache-control", b"no-store")],
    })
    await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings) -> LinkhubApp:
    return LinkhubApp(settings)
