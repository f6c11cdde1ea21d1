"""The verify batch: sample events, marked as test, POSTed to a webhook exactly as deliveries are.

Shared by `POST /v1/webhooks/{id}/verify`, verify-on-create/activate and `linkhub webhooks verify`,
so a receiver that passes verification has seen the real format, signature and auth.
Nothing here stores an event; the attempt itself is logged in `deliveries` with test=1.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from linkhub.core import formats, webhooks
from linkhub.delivery import sender
from linkhub.store import Connection
from linkhub.util.times import now_rfc3339


@dataclass(frozen=True)
class VerifyResult:
    message_id: str
    attempted_at: str
    events: int
    outcome: sender.Outcome

    @property
    def ok(self) -> bool:
        return self.outcome.delivered

    def public(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status_code": self.outcome.status_code,
            "latency_ms": self.outcome.duration_ms,
            "body": self.outcome.body_excerpt,  # at most the first 1 KiB (sender.EXCERPT_BYTES)
            "error": self.outcome.error,
        }

    def describe(self) -> str:
        """One line for an error message: the receiver's answer, quoted."""
        answer = self.outcome.error or f"receiver answered HTTP {self.outcome.status_code}"
        body = self.outcome.body_excerpt.strip()
        return f"{answer}: {body[:200]!r}" if body else answer

    def record(self, conn: Connection, webhook_id: str) -> None:
        webhooks.record_delivery(conn, webhook_id, self.message_id, self.attempted_at, self.events,
                                 self.outcome.status_code, self.outcome.duration_ms, self.outcome.error, test=True)


def body_for(webhook: webhooks.Webhook) -> tuple[bytes, int]:
    """The verify body (a JSON array of one test event per type the webhook receives) and its length."""
    samples = formats.samples(webhook.account_id, webhook.format, webhook.types)
    return formats.render_batch(webhook.format, [(event, 1) for event in samples], test=True), len(samples)


async def send(client: httpx.AsyncClient, webhook: webhooks.Webhook, *, allow_private: bool) -> VerifyResult:
    """POST the verify batch; never raises for the receiver's faults (they are in the result)."""
    body, count = body_for(webhook)
    message_id = "msg_test_" + secrets.token_hex(10)
    attempted_at = now_rfc3339()
    outcome = await sender.post_batch(client, webhook, body, message_id, allow_private=allow_private)
    return VerifyResult(message_id, attempted_at, count, outcome)
