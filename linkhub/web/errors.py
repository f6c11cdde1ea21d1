"""Every exception the HTTP API answers, rendered in one place from one table.

Handlers and helpers raise: a refusal is a `LinkhubError` (or a subclass with its own status
and code), rendered as `{"error": code, "message": …, **where}`. The store not answering is a
503 with a log line, whichever handler it happened in; a use case that promised its caller a
particular 503 (Outreach's, the event batch's, /healthz's) raises that `Unavailable` itself.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from linkhub.core.errors import LinkhubError, Unavailable
from linkhub.store import UNAVAILABLE
from linkhub.web.access_log import shown_path
from linkhub.web.deadline import BodyTimeout
from linkhub.web.responses import JSON

log = logging.getLogger("linkhub.app")


class VerifyOut(msgspec.Struct, forbid_unknown_fields=True):
    """A verify batch's outcome: what the receiver answered (in a webhook's answers and in `verify_failed`)."""

    ok: bool
    status_code: int | None  # None: no HTTP answer (refused, timed out, TLS)
    latency_ms: int
    body: Annotated[str, msgspec.Meta(description="the first 1 KiB of the receiver's answer")]
    error: str | None


class ErrorOut(msgspec.Struct):
    """Every refusal's body: a stable `error` code, a `message` for people, and where the problem is.

    Which "where" keys come with which code is a table in docs/api.md; other keys may be added, so
    a client ignores the ones it does not know (hence no `forbid_unknown_fields`).
    """

    error: Annotated[str, msgspec.Meta(examples=["not_found", "invalid_webhook"])]
    message: str
    path: str | UnsetType = UNSET  # a JSON path into the body: `$.meta.mailing.id`
    offset: int | UnsetType | None = UNSET
    max_depth: int | UnsetType = UNSET
    parameters: list[str] | UnsetType = UNSET
    index: int | UnsetType | None = UNSET
    field: str | UnsetType | None = UNSET
    reason: str | UnsetType = UNSET
    verify: VerifyOut | UnsetType = UNSET
    pending: int | UnsetType = UNSET
    dead: int | UnsetType = UNSET
    limit: int | UnsetType = UNSET  # too_many_items: the most a body may hold


def render(exc: LinkhubError) -> JSON:
    """The refusal's JSON, status and headers (`WWW-Authenticate`, `Connection: close`)."""
    response = JSON(exc.document(), status_code=exc.status)
    response.headers.update(exc.headers)
    return response


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LinkhubError)
    return render(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Unknown paths and wrong methods answer in the same JSON shape as every other error.
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 404 and request.url.path.endswith("/") and request.url.path != "/":
        message += f" (linkhub's paths have no trailing slash: {request.url.path.rstrip('/')})"
    return render(LinkhubError(message, status=exc.status_code, code=code, headers=dict(exc.headers or {})))


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    log.error("store unavailable for %s %s: %r", request.method, shown_path(request.url.path), exc)
    return render(Unavailable("the database did not answer; try again"))


async def _body_timeout(request: Request, exc: Exception) -> Response:
    # The rest of the body may still be on its way: the connection cannot carry another request.
    return render(LinkhubError(str(exc), status=408, code="body_timeout", headers={"Connection": "close"}))


async def _client_gone(request: Request, exc: Exception) -> None:
    # The client closed the connection, or Hypercorn refused its broken body (short of its
    # Content-Length, a bad chunk) and answered 400 itself: nobody is left to answer.
    log.info("%s %s: the client went away before its request body ended", request.method,
             shown_path(request.url.path))


async def _server_error(request: Request, exc: Exception) -> Response:
    return render(LinkhubError("unexpected error; it has been logged", status=500, code="internal_error"))


# Looked up along the exception's classes (a LinkhubError subclass finds `_refused`); 500 is
# Starlette's last resort for anything else.
HANDLERS: dict[Any, ExceptionHandler] = {
    HTTPException: _http_error,
    LinkhubError: _refused,
    **dict.fromkeys(UNAVAILABLE, _store_unavailable),
    BodyTimeout: _body_timeout,
    # Starlette sends no answer when a handler returns None, which is what a client that has gone needs.
    ClientDisconnect: _client_gone,  # type: ignore[dict-item]
    500: _server_error,
}
