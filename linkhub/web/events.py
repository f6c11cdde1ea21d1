"""POST /v1/events (ingest, all-or-nothing) and GET /v1/events (read, cursor-paginated)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import regex
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from linkhub.core import events
from linkhub.core.accounts import Account
from linkhub.core.errors import LinkhubError
from linkhub.services.events import ingest as ingest_events
from linkhub.util import ids, jsondepth
from linkhub.util.times import now_rfc3339, parse_rfc3339, to_rfc3339
from linkhub.web.contract import BEARER, Answer, Operation, Param
from linkhub.web.responses import JSON, InvalidParameter, Time, int_param, read_body, time_param, validation_error
from linkhub.web.state import State

MAX_EVENTS = 1000
MAX_BODY = 16 * 1024 * 1024
DEFAULT_LIMIT = 100
INLINE_PARSE_BYTES = 256 * 1024

Text = Annotated[str, msgspec.Meta(max_length=2048)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
# For the document: what _check asks of the field (msgspec does not check formats).
Email = Annotated[str, msgspec.Meta(max_length=2048, extra_json_schema={"format": "email"})]


class EventIn(msgspec.Struct, forbid_unknown_fields=True):
    """An event in linkhub's native schema, as a sender posts it."""

    type: events.EventType
    occurred_at: Time
    id: Id | None = None
    email: Email | None = None
    recipient_id: Id | None = None
    mailing_id: Id | None = None
    message_id: Id | None = None
    url: Text | None = None
    details: dict[str, Any] = {}


# An event names its recipient by one of email or recipient_id (_check refuses neither): said in the document too.
_NAMED = {"anyOf": [{"properties": {name: {"type": "string"}}, "required": [name]}
                    for name in ("email", "recipient_id")]}
BatchIn = Annotated[list[Annotated[EventIn, msgspec.Meta(extra_json_schema=_NAMED)]],
                    msgspec.Meta(min_length=1, max_length=MAX_EVENTS)]
_decode_batch = msgspec.json.Decoder(BatchIn).decode


class IngestedOut(msgspec.Struct, forbid_unknown_fields=True):
    """What a batch did: events stored, and events skipped because the account already had their id."""

    accepted: int
    duplicates: int


class EventOut(msgspec.Struct, forbid_unknown_fields=True):
    """An event as the read API shows it; `seq` orders an account's events (the cursor is one)."""

    seq: int
    id: str
    type: events.EventType
    occurred_at: str
    received_at: str
    source: str
    email: str | None
    recipient_id: str | None
    mailing_id: str | None
    message_id: str | None
    url: str | None
    code: str | None
    details: dict[str, Any]


class EventsOut(msgspec.Struct, forbid_unknown_fields=True):
    events: list[EventOut]
    next_cursor: Annotated[str | None, msgspec.Meta(description="the next page's ?cursor=; null: no more")]


def _shown(event: events.Event, seq: int) -> EventOut:
    # From core's one definition of an event's public form; a field it gains fails here (and in the tests).
    return msgspec.convert(events.public(event, seq), EventOut)
_PATH = regex.compile(r"^\$\[(\d+)\](?:\.(\w+))?")


class InvalidEvent(LinkhubError):
    status = 422
    code = "invalid_event"

    def __init__(self, index: int | None, field: str | None, reason: str) -> None:
        where = f"event {index}" if index is not None else "the body"
        if field:
            where += f", field {field!r}"
        super().__init__(f"{where}: {reason}", index=index, field=field, reason=reason)


def _from_msgspec(exc: msgspec.ValidationError) -> InvalidEvent:
    message, _, path = str(exc).partition(" - at `")
    match = _PATH.match(path.rstrip("`"))
    index = int(match[1]) if match else None
    field = match[2] if match else None
    if field is None and message.startswith("Object missing required field"):
        field = message.rsplit("`", 2)[-2]  # "Object missing required field `occurred_at`"
    return InvalidEvent(index, field, message)


def _check(index: int, item: EventIn) -> None:
    """What msgspec's types cannot say."""
    try:
        parse_rfc3339(item.occurred_at)
    except ValueError as exc:
        raise InvalidEvent(index, "occurred_at", str(exc)) from None
    if item.email is None and item.recipient_id is None:
        raise InvalidEvent(index, "email", "one of email or recipient_id is required")
    if item.email is not None and "@" not in item.email:
        raise InvalidEvent(index, "email", "not an email address")
    category = item.details.get("category")
    if item.type == "bounce" and category is not None and category not in ("soft", "hard"):
        raise InvalidEvent(index, "details.category", "bounce category must be 'soft' or 'hard'")


