"""A click on a short link, as the event the redirect stores: who clicked (the link's recipient),
what (the original URL), what the request says of the device that clicked, and the classifier's
verdict on it (a person, or a security scanner or bot acting without one)."""

from __future__ import annotations

from typing import Any

from linkhub.core.classify import signals
from linkhub.core.classify.hits import Hit
from linkhub.core.classify.networks import Networks
from linkhub.core.events import Event
from linkhub.core.useragent import describe
from linkhub.store.links import Link
from linkhub.util import ids
from linkhub.util.times import format_ms, rfc3339_to_ms

# The request headers the classifier reads, besides the user agent (docs/classification.md).
CLASSIFIED_HEADERS = frozenset((b"accept-language", b"sec-purpose", b"purpose", b"x-moz"))


def click(code: str, link: Link, *, at_ms: int, ip: str | None, user_agent: str | None, referer: str | None,
          headers: dict[str, str], networks: Networks | None) -> Event:
    """The `click` event of a GET of `/r/<code>` at `at_ms` (ms since the epoch, UTC).

    `headers` holds those of CLASSIFIED_HEADERS the request carried (lower-case names).
    """
    client = describe(user_agent or "")
    hit = Hit(t=at_ms - rfc3339_to_ms(link.created_at), ip=ip,
              headers={**headers, "user-agent": user_agent} if user_agent is not None else headers,
              recipient=link.prospect_id, mailing=link.mailing_id, url=link.original_url)
    verdict = signals.classify(hit, networks=networks)
    now = format_ms(at_ms)
    details: dict[str, Any] = {
        "ip": ip,
        "user_agent": user_agent,
        "device": client.device,
        "os": client.os,
        "browser": client.browser,
        "bot": verdict.machine,
        "referer": referer,
        "verdict": verdict.verdict,
        "score": verdict.score,
        "reasons": [reason.document() for reason in verdict.reasons],
        "classifier": verdict.version,
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
