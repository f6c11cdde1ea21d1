"""`--access-log`: one record per HTTP request, written by the app rather than by Hypercorn.

Hypercorn's access log has one format string for every path, and builds a dictionary of
every request header (Authorization included) and of the whole environment per request.
This one records only what is safe on every route: method, path WITHOUT its query string
(`/v1` queries carry e-mail addresses and other filters; query strings of `/r/` links are
whatever a mail client or scanner appended, so they are left out too), status, duration and
the client's address. Headers are never read except X-Forwarded-For, from trusted proxies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from linkhub.settings import Network
from linkhub.util.ipnet import network_address
from linkhub.util.logs import ACCESS
from linkhub.web.clientip import client_ip

log = logging.getLogger(ACCESS)

Send = Callable[[dict[str, Any]], Awaitable[None]]
# Percent-encoded beyond these, a path cannot carry a line break, a quote or non-ASCII into a text log.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"
# An inbound endpoint's path is its credential (/in/<token>): logs show only that it was one.
_INBOUND = "/in/"


def shown_path(path: str) -> str:
    """The request path as a log may show it: the token of `/in/<token>` replaced by `*`."""
    return _INBOUND + "*" if path.startswith(_INBOUND) else path


class AccessLog:
    def __init__(self, trusted_proxies: tuple[Network, ...], *, anonymize_ip: bool = False) -> None:
        self.trusted_proxies = trusted_proxies
        # --anonymize-ip: the log writes the client's network, as clicks store it.
        self.anonymize_ip = anonymize_ip

    def wrap(self, scope: dict[str, Any], send: Send) -> Send:
        """`send`, writing the request's record once its last body part has been handed to the server."""
        started = time.perf_counter()
        status = 0

        async def logged(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._write(scope, status, time.perf_counter() - started)

        return logged

    def _write(self, scope: dict[str, Any], status: int, seconds: float) -> None:
        method = scope["method"]
        path = quote(shown_path(scope["path"]), safe=_PATH_SAFE)
        client = self._client(scope)
        duration_ms = round(seconds * 1000, 3)
        log.info("%s %s %d %.1f ms %s", method, path, status, duration_ms, client,
                 extra={"method": method, "path": path, "status": status, "duration_ms": duration_ms,
                        "client": client})

    def _client(self, scope: dict[str, Any]) -> str | None:
        peer = scope.get("client")
        forwarded = [value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"]
        client = client_ip(peer[0] if peer else None, ",".join(forwarded) or None, self.trusted_proxies)
        if self.anonymize_ip and client is not None:
            return network_address(client)
        return client
