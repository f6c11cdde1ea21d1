"""What every handler of one running server shares."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from linkhub.core.classify.networks import Networks
from linkhub.core.clicks import Clicks
from linkhub.core.metrics import Metrics
from linkhub.core.opens import Opens
from linkhub.delivery.loop import Deliverer
from linkhub.services.outreach import FilterThreads
from linkhub.settings import Settings
from linkhub.store import Store


@dataclass
class State:
    settings: Settings
    db: Store
    metrics: Metrics = field(default_factory=Metrics)
    # The one outbound connection pool (deliveries and verify calls); open while the app runs.
    http: httpx.AsyncClient | None = None
    deliverer: Deliverer = field(init=False)
    filters: FilterThreads = field(default_factory=FilterThreads)
    # The scanner and crawler networks clicks are checked against: shipped, plus --scanner-networks.
    networks: Networks = field(init=False)
    # The classifier's memory of recent hits and of when recent emails were delivered.
    clicks: Clicks = field(init=False)
    # Open pixels' fetches, judged in the same window as clicks.
    opens: Opens = field(init=False)

    def __post_init__(self) -> None:
        # A bad operator file raises ValueError naming the file and line (serve reports it, one line).
        self.networks = Networks.load(self.settings.scanner_networks)
        self.clicks = Clicks(self.networks, settle_s=self.settings.classify_settle_s,
                             anonymize_ip=self.settings.anonymize_ip,
                             keep_user_agent=not self.settings.no_user_agent)
        self.opens = Opens(self.clicks, settle_s=self.settings.classify_settle_s)
        self.deliverer = Deliverer(self.db, self.metrics, allow_private=self.settings.allow_private_targets)
