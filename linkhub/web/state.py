"""What every handler of one running server shares."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import httpx

from linkhub.core.metrics import Metrics
from linkhub.delivery.loop import Deliverer
from linkhub.settings import Settings
from linkhub.store import Store

FILTER_THREADS = 2


@dataclass
class State:
    settings: Settings
    db: Store
    metrics: Metrics = field(default_factory=Metrics)
    # The one outbound connection pool (deliveries and verify calls); open while the app runs.
    http: httpx.AsyncClient | None = None
    deliverer: Deliverer = field(init=False)
    # Worker threads for link filters, apart from the default pool other handlers use
    # (outreach_api); matching releases the GIL, so this many run on as many cores.
    filter_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(FILTER_THREADS))
    filter_turns: dict[str, anyio.Lock] = field(default_factory=dict)  # account id → one filter call at a time

    def __post_init__(self) -> None:
        self.deliverer = Deliverer(self.db, self.metrics, allow_private=self.settings.allow_private_targets)
