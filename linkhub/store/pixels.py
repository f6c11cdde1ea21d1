"""Look-ups of /o/<code> open pixels, coalesced like the redirect's (store/links.py): the codes asked
for during one turn of the event loop are read by one statement that answers them all as one JSON
value, so a mailing's opens arriving together cost the event loop one step of SQLite, not one each.
"""

from __future__ import annotations

import msgspec

from linkhub.store import Store
from linkhub.store.dialect import Sql
from linkhub.store.links import CodeLookup, ms_since_epoch


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
_PG_QUERY = (
    "SELECT coalesce(json_agg(json_build_array(p.code, p.account_id, p.mailing_id, p.message_id, p.recipient_id,"
    f" p.email, p.created_at, {ms_since_epoch('p.created_at')}, p.erased_at IS NOT NULL)), '[]')"
    " FROM pixels AS p WHERE p.code IN (SELECT jsonb_array_elements_text(CAST(? AS jsonb)))"
)
_decode = msgspec.json.Decoder(list[Pixel]).decode


class PixelLookup(CodeLookup[Pixel]):
    """The open pixel's look-up of /o/<code> pixels."""

    def __init__(self, db: Store) -> None:
        super().__init__(db, Sql(sqlite=_QUERY, postgresql=_PG_QUERY), _decode)
