"""Process counters, exposed at /metrics in the Prometheus text format."""

from __future__ import annotations

from collections import Counter

HELP = {
    "linkhub_clicks_recorded_total": "Clicks committed before their redirect was answered.",
    "linkhub_clicks_unconfirmed_total": "Redirects answered before their click was committed (store too slow or failing).",
    "linkhub_redirects_total": "Answered GET /r/<code> requests for known codes.",
    "linkhub_redirects_not_found_total": "GET/HEAD /r/<code> requests for unknown or malformed codes.",
    "linkhub_outreach_requests_total": "Link-replacement calls, by HTTP status answered.",
    "linkhub_links_minted_total": "Short links created.",
    "linkhub_filter_timeouts_total": "Links left out because the account's filter timed out.",
    "linkhub_webhook_events_delivered_total": "Events delivered to webhooks (receiver answered 2xx).",
    "linkhub_webhook_failures_total": "Webhook POSTs that failed (non-2xx, timeout, connection error).",
    "linkhub_write_transactions_total": "Transactions committed by the database writer.",
    "linkhub_write_jobs_total": "Pieces of work committed by the writer (several share one transaction).",
    "linkhub_write_failed_commits_total": "Writer transactions that failed as a whole.",
    "linkhub_write_largest_batch": "Most pieces of work committed in one transaction so far.",
}


class Metrics:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        key = name
        if labels:
            key += "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        self.counts[key] += amount

    def render(self, extra: dict[str, float] | None = None) -> str:
        lines = []
        series = dict(self.counts)
        series.update(extra or {})
        for name in sorted({key.split("{", 1)[0] for key in series} | set(HELP)):
            if name in HELP:
                lines.append(f"# HELP {name} {HELP[name]}")
            lines.append(f"# TYPE {name} {'counter' if name.endswith('_total') else 'gauge'}")
            samples = {k: v for k, v in series.items() if k.split("{", 1)[0] == name}
            for key, value in sorted(samples.items()) or [(name, 0)]:
                lines.append(f"{key} {int(value) if float(value).is_integer() else value}")
        return "\n".join(lines) + "\n"
