"""One POST of one batch to one receiver: SSRF guard, Standard Webhooks signature, auth, outcome.

Used by the delivery loop and by the verify call, so both send exactly the same way.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from linkhub import __version__
from linkhub.core.webhooks import MAX_TIMEOUT_S, Webhook
from linkhub.util.times import format_ms

USER_AGENT = f"linkhub/{__version__}"
EXCERPT_BYTES = 1024


class TargetRefused(ValueError):
    """The URL is not a public http(s) target (and private targets are not allowed)."""


# Said wherever a target is refused only for not being public: the API, the CLI, the delivery log.
PRIVATE_TARGETS_HINT = "--allow-private-targets (or LINKHUB_ALLOW_PRIVATE_TARGETS=1) allows it"


# IPv6 forms whose packets go to the IPv4 address they carry: that address alone decides.
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated, but still routed as its IPv4 address by some stacks
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT (RFC 2765)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known NAT64 prefix (RFC 6052)
# Local-use NAT64 (RFC 8215): where the IPv4 address sits depends on the local prefix length,
# so it cannot be checked; the whole prefix is for local networks, and is refused.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")  # everything outside it is reserved, local or multicast
# Not public although inside 2000::/3 (IANA special-purpose registry, not globally reachable).
# Listed here rather than trusting `is_global` alone: its tables differ between Python releases.
_NOT_PUBLIC_V6 = tuple(ipaddress.IPv6Network(net) for net in (
    "2001::/23",  # IETF protocol assignments, Teredo (2001::/32, checked for its client first) among them
    "2001:db8::/32",  # documentation
    "3fff::/20",  # documentation
))
_PUBLIC_V6_EXCEPTIONS = tuple(ipaddress.IPv6Network(net) for net in (
    "2001:1::1/128", "2001:1::2/128", "2001:1::3/128", "2001:3::/32", "2001:4:112::/48", "2001:20::/28",
    "2001:30::/28",
))
_NOT_PUBLIC_V4 = tuple(ipaddress.IPv4Network(net) for net in (
    "192.0.0.0/24",  # IETF protocol assignments (older Pythons only list parts of it)
    "192.88.99.0/24",  # the retired 6to4 relay anycast
))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str, bool] | None:
    """The IPv4 address an IPv6 address carries: (address, form, whether it alone is what is reached)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped", True
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address in _IPV4_TRANSLATED:
        return low32, "IPv4-translated", True
    if address in _NAT64:
        return low32, "NAT64", True
    if address in _IPV4_COMPATIBLE:  # `::` and `::1` included: 0.0.0.0 and 0.0.0.1 are not public either
        return low32, "IPv4-compatible", True
    if address.sixtofour is not None:
        return address.sixtofour, "6to4", False
    if address.teredo is not None:
        return address.teredo[1], "Teredo client", False  # (server, client): packets go to the client
    return None


def _ipv4_is_public(address: ipaddress.IPv4Address) -> bool:
    return address.is_global and not address.is_multicast and not any(address in net for net in _NOT_PUBLIC_V4)


def _ipv6_is_public(address: ipaddress.IPv6Address) -> bool:
    if address not in _GLOBAL_UNICAST or not address.is_global:
        return False
    return not any(address in net for net in _NOT_PUBLIC_V6) or any(address in net for net in _PUBLIC_V6_EXCEPTIONS)


def non_public_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why `address` is not a public receiver address, or None if it is one.

    IPv6 forms that carry an IPv4 address (mapped, compatible, translated, NAT64, 6to4,
    Teredo) are unwrapped first, so `::127.0.0.1` is refused as the loopback address it is.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return None if _ipv4_is_public(address) else f"{address}, which is not a public address"
    address = ipaddress.IPv6Address(int(address))  # without a %zone
    if address.is_unspecified or address.is_loopback:
        return f"{address}, which is not a public address"
    if address in _LOCAL_NAT64:
        return f"{address}, a local-use NAT64 address ({_LOCAL_NAT64}), which is not a public address"
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        ipv4, form, decides = embedded
        if not _ipv4_is_public(ipv4):
            return f"{address}, which carries {ipv4} ({form}), and that is not a public address"
        if decides:
            return None
    return None if _ipv6_is_public(address) else f"{address}, which is not a public address"


# A host whose last label is a number is an IPv4 address to browsers and to inet_aton, in
# forms ipaddress does not read (`127.1`, `0x7f.1`, `0177.0.0.1`, `2130706433`), or no valid
# host at all: it is read here, so that no resolver is ever asked about it.
_NUMERIC_LABEL = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not _NUMERIC_LABEL.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]):
        return None  # a name
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
    except OSError:  # "999.1.1.1", "1.2.3.4.5", "a.1": neither an address nor a name
        raise TargetRefused(f"{host} is not a valid IPv4 address") from None


def _refuse_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, host: str) -> None:
    reason = non_public_reason(address)
    if reason is not None:
        raise TargetRefused(f"{host} resolves to {reason}; {PRIVATE_TARGETS_HINT}")


