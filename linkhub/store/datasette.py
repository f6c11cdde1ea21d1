"""The Datasette metadata that lets people browse a linkhub database without seeing its secrets.

`datasette linkhub.db` shows every table as it is, `accounts.outreach_secret` and webhook credentials
included, and runs any SQL typed into it. This metadata (printed by `linkhub datasette-config`) denies
the tables that hold credentials, turns arbitrary SQL off (a query could read a denied table), and offers
instead what people want to read: the tables and views with column descriptions and facets, and canned
queries for the reports, accounts and webhooks without their secrets. The format is Datasette 0.65's
metadata (docs.datasette.io/en/0.65/metadata.html and authentication.html).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Tables whose rows hold credentials: Outreach signing secrets and API key hashes (accounts), webhook
# signing secrets and receiver credentials (webhooks), and the salt of erasure receipts (with it, a
# guessed address can be tested against a receipt), and inbound endpoints (token hashes and Basic
# password hashes). Datasette denies them whole.
DENIED = ("accounts", "webhooks", "erasure_salt", "inbound_endpoints")

_PEOPLE = "verdict IN ('human', 'unknown')"
_MACHINES = "verdict IN ('scanner', 'bot')"

_TABLES: dict[str, dict[str, Any]] = {
    "events": {
        "description": "Every email event, from linkhub's own redirects and from senders (POST /v1/events).",
        "sort_desc": "seq",
        "facets": ["type", "source"],
        "columns": {
            "seq": "order of arrival in linkhub: a stable cursor",
            "id": "the sender's event id, or one linkhub assigned (lh_…)",
            "type": "sent, delivered, undelivered, open, click, bounce, unsubscribe, spamcomplaint, "
                    "subscription_changed",
            "occurred_at": "when it happened (UTC)",
            "received_at": "when linkhub stored it (UTC)",
            "source": "redirect (linkhub's short links), pixel (its open pixels) or api (POST /v1/events)",
            "recipient_id": "the recipient's id (Outreach's prospect id for clicks on linkhub's links)",
            "url": "click: the original URL the recipient meant to visit",
            "details": "JSON object of type-specific fields (a click's verdict and reasons among them)",
        },
    },
    "clicks": {
        "description": "Clicks with their details as columns. People's clicks are those whose verdict is "
                       "human or unknown; scanner and bot are machines (security gateways, crawlers).",
        "sort_desc": "seq",
        "facets": ["verdict", "method", "device", "mailing_id"],
        "columns": {
            "verdict": "human, unknown, scanner or bot: count human + unknown as people",
            "score": "the classifier's score, -100 (machine) to 100 (person)",
            "reasons": "JSON list of {code, weight, evidence}: why the verdict is what it is",
            "method": "GET, or HEAD (always a machine's)",
            "bot": "1 when the verdict is scanner or bot",
            "classifier": "the classifier version that gave the verdict",
        },
    },
    "opens": {
        "description": "Opens with their details as columns. kind: person (the reader's own client), proxied (a "
                       "mail provider's image proxy: a real open), apple_mpp (Apple Mail Privacy Protection's "
                       "prefetch: nobody's open) or machine (a scanner or bot).",
        "sort_desc": "seq",
        "facets": ["kind", "verdict", "first_open", "mailing_id"],
        "columns": {
            "first_open": "1 for the message's first recorded open, 0 for a repeat",
            "proxy": "the image proxy that fetched it (then device, os and browser are the proxy's: empty)",
            "apple_mpp": "1 when Apple Mail Privacy Protection prefetched it",
            "verdict": "human, unknown, scanner or bot",
        },
    },
    "pixels": {
        "description": "Open pixels minted: one per message; /o/<code> answers a 1×1 GIF and records the open.",
        "facets": ["mailing_id"],
    },
    "links": {
        "description": "Short links minted: one per recipient and URL of a mailing; /r/<code> redirects.",
        "facets": ["mailing_id"],
        "columns": {
            "code": "the <code> of /r/<code>",
            "target_url": "where /r/<code> redirects",
            "original_url": "the link as written in the email",
        },
    },
    "verdict_changes": {
        "description": "Every change of a click's verdict after it was first recorded.",
        "sort_desc": "id",
        "facets": ["cause", "old_verdict", "new_verdict"],
    },
    "outbox": {
        "description": "One row per event and webhook still to deliver, or delivered.",
        "sort_desc": "id",
        "facets": ["state", "webhook_id"],
    },
    "deliveries": {
        "description": "Every POST linkhub made to a webhook receiver.",
        "sort_desc": "id",
        "facets": ["webhook_id", "status_code"],
    },
    "mailing_stats": {
        "description": "One row per account and mailing: recipients, deliveries, bounces, opens and clicks "
                       "(people's apart from Apple MPP's and machines'), unsubscribes, complaints, open and "
                       "click-through rates.",
        "sort_desc": "first_at",
        "facets": ["account_id"],
    },
    "link_stats": {
        "description": "One row per mailing and link: clicks, people's clicks apart from machines'.",
        "facets": ["mailing_id"],
    },
    "recipient_activity": {
        "description": "One row per recipient: first and last open and click, counts, the last event.",
    },
    "schema_migrations": {"hidden": True},
}

_QUERIES: dict[str, dict[str, Any]] = {
    "people_clicks_by_mailing": {
        "title": "People's clicks per mailing and day",
        "description": "human + unknown count as people; scanner and bot clicks alongside.",
        "sql": "SELECT account_id, mailing_id, date(occurred_at) AS day,"
               f" count(*) FILTER (WHERE {_PEOPLE}) AS clicks,"
               f" count(DISTINCT prospect_id) FILTER (WHERE {_PEOPLE}) AS people,"
               f" count(*) FILTER (WHERE {_MACHINES}) AS machine_clicks"
               " FROM clicks GROUP BY account_id, mailing_id, day ORDER BY day DESC",
    },
    "top_links": {
        "title": "Most clicked links of a mailing, by people",
        "sql": "SELECT original_url,"
               f" count(*) FILTER (WHERE {_PEOPLE}) AS clicks,"
               f" count(DISTINCT prospect_id) FILTER (WHERE {_PEOPLE}) AS people,"
               f" count(*) FILTER (WHERE {_MACHINES}) AS machine_clicks"
               " FROM clicks WHERE mailing_id = :mailing GROUP BY original_url ORDER BY clicks DESC LIMIT 50",
    },
    "verdict_changes_recent": {
        "title": "Verdicts that changed, newest first",
        "sql": "SELECT v.changed_at, v.cause, v.old_verdict, v.new_verdict, c.prospect_email, c.original_url, c.ip"
               " FROM verdict_changes v JOIN clicks c ON c.seq = v.event_seq ORDER BY v.id DESC LIMIT 200",
    },
    "account_list": {
        "title": "Accounts (without their secrets)",
        "sql": "SELECT id, name, public_url, created_at, updated_at FROM accounts ORDER BY created_at",
    },
    "webhook_list": {
        "title": "Webhooks (without their secrets or credentials)",
        "sql": "SELECT id, account_id, url, types, format, json_extract(auth, '$.type') AS auth_type, status,"
               " status_reason, verdicts, wait_for_verdict, ordered, batch_size, description, created_at"
               " FROM webhooks ORDER BY created_at",
    },
    "webhook_backlog": {
        "title": "Webhooks that are falling behind",
        "sql": "SELECT webhook_id, count(*) AS waiting, min(queued_at) AS oldest"
               " FROM outbox WHERE state IN ('pending', 'sending') GROUP BY webhook_id",
    },
}


def metadata(database: Path) -> dict[str, Any]:
    """The metadata for `datasette DATABASE`: Datasette names a database after its file's stem."""
    tables: dict[str, dict[str, Any]] = {name: {"allow": False} for name in DENIED}
    tables.update(_TABLES)
    return {
        "title": "linkhub",
        "description": "linkhub's database, read-only, with the tables that hold credentials left out.",
        "databases": {
            database.stem: {
                # Arbitrary SQL could read a denied table: only the canned queries run.
                "allow_sql": False,
                "tables": tables,
                "queries": _QUERIES,
            },
        },
    }
