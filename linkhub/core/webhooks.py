"""Webhook subscriptions: the stored model and reads shared by the API, the CLI and the delivery loop."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import idna
import msgspec
from msgspec import UNSET, UnsetType

from linkhub.core import formats
from linkhub.core.errors import LinkhubError
from linkhub.core.events import EVENT_TYPES, VERDICTS
from linkhub.store import Connection, Row
from linkhub.util import jsondepth
from linkhub.util.times import format_ms, now_rfc3339
from linkhub.util.wording import plural

DEFAULT_BATCH_SIZE = 100
DEFAULT_MAX_AGE_S = 259_200  # three days, as Optimizely keeps undelivered events
DEFAULT_TIMEOUT_S = 10  # seconds for a whole POST; a webhook may set 1-60
PREVIOUS_SECRET_S = 86_400  # after a rotation, the old secret signs beside the new one for a day
MAX_TIMEOUT_S = 60
# Upper bounds that keep every time computed from them (queued_at - max_age_s, now + interval)
# within the calendar linkhub stores, and out of 64-bit overflow in SQLite.
MAX_AGE_S = 315_360_000  # ten years
MAX_RETRY_INTERVAL_S = 86_400  # a day; exponential retries never wait more than an hour

_COLUMN_NAMES = (
    "id", "account_id", "url", "types", "format", "auth", "secret", "batch_size", "retry_policy", "retry_interval_s",
    "max_age_s", "timeout_s", "ordered", "description", "status", "status_reason", "created_at", "updated_at",
    "previous_secret", "previous_secret_until", "verdicts", "wait_for_verdict",
)
_COLUMNS = ", ".join(_COLUMN_NAMES)
# What PATCH may change; id, account, secret, status and created_at have calls of their own.
_CHANGEABLE = ("url", "types", "format", "auth", "batch_size", "retry_policy", "retry_interval_s", "max_age_s",
               "timeout_s", "ordered", "description", "verdicts", "wait_for_verdict", "updated_at")


@dataclass(frozen=True)
class Webhook:
    id: str
    account_id: str
    url: str
    types: tuple[str, ...]  # empty = every type
    format: str
    # {"type": "none" | "basic" | "bearer" | "header", …credentials}; never in reprs or logs
    auth: dict[str, Any] = dataclasses.field(repr=False)
    secret: str = dataclasses.field(repr=False)  # 'whsec_…'
    batch_size: int
    retry_policy: str  # 'exponential' | 'fixed'
    retry_interval_s: int | None
    max_age_s: int
    timeout_s: int
    ordered: bool
    description: str | None
    status: str  # 'active' | 'inactive' | 'disabled'
    status_reason: str | None
    created_at: str
    updated_at: str
    # The secret before the last rotation, which also signs deliveries until previous_secret_until.
    previous_secret: str | None = dataclasses.field(default=None, repr=False)
    previous_secret_until: str | None = None
    # The click verdicts it receives (canonical order, never empty; all four by default), and whether a
    # click waits for the settled verdict (the settle window) before it is sent. Other types are unaffected.
    verdicts: tuple[str, ...] = VERDICTS
    wait_for_verdict: bool = False

    def signing_secrets(self, now: str) -> list[str]:
        """The secrets that sign a delivery made at `now` (UTC, RFC 3339): the current one first."""
        if self.previous_secret and self.previous_secret_until and now < self.previous_secret_until:
            return [self.secret, self.previous_secret]
        return [self.secret]

    def accepts(self, event_type: str) -> bool:
        """Whether an event of this type is queued for this webhook: subscribed, and expressible in its format."""
        return (not self.types or event_type in self.types) and event_type in formats.SUPPORTED_TYPES[self.format]

    def takes_verdict(self, verdict: str) -> bool:
        """Whether a click with this verdict (`events.verdict_of`) is sent to this webhook."""
        return verdict in self.verdicts

    def public(self) -> dict[str, Any]:
        """The webhook as the API shows it: never the signing secret nor the auth credentials."""
        return {
            "id": self.id,
            "url": self.url,
            "types": list(self.types),
            "verdicts": list(self.verdicts),
            "wait_for_verdict": self.wait_for_verdict,
            "format": self.format,
            "auth": {"type": self.auth.get("type", "none"),
                     **({"username": self.auth["username"]} if self.auth.get("type") == "basic" else {}),
                     **({"name": self.auth["name"]} if self.auth.get("type") == "header" else {})},
            "batch_size": self.batch_size,
            "retry": ({"policy": "fixed", "interval_s": self.retry_interval_s}
                      if self.retry_policy == "fixed" else {"policy": "exponential"}),
            "max_age_s": self.max_age_s,
            "timeout_s": self.timeout_s,
            "ordered": self.ordered,
            "description": self.description,
            "status": self.status,
            "status_reason": self.status_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "previous_secret_until": self.previous_secret_until,
        }


def from_row(row: Row) -> Webhook:
    values = dict(row)
    values["types"] = tuple(msgspec.json.decode(values["types"]))
    values["auth"] = msgspec.json.decode(values["auth"])
    values["ordered"] = bool(values["ordered"])
    values["verdicts"] = tuple(msgspec.json.decode(values["verdicts"]))
    values["wait_for_verdict"] = bool(values["wait_for_verdict"])
    return Webhook(**values)


def get(conn: Connection, webhook_id: str, account_id: str | None = None) -> Webhook | None:
    """The webhook, or None; with `account_id`, only if it belongs to that account."""
    sql = f"SELECT {_COLUMNS} FROM webhooks WHERE id = ?"
    params: tuple[str, ...] = (webhook_id,)
    if account_id is not None:
        sql += " AND account_id = ?"
        params += (account_id,)
    row = conn.execute(sql, params).fetchone()
    return from_row(row) if row is not None else None


def list_for(conn: Connection, account_id: str | None = None) -> list[Webhook]:
    if account_id is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM webhooks ORDER BY created_at, id")
    else:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM webhooks WHERE account_id = ? ORDER BY created_at, id",
                            (account_id,))
    return [from_row(row) for row in rows]


# -- create / update requests ---------------------------------------------------------------
#
# The API and the CLI both turn their input into these Structs, so one set of rules decides what
# a valid webhook is. msgspec checks shapes and ranges; the _check_* functions add what a type cannot say.

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 1000
MAX_CREDENTIAL_LENGTH = 4096
# Headers linkhub sets itself on every POST: an auth header must not replace them, or a webhook
# could forge its own signature or break the framing. Authorization is the auth connectors' own.
RESERVED_HEADERS = frozenset({
    "content-type", "content-length", "host", "user-agent", "transfer-encoding", "connection",
    "webhook-id", "webhook-timestamp", "webhook-signature",
})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field-name


class InvalidWebhook(LinkhubError):
    """A create/update request that cannot be stored; `field` names where (e.g. 'batch_size', 'auth.name')."""

    status = 422
    code = "invalid_webhook"

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, field=field)
        self.field = field


class WebhookNotFound(LinkhubError):
    """No such webhook, or (with `account_id`) not that account's: the API answers both alike."""

    status = 404
    code = "not_found"

    def __init__(self, webhook_id: str, account_id: str | None = None) -> None:
        super().__init__(f"no webhook {webhook_id!r}")
        self.webhook_id = webhook_id
        self.account_id = account_id


