"""One POST of one batch to one receiver: SSRF guard, Standard Webhooks signature, auth, outcome.

Used by the delivery loop and by the verify call, so both send exactly the same way.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import socket
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from . import __version__
from .timeutil import format_ms
from .webhooks import MAX_TIMEOUT_S, Webhook

USER_AGENT = f"linkhub/{__version__}"
EXCERPT_BYTES = 1024


class TargetRefused(ValueError):
    """The URL is not a public http(s) target (and private targets are not allowed)."""


def _refuse_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, host: str) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not address.is_global or address.is_multicast:
        raise TargetRefused(f"{host} resolves to {address}, which is not a public address")


async def resolve_target(url: str, *, allow_private: bool) -> str | None:
    """Check a receiver URL; return the one public IP to connect to (None when private targets are allowed).

    Connecting to the address we checked, rather than resolving again, closes the
    window in which DNS could change between the check and the connection.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("URL must be absolute http:// or https:// with a host")
    if allow_private:
        return None
    host = parts.hostname
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        _refuse_address(literal, host)
        return str(literal)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"cannot resolve {host}: {exc}") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"cannot resolve {host}")
    for address in addresses:  # every address must be public, or a rebinding could pick the private one
        _refuse_address(address, host)
    return str(addresses[0])


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: base64 HMAC-SHA256 of "id.timestamp.body", key = the secret after 'whsec_'."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def auth_headers(auth: dict[str, Any]) -> dict[str, str]:
    kind = auth.get("type", "none")
    if kind == "basic":
        token = base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    if kind == "bearer":
        return {"Authorization": f"Bearer {auth['token']}"}
    if kind == "header":
        return {auth["name"]: auth["value"]}
    return {}


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as delay-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@dataclass(frozen=True)
class Outcome:
    status_code: int | None  # None: no HTTP answer
    duration_ms: int
    error: str | None  # None: delivered (2xx)
    body_excerpt: str
    retry_after_s: float | None

    @property
    def delivered(self) -> bool:
        return self.error is None

    @property
    def kind(self) -> str:
        """How the attempt ended (linkhub_webhook_deliveries_total's outcome), from the errors post_batch writes."""
        if self.error is None:
            return "delivered"
        if self.status_code is not None:
            return "http_error"
        if self.error.startswith("timed out"):
            return "timeout"
        if self.error.startswith("refused target"):
            return "refused"
        if self.error.startswith("linkhub could not send"):  # the delivery loop's own failure: no POST
            return "not_sent"
        return "connection_error"


def _pinned(url: str, address: str | None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL to request, extra headers and httpx extensions to reach `address` for `url`'s host."""
    if address is None:
        return url, {}, {}
    parts = urlsplit(url)
    ip_host = f"[{address}]" if ":" in address else address
    netloc = f"{ip_host}:{parts.port}" if parts.port else ip_host
    host_header = parts.netloc.rsplit("@", 1)[-1]
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return urlunsplit(parts._replace(netloc=netloc)), {"Host": host_header}, extensions


async def post_batch(
    client: httpx.AsyncClient,
    webhook: Webhook,
    body: bytes,
    message_id: str,
    *,
    allow_private: bool,
    timeout: float | None = None,
) -> Outcome:
    """POST `body` (a JSON array) to the webhook within `timeout` seconds (default: the webhook's
    own timeout_s). Never raises for the receiver's faults."""
    timeout = float(webhook.timeout_s) if timeout is None else timeout
    started = time.monotonic()

    def outcome(status: int | None, error: str | None, excerpt: str = "", retry_after: float | None = None) -> Outcome:
        return Outcome(status, int((time.monotonic() - started) * 1000), error, excerpt, retry_after)

    try:
        address = await resolve_target(webhook.url, allow_private=allow_private)
    except TargetRefused as exc:
        return outcome(None, f"refused target: {exc}")
    url, extra_headers, extensions = _pinned(webhook.url, address)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(secret, message_id, timestamp, body)
                                      for secret in webhook.signing_secrets(format_ms(timestamp * 1000))),
        **auth_headers(webhook.auth),
        **extra_headers,
    }
    try:
        async with asyncio.timeout(timeout):
            request = client.build_request("POST", url, content=body, headers=headers, extensions=extensions)
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                excerpt = b""
                async for chunk in response.aiter_raw():
                    excerpt += chunk
                    if len(excerpt) >= EXCERPT_BYTES:
                        break
            finally:
                await response.aclose()
    except TimeoutError:
        return outcome(None, f"timed out after {timeout:g}s")
    except httpx.HTTPError as exc:
        return outcome(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    text = excerpt[:EXCERPT_BYTES].decode("utf-8", "replace")
    status = response.status_code
    if 200 <= status < 300:
        return outcome(status, None, text)
    retry_after = retry_after_seconds(response.headers.get("retry-after")) if status in (429, 503) else None
    return outcome(status, f"receiver answered HTTP {status}", text, retry_after)


def new_client(max_connections: int = 100) -> httpx.AsyncClient:
    """The one connection pool shared by every delivery (redirects are never followed)."""
    return httpx.AsyncClient(
        follow_redirects=False,
        # Each POST has its webhook's own deadline (asyncio.timeout above); this only bounds each step.
        timeout=httpx.Timeout(MAX_TIMEOUT_S),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )
