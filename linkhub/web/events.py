"""POST /v1/events (ingest, all-or-nothing) and GET /v1/events (read, cursor-paginated)."""

from __future__ import annotations

import functools
from typing import Annotated, Any

import msgspec
import regex
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from linkhub.core import events, outbox
from linkhub.core.accounts import Account
from linkhub.store import UNAVAILABLE, Row
from linkhub.util import ids, jsondepth
from linkhub.util.times import now_rfc3339, parse_rfc3339, to_rfc3339
from linkhub.web.auth import authenticated
from linkhub.web.responses import (
    JSON,
    BodyTooLarge,
    accepts,
    error,
    int_param,
    read_body,
    route,
    too_large,
    validation_error,
)
from linkhub.web.state import State

MAX_EVENTS = 1000
MAX_BODY = 16 * 1024 * 1024
# An API client can wait longer than Outreach, but not forever behind a locked database.
STORE_DEADLINE_S = 10.0
DEFAULT_LIMIT = 100
INLINE_PARSE_BYTES = 256 * 1024

Text = Annotated[str, msgspec.Meta(max_length=2048)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class EventIn(msgspec.Struct, forbid_unknown_fields=True):
    """An event in linkhub's native schema, as a sender posts it."""

    type: events.EventType
    occurred_at: str
    id: Id | None = None
    email: Text | None = None
    recipient_id: Id | None = None
    mailing_id: Id | None = None
    message_id: Id | None = None
    url: Text | None = None
    details: dict[str, Any] = {}


_decode_batch = msgspec.json.Decoder(Annotated[list[EventIn], msgspec.Meta(min_length=1, max_length=MAX_EVENTS)]).decode
_PATH = regex.compile(r"^\$\[(\d+)\](?:\.(\w+))?")


class Invalid(Exception):
    def __init__(self, index: int | None, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.index, self.field, self.reason = index, field, reason

    def response(self) -> JSON:
        where = f"event {self.index}" if self.index is not None else "the body"
        if self.field:
            where += f", field {self.field!r}"
        return error(422, "invalid_event", f"{where}: {self.reason}", index=self.index, field=self.field,
                     reason=self.reason)


def _from_msgspec(exc: msgspec.ValidationError) -> Invalid:
    message, _, path = str(exc).partition(" - at `")
    match = _PATH.match(path.rstrip("`"))
    index = int(match[1]) if match else None
    field = match[2] if match else None
    if field is None and message.startswith("Object missing required field"):
        field = message.rsplit("`", 2)[-2]  # "Object missing required field `occurred_at`"
    return Invalid(index, field, message)


def _check(index: int, item: EventIn) -> None:
    """What msgspec's types cannot say."""
    try:
        parse_rfc3339(item.occurred_at)
    except ValueError as exc:
        raise Invalid(index, "occurred_at", str(exc)) from None
    if item.email is None and item.recipient_id is None:
        raise Invalid(index, "email", "one of email or recipient_id is required")
    if item.email is not None and "@" not in item.email:
        raise Invalid(index, "email", "not an email address")
    category = item.details.get("category")
    if item.type == "bounce" and category is not None and category not in ("soft", "hard"):
        raise Invalid(index, "details.category", "bounce category must be 'soft' or 'hard'")


def parse_batch(body: bytes, account_id: str) -> list[events.Event]:
    """Validate a whole POST body; raises Invalid (422) at the first bad event, or DecodeError (400)."""
    jsondepth.check(body)  # details can hold anything: nothing stored may be too deep to read back
    try:
        items = _decode_batch(body)
    except msgspec.ValidationError as exc:
        raise _from_msgspec(exc) from None
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


@authenticated
@accepts()
async def ingest(request: Request, state: State, account: Account) -> Response:
    try:
        body = await read_body(request, MAX_BODY)
    except BodyTooLarge:
        return too_large(MAX_BODY)
    try:
        # A big batch takes a while to decode and check: not on the event loop, which serves redirects.
        batch = (parse_batch(body, account.id) if len(body) <= INLINE_PARSE_BYTES
                 else await run_in_threadpool(parse_batch, body, account.id))
    except Invalid as exc:
        return exc.response()
    except jsondepth.TooDeep as exc:
        return validation_error(exc)
    except msgspec.DecodeError as exc:
        return error(400, "malformed_json", str(exc), path="$")
    try:
        stored, queued = await state.db.write(functools.partial(outbox.store_events, batch=batch),
                                              timeout=STORE_DEADLINE_S)
    except UNAVAILABLE as exc:
        # It may still commit: retrying is safe for events that carry their own id (duplicates are dropped).
        return error(503, "unavailable", f"the event store did not confirm the batch ({exc}); "
                                         "retry it — events with an id are never stored twice")
    if queued:
        state.deliverer.wake()
    accepted = sum(stored)
    return JSON({"accepted": accepted, "duplicates": len(stored) - accepted}, status_code=202)


def _query_filters(request: Request) -> tuple[list[str], list[Any], int]:
    params = request.query_params
    where: list[str] = []
    values: list[Any] = []
    for name in ("type", "mailing_id", "email"):
        if params.get(name):
            if name == "type" and params[name] not in events.EVENT_TYPES:
                raise Invalid(None, "type", f"unknown event type; one of {', '.join(events.EVENT_TYPES)}")
            # Addresses match whatever their case; the events_by_email index compares the same way.
            where.append(f"{name} = ? COLLATE NOCASE" if name == "email" else f"{name} = ?")
            values.append(params[name])
    for name, op in (("since", ">="), ("until", "<")):
        if params.get(name):
            try:
                values.append(to_rfc3339(parse_rfc3339(params[name])))
            except ValueError as exc:
                raise Invalid(None, name, str(exc)) from None
            where.append(f"occurred_at {op} ?")
    if params.get("cursor"):
        cursor = int_param(request, "cursor", 0, 0, 2**63 - 1)
        if cursor is None:
            raise Invalid(None, "cursor", "not a cursor returned by this API")
        where.append("seq > ?")
        values.append(cursor)
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_EVENTS)
    if limit is None:
        raise Invalid(None, "limit", f"limit must be an integer from 1 to {MAX_EVENTS}")
    return where, values, limit


@authenticated
@accepts("type", "mailing_id", "email", "since", "until", "cursor", "limit")
async def list_events(request: Request, state: State, account: Account) -> Response:
    try:
        where, values, limit = _query_filters(request)
    except Invalid as exc:
        return error(422, "invalid_parameter", exc.reason, field=exc.field)
    sql = (
        f"SELECT {events.PUBLIC_COLUMNS} FROM events WHERE {' AND '.join(['account_id = ?', *where])}"
        " ORDER BY seq LIMIT ?"
    )

    def read() -> list[Row]:
        return state.db.reader().execute(sql, (account.id, *values, limit + 1)).fetchall()

    rows = await run_in_threadpool(read)  # may scan: keep it off the event loop
    page = rows[:limit]
    next_cursor = str(page[-1]["seq"]) if len(rows) > limit else None
    return JSON({"events": [events.public(events.from_row(row), row["seq"]) for row in page],
                 "next_cursor": next_cursor})


routes = [route("/v1/events", GET=list_events, POST=ingest)]
