"""An open of an email's pixel (`GET /o/<code>`), as the event the pixel stores: whose message (the
pixel's row), what the request says of the client that fetched the image, the classifier's verdict on
it, and whether it is the message's first open.

Opens are judged by the click classifier, in the same window of recent hits (`Clicks.window`): a
security scanner that fetches images at delivery is caught by the same networks and timing as its link
scans. Two kinds of fetcher are the opens' own (`signals.hit_reasons`): a mail provider's image proxy
(Gmail's, Yahoo's, Outlook's) fetching for a reader who opened the message — a real open, `proxied`,
whose device is the proxy's — and Apple Mail Privacy Protection prefetching every image ahead of any
reading — `apple_mpp`, nobody's open.

`store()` decides `details.first_open` on the writer thread, in the transaction that inserts the open:
two opens of one message arriving together cannot both be first.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, NamedTuple

import msgspec

from linkhub.core import outbox
from linkhub.core.classify.behaviour import Change
from linkhub.core.classify.hits import Hit
from linkhub.core.classify.signals import fetcher_of
from linkhub.core.classify.verdict import Verdict
from linkhub.core.clicks import ClickRef, Clicks, change_verdicts, hit_headers, since_origin, verdict_fields
from linkhub.core.events import Event
from linkhub.core.useragent import describe
from linkhub.store import Connection
from linkhub.store.dialect import Sql
from linkhub.store.pixels import Pixel
from linkhub.util.ipnet import network_address
from linkhub.util.times import format_ms

log = logging.getLogger("linkhub.opens")

SOURCE = "pixel"


class OpenRequest(NamedTuple):
    """A GET of `/o/<code>` as the pixel saw it. `at_ms`: ms since the epoch (UTC); `headers`: those of
    clicks.CLASSIFIED_HEADERS it carried (lower-case names)."""

    code: str
    pixel: Pixel
    event_id: str
    at_ms: int
    method: str
    ip: str | None
    user_agent: str | None
    referer: str | None
    headers: dict[str, str]


class OpenWrite(NamedTuple):
    """What one open writes: its event, and the verdicts it changed of earlier hits of the same email."""

    event: Event
    changes: list[Change[ClickRef]]


class Opens:
    """Turns fetches of /o/ into open events, judged in the clicks' window (one per server)."""

    def __init__(self, clicks: Clicks, *, settle_s: int) -> None:
        self.clicks = clicks
        # One function object for Database.add, which merges the queued items of the same one.
        self.store = functools.partial(store, settle_s=settle_s)

    def judge(self, request: OpenRequest) -> OpenWrite:
        """The open event of one fetch, with its verdict, and the verdicts it changed of earlier hits."""
        pixel, at_ms = request.pixel, request.at_ms
        reported = self.clicks.origins.of_email(pixel.account_id, pixel.mailing_id, pixel.recipient_id,
                                                pixel.email)
        origin, since = since_origin(pixel.minted_ms, reported, at_ms)
        hit = Hit(t=at_ms - origin, method=request.method, ip=request.ip,
                  headers=hit_headers(request.headers, request.user_agent),
                  recipient=recipient_key(pixel), mailing=pixel.mailing_id, event="open", email=pixel.email,
                  since=since)
        verdict, changes = self.clicks.verdict_of((pixel.account_id, request.event_id), hit, at_ms=at_ms,
                                                  what=f"the open of {request.code}")
        return OpenWrite(open_event(request, verdict, anonymize_ip=self.clicks.anonymize_ip,
                                    keep_user_agent=self.clicks.keep_user_agent), changes)


def recipient_key(pixel: Pixel) -> str:
    """Who the message is for, as the classifier's window groups hits by email: the sender's recipient id,
    else the address, else the message (one recipient per message)."""
    return pixel.recipient_id or (f"email:{pixel.email.lower()}" if pixel.email else f"message:{pixel.message_id}")


def open_event(request: OpenRequest, verdict: Verdict, *, anonymize_ip: bool = False,
               keep_user_agent: bool = True) -> Event:
    """The `open` event of one fetch, with its verdict (`first_open` is decided by `store`).

    A proxy's fetch (`proxy` names it, or `apple_mpp` is true) stores no device, OS or browser: they
    would be the proxy's, not the reader's. `anonymize_ip` and `keep_user_agent` as for clicks.
    """
    pixel = request.pixel
    now = format_ms(request.at_ms)
    ip = request.ip
    if anonymize_ip and ip is not None:
        ip = network_address(ip)
    fetcher = fetcher_of(verdict.reasons)
    proxy = fetcher.evidence.get("proxy") if fetcher is not None and fetcher.code == "proxied" else None
    apple_mpp = fetcher is not None and fetcher.code == "apple_mpp"
    client = describe(request.user_agent or "") if fetcher is None else None
    details: dict[str, Any] = {
        "method": request.method,
        "ip": ip,
        "user_agent": request.user_agent,
        "headers": request.headers,
        "device": client.device if client else None,
        "os": client.os if client else None,
        "browser": client.browser if client else None,
        "referer": request.referer,
        "proxy": proxy,
        "apple_mpp": apple_mpp,
        "first_open": False,
        **verdict_fields(verdict),
    }
    if not keep_user_agent:
        del details["user_agent"]
    return Event(
        id=request.event_id,
        account_id=pixel.account_id,
        type="open",
        occurred_at=now,
        received_at=now,
        source=SOURCE,
        email=pixel.email,
        recipient_id=pixel.recipient_id,
        mailing_id=pixel.mailing_id,
        message_id=pixel.message_id,
        code=request.code,
        details=details,
    )


# The pixels (of those given) that already have an open: events_by_code answers each code.
_OPENED = Sql(
    sqlite=("SELECT DISTINCT e.account_id, e.code FROM json_each(:codes) AS j"
            " JOIN events AS e ON e.code = j.value AND e.type = 'open'"),
    postgresql=("SELECT DISTINCT e.account_id, e.code FROM jsonb_array_elements_text(CAST(:codes AS jsonb)) AS j(value)"
                " JOIN events AS e ON e.code = j.value AND e.type = 'open'"),
)


def store(conn: Connection, writes: list[OpenWrite], *, settle_s: int = outbox.DEFAULT_SETTLE_S) -> list[int]:
    """Store opens and the verdict changes they made, in the caller's transaction (`Database.add`); each
    hears how many deliveries its transaction queued.

    `details.first_open` is true for the first open of its pixel: none stored before, none earlier in
    this batch. Decided here, on the writer, so concurrent opens see each other; computed afresh on every
    call, since the writer runs a batch again when a neighbour fails.
    """
    codes = sorted({write.event.code for write in writes if write.event.code is not None})
    opened = {(row[0], row[1])
              for row in conn.execute(_OPENED.on(conn), {"codes": msgspec.json.encode(codes).decode()})}
    for write in writes:
        key = (write.event.account_id, write.event.code or "")
        write.event.details["first_open"] = key not in opened
        opened.add(key)
    queued = outbox.store_clicks(conn, [write.event for write in writes], settle_s=settle_s)
    changes = [change for write in writes for change in write.changes]
    if changes:
        change_verdicts(conn, [(*change.ref, change.new) for change in changes], cause="settle")
    return queued
