"""GET/HEAD /r/{code}: the hottest path in linkhub, so a bare ASGI handler.

It skips Starlette's routing, request object and middleware: one indexed read (shared
with the other requests of the same turn of the event loop), one click handed to the
group-commit writer, one 302.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import quote

from linkhub.core import clicks
from linkhub.store import UNAVAILABLE, WriteTimeout
from linkhub.store.links import Link, LinkLookup
from linkhub.util import ids
from linkhub.web.clientip import visit
from linkhub.web.state import State

log = logging.getLogger("linkhub.redirect")

# A click that is not committed by then is answered anyway (the visitor must get to the
# page) and counted in linkhub_clicks_unconfirmed_total; it stays queued for the writer.
CLICK_DEADLINE_S = 0.5
_CODE = re.compile(r"[A-Za-z0-9_-]{6,32}")
_NOT_FOUND = (
    b"<!doctype html><html><head><meta charset=utf-8><title>Link not found</title></head>"
    b"<body><h1>Link not found</h1><p>This link does not exist or is no longer valid.</p></body></html>"
)
_UNAVAILABLE = (
    b"<!doctype html><html><head><meta charset=utf-8><title>Try again</title></head>"
    b"<body><h1>Try again in a moment</h1><p>This link cannot be opened right now.</p></body></html>"
)
_EXPIRED = (
    b"<!doctype html><html><head><meta charset=utf-8><title>Link expired</title></head>"
    b"<body><h1>This link has expired</h1><p>The page it led to is no longer offered through this link.</p>"
    b"</body></html>"
)
_URL_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


def _location(url: str) -> bytes:
    # Header values must be ASCII: percent-encode anything else (IRIs), as browsers expect.
    return (url if url.isascii() else quote(url, safe=_URL_SAFE)).encode("ascii")


async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes, head: bool) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


class RedirectApp:
    def __init__(self, state: State) -> None:
        self.state = state
        self.links = LinkLookup(state.db)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        method = scope["method"]
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            await _send(send, 405, [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain")],
                        b"Method Not Allowed", False)
            return
        code = scope["path"][3:]
        try:
            link = await self.links.get(code) if _CODE.fullmatch(code) else None
        except UNAVAILABLE as exc:  # its own page, not the API's JSON: a visitor's browser shows it
            log.error("link look-up failed: %s", exc)
            await _send(send, 503, [(b"content-type", b"text/html; charset=utf-8"), (b"retry-after", b"1"),
                                    (b"cache-control", b"no-store")], _UNAVAILABLE, head)
            return
        if link is None:
            self.state.metrics.inc("linkhub_redirects_not_found_total")
            await _send(send, 404, [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")],
                        _NOT_FOUND, head)
            return
        at_ms = time.time_ns() // 1_000_000
        # A HEAD is recorded too (Defender sends one before its GET): flagged, never dropped. The link of
        # an erased recipient redirects as before and records nothing. A click on an expired link is
        # recorded as well, marked `expired` (clicks.click): the person still came.
        if not link.erased:
            await self._record_click(code, link, scope, method, at_ms)
        if link.expires_ms is not None and at_ms >= link.expires_ms:
            self.state.metrics.inc("linkhub_redirects_expired_total")
            if link.expired_url is None:
                await _send(send, 410, [(b"content-type", b"text/html; charset=utf-8"),
                                        (b"cache-control", b"no-store")], _EXPIRED, head)
                return
            target = link.expired_url
        else:
            target = link.target_url
        if not head:
            self.state.metrics.inc("linkhub_redirects_total")
        headers = [
            (b"location", _location(target)),
            (b"cache-control", b"no-store"),
        ]
        await _send(send, 302, headers, b"", head)

    async def _record_click(self, code: str, link: Link, scope: dict[str, Any], method: str, at_ms: int) -> None:
        seen = visit(scope, self.state.settings.trusted_proxies)
        write = self.state.clicks.judge(clicks.Request(code, link, ids.event_id(), at_ms, method, *seen))
        try:
            queued = await self.state.db.add(self.state.clicks.store, write, timeout=CLICK_DEADLINE_S)
        except WriteTimeout:
            self.state.metrics.inc("linkhub_clicks_unconfirmed_total")
            log.error("click on %s not committed within %.1fs; redirected anyway, click still queued",
                      code, CLICK_DEADLINE_S)
        except Exception as exc:  # the store refused it: never stop the visitor, but say so
            self.state.metrics.inc("linkhub_clicks_unconfirmed_total")
            log.error("click on %s could not be stored (%s); redirected anyway, click LOST", code, exc)
        else:
            self.state.metrics.inc("linkhub_clicks_recorded_total")
            if queued:
                self.state.deliverer.wake()
