"""Look-ups of /r/<code> links, coalesced: one statement per turn of the event loop.

The sqlite3 module releases the GIL around every step of a statement. On the redirect
path each release lets the writer thread take the GIL, and the event loop then waits to
get it back: under load, a point read that takes 8 µs on its own cost the loop 40–90 µs
per request (measured with bench/run --profile). So the codes asked for during one turn
of the loop are read together, by one statement that answers all of them as a single
JSON value: one step and one release of the GIL, however many requests share it. On PostgreSQL
the same statement in its dialect answers the same JSON: one round trip for all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import msgspec

from linkhub.store import Store
from linkhub.store.dialect import Sql


class Link(msgspec.Struct, array_like=True, frozen=True):
    """What a redirect needs of a link (a row of `links`)."""

    code: str
    account_id: str
    target_url: str
    original_url: str
    mailing_id: str
    prospect_id: str
    prospect_email: str | None
    created_at: str  # when the link was minted: Outreach asks just before it sends the email
    links_in_email: int  # how many links were minted for this recipient of this mailing
    minted_ms: int  # created_at in ms since the epoch (SQLite reads it, which costs the event loop nothing)
    # Its recipient was erased: it still redirects, but records no click (read with the row: no extra query).
    erased: bool = False
    # From this moment (ms since the epoch; None: never) the link has expired: /r/ sends the visitor to
    # expired_url, or answers the "expired" page. Read with the row, as `erased` is.
    expires_ms: int | None = None
    expired_url: str | None = None
    message_id: str | None = None  # the sender's message, for links minted through POST /v1/links


def ms_since_epoch(column: str) -> str:
    """PostgreSQL: a column of linkhub's RFC 3339 UTC text as whole milliseconds since the epoch (NULL: NULL)."""
    return f"CAST(round(extract(epoch FROM CAST({column} AS timestamptz)) * 1000) AS bigint)"


_QUERY = (
    "SELECT json_group_array(json_array(l.code, l.account_id, l.target_url, l.original_url, l.mailing_id,"
    " l.prospect_id, l.prospect_email, l.created_at,"
    # links_by_recipient answers the count from the index entries next to this link's own.
    " (SELECT count(*) FROM links AS m WHERE m.account_id = l.account_id AND m.mailing_id = l.mailing_id"
    " AND m.prospect_id = l.prospect_id),"
    " CAST(round((julianday(l.created_at) - 2440587.5) * 86400000.0) AS INTEGER),"
    " json(CASE WHEN l.erased_at IS NULL THEN 'false' ELSE 'true' END),"
    " CAST(round((julianday(l.expires_at) - 2440587.5) * 86400000.0) AS INTEGER), l.expired_url, l.message_id))"
    " FROM json_each(?) AS j JOIN links AS l ON l.code = j.value"
)
# The same on PostgreSQL: the codes of the JSON array as a set, the times' milliseconds from the text.
_PG_QUERY = (
    "SELECT coalesce(json_agg(json_build_array(l.code, l.account_id, l.target_url, l.original_url, l.mailing_id,"
    " l.prospect_id, l.prospect_email, l.created_at,"
    " (SELECT count(*) FROM links AS m WHERE m.account_id = l.account_id AND m.mailing_id = l.mailing_id"
    " AND m.prospect_id = l.prospect_id),"
    f" {ms_since_epoch('l.created_at')}, l.erased_at IS NOT NULL, {ms_since_epoch('l.expires_at')},"
    " l.expired_url, l.message_id)), '[]')"
    " FROM links AS l WHERE l.code IN (SELECT jsonb_array_elements_text(CAST(? AS jsonb)))"
)
_decode = msgspec.json.Decoder(list[Link]).decode
_encode = msgspec.json.encode


class Coded(Protocol):
    @property
    def code(self) -> str: ...


T = TypeVar("T", bound=Coded)


class CodeLookup(Generic[T]):
    """Rows by code, coalesced: the codes asked for in one turn of the event loop are read by one run of
    `query` (one `?`: a JSON array of codes; one row and column: a JSON array of rows for `decode`), in
    the dialect of the reader's connection."""

    def __init__(self, db: Store, query: Sql, decode: Callable[[str], list[T]]) -> None:
        self._db = db
        self._query = query
        self._decode = decode
        self._waiting: dict[str, list[asyncio.Future[T | None]]] = {}

    async def get(self, code: str) -> T | None:
        """The row with this code, or None. Raises StoreError if the database cannot be read."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T | None] = loop.create_future()
        if not self._waiting:
            # call_soon runs after the callbacks already due in this turn of the loop, so the
            # requests parsed in the meantime join this read.
            loop.call_soon(self._read)
        self._waiting.setdefault(code, []).append(future)
        return await future

    def _read(self) -> None:
        waiting, self._waiting = self._waiting, {}
        try:
            conn = self._db.reader()
            answer = conn.execute(self._query.on(conn), (_encode(list(waiting)).decode(),)).fetchone()[0]
            found = {row.code: row for row in self._decode(answer)}
        except Exception as exc:  # every request of this turn hears it (the caller decides what to answer)
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        for code, futures in waiting.items():
            row = found.get(code)
            for future in futures:
                if not future.done():  # done = cancelled: that client went away
                    future.set_result(row)


class LinkLookup(CodeLookup[Link]):
    """The redirect's look-up of /r/<code> links."""

    def __init__(self, db: Store) -> None:
        super().__init__(db, Sql(sqlite=_QUERY, postgresql=_PG_QUERY), _decode)
