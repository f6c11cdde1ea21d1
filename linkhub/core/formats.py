"""Webhook payload formats: linkhub's own, and those of Optimizely Campaign, eSputnik and Arpoone.

A webhook body is a JSON array; each element is one stored `Event` rendered by `render()`
in the webhook's format. Every element carries `attempt` (1 on the first try, as Optimizely's
do) and, in a verify batch, `"test": true`.

Each provider format is a table: canonical type -> the provider's type name, and per type the
provider's extra fields as (key, getter) pairs. docs/formats.md is the human-readable form of
these tables and records the choices made where the provider documents are vague.

- `linkhub`: the native ingest schema (`id`, `type`, `occurred_at`, … `details`), every key present.
- `optimizely` (seed 001): flat per-type objects, `created` in epoch ms. Keys whose source is
  absent are omitted, as Optimizely's own examples omit what does not apply.
- `esputnik` (seeds 002/003): activity objects, `activityDateTime` as UTC 'YYYY-MM-DDTHH:MM:SS'.
  Absent values are omitted, as in eSputnik's example array.
- `arpoone` (seed 004): a fixed five-key envelope, `Time` in epoch ms; its keys and the
  `EventDetails` keys are always present (null when unknown), as 004 gives one fixed shape per event.

Every click carries the classifier's verdict (`events.verdict_of`: the one the webhook's `verdicts`
were checked against) and, when the click has them, its score and reasons: in `details` in the
`linkhub` format, and in the provider formats as added keys with a `linkhub` prefix, which none of
the providers' documented fields (seeds 001-004) begins with, so they cannot collide with a field a
provider has or a receiver maps; receivers that do not know them ignore them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import msgspec

from linkhub.core.classify.verdict import CLASSIFIER_VERSION, Reason, decide
from linkhub.core.events import EVENT_TYPES, Event, verdict_of
from linkhub.util.times import format_naive_s, now_rfc3339, rfc3339_to_ms

FORMATS = ("linkhub", "optimizely", "esputnik", "arpoone")

Getter = Callable[[Event], Any]
Fields = tuple[tuple[str, Getter], ...]


def _detail(key: str) -> Getter:
    return lambda event: event.details.get(key)


def _url(event: Event) -> str | None:
    # A click's url is the link's ORIGINAL url (what the recipient meant to visit), never the redirect target.
    return event.url


def _is_hard(event: Event) -> bool:
    return event.details.get("category") == "hard"


def _optimizely_bounce(event: Event) -> str | None:
    # Ingest accepts only "soft", "hard" or no category on a bounce, so anything else is absent.
    category = event.details.get("category")
    return _OPTIMIZELY_BOUNCE.get(category) if isinstance(category, str) else None


def _verdict(event: Event) -> str:
    return verdict_of(event.details)


def _reason_codes(event: Event) -> list[str] | None:
    """The codes of the click's reasons, in order (their weights and evidence are in the linkhub format)."""
    reasons = event.details.get("reasons")
    if not isinstance(reasons, list):
        return None
    return [r["code"] for r in reasons if isinstance(r, dict) and isinstance(r.get("code"), str)]


# The verdict as the provider formats carry it, in their spelling (camelCase; Arpoone's PascalCase).
_VERDICT_FIELDS: Fields = (
    ("linkhubVerdict", _verdict),
    ("linkhubScore", _detail("score")),
    ("linkhubReasons", _reason_codes),
)
_ARPOONE_VERDICT_FIELDS: Fields = (
    ("LinkhubVerdict", _verdict),
    ("LinkhubScore", _detail("score")),
    ("LinkhubReasons", _reason_codes),
)


def _fill(body: dict[str, Any], event: Event, fields: Fields, *, keep_null: bool) -> dict[str, Any]:
    for key, getter in fields:
        value = getter(event)
        if value is not None or keep_null:
            body[key] = value
    return body


# --- linkhub (native) ------------------------------------------------------------------------

