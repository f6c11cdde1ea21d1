"""JSON answers and errors, shared by every handler."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]
_DIGITS = re.compile(r"[0-9]{1,19}")

_encode = msgspec.json.Encoder().encode


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encode(content)


def error(status: int, code: str, message: str, **where: Any) -> JSON:
    """`{"error": code, "message": …, …where}`: what is wrong, and where (path, index, field)."""
    return JSON({"error": code, "message": message, **where}, status_code=status)


class BodyTooLarge(Exception):
    pass


def too_large(limit: int) -> JSON:
    response = error(413, "body_too_large", f"request body is over {limit} bytes")
    # The unread rest of the body makes the connection unusable: tell the client not to reuse it.
    response.headers["Connection"] = "close"
    return response


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge()
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def validation_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> JSON:
    """400 from msgspec's message, with its `$.path` split out."""
    message = str(exc)
    path = None
    if " - at `" in message:
        message, _, rest = message.partition(" - at `")
        path = rest.rstrip("`")
    if isinstance(exc, msgspec.ValidationError):
        return error(400, "invalid_body", message, path=path or "$")
    return error(400, "malformed_json", message, path=path or "$")


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int | None:
    """A query parameter as an int within [low, high]; None if it is anything else."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        return None
    return int(raw)


def route(path: str, **handlers: Endpoint) -> Route:
    """One route for all of a path's methods (`route(p, GET=f, POST=g)`), so a 405 lists every allowed one."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return Route(path, endpoint, methods=list(handlers))
