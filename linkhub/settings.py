"""Server-wide settings, from flags and LINKHUB_* environment variables (the flag wins)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Settings:
    db: Path = Path("linkhub.db")
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    trusted_proxies: tuple[Network, ...] = field(default_factory=tuple)
    allow_private_targets: bool = False
    # Delivered outbox rows and delivery-log entries older than this are deleted hourly; 0 keeps them.
    keep_deliveries_days: int = 30
    # A request body must have arrived this many seconds after its headers (then 408).
    body_timeout_s: float = 30.0
    # One log line per HTTP request (linkhub.access_log); off: the request path pays one attribute check.
    access_log: bool = False

    @property
    def base_url(self) -> str:
        """Where short links point unless an account overrides it."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_networks(text: str | None) -> tuple[Network, ...]:
    """'10.0.0.0/8, 192.168.1.7' → networks. Raises ValueError naming the bad entry."""
    if not text:
        return ()
    networks = []
    for item in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR: {item!r}") from None
    return tuple(networks)


def normalize_public_url(url: str) -> str:
    """A base URL for short links must be absolute http(s) with a host and no query."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"public URL must be an absolute http(s) URL without query or fragment: {url!r}")
    return url.strip().rstrip("/")
