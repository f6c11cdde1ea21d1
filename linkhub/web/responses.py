"""JSON answers and errors, shared by every handler."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from linkhub.util.jsondepth import TooDeep

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
        raise BodyTooLarge
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def validation_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> JSON:
    """400 from msgspec's message, with its `$.path` split out."""
    if isinstance(exc, TooDeep):
        return error(400, "too_deep", str(exc), path=exc.path, offset=exc.offset, max_depth=exc.limit)
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


H = TypeVar("H", bound=Callable[..., Awaitable[Response]])


def accepts(*names: str) -> Callable[[H], H]:
    """Declare the query parameters a handler reads: any other, or one given twice, is a 400 naming it.

    A parameter a client misspells (or one from another route, `?code=`) must not be ignored
    silently: the answer would look filtered and be everything.
    """

    def wrap(handler: H) -> H:
        @functools.wraps(handler)
        async def checked(request: Request, *args: Any) -> Response:
            given = request.query_params.multi_items()
            unknown = list(dict.fromkeys(name for name, _ in given if name not in names))
            repeated = [name for name in names if sum(1 for key, _ in given if key == name) > 1]
            if not unknown and not repeated:
                return await handler(request, *args)
            if unknown:
                takes = f"it takes {', '.join(names)}" if names else "it takes none"
                refusal = error(400, "unknown_parameter",
                                f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
                                f"{', '.join(map(repr, unknown))} for {request.method} {request.url.path}; {takes}",
                                parameters=unknown)
            else:
                refusal = error(400, "repeated_parameter", f"query parameter {repeated[0]!r} is given more than once",
                                parameters=repeated)
            return refusal

        return checked  # type: ignore[return-value]

    return wrap


def route(path: str, **handlers: Endpoint) -> Route:
    """One route for all of a path's methods (`route(p, GET=f, POST=g)`), so a 405 lists every allowed one."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return Route(path, endpoint, methods=list(handlers))