def _linkhub(event: Event) -> dict[str, Any]:
    # Exactly the keys of the ingest schema (POST /v1/events): one shape in and out. So the verdict
    # stays in `details`, where /r/ stores it and where an ingest of this element would keep it.
    details = dict(event.details)  # a copy: the rendered body must not alias the stored event
    if event.type == "click":
        # Always there, whoever reported the click: the verdict the webhook's `verdicts` judged.
        details["verdict"] = verdict_of(details)
        details.setdefault("reasons", [])
    return {
        "id": event.id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "email": event.email,
        "recipient_id": event.recipient_id,
        "mailing_id": event.mailing_id,
        "message_id": event.message_id,
        "url": event.url,
        "details": details,
    }


# --- Optimizely Campaign (001) ---------------------------------------------------------------

_OPTIMIZELY_BOUNCE = {"hard": "hardbounce", "soft": "softbounce"}
_OPTIMIZELY_CLIENT: Fields = (
    ("remoteAddress", _detail("ip")),
    ("device", _detail("device")),
    ("operatingSystem", _detail("os")),
    ("browser", _detail("browser")),
)
# Optimizely's type names are our canonical names; only the per-type extras differ.
_OPTIMIZELY_FIELDS: dict[str, Fields] = {
    "sent": (("mailingName", _detail("mailing_name")),),
    "open": _OPTIMIZELY_CLIENT,
    "click": (("link", _url), *_OPTIMIZELY_CLIENT, *_VERDICT_FIELDS),
    "bounce": (
        ("category", _optimizely_bounce),
        ("reason", _detail("reason")),
        # 001 always sends it; "not known to exceed" is false, never null.
        ("thresholdExceeded", lambda e: bool(e.details.get("threshold_exceeded", False))),
    ),
    "unsubscribe": (("reason", _detail("reason")),),
    "spamcomplaint": (("providerName", _detail("provider")),),
}
_OPTIMIZELY_COMMON: Fields = (
    ("mailingId", lambda e: e.mailing_id),
    ("mailId", lambda e: e.message_id),
)


def _optimizely(event: Event) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": event.type,
        "id": event.id,
        # 001's own examples put the address here when there is no recipient id.
        "recipientId": event.recipient_id if event.recipient_id is not None else event.email,
        "clientId": event.account_id,
        "created": rfc3339_to_ms(event.occurred_at),
        "mediaType": "EMAIL",
        "mediaTypesToAddresses": {"EMAIL": event.email} if event.email is not None else {},
    }
    _fill(body, event, _OPTIMIZELY_COMMON, keep_null=False)
    return _fill(body, event, _OPTIMIZELY_FIELDS[event.type], keep_null=False)


# --- eSputnik (002/003) ----------------------------------------------------------------------

_ESPUTNIK_STATUS = {
    "delivered": "DELIVERED",
    "undelivered": "UNDELIVERED",
    # eSputnik has no bounce status: a bounce is a message not delivered (003: UNDELIVERED + hardBounce).
    "bounce": "UNDELIVERED",
    "open": "READ",
    "click": "CLICKED",
    "unsubscribe": "UNSUBSCRIBED",
    "spamcomplaint": "SPAM",
    "subscription_changed": "SUBSCRIPTION_CHANGED",
}
_ESPUTNIK_FAILURE: Fields = (
    # 003: statusDescription is "the reason why the message has been undelivered"; the
    # server's text (description) says more than our short reason, so it comes first.
    ("statusDescription", lambda e: e.details.get("description") or e.details.get("reason")),
    ("hardBounce", _is_hard),
)
_ESPUTNIK_FIELDS: dict[str, Fields] = {
    "delivered": (),
    "undelivered": _ESPUTNIK_FAILURE,
    "bounce": _ESPUTNIK_FAILURE,
    "open": (),
    "click": (("clickEventLink", _url), *_VERDICT_FIELDS),
    "unsubscribe": (),
    "spamcomplaint": (),
    # Key spelling from 003's example ("subscription"/"subscriptions"), not its table's typos.
    "subscription_changed": (
        ("statusData", lambda e: {"subscription": {"subscriptions": list(e.details.get("categories") or ())}}),
    ),
}
_ESPUTNIK_COMMON: Fields = (
    ("broadcastId", _detail("broadcast_id")),
    ("contactId", lambda e: e.recipient_id),
    ("email", lambda e: e.email),
)


