"""Server-wide settings, from flags and LINKHUB_* environment variables (the flag wins).

`REGISTRY` names each setting once: its flag, its variable, its default, its help. The CLI makes
its options from it (linkhub/cli/common.py), and README's Configuration table is checked against it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from linkhub.util import logs

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Settings:
    db: Path | str = Path("linkhub.db")  # a SQLite file, or a postgresql:// URL
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    trusted_proxies: tuple[Network, ...] = field(default_factory=tuple)
    allow_private_targets: bool = False
    # Delivered outbox rows and delivery-log entries older than this are deleted hourly; 0 keeps them.
    keep_deliveries_days: int = 30
    # Events (clicks included) that happened longer ago than this are deleted hourly; 0 keeps them.
    keep_events_days: int = 0
    # Clicks store the client address's network (IPv4 /24, IPv6 /48), not the address itself.
    anonymize_ip: bool = False
    # Clicks store the device, OS and browser read from the user agent, not the user agent itself.
    no_user_agent: bool = False
    # A request body must have arrived this many seconds after its headers (then 408).
    body_timeout_s: float = 30.0
    # One log line per HTTP request (linkhub.access_log); off: the request path pays one attribute check.
    access_log: bool = False
    # Hits related to a click (the rest of a scanner's burst) may change its verdict this long after it.
    classify_settle_s: int = 120
    # The operator's own scanner networks (`CIDR label certainty` lines), besides the shipped lists.
    scanner_networks: Path | None = None
    # A process that holds a webhook's deliveries (or a periodic task) and stops renewing its lease,
    # crashed or frozen, is taken over by another this long after its last renewal.
    lease_s: float = 15.0
    # Server processes sharing the port and the database file (SO_REUSEPORT); 1: this process serves.
    workers: int = 1

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


@dataclass(frozen=True)
class Setting:
    """One setting, as plain data: how the flag, the environment variable and the docs name it."""

    # The keyword the command receives: a field of Settings, or (log_level, log_format) serve's own.
    name: str
    flag: str
    env: str
    default: Any
    # The --help sentence; the variable (and a computed default) are appended to it.
    help: str
    # What the text is read as: str, int, float, Path, or bool for an on/off flag.
    kind: type[Any] = str
    # Inclusive bounds of a number (None: unbounded on that side).
    limits: tuple[float | None, float | None] | None = None
    # The only values accepted, case-insensitively.
    choices: tuple[str, ...] = ()
    # Turns the text into the value, or raises ValueError saying what is wrong with it.
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    # The default as the docs write it, when the value itself does not say it: a relative path
    # made explicit, or (with a default of None) what the server works out at start-up.
    shown: str | None = None

    @property
    def is_flag(self) -> bool:
        return self.kind is bool

    @property
    def shown_env(self) -> str:
        """The variable as the docs write it: a flag's with the value that turns it on."""
        return f"{self.env}=1" if self.is_flag else self.env

    @property
    def shown_default(self) -> str:
        """The default as README's Configuration table writes it: `code`, or the word none, off or on."""
        if self.shown is not None:
            return f"`{self.shown}`"
        if self.is_flag:
            return "on" if self.default else "off"
        if self.default in (None, "", ()):
            return "none"
        return f"`{self.default:g}`" if isinstance(self.default, float) else f"`{self.default}`"


# The defaults are Settings' own: a server started with no flags and code that builds Settings() agree.
_DEFAULT = Settings()

