"""Round trip: for every event type a provider format can express, linkhub's outbound rendering in that
format (core/formats.py), fed back into that provider's inbound adapter (core/formats_in.py), gives the
same canonical event — a property, checked on events hypothesis makes.

"The same" is every field of the stored event, except the two that say where an event came from:
`source` (`inbound:<provider>`) and the id, which inbound derives from the provider's own identity
of the item (docs/inbound.md), so it is checked to be exactly that derivation. The events made carry
what the format carries (docs/formats.md's table): a format with no field for a canonical one drops
it on the way out, and nothing can bring it back. Where one format's field stands for a default
(`thresholdExceeded`, `IsBlocked`, a click's verdict) the events carry it, as linkhub's own do. The
one type a format cannot tell apart from another, eSputnik's bounce (sent as UNDELIVERED, as an
`undelivered` is), is checked to come back as that `undelivered`, with what it carried.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from linkhub.core import formats, formats_in
from linkhub.core.events import VERDICTS, Event
from linkhub.util.times import format_ms

import inbound_examples as seeds

ACCOUNT = "acc_roundtrip"
RECEIVED = "2026-12-01T10:00:00.000Z"
# 2001 to 2100, in epoch milliseconds.
MS = st.integers(978_307_200_000, 4_102_444_800_000)

# Any text JSON can carry: every character but the lone surrogates, which no UTF-8 body holds.
chars = st.characters(exclude_categories=["Cs"])
text = st.text(chars, min_size=1, max_size=40)
ident = st.text(chars, min_size=1, max_size=64)
recipient_ids = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="@"), min_size=1, max_size=64)
ips = st.ip_addresses().map(str)
verdicts = st.sampled_from(VERDICTS)
codes = st.lists(st.from_regex(r"[a-z_]{3,20}", fullmatch=True), max_size=4)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def details(draw: st.DrawFn, **fields: st.SearchStrategy[Any]) -> dict[str, Any]:
    """A details object: each key with its value, or left out when the drawn value is None."""
    drawn = {key: draw(strategy) for key, strategy in fields.items()}
    return {key: value for key, value in drawn.items() if value is not None}


@st.composite
def click_verdicts(draw: st.DrawFn) -> dict[str, Any]:
    """What a click carries of the classifier in the provider formats: the verdict, the score, the codes."""
    found: dict[str, Any] = {"verdict": draw(verdicts)}
    if draw(st.booleans()):
        found["score"] = draw(st.integers(-100, 100))
    if draw(st.booleans()):
        found["reasons"] = [{"code": code} for code in draw(codes)]
    return found


def _visit(*, with_verdict: bool = False, **more: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    base = details(**more)
    if not with_verdict:
        return base
    return st.tuples(base, click_verdicts()).map(lambda pair: {**pair[0], **pair[1]})


_OPTIMIZELY_CLIENT = {"ip": optional(ips), "device": optional(text), "os": optional(text),
                      "browser": optional(text)}
_ARPOONE_VISIT = {"country": optional(text), "ip": optional(ips), "user_agent": optional(text)}

# format -> type -> (details strategy, has url): what that format carries of each type it expresses.
CARRIED: dict[str, dict[str, tuple[st.SearchStrategy[dict[str, Any]], bool]]] = {
    "optimizely": {
        "sent": (details(mailing_name=optional(text)), False),
        "open": (details(**_OPTIMIZELY_CLIENT), False),
        "click": (_visit(with_verdict=True, **_OPTIMIZELY_CLIENT), True),
        "bounce": (details(category=optional(st.sampled_from(["hard", "soft"])), reason=optional(text),
                           threshold_exceeded=st.booleans()), False),
        "unsubscribe": (details(reason=optional(text)), False),
        "spamcomplaint": (details(provider=optional(text)), False),
    },
    "esputnik": {
        "delivered": (details(broadcast_id=optional(st.integers(1, 2**53) | ident)), False),
        "undelivered": (details(broadcast_id=optional(st.integers(1, 2**53)), description=optional(text),
                                category=optional(st.just("hard"))), False),
        "open": (details(broadcast_id=optional(st.integers(1, 2**53))), False),
        "click": (_visit(with_verdict=True, broadcast_id=optional(st.integers(1, 2**53))), True),
        "unsubscribe": (details(), False),
        "spamcomplaint": (details(), False),
        "subscription_changed": (details(categories=st.lists(text, max_size=5)), False),
    },
    "arpoone": {
        "open": (details(**_ARPOONE_VISIT), False),
        "click": (_visit(with_verdict=True, **_ARPOONE_VISIT), True),
        "bounce": (details(category=st.sampled_from(["hard", "soft"]), blocked=st.booleans(),
                           reason=optional(text), description=optional(text)), False),
        "unsubscribe": (details(**_ARPOONE_VISIT), False),
        "spamcomplaint": (details(provider=optional(text)), False),
    },
}


def test_every_type_each_format_expresses_is_covered() -> None:
    # eSputnik's bounce is the one type its format cannot tell from another (checked on its own below).
    expressed = {fmt: set(types) for fmt, types in formats.SUPPORTED_TYPES.items() if fmt != "linkhub"}
    assert {fmt: set(types) for fmt, types in CARRIED.items()} == {
        **expressed, "esputnik": expressed["esputnik"] - {"bounce"}}


@st.composite
def events(draw: st.DrawFn, fmt: str, event_type: str | None = None) -> Event:
    """A canonical event of a type `fmt` expresses, with what `fmt` carries of it."""
    if event_type is None:
        event_type = draw(st.sampled_from(sorted(CARRIED[fmt])))
    strategy, has_url = CARRIED[fmt][event_type] if event_type in CARRIED[fmt] else (
        details(description=optional(text), category=optional(st.just("hard"))), False)
    ms = draw(MS)
    if fmt == "esputnik":
        ms -= ms % 1000  # activityDateTime is to the second
    email, recipient = draw(st.sampled_from(["both", "email", "recipient"] if fmt != "arpoone" else ["email"])), None
    address = draw(st.emails()) if email in ("both", "email") else None
    if email in ("both", "recipient"):
        recipient = draw(recipient_ids)
    return Event(
        id=draw(ident), account_id=ACCOUNT, type=event_type, occurred_at=format_ms(ms), received_at=RECEIVED,
        source="api", email=address, recipient_id=recipient,
        mailing_id=draw(optional(ident)) if fmt == "optimizely" else None,
        # Arpoone's MessageId is its items' identity: an item without one is rejected, so every event has one.
        message_id=draw(ident) if fmt == "arpoone" else draw(optional(ident)),
        url=draw(text) if has_url else None,
        details=draw(strategy),
    )


def round_trip(fmt: str, event: Event, attempt: int) -> formats_in.Parsed:
    body = formats.render_batch(fmt, [(event, attempt)])
    return formats_in.parse(fmt, formats_in.decode(fmt, body), account_id=ACCOUNT, received_at=RECEIVED)


def identity(fmt: str, event: Event) -> str:
    """The id inbound gives the event: the provider's own identity of the item (docs/inbound.md)."""
    if fmt == "optimizely":
        return f"optimizely:{event.id}"
    if fmt == "esputnik":
        return f"esputnik:{event.id}:{formats._ESPUTNIK_STATUS[event.type]}:{event.occurred_at}"
    return f"arpoone:{event.message_id}:{event.type}:{event.occurred_at}"


