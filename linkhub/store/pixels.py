"""Look-ups of /o/<code> open pixels, coalesced like the redirect's (store/links.py): the codes asked
for during one turn of the event loop are read by one statement that answers them all as one JSON
value, so a mailing's opens arriving together cost the event loop one step of SQLite, not one each.
"""

from __future__ import annotations

import asyncio

import msgspec

from linkhub.store import Store


class Pixel(msgspec.Struct, array_like=True, frozen=True):
    """What the open pixel needs of a row of `pixels`."""

    code: str
    account_id: str
    mailing_id: str
    message_id: str
    recipient_id: str | None
    email: str | None
    created_at: str  # when the pixel was minted: just before its email was sent
    minted_ms: int  # created_at in ms since the epoch (SQLite computes it, which costs the event loop nothing)
    # Its recipient was erased: it still answers the GIF, but records no open.
    erased: bool = False


_QUERY = (
    "SELECT json_group_array(json_array(p.code, p.account_id, p.mailing_id, p.message_id, p.recipient_id,"
    " p.email, p.created_at, CAST(round((julianday(p.created_at) - 2440587.5) * 86400000.0) AS INTEGER),"
    " json(CASE WHEN p.erased_at IS NULL THEN 'false' ELSE 'true' END)))"
    " FROM json_each(?) AS j JOIN pixels AS p ON p.code = j.value"
)
_decode = msgspec.json.Decoder(list[Pixel]).decode
_encode = msgspec.json.encode


class PixelLookup:
    def __init__(self, db: Store) -> None:
        self._db = db
        self._waiting: dict[str, list[asyncio.Future[Pixel | None]]] = {}

    async def get(self, code: str) -> Pixel | None:
        """The pixel with this code, or None. Raises StoreError if the database cannot be read."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Pixel | None] = loop.create_future()
        if not self._waiting:
            # After the callbacks already due in this turn: the requests parsed meanwhile join this read.
            loop.call_soon(self._read)
        self._waiting.setdefault(code, []).append(future)
        return await future

    def _read(self) -> None:
        waiting, self._waiting = self._waiting, {}
        try:
            answer = self._db.reader().execute(_QUERY, (_encode(list(waiting)).decode(),)).fetchone()[0]
            found = {pixel.code: pixel for pixel in _decode(answer)}
        except Exception as exc:  # every request of this turn hears it (the pixel still answers its GIF)
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        for code, futures in waiting.items():
            pixel = found.get(code)
            for future in futures:
                if not future.done():  # done = cancelled: that client went away
                    future.set_result(pixel)
