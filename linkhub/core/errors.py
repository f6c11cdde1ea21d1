"""The one exception a use case raises to refuse a request, whichever front end asked.

It carries what both renderers need: the HTTP API (linkhub/web/errors.py) answers
`{"error": code, "message": message, **where}` with `status`; the CLI prints `message` on
one line and exits non-zero. Domain errors that callers refuse with (an invalid webhook, an
unknown account) subclass it, so neither front end keeps its own table of them.
"""

from __future__ import annotations

from typing import Any


class LinkhubError(Exception):
    """A refusal: HTTP `status`, a stable machine-readable `code`, a sentence, and where (field, path, index)."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None, **where: Any) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = headers or {}
        self.where = where

    def document(self) -> dict[str, Any]:
        """The error JSON every endpoint answers with."""
        return {"error": self.code, "message": self.message, **self.where}


class Unavailable(LinkhubError):
    """The store did not answer (a failed statement, a write not committed in time): try again."""

    status = 503
    code = "unavailable"