async def resolve_target(url: str, *, allow_private: bool) -> str | None:
    """Check a receiver URL; return the one public IP to connect to (None when private targets are allowed).

    Connecting to the address we checked, rather than resolving again, closes the
    window in which DNS could change between the check and the connection.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a URL stored before it would be refused, e.g. "http://[::1/" or a port > 65535
        raise TargetRefused(f"URL is not valid: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise TargetRefused("URL must be absolute http:// or https:// with a host")
    if allow_private:
        return None
    literal = _literal_address(host)
    if literal is not None:
        _refuse_address(literal, host)
        return str(literal)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode, e.g. an empty label
        raise TargetRefused(f"cannot resolve {host}: {exc}") from None
    # An IPv4/IPv6 sockaddr's host is a string; the (int, bytes) form typeshed also allows is the raw
    # sockaddr of a family Python does not decode, so it is skipped: it is neither checked nor connected to
    # (only addresses[0] is). "%" starts an IPv6 zone id.
    hosts = [info[4][0] for info in infos]
    addresses = [ipaddress.ip_address(ip.split("%", 1)[0]) for ip in hosts if isinstance(ip, str)]
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


REDACTED = "[redacted]"


def _credentials(webhook: Webhook) -> list[str]:
    """Every secret a request to the webhook carries, in each form an exception text may quote it, longest first."""
    auth = webhook.auth
    plain = [auth.get(key) for key in ("password", "token", "value")] + [webhook.secret, webhook.previous_secret]
    try:
        plain += auth_headers(auth).values()  # the whole header value, e.g. "Bearer <token>"
    except (KeyError, TypeError, ValueError):  # a malformed stored auth: its parts above are all there is
        pass
    if auth.get("type") == "basic":
        pair = f"{auth.get('username')}:{auth.get('password')}"
        plain += [pair, base64.b64encode(pair.encode("utf-8", "surrogateescape")).decode()]
    forms: set[str] = set()
    for value in plain:
        if not isinstance(value, str) or not value:
            continue
        for text in (value, value.strip()):
            # As given, and as a str or bytes repr quotes it (h11: "Illegal header value b'…'").
            forms.update((text, repr(text)[1:-1], repr(text.encode("utf-8", "surrogateescape"))[2:-1]))
    forms.discard("")
    return sorted(forms, key=len, reverse=True)


def redact(text: str, webhook: Webhook) -> str:
    """`text` (an error, an exception's text, a receiver's answer) without any of the webhook's credentials.

    Everything that turns a failed request into text passes through here before it is stored,
    logged or shown: HTTP libraries quote header values in their errors.
    """
    for secret in _credentials(webhook):
        text = text.replace(secret, REDACTED)
    return text


def describe_exception(exc: BaseException, webhook: Webhook) -> str:
    """'Type: message' of an exception raised while sending to `webhook`, redacted."""
    return redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, webhook)


_DELAY_SECONDS = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() also takes '²', which float() refuses


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as delay-seconds or an HTTP date; None when absent or unreadable.

    The delivery loop applies its own floor and ceiling (delivery.retry_after_delay).
    """
    if not value:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)  # inf for absurdly long values: capped by the caller
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
    # How the attempt ended (linkhub_webhook_deliveries_total's outcome): delivered, http_error,
    # timeout, connection_error, refused, or not_sent (linkhub could not make the request).
    kind: str

    @property
    def delivered(self) -> bool:
        return self.error is None


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

    def outcome(kind: str, status: int | None, error: str | None, excerpt: str = "",
                retry_after: float | None = None) -> Outcome:
        # Redacted here, the one way out: a receiver may even echo the Authorization header back.
        return Outcome(status, int((time.monotonic() - started) * 1000),
                       None if error is None else redact(error, webhook), redact(excerpt, webhook), retry_after, kind)

    try:
        address = await resolve_target(webhook.url, allow_private=allow_private)
    except TargetRefused as exc:
        return outcome("refused", None, f"refused target: {exc}")
    url, extra_headers, extensions = _pinned(webhook.url, address)
    timestamp = int(time.time())
    try:
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
        request = client.build_request("POST", url, content=body, headers=headers, extensions=extensions)
    except (ValueError, TypeError, KeyError, httpx.InvalidURL) as exc:  # e.g. a stored credential no header can carry
        return outcome("not_sent", None, f"linkhub could not build the request from the webhook's settings: "
                             f"{describe_exception(exc, webhook)}")
    try:
        async with asyncio.timeout(timeout):
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
        return outcome("timeout", None, f"timed out after {timeout:g}s")
    except httpx.HTTPError as exc:
        return outcome("connection_error", None, describe_exception(exc, webhook))
    text = excerpt[:EXCERPT_BYTES].decode("utf-8", "replace")
    status = response.status_code
    if 200 <= status < 300:
        return outcome("delivered", status, None, text)
    retry_after = retry_after_seconds(response.headers.get("retry-after")) if status in (429, 503) else None
    return outcome("http_error", status, f"receiver answered HTTP {status}", text, retry_after)


def new_client(max_connections: int = 100) -> httpx.AsyncClient:
    """The one connection pool shared by every delivery (redirects are never followed)."""
    return httpx.AsyncClient(
        follow_redirects=False,
        # Each POST has its webhook's own deadline (asyncio.timeout above); this only bounds each step.
        timeout=httpx.Timeout(MAX_TIMEOUT_S),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )
