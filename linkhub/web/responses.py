"""JSON answers, and the refusals of a request's form (its body, its query parameters), shared by every handler."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from linkhub.core.errors import LinkhubError
from linkhub.util.jsondepth import TooDeep
from linkhub.util.times import parse_rfc3339, to_rfc3339

# A time as requests give it: RFC 3339 with an offset, within the calendar linkhub stores (years 1000 to 9999;
# time_param and the event checks say so in their refusals). For the document only: parse_rfc3339 checks it.
Time = Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time", "pattern": "^[1-9]"})]
Endpoint = Callable[[Request], Awaitable[Response]]
_DIGITS = re.compile(r"[0-9]{1,19}")

_encode = msgspec.json.Encoder().encode


class JSON(Response):
    """A JSON answer; `value` keeps what it was made from, so the contract can check its type (web/contract.py)."""

    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self.value = content
        super().__init__(content, status_code, headers)

    def render(self, content: Any) -> bytes:
        return _encode(content)


class BodyTooLarge(LinkhubError):
    status = 413
    code = "body_too_large"

    def __init__(self, limit: int) -> None:
        # The unread rest of the body makes the connection unusable: tell the client not to reuse it.
        super().__init__(f"request body is over {limit} bytes", headers={"Connection": "close"})


class InvalidParameter(LinkhubError):
    """A query parameter that is there but is not one of the values it takes; `field=` names it."""

    status = 422
    code = "invalid_parameter"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def validation_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> LinkhubError:
    """The 400 for msgspec's error (raise it), with its `$.path` split out."""
    if isinstance(exc, TooDeep):
        return LinkhubError(str(exc), code="too_deep", path=exc.path, offset=exc.offset, max_depth=exc.limit)
    message = str(exc)
    path = None
    if " - at `" in message:
        message, _, rest = message.partition(" - at `")
        path = rest.rstrip("`")
    if isinstance(exc, msgspec.ValidationError):
        return LinkhubError(message, code="invalid_body", path=path or "$")
    return LinkhubError(message, code="malformed_json", path=path or "$")


def time_param(request: Request, name: str) -> str | None:
    """A query parameter as an RFC 3339 time in linkhub's form, or None when absent; a bad one is refused (422)."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return to_rfc3339(parse_rfc3339(raw))
    except ValueError as exc:
        raise InvalidParameter(str(exc), field=name) from None


def int_param(request: Request, name: str, default: int, low: int, high: int, *, refusal: str | None = None) -> int:
    """A query parameter as an int within [low, high]; anything else is refused (422), saying `refusal` if given."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidParameter(refusal or f"{name} must be an integer from {low} to {high}", field=name)
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
            if unknown:
                takes = f"it takes {', '.join(names)}" if names else "it takes none"
                raise LinkhubError(f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
                                   f"{', '.join(map(repr, unknown))} for {request.method} {request.url.path}; {takes}",
                                   code="unknown_parameter", parameters=unknown)
            if repeated:
                raise LinkhubError(f"query parameter {repeated[0]!r} is given more than once",
                                   code="repeated_parameter", parameters=repeated)
            return await handler(request, *args)

        return checked  # type: ignore[return-value]

    return wrap


def route(path: str, **handlers: Endpoint) -> Route:
    """One route for all of a path's methods (`route(p, GET=f, POST=g)`), so a 405 lists every allowed one."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return Route(path, endpoint, methods=list(handlers))