def expected(fmt: str, event: Event) -> Event:
    return Event(**{**{f: getattr(event, f) for f in Event.__struct_fields__},
                    "id": identity(fmt, event), "source": f"inbound:{fmt}"})


@settings(max_examples=300, deadline=None)
@given(data=st.data(), attempt=st.integers(1, 1000))
def test_optimizely_round_trip(data: st.DataObject, attempt: int) -> None:
    event = data.draw(events("optimizely"))
    parsed = round_trip("optimizely", event, attempt)
    assert parsed.rejects == [] and parsed.events == [expected("optimizely", event)]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), attempt=st.integers(1, 1000))
def test_esputnik_round_trip(data: st.DataObject, attempt: int) -> None:
    event = data.draw(events("esputnik"))
    parsed = round_trip("esputnik", event, attempt)
    assert parsed.rejects == [] and parsed.events == [expected("esputnik", event)]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), attempt=st.integers(1, 1000))
def test_arpoone_round_trip(data: st.DataObject, attempt: int) -> None:
    event = data.draw(events("arpoone"))
    parsed = round_trip("arpoone", event, attempt)
    assert parsed.rejects == [] and parsed.events == [expected("arpoone", event)]


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_an_esputnik_bounce_comes_back_as_the_undelivered_it_is_sent_as(data: st.DataObject) -> None:
    bounce = data.draw(events("esputnik", "bounce"))
    parsed = round_trip("esputnik", bounce, 1)
    undelivered = Event(**{**{f: getattr(bounce, f) for f in Event.__struct_fields__}, "type": "undelivered"})
    assert parsed.events == [expected("esputnik", undelivered)]