def _esputnik(event: Event) -> dict[str, Any]:
    body: dict[str, Any] = {"iid": event.id}
    _fill(body, event, _ESPUTNIK_COMMON, keep_null=False)
    body["activityStatus"] = _ESPUTNIK_STATUS[event.type]
    body["mediaType"] = "email"
    if event.message_id is not None:
        body["messageId"] = event.message_id
    # eSputnik's examples carry no zone; we always send UTC so the value is unambiguous to us.
    body["activityDateTime"] = format_naive_s(rfc3339_to_ms(event.occurred_at))
    return _fill(body, event, _ESPUTNIK_FIELDS[event.type], keep_null=False)


# --- Arpoone (004) ---------------------------------------------------------------------------

# 004 names its events by its emailWebhooks keys (bounced, clicked, …); EventType is that name capitalised.
_ARPOONE_TYPE = {
    "bounce": "Bounced",
    "click": "Clicked",
    "open": "Opened",
    "spamcomplaint": "Spam",
    "unsubscribe": "Unsubscribed",
}
_ARPOONE_VISIT: Fields = (
    ("CountryCode", _detail("country")),
    ("IpAddress", _detail("ip")),
    ("UserAgent", _detail("user_agent")),
)
_ARPOONE_DETAILS: dict[str, Fields] = {
    "open": _ARPOONE_VISIT,
    "unsubscribe": _ARPOONE_VISIT,
    "click": (*_ARPOONE_VISIT, ("Link", _url), *_ARPOONE_VERDICT_FIELDS),
    "bounce": (
        ("IsBlocked", lambda e: bool(e.details.get("blocked", False))),
        ("IsHardBouce", _is_hard),  # sic: 004's spelling, which Arpoone receivers parse
        ("BounceType", _detail("reason")),
        ("BounceDescription", _detail("description")),
    ),
    "spamcomplaint": (("FeedbackLoopSource", _detail("provider")),),
}


def _arpoone(event: Event) -> dict[str, Any]:
    return {
        "EventType": _ARPOONE_TYPE[event.type],
        "Email": event.email,
        "MessageId": event.message_id,
        "Time": rfc3339_to_ms(event.occurred_at),  # 004 says only <long>: epoch milliseconds
        "EventDetails": _fill({}, event, _ARPOONE_DETAILS[event.type], keep_null=True),
    }


_RENDERERS: dict[str, Callable[[Event], dict[str, Any]]] = {
    "linkhub": _linkhub,
    "optimizely": _optimizely,
    "esputnik": _esputnik,
    "arpoone": _arpoone,
}
# Which canonical event types each format can express: the types its mapping table names.
# Others are never queued for it.
SUPPORTED_TYPES: dict[str, frozenset[str]] = {
    "linkhub": frozenset(EVENT_TYPES),
    "optimizely": frozenset(_OPTIMIZELY_FIELDS),
    "esputnik": frozenset(_ESPUTNIK_STATUS),
    "arpoone": frozenset(_ARPOONE_TYPE),
}


def render(fmt: str, event: Event, attempt: int, *, test: bool = False) -> dict[str, Any]:
    """One event as one JSON object in format `fmt`. Raises ValueError for a type the format cannot express."""
    supported = SUPPORTED_TYPES.get(fmt)
    if supported is None:
        raise ValueError(f"unknown webhook format {fmt!r}")
    if event.type not in supported:
        raise ValueError(f"the {fmt} format cannot express {event.type!r} events")
    body = _RENDERERS[fmt](event)
    body["attempt"] = attempt
    if test:
        body["test"] = True
    return body


_encode = msgspec.json.Encoder().encode