class WebhookActive(LinkhubError):
    """The operation needs an inactive webhook (delete)."""

    status = 409
    code = "webhook_active"


@dataclass(frozen=True)
class Dropped:
    """The deliveries a delete removed with its webhook: still waiting (pending or in flight), and dead."""

    pending: int
    dead: int

    def public(self) -> dict[str, int]:
        return {"pending": self.pending, "dead": self.dead}


class WebhookHasQueue(LinkhubError):
    """Delete without force of a webhook that still has pending or dead deliveries; `queued` says how many."""

    status = 409
    code = "webhook_has_queue"

    def __init__(self, webhook_id: str, queued: Dropped) -> None:
        # The API's way out ends the sentence; the CLI names its own flag after `reason`.
        self.reason = (f"webhook {webhook_id} still has {plural(queued.pending, 'pending event')} and "
                       f"{plural(queued.dead, 'dead event')}: deleting it would drop them")
        super().__init__(f"{self.reason}; DELETE with ?force=true drops them", pending=queued.pending,
                         dead=queued.dead)
        self.webhook_id = webhook_id
        self.queued = queued


class NoAuth(msgspec.Struct, tag_field="type", tag="none", forbid_unknown_fields=True):
    pass


class BasicAuth(msgspec.Struct, tag_field="type", tag="basic", forbid_unknown_fields=True):
    username: str
    password: str