def parse_batch(body: bytes, account_id: str) -> list[events.Event]:
    """Validate a whole POST body; refuses it at the first bad event (422), or as not JSON (400)."""
    try:
        jsondepth.check(body)  # details can hold anything: nothing stored may be too deep to read back
        items = _decode_batch(body)
    except msgspec.ValidationError as exc:
        raise _from_msgspec(exc) from None
    except jsondepth.TooDeep as exc:
        raise validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise LinkhubError(str(exc), code="malformed_json", path="$") from None
    received = now_rfc3339()
    batch = []
    for index, item in enumerate(items):
        _check(index, item)
        batch.append(
            events.Event(
                id=item.id if item.id is not None else ids.event_id(),
                account_id=account_id,
                type=item.type,
                occurred_at=to_rfc3339(parse_rfc3339(item.occurred_at)),
                received_at=received,
                source="api",
                email=item.email,
                recipient_id=item.recipient_id,
                mailing_id=item.mailing_id,
                message_id=item.message_id,
                url=item.url,
                details=item.details,
            )
        )
    return batch


async def ingest(request: Request, state: State, account: Account) -> Response:
    body = await read_body(request, MAX_BODY)
    # A big batch takes a while to decode and check: not on the event loop, which serves redirects.
    batch = (parse_batch(body, account.id) if len(body) <= INLINE_PARSE_BYTES
             else await run_in_threadpool(parse_batch, body, account.id))
    ingested = await ingest_events(state.db, state.deliverer, batch, settle_s=state.settings.classify_settle_s,
                                   origins=state.clicks.origins)
    return JSON(IngestedOut(accepted=ingested.accepted, duplicates=ingested.duplicates), status_code=202)


def _filters(request: Request) -> events.Filters:
    params = request.query_params
    kind = params.get("type") or None
    if kind is not None and kind not in events.EVENT_TYPES:
        raise InvalidParameter(f"unknown event type; one of {', '.join(events.EVENT_TYPES)}", field="type")
    since, until = time_param(request, "since"), time_param(request, "until")
    after = (int_param(request, "cursor", 0, 0, 2**63 - 1, refusal="not a cursor returned by this API")
             if params.get("cursor") else None)
    return events.Filters(type=kind, mailing_id=params.get("mailing_id") or None, email=params.get("email") or None,
                          since=since, until=until, after=after)


async def list_events(request: Request, state: State, account: Account) -> Response:
    filters = _filters(request)
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_EVENTS)
    # May scan: off the event loop, on that thread's reader.
    page = await run_in_threadpool(lambda: events.page(state.db.reader(), account.id, filters, limit))
    return JSON(EventsOut(events=[_shown(event, seq) for seq, event in page.events],
                          next_cursor=None if page.next_cursor is None else str(page.next_cursor)))


Cursor = Annotated[str, msgspec.Meta(pattern="^[0-9]{1,19}$")]

operations = [
    Operation(
        "post", "/v1/events", "Ingest a batch of events (all or nothing)", "events", ingest,
        body=BatchIn, security=[BEARER],
        answers={202: Answer("the batch is stored (events whose id the account has are skipped)", IngestedOut)},
        errors={422: "an event fails validation (`invalid_event`, with its `index` and `field`)",
                503: "the batch was not committed in time, or the database did not answer (`unavailable`)"},
    ),
    Operation(
        "get", "/v1/events", "Read the account's events, oldest first, cursor-paginated", "events", list_events,
        security=[BEARER],
        params=[Param("type", events.EventType), Param("mailing_id"),
                Param("email", description="any case"),
                Param("since", Time, description="occurred at or after (RFC 3339 with an offset)"),
                Param("until", Time, description="occurred before"),
                Param("cursor", Cursor, description="a `next_cursor` of an earlier page"),
                Param("limit", Annotated[int, msgspec.Meta(ge=1, le=MAX_EVENTS)],
                      description=f"default {DEFAULT_LIMIT}")],
        answers={200: Answer("a page of events", EventsOut)},
        errors={422: "a query parameter out of its range (`invalid_parameter`, with `field`)"},
    ),
]