def test_a_verify_batch_reads_back_in_every_format() -> None:
    """linkhub's own sample events (what `verify` sends) read back too: each carries every field."""
    for fmt in CARRIED:
        samples = formats.samples(ACCOUNT, fmt)
        body = formats.render_batch(fmt, [(event, 1) for event in samples], test=True)
        parsed = formats_in.parse(fmt, formats_in.decode(fmt, body), account_id=ACCOUNT, received_at=RECEIVED)
        assert parsed.rejects == [] and [e.type for e in parsed.events] == [
            "undelivered" if fmt == "esputnik" and e.type == "bounce" else e.type for e in samples]


# -- whatever an item holds, it is an event or a rejection, never an exception ----------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(chars, max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(chars, max_size=8), inner, max_size=3),
    max_leaves=8)


def _seed_items() -> dict[str, list[dict[str, Any]]]:
    optimizely = [item for name in ("OPTIMIZELY_OPENS", "OPTIMIZELY_CLICK", "OPTIMIZELY_SENT", "OPTIMIZELY_BOUNCE",
                                    "OPTIMIZELY_UNSUBSCRIBE", "OPTIMIZELY_SPAMCOMPLAINT")
                  for item in formats_in.decode("optimizely", getattr(seeds, name).encode())]
    return {"optimizely": optimizely,
            "esputnik": formats_in.decode("esputnik", seeds.ESPUTNIK_ALL_STATUSES.encode()),
            "arpoone": formats_in.decode("arpoone", seeds.ARPOONE_ALL_TYPES.encode())}


SEED_ITEMS = _seed_items()


@st.composite
def mangled(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A provider's example item with some of its fields (nested ones too) replaced by any JSON value."""
    provider = draw(st.sampled_from(formats_in.PROVIDERS))
    item = json_copy(draw(st.sampled_from(SEED_ITEMS[provider])))
    for _ in range(draw(st.integers(1, 3))):
        target = item
        nested = [key for key, value in target.items() if isinstance(value, dict)]
        if nested and draw(st.booleans()):
            target = target[draw(st.sampled_from(nested))]
        key = draw(st.sampled_from(sorted(target) or ["x"]) | st.text(chars, max_size=8))
        target[key] = draw(json_values)
    return provider, item


def json_copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


@settings(max_examples=500, deadline=None)
@given(case=mangled())
def test_any_mangled_item_is_an_event_or_a_rejection_never_an_exception(case: tuple[str, dict[str, Any]]) -> None:
    provider, item = case
    parsed = formats_in.parse(provider, [item], account_id=ACCOUNT, received_at=RECEIVED)
    assert len(parsed.events) + len(parsed.rejects) == 1
    for event in parsed.events:  # what is stored can be rendered onward, in every format that expresses it
        assert event.email is not None or event.recipient_id is not None
        for fmt, types in formats.SUPPORTED_TYPES.items():
            if event.type in types:
                formats.render(fmt, event, 1)
    for rejected in parsed.rejects:
        assert rejected.reason and rejected.item_json()