class BearerAuth(msgspec.Struct, tag_field="type", tag="bearer", forbid_unknown_fields=True):
    token: str


class HeaderAuth(msgspec.Struct, tag_field="type", tag="header", forbid_unknown_fields=True):
    name: str
    value: str


Auth = NoAuth | BasicAuth | BearerAuth | HeaderAuth


class ExponentialRetry(msgspec.Struct, tag_field="policy", tag="exponential", forbid_unknown_fields=True):
    pass


class FixedRetry(msgspec.Struct, tag_field="policy", tag="fixed", forbid_unknown_fields=True):
    interval_s: Annotated[int, msgspec.Meta(ge=1, le=MAX_RETRY_INTERVAL_S)]


Retry = ExponentialRetry | FixedRetry
BatchSize = Annotated[int, msgspec.Meta(ge=1, le=1000)]
MaxAge = Annotated[int, msgspec.Meta(ge=1, le=MAX_AGE_S)]
Timeout = Annotated[int, msgspec.Meta(ge=1, le=MAX_TIMEOUT_S)]


# What the API document says of these fields; the checks themselves are check_url's and _check_*'s, whose
# refusals name the field (msgspec's would not say the same), so these describe and do not validate.
Url = Annotated[str, msgspec.Meta(extra_json_schema={"format": "uri", "maxLength": MAX_URL_LENGTH})]
Description = Annotated[str, msgspec.Meta(extra_json_schema={"maxLength": MAX_DESCRIPTION_LENGTH})]
Format = Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(formats.FORMATS)})]
TypeName = Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(EVENT_TYPES)})]
VerdictName = Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(VERDICTS)})]


class WebhookSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /v1/webhooks: a new webhook. `verify` is the caller's request to test the URL first."""

    url: Url
    types: list[TypeName] | None = None
    format: Format = "linkhub"
    auth: Auth = msgspec.field(default_factory=NoAuth)
    batch_size: BatchSize = DEFAULT_BATCH_SIZE
    retry: Retry = msgspec.field(default_factory=ExponentialRetry)
    max_age_s: MaxAge = DEFAULT_MAX_AGE_S
    timeout_s: Timeout = DEFAULT_TIMEOUT_S
    ordered: bool = True
    description: Description | None = None
    verdicts: list[VerdictName] = msgspec.field(default_factory=lambda: list(VERDICTS))
    wait_for_verdict: bool = False
    active: bool = False
    verify: bool = False


