"""Process metrics, exposed at /metrics in the Prometheus text format (each one is listed in docs/operations.md).

Counters and histograms are prometheus_client's: thread-safe (the writer thread observes
its commits) and cheap enough for the redirect path (~0.3 µs an increment, ~0.7 µs an
observation). Values that live elsewhere (the writer's counts, each webhook's queue) are
read when /metrics is scraped, by `ScrapeTime`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from linkhub import __version__
from linkhub.core import outbox
from linkhub.core.events import VERDICTS
from linkhub.store import Store

# Without this every counter and histogram also has a `…_created` series (its creation time).
# prometheus_client leaves this one function unannotated (it takes nothing, returns None); strict
# mode's warn_unused_ignores flags this ignore once an upstream release annotates it.
disable_created_metrics()  # type: ignore[no-untyped-call]

COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "linkhub_clicks_recorded_total": ("Clicks committed before their redirect was answered.", ()),
    "linkhub_clicks_unconfirmed_total": (
        "Redirects answered before their click was committed (store too slow or failing).", ()),
    "linkhub_redirects_total": ("Answered GET /r/<code> requests for known codes.", ()),
    "linkhub_redirects_not_found_total": ("GET/HEAD /r/<code> requests for unknown or malformed codes.", ()),
    "linkhub_redirects_expired_total": (
        "GET/HEAD /r/<code> requests for expired links (sent to the expired URL or shown the expired page).", ()),
    "linkhub_opens_recorded_total": ("Opens (GET /o/<code>) committed before their GIF was answered.", ()),
    "linkhub_opens_unconfirmed_total": (
        "Pixels answered before their open was committed (store too slow or failing): queued or lost.", ()),
    "linkhub_pixels_unknown_total": ("GET /o/<code> requests for unknown or malformed codes (GIF answered).", ()),
    "linkhub_outreach_requests_total": ("Link-replacement calls, by HTTP status answered.", ("status",)),
    "linkhub_links_minted_total": ("Short links created (by Outreach's link replacement and POST /v1/links).", ()),
    "linkhub_filter_timeouts_total": ("Links left out because the account's filter timed out.", ()),
    "linkhub_webhook_events_delivered_total": ("Events delivered to webhooks (receiver answered 2xx).", ()),
    "linkhub_webhook_failures_total": ("Webhook POSTs that failed (non-2xx, timeout, connection error).", ()),
    "linkhub_webhook_deliveries_total": ("Attempts to deliver a batch to a webhook, by outcome.", ("outcome",)),
    "linkhub_webhook_clicks_filtered_total": (
        "Queued clicks taken out of a webhook's queue unsent: their verdict by then is not one the webhook takes.",
        ("verdict",)),
    "linkhub_wakeups_received_total": (
        "Wake-ups from other processes on the same PostgreSQL database (NOTIFY after they queued deliveries) that "
        "made this one look for work at once rather than at its next poll.", ()),
    "linkhub_inbound_items_total": (
        "Items posted to inbound endpoints (/in/<token>) and committed, by provider and outcome.",
        ("provider", "outcome")),
}
# What became of an inbound item: stored as a new event, already stored, or refused (with a reason).
INBOUND_OUTCOMES = ("accepted", "duplicate", "rejected")
INBOUND_PROVIDERS = ("optimizely", "esputnik", "arpoone")
# sender.Outcome.kind; each is exposed from the start (at 0), so a rate() sees its first failure.
DELIVERY_OUTCOMES = ("delivered", "http_error", "timeout", "connection_error", "refused", "not_sent")

_REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
HISTOGRAMS: dict[str, tuple[str, tuple[float, ...]]] = {
    "linkhub_redirect_duration_seconds": (
        "GET/HEAD /r/<code>, from the request to the answer handed to the server (the click's commit included).",
        _REQUEST_BUCKETS),
    "linkhub_link_replacement_duration_seconds": (
        "POST /outreach/{account}/links, from the request to the answer (every status).", _REQUEST_BUCKETS),
    "linkhub_webhook_delivery_duration_seconds": (
        "One POST of a batch to a webhook: resolving, connecting, sending, the answer (or the failure).",
        (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)),
    "linkhub_write_commit_duration_seconds": (
        "One transaction of the database writer, from BEGIN to the end of COMMIT (its work included).",
        (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)),
}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._counters = {name: Counter(name, text, labels, registry=self.registry)
                          for name, (text, labels) in COUNTERS.items()}
        for outcome in DELIVERY_OUTCOMES:
            self._counters["linkhub_webhook_deliveries_total"].labels(outcome=outcome)
        for verdict in VERDICTS:
            self._counters["linkhub_webhook_clicks_filtered_total"].labels(verdict=verdict)
        for provider in INBOUND_PROVIDERS:
            for outcome in INBOUND_OUTCOMES:
                self._counters["linkhub_inbound_items_total"].labels(provider=provider, outcome=outcome)
        self._histograms = {name: Histogram(name, text, buckets=buckets, registry=self.registry)
                            for name, (text, buckets) in HISTOGRAMS.items()}
        Info("linkhub_build", "The running linkhub's version (the value is always 1).",
             registry=self.registry).info({"version": __version__})

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        counter = self._counters[name]
        (counter.labels(**labels) if labels else counter).inc(amount)

    def observe(self, name: str, seconds: float) -> None:
        self._histograms[name].observe(seconds)

    def observer(self, name: str) -> Callable[[float], None]:
        """`observe` for one histogram, looked up once (for the redirect path and the writer thread)."""
        return self._histograms[name].observe

    def add(self, collector: Collector) -> None:
        self.registry.register(collector)

    def render(self) -> bytes:
        """The text exposition; reads the database (ScrapeTime), so call it off the event loop."""
        return generate_latest(self.registry)


class ScrapeTime(Collector):
    """What is read when /metrics is scraped: the writer's counts, and each webhook's queue.

    `in_flight` (events per webhook in batches being sent now) is the delivery loop's own
    count: telling 'sending' rows from 'pending' ones in the database would read a table row
    per queued event, while waiting and dead rows are counted from the partial indexes alone.
    """

    def __init__(self, db: Store, in_flight: Mapping[str, int]) -> None:
        self.db = db
        self.in_flight = in_flight

    def collect(self) -> Iterator[Metric]:
        stats = self.db.stats
        yield CounterMetricFamily("linkhub_write_transactions_total", "Transactions committed by the database writer.",
                                  value=stats.transactions)
        yield CounterMetricFamily("linkhub_write_jobs_total",
                                  "Pieces of work committed by the writer (several share one transaction).",
                                  value=stats.jobs)
        yield CounterMetricFamily("linkhub_write_failed_commits_total", "Writer transactions that failed as a whole.",
                                  value=stats.failed_commits)
        yield GaugeMetricFamily("linkhub_write_largest_batch",
                                "Most pieces of work committed in one transaction so far.", value=stats.largest_batch)
        yield from self._queues()

    def _queues(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily("linkhub_outbox_pending", "Events waiting for delivery to the webhook.",
                                    labels=["webhook"])
        in_flight = GaugeMetricFamily("linkhub_outbox_in_flight",
                                      "Events in batches being sent to the webhook now.", labels=["webhook"])
        dead = GaugeMetricFamily("linkhub_outbox_dead", "Events that will not be delivered to the webhook "
                                 "unless replayed (expired or refused).", labels=["webhook"])
        age = GaugeMetricFamily("linkhub_outbox_oldest_pending_age_seconds",
                                "Seconds since the event at the head of the webhook's queue was queued "
                                "(what max_age_s is measured against); 0 when none waits.", labels=["webhook"])
        sending = dict(self.in_flight)  # one copy, taken at once: the event loop keeps changing it
        now = datetime.now(UTC)
        for queue in outbox.queue_sizes(self.db.reader()):
            labels = [queue.webhook_id]
            flying = min(sending.get(queue.webhook_id, 0), queue.waiting)
            pending.add_metric(labels, queue.waiting - flying)
            in_flight.add_metric(labels, flying)
            dead.add_metric(labels, queue.dead)
            head = queue.head_queued_at
            age.add_metric(labels, max(0.0, (now - datetime.fromisoformat(head)).total_seconds()) if head else 0.0)
        yield from (pending, in_flight, dead, age)
