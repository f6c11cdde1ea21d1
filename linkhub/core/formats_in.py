"""Inbound formats: the providers' own webhook payloads read back into canonical events.

The reverse of `core/formats.py`, built on its tables, so that what linkhub renders in a provider's
format reads back as the event it rendered (tests/test_inbound_roundtrip.py checks it for every type
each format can express). docs/formats.md has both directions in one table; docs/inbound.md says what
each provider sends and what linkhub accepts of it.

A body is read item by item: an item that cannot be an event is rejected with a reason and the
others are kept (a provider cannot fix its own payloads, and retrying them helps nobody). Every
canonical field is checked as `POST /v1/events` checks it (an address has an `@`, an event names
its recipient by address or id, ids and texts fit the same lengths, a bounce's category is hard
or soft).

Each event's id is the provider's own identity of the item, so that a provider's redelivery is a
duplicate the `events` table's unique (account_id, id) index drops: `optimizely:<id>`,
`esputnik:<iid>:<activityStatus>:<time>`, `arpoone:<MessageId>:<type>:<time>` (times in linkhub's
form, types canonical). Optimizely's open and click items carry no `id`; theirs is a hash of what
tells two of them apart (`optimizely:h:<sha256 prefix>` of type, mailId, recipientId, created, linkId
and link; never `attempt`, which grows on each retry).

Fields linkhub has no canonical place for are kept as received under `details.inbound`, so nothing a
provider sent is lost; the envelope fields every item carries (`attempt`, `test`, Optimizely's
`clientId`, which the endpoint already stands for) are dropped.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

import msgspec
import regex

from linkhub.core.errors import LinkhubError
from linkhub.core.events import EVENT_TYPES, VERDICTS, Event
from linkhub.core.formats import _ARPOONE_TYPE, _ESPUTNIK_STATUS, _OPTIMIZELY_BOUNCE, _OPTIMIZELY_FIELDS
from linkhub.util import jsondepth
from linkhub.util.times import format_ms, parse_rfc3339, to_rfc3339

PROVIDERS = ("optimizely", "esputnik", "arpoone")
# Arpoone's batches hold up to 1000 items, Optimizely's 100; eSputnik's are not bounded by its documents.
MAX_ITEMS = 1000
MAX_ID = 256  # as POST /v1/events: ids
MAX_TEXT = 2048  # as POST /v1/events: addresses, URLs
# Epoch milliseconds linkhub can store: 1970 up to the end of year 9999 (times.MAX_YEAR).
_MAX_MS = 253_402_300_799_999
# Arpoone documents `Time` only as <long>. linkhub sends milliseconds; a value below this (1973 in
# milliseconds, year 5138 in seconds) can only be seconds, and is read as seconds.
_ARPOONE_SECONDS_BELOW = 100_000_000_000

# eSputnik's own example writes `"mediaType": email` (a bare word: not JSON). Such a word, and only
# for that key, is read as the string; any other invalid JSON is refused.
_BARE_MEDIA_TYPE = regex.compile(rb'("mediaType"\s*:\s*)([A-Za-z_][A-Za-z0-9_]*)(?=\s*[,}\]])')
_JSON_WORDS = {b"true", b"false", b"null"}

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class NotJson(LinkhubError):
    """The body is no JSON document (eSputnik's bare `mediaType` words aside)."""

    status = 400
    code = "malformed_json"


class NotABatch(LinkhubError):
    """The body is JSON, but neither an array of items nor one item."""

    status = 400
    code = "invalid_body"


class TooManyItems(LinkhubError):
    status = 413
    code = "too_many_items"

    def __init__(self, count: int) -> None:
        super().__init__(f"the body holds {count} items; at most {MAX_ITEMS} are taken in one request",
                         limit=MAX_ITEMS)


@dataclass(frozen=True)
class Rejected:
    """An item that could not be an event: where it was, why, and whom it names (for erasure)."""

    index: int
    reason: str
    item: Any
    email: str | None
    recipient_id: str | None

    def item_json(self, limit: int = 4096) -> str:
        return _encode(self.item).decode()[:limit]


@dataclass(frozen=True)
class Parsed:
    events: list[Event]
    rejects: list[Rejected]


class _Bad(Exception):
    """Why an item is rejected; the text names fields, never a value that could be an address."""


def decode(provider: str, body: bytes) -> list[Any]:
    """The items of a body: a JSON array, or one JSON object (Optimizely posts its click example bare).

    Refuses what is not JSON (400), nests too deeply (400), is neither (422) or holds over MAX_ITEMS (413).
    """
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}")
    try:
        document = _decode(body)
    except msgspec.DecodeError as exc:
        repaired = _quote_bare_media_types(body) if provider == "esputnik" else None
        if repaired is None:
            raise NotJson(f"the body is not JSON: {exc}", path="$") from None
        try:
            document = _decode(repaired)
        except msgspec.DecodeError:
            raise NotJson(f"the body is not JSON: {exc}", path="$") from None
        body = repaired
    try:
        jsondepth.check(body)
    except jsondepth.TooDeep as exc:
        raise LinkhubError(str(exc), code="too_deep", path=exc.path, max_depth=exc.limit) from None
    if isinstance(document, dict):
        return [document]
    if not isinstance(document, list):
        raise NotABatch(f"the body must be a JSON array of {provider} items (or one item), not {_kind(document)}",
                        path="$")
    if len(document) > MAX_ITEMS:
        raise TooManyItems(len(document))
    return document


