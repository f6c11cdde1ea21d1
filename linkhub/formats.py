"""Webhook payload formats: linkhub's own, and those of Optimizely Campaign, eSputnik and Arpoone.

(Stub: the renderers are being written; the supported-type table is final.)
"""

from __future__ import annotations

from typing import Any

from .events import EVENT_TYPES, Event

FORMATS = ("linkhub", "optimizely", "esputnik", "arpoone")

# Which canonical event types each format can express; others are never queued for it.
SUPPORTED_TYPES: dict[str, frozenset[str]] = {
    "linkhub": frozenset(EVENT_TYPES),
    "optimizely": frozenset({"sent", "open", "click", "bounce", "unsubscribe", "spamcomplaint"}),
    "esputnik": frozenset({"delivered", "undelivered", "bounce", "open", "click", "unsubscribe",
                           "spamcomplaint", "subscription_changed"}),
    "arpoone": frozenset({"bounce", "click", "open", "spamcomplaint", "unsubscribe"}),
}


def render(fmt: str, event: Event, attempt: int, *, test: bool = False) -> dict[str, Any]:
    raise NotImplementedError


def render_batch(fmt: str, items: list[tuple[Event, int]], *, test: bool = False) -> bytes:
    raise NotImplementedError
