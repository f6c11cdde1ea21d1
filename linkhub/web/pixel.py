"""GET/HEAD /o/{code} (or /o/{code}.gif): the open pixel, a bare ASGI handler like the redirect.

Whatever happens, the answer is the same 1×1 transparent GIF: a mail client must never show a broken
image, and the answer must not tell whether a code exists. A GET of a known pixel records an `open`,
committed before the GIF is sent (at most OPEN_DEADLINE_S: later, the GIF goes anyway and the open
stays queued for the writer); a HEAD, an unknown code or an erased recipient's pixel records nothing.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from linkhub.core import opens
from linkhub.store import UNAVAILABLE, WriteTimeout
from linkhub.store.pixels import Pixel, PixelLookup
from linkhub.util import ids
from linkhub.web.clientip import visit
from linkhub.web.state import State

log = logging.getLogger("linkhub.pixel")

# As a click's (web/redirect.py): an open not committed by then is answered anyway and counted in
# linkhub_opens_unconfirmed_total; it stays queued for the writer.
OPEN_DEADLINE_S = 0.5
_PATH = re.compile(r"/o/([A-Za-z0-9_-]{6,32})(?:\.gif)?")
# The smallest transparent GIF: 1×1, a two-colour table, a graphic control extension whose transparent
# index is the one pixel's colour (43 bytes).
GIF = bytes.fromhex(
    "474946383961 0100 0100 80 00 00"   # GIF89a, 1×1, a global table of two colours
    "000000 ffffff"                      # black, white
    "21f904 01 0000 00 00"               # graphic control extension: colour 0 is transparent
    "2c 0000 0000 0100 0100 00"          # the image: at 0,0, 1×1
    "02 02 4401 00"                      # its LZW data: the one pixel, colour 0
    "3b")                                # the trailer
# No cache may keep it (`no-store`), a shared one least of all (`private`): every open must reach
# linkhub. `Pragma` and a past `Expires` say the same to HTTP/1.0 caches that ignore Cache-Control.
# (Gmail's image proxy caches the image whatever the headers say: later opens in Gmail are not seen.)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"image/gif"),
    (b"content-length", str(len(GIF)).encode()),
    (b"cache-control", b"no-store, private"),
    (b"pragma", b"no-cache"),
    (b"expires", b"Thu, 01 Jan 1970 00:00:00 GMT"),
    (b"x-content-type-options", b"nosniff"),
)


class PixelApp:
    def __init__(self, state: State) -> None:
        self.state = state
        self.pixels = PixelLookup(state.db)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        method = scope["method"]
        if method == "GET":
            try:
                await self._record(scope)
            except Exception:  # a bug must never cost the reader the image: the open is lost, and said so
                self.state.metrics.inc("linkhub_opens_unconfirmed_total")
                log.exception("recording an open failed; GIF answered, open LOST")
        await _answer(method, send)

    async def while_stopping(self, scope: dict[str, Any], send: Any) -> None:
        """The server is stopping: the GIF still (a mail client must not show a broken image), and no open
        recorded, as a redirect records no click then (its answer may never reach the client)."""
        if scope["method"] == "GET":
            self.state.metrics.inc("linkhub_opens_unconfirmed_total")
        await _answer(scope["method"], send)

    async def _record(self, scope: dict[str, Any]) -> None:
        metrics = self.state.metrics
        matched = _PATH.fullmatch(scope["path"])
        if matched is None:
            metrics.inc("linkhub_pixels_unknown_total")
            return
        code = matched.group(1)
        try:
            pixel = await self.pixels.get(code)
        except UNAVAILABLE as exc:  # the GIF still goes: the open is lost, and said so
            metrics.inc("linkhub_opens_unconfirmed_total")
            log.error("pixel look-up failed (%s); GIF answered, open of %s LOST", exc, code)
            return
        if pixel is None:
            metrics.inc("linkhub_pixels_unknown_total")
        elif not pixel.erased:
            await self._store(code, pixel, scope)

    async def _store(self, code: str, pixel: Pixel, scope: dict[str, Any]) -> None:
        seen = visit(scope, self.state.settings.trusted_proxies)
        state = self.state
        write = state.opens.judge(opens.OpenRequest(code, pixel, ids.event_id(), time.time_ns() // 1_000_000,
                                                    "GET", *seen))
        try:
            queued = await state.db.add(state.opens.store, write, timeout=OPEN_DEADLINE_S)
        except WriteTimeout:
            state.metrics.inc("linkhub_opens_unconfirmed_total")
            log.error("open of %s not committed within %.1fs; GIF answered, open still queued",
                      code, OPEN_DEADLINE_S)
        except Exception as exc:  # the store refused it: the image still shows, but say so
            state.metrics.inc("linkhub_opens_unconfirmed_total")
            log.error("open of %s could not be stored (%s); GIF answered, open LOST", code, exc)
        else:
            state.metrics.inc("linkhub_opens_recorded_total")
            if queued:
                state.deliverer.wake()


async def _answer(method: str, send: Any) -> None:
    if method not in ("GET", "HEAD"):
        body = b"Method Not Allowed"
        await send({"type": "http.response.start", "status": 405, "headers": [
            (b"allow", b"GET, HEAD"), (b"content-type", b"text/plain"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": list(HEADERS)})
    await send({"type": "http.response.body", "body": GIF if method == "GET" else b""})