def _quote_bare_media_types(body: bytes) -> bytes | None:
    """The body with `"mediaType": word` written `"mediaType": "word"`; None if there is no such word."""
    found = False

    def quote(match: Any) -> bytes:
        nonlocal found
        word: bytes = match[2]
        if word in _JSON_WORDS:
            return bytes(match[0])
        found = True
        return bytes(match[1]) + b'"' + word + b'"'

    repaired = _BARE_MEDIA_TYPE.sub(quote, body)
    return repaired if found else None


def parse(provider: str, items: list[Any], *, account_id: str, received_at: str) -> Parsed:
    """Each item as a canonical event of the account, or as a rejection with its reason."""
    read = _READERS[provider]
    events: list[Event] = []
    rejects: list[Rejected] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rejects.append(Rejected(index, f"an item must be a JSON object, not {_kind(item)}", item, None, None))
            continue
        try:
            fields = read(item)
            events.append(_event(fields, account_id=account_id, received_at=received_at, source=source(provider)))
        except _Bad as exc:
            email, recipient = _whom(provider, item)
            rejects.append(Rejected(index, str(exc), item, email, recipient))
    return Parsed(events, rejects)


def source(provider: str) -> str:
    """The `source` of the events an endpoint of `provider` stores."""
    return f"inbound:{provider}"


# -- what every provider's item becomes ----------------------------------------------------------


@dataclass
class _Fields:
    id: str
    type: str
    occurred_at: str
    email: str | None = None
    recipient_id: str | None = None
    mailing_id: str | None = None
    message_id: str | None = None
    url: str | None = None
    details: dict[str, Any] | None = None


def _event(fields: _Fields, *, account_id: str, received_at: str, source: str) -> Event:
    if fields.email is not None and "@" not in fields.email:
        raise _Bad("the address is not an email address")
    if fields.email is None and fields.recipient_id is None:
        raise _Bad("the item names no recipient (neither an address nor a recipient id)")
    details = fields.details or {}
    if fields.type == "bounce" and details.get("category") not in (None, "soft", "hard"):
        raise _Bad("a bounce's category must be hard or soft")
    return Event(id=fields.id, account_id=account_id, type=fields.type, occurred_at=fields.occurred_at,
                 received_at=received_at, source=source, email=fields.email, recipient_id=fields.recipient_id,
                 mailing_id=fields.mailing_id, message_id=fields.message_id, url=fields.url, details=details)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _text(item: dict[str, Any], key: str, limit: int = MAX_TEXT, *, required: bool = False) -> str | None:
    """A string field (a number too, as its digits: providers send ids either way); '' and null are absent."""
    value = item.get(key)
    if isinstance(value, bool):
        raise _Bad(f"{key} must be a string, not a boolean")
    if isinstance(value, int):
        value = str(value)
    if value is None or value == "":
        if required:
            raise _Bad(f"{key} is missing")
        return None
    if not isinstance(value, str):
        raise _Bad(f"{key} must be a string, not {_kind(value)}")
    if len(value) > limit:
        raise _Bad(f"{key} is longer than {limit} characters")
    return value