def render_batch(fmt: str, items: list[tuple[Event, int]], *, test: bool = False) -> bytes:
    """A webhook body: the JSON array of `render()` of each (event, attempt), compact UTF-8."""
    return _encode([render(fmt, event, attempt, test=test) for event, attempt in items])


def render_one(fmt: str, event: Event, attempt: int) -> bytes:
    """One element of a webhook body, encoded; raises for an event that cannot be rendered.

    The delivery loop renders event by event, so one event that fails does not fail its batch.
    """
    return _encode(render(fmt, event, attempt))


def join(parts: list[bytes]) -> bytes:
    """The body of elements made by `render_one`: the same bytes `render_batch` makes of them."""
    return b"[" + b",".join(parts) + b"]"


# --- Sample events for the webhook "verify" call ---------------------------------------------

# An iPhone, so that device, os and browser are all known (linkhub.useragent.describe gives exactly these).
_SAMPLE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
              " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
_SAMPLE_VISIT = {"ip": "203.0.113.7", "user_agent": _SAMPLE_UA, "device": "iPhone", "os": "iOS 17.5",
                 "browser": "Mobile Safari 17.5", "bot": False, "country": "NL"}
# A person's click as /r/ judges one: a current browser that sent Accept-Language, an hour and a half
# after the links were minted. The weights are those of core/classify (agents.WEIGHTS, signals.WEIGHTS)
# when this was written; the verdict and score are decide()'s, so they agree with the reasons.
_SAMPLE_REASONS = [Reason("current_browser", 15), Reason("late_hit", 10, {"t_ms": 5_400_000})]
_SAMPLE_VERDICT = decide(_SAMPLE_REASONS)
_SAMPLE_CLICK = {"verdict": _SAMPLE_VERDICT.verdict, "score": _SAMPLE_VERDICT.score,
                 "reasons": [reason.document() for reason in _SAMPLE_REASONS], "classifier": CLASSIFIER_VERSION}
# type -> (Event url, details): what a real event of that type carries, so a receiver sees every field.
_SAMPLES: dict[str, tuple[str | None, dict[str, Any]]] = {
    "sent": (None, {"mailing_name": "Sample mailing"}),
    "delivered": (None, {}),
    "undelivered": (None, {"description": "smtp;552 5.2.2 Mailbox full", "category": "soft"}),
    "open": (None, dict(_SAMPLE_VISIT)),
    "click": ("https://example.com/offer", {**_SAMPLE_VISIT, "referer": None, **_SAMPLE_CLICK}),
    "bounce": (None, {"category": "hard", "reason": "other", "threshold_exceeded": False, "blocked": False,
                      "description": "smtp;550 5.1.1 <test@example.com>: Recipient address rejected"}),
    "unsubscribe": (None, {**_SAMPLE_VISIT, "reason": "Unsubscribed via link in the email"}),
    "spamcomplaint": (None, {"provider": "Yahoo"}),
    "subscription_changed": (None, {"categories": ["newsletter", "offers"]}),
}


def samples(account_id: str, fmt: str, types: tuple[str, ...] = ()) -> list[Event]:
    """One sample event per type `fmt` can express (only those in `types`, if given), in canonical order.

    Ids are 'test_<type>' and source 'test'; they are rendered with test=True and never stored.
    An empty list means none of `types` is expressible in `fmt`. Raises ValueError for an unknown format.
    """
    if fmt not in SUPPORTED_TYPES:
        raise ValueError(f"unknown webhook format {fmt!r}")
    now = now_rfc3339()
    wanted = [t for t in EVENT_TYPES if t in SUPPORTED_TYPES[fmt] and (not types or t in types)]
    return [
        Event(
            id=f"test_{event_type}",
            account_id=account_id,
            type=event_type,
            occurred_at=now,
            received_at=now,
            source="test",
            email="test@example.com",
            recipient_id="test_recipient",
            mailing_id="test_mailing",
            message_id="test_message",
            url=_SAMPLES[event_type][0],
            details=copy.deepcopy(_SAMPLES[event_type][1]),  # nothing shared with the next call's
        )
        for event_type in wanted
    ]
