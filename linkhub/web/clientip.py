"""The visitor's IP address, believing X-Forwarded-For only from trusted proxies, and the other facts
of a raw ASGI request that the classifier reads (`/r/` and `/o/` are answered outside Starlette)."""

from __future__ import annotations

import ipaddress
from typing import Any, NamedTuple

from linkhub.core.clicks import CLASSIFIED_HEADERS
from linkhub.settings import Network


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:5123"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: tuple[Network, ...]) -> bool:
    return any(address in network for network in trusted)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str | None:
    """Walk X-Forwarded-For from the right while each hop is a trusted proxy; the first
    untrusted hop is the client. A peer that is not a trusted proxy is the client itself."""
    if peer is None or not trusted or not forwarded_for:
        return peer
    peer_address = _parse(peer)
    if peer_address is None or not _trusted(peer_address, trusted):
        return peer
    client = str(peer_address)
    for hop in reversed(forwarded_for.split(",")):
        address = _parse(hop)
        if address is None:  # garbage: nothing left of it can be believed
            break
        client = str(address)
        if not _trusted(address, trusted):
            break
    return client


class Visit(NamedTuple):
    """What a hit of /r/ or /o/ tells of its visitor."""

    ip: str | None
    user_agent: str | None
    referer: str | None
    classified: dict[str, str]  # the headers the classifier reads (core.clicks.CLASSIFIED_HEADERS)


def visit(scope: dict[str, Any], trusted: tuple[Network, ...]) -> Visit:
    """One pass over the request's headers (raw ASGI scope)."""
    user_agent = referer = forwarded_for = None
    classified: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name == b"user-agent":
            user_agent = value.decode("latin-1")
        elif name == b"referer":
            referer = value.decode("latin-1")
        elif name == b"x-forwarded-for":
            text = value.decode("latin-1")
            forwarded_for = f"{forwarded_for},{text}" if forwarded_for else text
        elif name in CLASSIFIED_HEADERS:
            classified[name.decode("latin-1")] = value.decode("latin-1")
    peer = scope.get("client")
    return Visit(client_ip(peer[0] if peer else None, forwarded_for, trusted), user_agent, referer, classified)
