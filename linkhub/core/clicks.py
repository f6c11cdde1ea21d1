"""A click on a short link, as the event the redirect stores: who clicked (the link's recipient),
what (the original URL), and what the request says of the device that clicked."""

from __future__ import annotations

from typing import Any

from linkhub.core.events import Event
from linkhub.core.useragent import describe
from linkhub.store.links import Link
from linkhub.util import ids
from linkhub.util.times import format_ms


def click(code: str, link: Link, *, at_ms: int, ip: str | None, user_agent: str | None,
          referer: str | None) -> Event:
    """The `click` event of a request for `/r/<code>`, at `at_ms` (ms since the epoch, UTC)."""
    client = describe(user_agent or "")
    now = format_ms(at_ms)
    details: dict[str, Any] = {
        "ip": ip,
        "user_agent": user_agent,
        "device": client.device,
        "os": client.os,
        "browser": client.browser,
        "bot": client.bot,
        "referer": referer,
    }
    if link.target_url != link.original_url:
        details["target"] = link.target_url
    return Event(
        id=ids.event_id(),
        account_id=link.account_id,
        type="click",
        occurred_at=now,
        received_at=now,
        source="redirect",
        email=link.prospect_email,
        recipient_id=link.prospect_id,
        mailing_id=link.mailing_id,
        url=link.original_url,
        code=code,
        details=details,
    )
