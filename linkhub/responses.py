"""JSON answers and errors, shared by every handler."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

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