REGISTRY: tuple[Setting, ...] = (
    Setting("db", "--db", "LINKHUB_DB", _DEFAULT.db, "SQLite database file, or a postgresql://user@host/db URL",
            kind=Path, metavar="FILE|URL",
            shown="./linkhub.db"),
    Setting("host", "--host", "LINKHUB_HOST", _DEFAULT.host, "Address to listen on"),
    Setting("port", "--port", "LINKHUB_PORT", _DEFAULT.port, "Port to listen on; 0 picks a free one",
            kind=int, limits=(0, 65535)),
    Setting("public_url", "--public-url", "LINKHUB_PUBLIC_URL", _DEFAULT.public_url,
            "Base URL of short links, as recipients reach this server", parse=normalize_public_url,
            shown="http://HOST:PORT"),
    Setting("trusted_proxies", "--trusted-proxies", "LINKHUB_TRUSTED_PROXIES", _DEFAULT.trusted_proxies,
            "Comma-separated CIDRs whose X-Forwarded-For is believed", parse=parse_networks),
    Setting("allow_private_targets", "--allow-private-targets", "LINKHUB_ALLOW_PRIVATE_TARGETS",
            _DEFAULT.allow_private_targets,
            "Let webhooks deliver to loopback/private addresses, for local set-ups and tests", kind=bool),
    Setting("keep_deliveries_days", "--keep-deliveries-days", "LINKHUB_KEEP_DELIVERIES_DAYS",
            _DEFAULT.keep_deliveries_days,
            "Delete delivered outbox rows and delivery-log entries older than this, hourly; 0 keeps them",
            kind=int, limits=(0, None), metavar="DAYS"),
    Setting("keep_events_days", "--keep-events-days", "LINKHUB_KEEP_EVENTS_DAYS", _DEFAULT.keep_events_days,
            "Delete events (clicks included) that happened more than this many days ago, with their outbox "
            "rows and verdict changes, hourly; 0 keeps every event", kind=int, limits=(0, None), metavar="DAYS"),
    Setting("anonymize_ip", "--anonymize-ip", "LINKHUB_ANONYMIZE_IP", _DEFAULT.anonymize_ip,
            "Store a click's client address as its network (IPv4 /24, IPv6 /48), here and in the verdict's "
            "evidence; the classifier still judges the full address", kind=bool),
    Setting("no_user_agent", "--no-user-agent", "LINKHUB_NO_USER_AGENT", _DEFAULT.no_user_agent,
            "Store a click's device, OS and browser and its verdict, not the raw user agent", kind=bool),
    Setting("body_timeout_s", "--body-timeout", "LINKHUB_BODY_TIMEOUT", _DEFAULT.body_timeout_s,
            "A request body must have arrived this long after its headers, or the request is answered 408 "
            "and its connection closed", kind=float, limits=(0.1, 3600), metavar="SECONDS"),
    Setting("log_level", "--log-level", "LINKHUB_LOG_LEVEL", "info", "Least severe log records written",
            choices=logs.LEVELS),
    Setting("log_format", "--log-format", "LINKHUB_LOG_FORMAT", "text",
            "Log lines as text, or as one JSON object each", choices=logs.FORMATS),
    Setting("access_log", "--access-log", "LINKHUB_ACCESS_LOG", _DEFAULT.access_log,
            "Log one line per HTTP request: method, path without query string, status, duration, client",
            kind=bool),
    Setting("classify_settle_s", "--classify-settle-s", "LINKHUB_CLASSIFY_SETTLE_S", _DEFAULT.classify_settle_s,
            "Hits arriving this long after a click may still change its verdict (a scanner's burst); webhooks "
            "that wait for the verdict get clicks this much later", kind=int, limits=(0, 3600), metavar="SECONDS"),
    Setting("scanner_networks", "--scanner-networks", "LINKHUB_SCANNER_NETWORKS", _DEFAULT.scanner_networks,
            "A file of your own scanner networks, one `CIDR label certainty` per line (your gateway's egress "
            "addresses), checked besides the shipped lists", kind=Path, metavar="FILE"),
    Setting("lease_s", "--lease-s", "LINKHUB_LEASE_S", _DEFAULT.lease_s,
            "When several processes share the database, one that stops renewing its leases (a webhook's "
            "deliveries, a periodic task) is taken over by another this long after its last renewal",
            kind=float, limits=(1, 300), metavar="SECONDS"),
    Setting("workers", "--workers", "LINKHUB_WORKERS", _DEFAULT.workers,
            "Server processes on the one port and database file, each with its own writer (Linux: "
            "SO_REUSEPORT); a worker that dies is started again", kind=int, limits=(1, 64), metavar="N"),
)