class WebhookChanges(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """PATCH /v1/webhooks/{id}: only the fields present change; `types`/`description` null clears them."""

    url: Url | UnsetType = UNSET
    types: list[TypeName] | UnsetType | None = UNSET
    format: Format | UnsetType = UNSET
    auth: Auth | UnsetType = UNSET
    batch_size: BatchSize | UnsetType = UNSET
    retry: Retry | UnsetType = UNSET
    max_age_s: MaxAge | UnsetType = UNSET
    timeout_s: Timeout | UnsetType = UNSET
    ordered: bool | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    verdicts: list[VerdictName] | UnsetType = UNSET
    wait_for_verdict: bool | UnsetType = UNSET
    # Accepted only to say where status changes are made, rather than "unknown field".
    active: Annotated[bool, msgspec.Meta(extra_json_schema={"not": {}})] | UnsetType = UNSET


class SecretRotation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /v1/webhooks/{id}/rotate-secret (the body is optional)."""

    expire_previous: bool = False  # the old secret stops signing at once (it leaked), not in a day


S = TypeVar("S", WebhookSpec, WebhookChanges, SecretRotation)


_NAMED_FIELD = re.compile(r"(?:missing required|contains unknown) field `([^`]*)`")


def _field_of(exc: msgspec.ValidationError) -> tuple[str, str]:
    """msgspec's 'Expected … - at `$.auth.name`' → ('Expected …', 'auth.name').

    A missing or unknown field is reported at its object; the field itself is the more useful name.
    """
    message, _, path = str(exc).partition(" - at `")
    parts = [path.rstrip("`").removeprefix("$").removeprefix(".")]
    named = _NAMED_FIELD.search(message)
    if named:
        parts.append(named[1])
    return message, ".".join(p for p in parts if p) or "$"


def parse(kind: type[S], data: bytes | dict[str, Any]) -> S:
    """Decode and check a request (JSON bytes from the API, a dict from the CLI).

    Raises InvalidWebhook naming the field; msgspec.DecodeError for bytes that are not JSON or nest too deep.
    """
    try:
        if isinstance(data, bytes):
            jsondepth.check(data)
            spec = msgspec.json.decode(data, type=kind)
        else:
            spec = msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        message, field = _field_of(exc)
        raise InvalidWebhook(message, field) from None
    if isinstance(spec, WebhookChanges) and spec.active is not UNSET:
        raise InvalidWebhook("status is changed with POST /v1/webhooks/{id}/activate or /deactivate", "active")
    return spec


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host; credentials belong in `auth`, where they are never shown."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhook(f"url is longer than {MAX_URL_LENGTH} characters", "url")
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):  # C0, DEL and C1
        raise InvalidWebhook("url must not contain whitespace or control characters", "url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise InvalidWebhook(f"url is not a valid URL: {exc}", "url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhook("url must be an absolute http:// or https:// URL with a host", "url")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhook("url must not carry credentials; use auth {\"type\": \"basic\", …}", "url")
    if parts.fragment:
        raise InvalidWebhook("url must not have a #fragment (it is never sent)", "url")
    host = parts.netloc.rpartition("@")[2]
    host = host[: host.index("]") + 1] if host.startswith("[") else host.partition(":")[0]
    ascii_host = _check_host(host)
    if ascii_host != host:  # stored as it is contacted: the host in its ASCII (IDNA) form
        start = url.index("//") + 2
        url = url[:start] + ascii_host + url[start + len(host):]
    return url


_ASCII_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
# A last label that is a number makes the host an IPv4 address in URL parsers (WHATWG) and in
# inet_aton (`127.1`, `0x7f.1`): only the dotted-decimal form is unambiguous.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")


def _check_host(host: str) -> str:
    """The host (as written in the URL, without port) in ASCII; InvalidWebhook if it is not a valid one.

    IP literals stay as they are; a domain name must be valid DNS (labels of 1-63 characters,
    253 in all) and, if internationalized, valid IDNA under UTS 46 processing.
    """
    if "%" in host:
        raise InvalidWebhook("url host must not be percent-encoded (nor carry an IPv6 zone)", "url")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidWebhook(f"url host {host} is not a valid IPv6 address", "url") from None
        return host
    if not host.isascii():
        for ch in host:
            # Soft hyphens, joiners, bidi controls: UTS 46 drops some silently, so the host
            # contacted would not be the one shown.
            if unicodedata.category(ch) in ("Cf", "Cs", "Co", "Cn") or (ord(ch) > 0x7F and _ignored(ch)):
                raise InvalidWebhook(f"url host must not contain the invisible or unassigned character "
                                     f"U+{ord(ch):04X}", "url")
        try:
            host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidWebhook(f"url host is not a valid internationalized domain name: {exc}", "url") from None
    name = host.removesuffix(".")  # a fully qualified name may end with a dot
    labels = name.split(".")
    if len(name) > 253:
        raise InvalidWebhook("url host is longer than 253 characters", "url")
    for label in labels:
        if not label:
            raise InvalidWebhook(f"url host {host!r} has an empty label", "url")
        if len(label) > 63:
            raise InvalidWebhook(f"url host has a label longer than 63 characters: {label[:20]}…", "url")
        if not _ASCII_LABEL.fullmatch(label):
            raise InvalidWebhook(f"url host label {label!r} may only hold letters, digits, '-' and '_', and "
                                 "must not begin or end with '-'", "url")
        if label[:4].lower() == "xn--":
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError) as exc:
                raise InvalidWebhook(f"url host label {label!r} is not a valid IDNA A-label: {exc}", "url") from None
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            raise InvalidWebhook(f"url host {host!r} is neither a domain name nor an IPv4 address in dotted-decimal"
                                 " form", "url") from None
    return host


def _ignored(ch: str) -> bool:
    """Whether UTS 46 maps the character to nothing (it would vanish from the host)."""
    try:
        return idna.uts46_remap(ch, std3_rules=False, transitional=False) == ""
    except (idna.IDNAError, UnicodeError):
        return False  # disallowed: idna.encode says so, with its reason


def _check_types(types: list[str] | None, fmt: str) -> tuple[str, ...]:
    if not types:
        return ()
    for index, event_type in enumerate(types):
        if event_type not in EVENT_TYPES:
            raise InvalidWebhook(f"unknown event type {event_type!r}; known: {', '.join(EVENT_TYPES)}",
                                 f"types[{index}]")
    chosen = tuple(t for t in EVENT_TYPES if t in types)  # canonical order, no duplicates
    if not any(t in formats.SUPPORTED_TYPES[fmt] for t in chosen):
        # Such a webhook would never receive anything: surely not what was meant.
        raise InvalidWebhook(f"the {fmt} format can express none of {', '.join(chosen)}; it supports "
                             f"{', '.join(t for t in EVENT_TYPES if t in formats.SUPPORTED_TYPES[fmt])}", "types")
    return chosen


def _check_verdicts(verdicts: list[str]) -> tuple[str, ...]:
    """The click verdicts a webhook takes: at least one, each one of VERDICTS, each once; canonical order.

    Unlike `types`, a duplicate is refused rather than dropped, and an empty list is not "all":
    `[]` would be a webhook that takes clicks and never receives one.
    """
    if not verdicts:
        raise InvalidWebhook(f"verdicts must name at least one of {', '.join(VERDICTS)} (to receive no clicks, "
                             "leave click out of types)", "verdicts")
    for index, verdict in enumerate(verdicts):
        if verdict not in VERDICTS:
            raise InvalidWebhook(f"unknown verdict {verdict!r}; known: {', '.join(VERDICTS)}", f"verdicts[{index}]")
        if verdict in verdicts[:index]:
            raise InvalidWebhook(f"verdict {verdict!r} is listed twice", f"verdicts[{index}]")
    return tuple(v for v in VERDICTS if v in verdicts)


def _check_format(fmt: str) -> str:
    if fmt not in formats.FORMATS:
        raise InvalidWebhook(f"unknown format {fmt!r}; known: {', '.join(formats.FORMATS)}", "format")
    return fmt


def _credential(value: str, field: str, *, empty_ok: bool = False, in_header: bool = True) -> None:
    """Refuse what cannot be sent as given; never quote the value (it is a secret).

    `in_header`: the value is a header value as it is (a token, a header), not base64 inside one
    (basic credentials), so surrounding whitespace would be stripped on the way.
    """
    if not value and not empty_ok:
        raise InvalidWebhook(f"{field} must not be empty", field)
    if len(value) > MAX_CREDENTIAL_LENGTH:
        raise InvalidWebhook(f"{field} is longer than {MAX_CREDENTIAL_LENGTH} characters", field)
    # A CR/LF would let the value start a header of its own; other controls are not valid in a header.
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise InvalidWebhook(f"{field} must not contain control characters (tab, CR, LF, …)", field)
    if not value.isascii():
        raise InvalidWebhook(f"{field} must be ASCII: an HTTP header cannot carry other characters as they are",
                             field)
    if in_header and value != value.strip(" "):
        raise InvalidWebhook(f"{field} must not begin or end with a space: it would be dropped on the way", field)


def _check_auth(auth: Auth) -> dict[str, Any]:
    if isinstance(auth, BasicAuth):
        _credential(auth.username, "auth.username", in_header=False)
        if ":" in auth.username:
            raise InvalidWebhook("auth.username must not contain ':' (RFC 7617)", "auth.username")
        _credential(auth.password, "auth.password", empty_ok=True, in_header=False)
    elif isinstance(auth, BearerAuth):
        _credential(auth.token, "auth.token")
    elif isinstance(auth, HeaderAuth):
        if not _TOKEN.fullmatch(auth.name):
            raise InvalidWebhook(f"auth.name {auth.name!r} is not a valid HTTP header name", "auth.name")
        if auth.name.lower() in RESERVED_HEADERS:
            raise InvalidWebhook(f"auth.name {auth.name!r} is a header linkhub sets itself", "auth.name")
        _credential(auth.value, "auth.value")
    stored: dict[str, Any] = msgspec.to_builtins(auth)  # {"type": …, credentials}: the `auth` column
    return stored


def _check_description(description: str | None) -> str | None:
    if description is None or not description.strip():
        return None
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidWebhook(f"description is longer than {MAX_DESCRIPTION_LENGTH} characters", "description")
    return description.strip()


def _retry_columns(retry: Retry) -> tuple[str, int | None]:
    return ("fixed", retry.interval_s) if isinstance(retry, FixedRetry) else ("exponential", None)


# -- writes (each runs inside the caller's transaction) ----------------------------------------


def new_secret() -> str:
    """A Standard Webhooks signing secret: 'whsec_' + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def draft(account_id: str, spec: WebhookSpec) -> Webhook:
    """The webhook `spec` describes, checked, with a new id and secret, not yet stored.

    Kept apart from `insert` so that a verify-on-create can sign with the very secret that is stored.
    """
    fmt = _check_format(spec.format)
    policy, interval = _retry_columns(spec.retry)
    now = now_rfc3339()
    return Webhook(
        id="wh_" + secrets.token_hex(12),
        account_id=account_id,
        url=check_url(spec.url),
        types=_check_types(spec.types, fmt),
        format=fmt,
        auth=_check_auth(spec.auth),
        secret=new_secret(),
        batch_size=spec.batch_size,
        retry_policy=policy,
        retry_interval_s=interval,
        max_age_s=spec.max_age_s,
        timeout_s=spec.timeout_s,
        ordered=spec.ordered,
        description=_check_description(spec.description),
        verdicts=_check_verdicts(spec.verdicts),
        wait_for_verdict=spec.wait_for_verdict,
        status="active" if spec.active else "inactive",
        status_reason=None,
        created_at=now,
        updated_at=now,
    )


def _row_values(webhook: Webhook) -> dict[str, Any]:
    """The webhook as column → value for the webhooks table."""
    values = {name: getattr(webhook, name) for name in _COLUMN_NAMES}
    values["types"] = msgspec.json.encode(list(webhook.types)).decode()
    values["auth"] = msgspec.json.encode(webhook.auth).decode()
    values["ordered"] = int(webhook.ordered)
    values["verdicts"] = msgspec.json.encode(list(webhook.verdicts)).decode()
    values["wait_for_verdict"] = int(webhook.wait_for_verdict)
    return values


def insert(conn: Connection, webhook: Webhook) -> Webhook:
    conn.execute(f"INSERT INTO webhooks ({_COLUMNS}) VALUES ({', '.join(':' + n for n in _COLUMN_NAMES)})",
                 _row_values(webhook))
    stored = get(conn, webhook.id)
    assert stored is not None
    return stored


def create(conn: Connection, account_id: str, spec: WebhookSpec) -> tuple[Webhook, str]:
    """Store a new webhook; return it with its signing secret (shown to the caller once)."""
    webhook = insert(conn, draft(account_id, spec))
    return webhook, webhook.secret


def apply(webhook: Webhook, changes: WebhookChanges) -> Webhook:
    """`webhook` with `changes` applied and the result checked as a whole (e.g. types against format)."""
    values: dict[str, Any] = {}
    fmt = _check_format(changes.format) if changes.format is not UNSET else webhook.format
    values["format"] = fmt
    if changes.url is not UNSET:
        values["url"] = check_url(changes.url)
    if changes.types is not UNSET or changes.format is not UNSET:
        types = changes.types if changes.types is not UNSET else list(webhook.types)
        values["types"] = _check_types(types, fmt)
    if changes.auth is not UNSET:
        values["auth"] = _check_auth(changes.auth)
    if changes.batch_size is not UNSET:
        values["batch_size"] = changes.batch_size
    if changes.retry is not UNSET:
        values["retry_policy"], values["retry_interval_s"] = _retry_columns(changes.retry)
    if changes.max_age_s is not UNSET:
        values["max_age_s"] = changes.max_age_s
    if changes.timeout_s is not UNSET:
        values["timeout_s"] = changes.timeout_s
    if changes.ordered is not UNSET:
        values["ordered"] = changes.ordered
    if changes.description is not UNSET:
        values["description"] = _check_description(changes.description)
    if changes.verdicts is not UNSET:
        values["verdicts"] = _check_verdicts(changes.verdicts)
    if changes.wait_for_verdict is not UNSET:
        values["wait_for_verdict"] = changes.wait_for_verdict
    return dataclasses.replace(webhook, **values, updated_at=now_rfc3339())


def update(conn: Connection, webhook: Webhook, changes: WebhookChanges) -> Webhook:
    """Store `changes` to `webhook` (as read in this transaction). Status and secret are not touched here."""
    changed = apply(webhook, changes)
    conn.execute(
        f"UPDATE webhooks SET {', '.join(f'{n} = :{n}' for n in _CHANGEABLE)} WHERE id = :id",
        _row_values(changed),
    )
    stored = get(conn, webhook.id)
    if stored is None:
        raise WebhookNotFound(webhook.id)
    return stored


def set_status(conn: Connection, webhook_id: str, status: str, reason: str | None = None) -> Webhook:
    """Make the webhook active, inactive or disabled (with why); events are queued only while active."""
    if status not in ("active", "inactive", "disabled"):
        raise ValueError(f"unknown webhook status {status!r}")
    cursor = conn.execute("UPDATE webhooks SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?",
                          (status, reason, now_rfc3339(), webhook_id))
    webhook = get(conn, webhook_id) if cursor.rowcount else None
    if webhook is None:
        raise WebhookNotFound(webhook_id)
    return webhook


def rotate_secret(conn: Connection, webhook_id: str, *, expire_previous: bool = False) -> Webhook:
    """Sign with a new secret from now on; return the webhook with it.

    The secret it replaces goes on signing beside it for PREVIOUS_SECRET_S, so receivers can
    switch without rejecting a delivery; `expire_previous` (for a leaked secret) stops it at once.
    A rotation within that window drops the older of the two.
    """
    now_ms = time.time_ns() // 1_000_000
    until = None if expire_previous else format_ms(now_ms + PREVIOUS_SECRET_S * 1000)
    cursor = conn.execute(
        "UPDATE webhooks SET previous_secret = CASE WHEN ? IS NULL THEN NULL ELSE secret END,"
        " previous_secret_until = ?, secret = ?, updated_at = ? WHERE id = ?",
        (until, until, new_secret(), format_ms(now_ms), webhook_id),
    )
    webhook = get(conn, webhook_id) if cursor.rowcount else None
    if webhook is None:
        raise WebhookNotFound(webhook_id)
    return webhook


def forget_expired_secrets(conn: Connection, now: str) -> int:
    """Erase the previous secrets that stopped signing at or before `now`; return how many.

    Past previous_secret_until a secret signs nothing (`Webhook.signing_secrets`), so keeping
    it in the row would only widen what a copy of the database gives away.
    """
    return conn.execute(
        "UPDATE webhooks SET previous_secret = NULL, previous_secret_until = NULL"
        " WHERE previous_secret_until IS NOT NULL AND previous_secret_until <= ?",
        (now,),
    ).rowcount


def delete(conn: Connection, webhook_id: str, *, force: bool = False) -> Dropped:
    """Delete an inactive (or disabled) webhook with its queue and delivery log (ON DELETE CASCADE).

    Refusing active ones, as Optimizely does, means queued events are never dropped by a stray call;
    and one with pending or dead deliveries is refused too (WebhookHasQueue) unless `force`, since
    those are events its receiver never got. Returns what was dropped. Run it in a transaction:
    the count and the delete must see the same rows.
    """
    queued = _queued(conn, webhook_id)
    if (queued.pending or queued.dead) and not force:
        webhook = get(conn, webhook_id)
        if webhook is None:
            raise WebhookNotFound(webhook_id)
        if webhook.status != "active":
            raise WebhookHasQueue(webhook_id, queued)
    # One statement checks and deletes, so nothing can activate it in between.
    cursor = conn.execute("DELETE FROM webhooks WHERE id = ? AND status != 'active'", (webhook_id,))
    if cursor.rowcount:
        # Its lease too (core/leases.py): a process still holding it finds it gone at its next fenced
        # write, and stops, as if another had taken it over.
        conn.execute("DELETE FROM leases WHERE kind = 'webhook' AND key = ?", (webhook_id,))
        return queued
    if get(conn, webhook_id) is None:
        raise WebhookNotFound(webhook_id)
    raise WebhookActive(f"webhook {webhook_id} is active: deactivate it first (only inactive webhooks can be"
                        " deleted, so that events queued for it are never dropped by accident)")


def _queued(conn: Connection, webhook_id: str) -> Dropped:
    pending = conn.execute("SELECT count(*) FROM outbox WHERE webhook_id = ? AND state IN ('pending', 'sending')",
                           (webhook_id,)).fetchone()[0]
    dead = conn.execute("SELECT count(*) FROM outbox WHERE webhook_id = ? AND state = 'dead'",
                        (webhook_id,)).fetchone()[0]
    return Dropped(pending, dead)


# -- the delivery log ---------------------------------------------------------------------------


def record_delivery(conn: Connection, webhook_id: str, message_id: str, attempted_at: str, events: int,
                    status_code: int | None, duration_ms: int, error: str | None, *, test: bool) -> None:
    conn.execute(
        "INSERT INTO deliveries (webhook_id, message_id, attempted_at, events, status_code, duration_ms, error, test)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (webhook_id, message_id, attempted_at, events, status_code, duration_ms, error, int(test)),
    )


def recent_deliveries(conn: Connection, webhook_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The latest POSTs to the webhook, newest first: time, events, status, duration, error."""
    rows = conn.execute(
        "SELECT id, message_id, attempted_at, events, status_code, duration_ms, error, test FROM deliveries"
        " WHERE webhook_id = ? ORDER BY id DESC LIMIT ?",
        (webhook_id, limit),
    )
    return [{**dict(row), "test": bool(row["test"])} for row in rows]