def _ident(item: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    return _text(item, key, MAX_ID, required=required)


def _flag(item: dict[str, Any], key: str) -> bool | None:
    value = item.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise _Bad(f"{key} must be true or false, not {_kind(value)}")


def _object(item: dict[str, Any], key: str) -> dict[str, Any]:
    value = item.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Bad(f"{key} must be an object, not {_kind(value)}")
    return value


def _epoch_ms(item: dict[str, Any], key: str, *, seconds_below: int = 0) -> str:
    value = item.get(key)
    if value is None:
        raise _Bad(f"{key} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{key} must be an integer (epoch milliseconds), not {_kind(value)}")
    if 0 <= value < seconds_below:
        value *= 1000
    if not 0 <= value <= _MAX_MS:
        raise _Bad(f"{key} is outside 1970 to 9999 in epoch milliseconds")
    return format_ms(value)


def _ip(value: Any) -> str | None:
    """A client address, if it is one (Optimizely's own example has '10.420.3.42', which is not)."""
    if not isinstance(value, str):
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return None
    return value


def _put(details: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        details[key] = value


def _verdict(details: dict[str, Any], verdict: Any, score: Any, reasons: Any) -> None:
    """A click's verdict as another linkhub sent it (the formats' `linkhub…` keys): kept when it is one."""
    if isinstance(verdict, str) and verdict in VERDICTS:
        details["verdict"] = verdict
    if isinstance(score, int | float) and not isinstance(score, bool):
        details["score"] = score
    if isinstance(reasons, list) and all(isinstance(code, str) for code in reasons):
        # The provider formats carry the reasons' codes only; their weights and evidence stay behind.
        details["reasons"] = [{"code": code} for code in reasons]


def _rest(item: dict[str, Any], used: set[str], details: dict[str, Any]) -> None:
    rest = {key: value for key, value in item.items() if key not in used and key not in _ENVELOPE}
    if rest:
        details["inbound"] = rest


_ENVELOPE = frozenset({"attempt", "test"})


def _id_hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:32]


# -- Optimizely Campaign ---------------------------------------------------------------------------

_OPTIMIZELY_CATEGORY = {name: category for category, name in _OPTIMIZELY_BOUNCE.items()}
_OPTIMIZELY_COMMON_KEYS = {"type", "id", "recipientId", "clientId", "created", "mediaTypesToAddresses",
                           "mailingId", "mailId"}


def _from_optimizely(item: dict[str, Any]) -> _Fields:
    event_type = item.get("type")
    if not isinstance(event_type, str) or event_type not in _OPTIMIZELY_FIELDS:
        raise _Bad(f"type must be one of {', '.join(_OPTIMIZELY_FIELDS)}")
    occurred_at = _epoch_ms(item, "created")
    addresses = _object(item, "mediaTypesToAddresses")
    used = set(_OPTIMIZELY_COMMON_KEYS)
    email = _text(addresses, "EMAIL")
    if set(addresses) - {"EMAIL"}:  # other channels' addresses: kept as they came
        used.discard("mediaTypesToAddresses")
    recipient = _ident(item, "recipientId")
    if recipient is not None and (recipient == email or (email is None and "@" in recipient)):
        # Optimizely puts the address in recipientId when it has no id of its own (and so does linkhub).
        email, recipient = recipient, None
    if item.get("mediaType") in ("EMAIL", None):
        used.add("mediaType")
    mailing, message = _ident(item, "mailingId"), _ident(item, "mailId")
    details: dict[str, Any] = {}
    url = None
    if event_type in ("open", "click"):
        _put(details, "ip", _ip(item.get("remoteAddress")))
        if "ip" in details or item.get("remoteAddress") is None:
            used.add("remoteAddress")
        _put(details, "device", _text(item, "device"))
        _put(details, "os", _text(item, "operatingSystem"))
        _put(details, "browser", _text(item, "browser"))
        used |= {"device", "operatingSystem", "browser"}
    if event_type == "click":
        url = _text(item, "link")
        _verdict(details, item.get("linkhubVerdict"), item.get("linkhubScore"), item.get("linkhubReasons"))
        used |= {"link", "linkhubVerdict", "linkhubScore", "linkhubReasons"}
    elif event_type == "sent":
        _put(details, "mailing_name", _text(item, "mailingName"))
        used.add("mailingName")
    elif event_type == "bounce":
        category = item.get("category")
        if category is not None and (not isinstance(category, str) or category not in _OPTIMIZELY_CATEGORY):
            raise _Bad("category must be hardbounce or softbounce")
        _put(details, "category", _OPTIMIZELY_CATEGORY.get(category) if isinstance(category, str) else None)
        _put(details, "reason", _text(item, "reason"))
        details["threshold_exceeded"] = bool(_flag(item, "thresholdExceeded"))
        used |= {"category", "reason", "thresholdExceeded"}
    elif event_type == "unsubscribe":
        _put(details, "reason", _text(item, "reason"))
        used.add("reason")
    elif event_type == "spamcomplaint":
        _put(details, "provider", _text(item, "providerName"))
        used.add("providerName")
    own_id = _ident(item, "id")
    event_id = (f"optimizely:{own_id}" if own_id is not None else
                "optimizely:h:" + _id_hash(event_type, message, item.get("recipientId"), item.get("created"),
                                           item.get("linkId"), item.get("link")))
    _rest(item, used, details)
    return _Fields(event_id, event_type, occurred_at, email, recipient, mailing, message, url, details)


# -- eSputnik ----------------------------------------------------------------------------------

# Each status's canonical type: the type `formats` renders as it. UNDELIVERED is `undelivered` (a
# linkhub bounce is sent as UNDELIVERED too, but eSputnik cannot tell the two apart, so neither can we).
_ESPUTNIK_TYPE = {status: event_type for event_type, status in _ESPUTNIK_STATUS.items() if event_type != "bounce"}
_ESPUTNIK_COMMON_KEYS = {"iid", "contactId", "email", "activityStatus", "messageId", "activityDateTime",
                         "broadcastId"}


_NAIVE_TIME = regex.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?")


def _esputnik_time(item: dict[str, Any]) -> str:
    value = item.get("activityDateTime")
    if not isinstance(value, str) or not value:
        raise _Bad("activityDateTime is missing" if value is None else "activityDateTime must be a string")
    # eSputnik's times carry no zone; they are read as UTC, as linkhub writes them. A zone given is honoured.
    text = value + "Z" if _NAIVE_TIME.fullmatch(value) else value
    try:
        return to_rfc3339(parse_rfc3339(text))
    except ValueError:
        raise _Bad("activityDateTime is not a time such as 2018-03-01T13:31:52") from None


def _from_esputnik(item: dict[str, Any]) -> _Fields:
    status = item.get("activityStatus")
    if not isinstance(status, str) or status not in _ESPUTNIK_TYPE:
        raise _Bad(f"activityStatus must be one of {', '.join(_ESPUTNIK_TYPE)}")
    event_type = _ESPUTNIK_TYPE[status]
    iid = _ident(item, "iid", required=True)
    occurred_at = _esputnik_time(item)
    used = set(_ESPUTNIK_COMMON_KEYS)
    if item.get("mediaType") in ("email", "EMAIL", None):
        used.add("mediaType")
    details: dict[str, Any] = {}
    _put(details, "broadcast_id", item.get("broadcastId"))
    url = None
    if event_type == "undelivered":
        _put(details, "description", _text(item, "statusDescription"))
        if _flag(item, "hardBounce"):
            details["category"] = "hard"
        used |= {"statusDescription", "hardBounce"}
    elif event_type == "click":
        url = _text(item, "clickEventLink")
        _verdict(details, item.get("linkhubVerdict"), item.get("linkhubScore"), item.get("linkhubReasons"))
        used |= {"clickEventLink", "linkhubVerdict", "linkhubScore", "linkhubReasons"}
    elif event_type == "subscription_changed":
        data = _object(item, "statusData")
        # 003's example spells them subscription/subscriptions, its table subscripton/subscriptons: both are read.
        subscription = _object(data, "subscription") or _object(data, "subscripton")
        categories = subscription.get("subscriptions", subscription.get("subscriptons"))
        if categories is None and isinstance(item.get("subscriptons"), list):
            categories = item["subscriptons"]
        if categories is not None:
            if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
                raise _Bad("statusData.subscription.subscriptions must be a list of strings")
            details["categories"] = categories
            used.add("statusData")
    _rest(item, used, details)
    return _Fields(f"esputnik:{iid}:{status}:{occurred_at}", event_type, occurred_at, _text(item, "email"),
                   _ident(item, "contactId"), None, _ident(item, "messageId"), url, details)


# -- Arpoone -----------------------------------------------------------------------------------

# linkhub's EventType names (its emailWebhooks keys capitalised), and the names of 004's sections
# (Open, Click, …), which a sender might use as well: any case.
_ARPOONE_TYPES = {name.lower(): event_type for event_type, name in _ARPOONE_TYPE.items()}
_ARPOONE_TYPES |= {"open": "open", "click": "click", "bounce": "bounce", "unsubscribe": "unsubscribe"}
_ARPOONE_ENVELOPE = {"EventType", "Email", "MessageId", "Time", "EventDetails"}


def _from_arpoone(item: dict[str, Any]) -> _Fields:
    name = item.get("EventType")
    event_type = _ARPOONE_TYPES.get(name.lower()) if isinstance(name, str) else None
    if event_type is None:
        raise _Bad(f"EventType must be one of {', '.join(_ARPOONE_TYPE.values())}")
    occurred_at = _epoch_ms(item, "Time", seconds_below=_ARPOONE_SECONDS_BELOW)
    message = _ident(item, "MessageId", required=True)
    given = _object(item, "EventDetails")
    details: dict[str, Any] = {}
    used: set[str] = set()
    url = None
    if event_type in ("open", "click", "unsubscribe"):
        _put(details, "country", _text(given, "CountryCode"))
        _put(details, "ip", _ip(given.get("IpAddress")))
        _put(details, "user_agent", _text(given, "UserAgent"))
        used |= {"CountryCode", "UserAgent"} | ({"IpAddress"} if "ip" in details or given.get("IpAddress") is None
                                                 else set())
    if event_type == "click":
        url = _text(given, "Link")
        _verdict(details, given.get("LinkhubVerdict"), given.get("LinkhubScore"), given.get("LinkhubReasons"))
        used |= {"Link", "LinkhubVerdict", "LinkhubScore", "LinkhubReasons"}
    elif event_type == "bounce":
        hard = _flag(given, "IsHardBouce")  # sic: 004's spelling; the right one is read too
        hard = _flag(given, "IsHardBounce") if hard is None else hard
        if hard is not None:
            details["category"] = "hard" if hard else "soft"
        details["blocked"] = bool(_flag(given, "IsBlocked"))
        _put(details, "reason", _text(given, "BounceType"))
        _put(details, "description", _text(given, "BounceDescription"))
        used |= {"IsHardBouce", "IsHardBounce", "IsBlocked", "BounceType", "BounceDescription"}
    elif event_type == "spamcomplaint":
        _put(details, "provider", _text(given, "FeedbackLoopSource"))
        used.add("FeedbackLoopSource")
    rest = {key: value for key, value in given.items() if key not in used}
    outer = {key: value for key, value in item.items() if key not in _ARPOONE_ENVELOPE and key not in _ENVELOPE}
    if rest or outer:
        details["inbound"] = {**outer, **({"EventDetails": rest} if rest else {})}
    return _Fields(f"arpoone:{message}:{event_type}:{occurred_at}", event_type, occurred_at, _text(item, "Email"),
                   None, None, message, url, details)


_READERS = {"optimizely": _from_optimizely, "esputnik": _from_esputnik, "arpoone": _from_arpoone}
assert set(_READERS) == set(PROVIDERS)
assert all(t in EVENT_TYPES for t in (*_ESPUTNIK_TYPE.values(), *_ARPOONE_TYPES.values()))


def _whom(provider: str, item: dict[str, Any]) -> tuple[str | None, str | None]:
    """The address and recipient id a rejected item names, where the provider puts them (for erasure)."""
    if provider == "optimizely":
        addresses = item.get("mediaTypesToAddresses")
        return _loose(addresses.get("EMAIL") if isinstance(addresses, dict) else None), _loose(item.get("recipientId"))
    if provider == "esputnik":
        return _loose(item.get("email")), _loose(item.get("contactId"))
    return _loose(item.get("Email")), None


def _loose(value: Any) -> str | None:
    """A value as text if it is a string or a number, whatever else is wrong with it."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)[:MAX_TEXT]
