"""Every click /r/ records carries the classifier's per-hit verdict, in `details` and in the clicks view.

Through the real app (in-process), behind a trusted proxy that passes the client's address in
X-Forwarded-For, as a deployment behind a load balancer does.
"""

from __future__ import annotations

import json

import pytest

from linkhub.core.classify.verdict import CLASSIFIER_VERSION
from linkhub.settings import parse_networks

from conftest import create_account, outreach_body, post_links, query

CURRENT_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/154.0.0.0 Safari/537.36")
# Defender for Office 365's scans, as reported: an old Chrome with a full four-part build number.
DEFENDER_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/97.0.4692.99 Safari/537.36")
PERSON = {"user-agent": CURRENT_CHROME, "accept-language": "en-GB,en;q=0.9"}


@pytest.fixture
def proxied(make_app, db_path):
    return make_app(trusted_proxies=parse_networks("127.0.0.1/32"))


def click(app, account, headers: dict[str, str], *, ip: str) -> dict:
    """Mint one link for a fresh recipient, GET it once from `ip`; the click's row of the clicks view."""
    target = "https://example.com/pricing"
    with app.client() as client:
        answer = post_links(client, account, outreach_body([target], prospect=ip))
        path = answer.json()["data"][target][len(app.url):]
        assert client.get(path, headers={**headers, "x-forwarded-for": ip}).status_code == 302
    rows = query(app.db_path, "SELECT * FROM clicks WHERE account_id = ? AND prospect_id = ?", (account.id, ip))
    assert len(rows) == 1
    return dict(rows[0])


def codes(row: dict) -> list[str]:
    return [reason["code"] for reason in json.loads(row["reasons"])]


def test_a_person_in_a_current_browser_is_not_a_machine(proxied, db_path):
    account = create_account(db_path)
    row = click(proxied, account, PERSON, ip="203.0.113.7")
    assert row["verdict"] in ("human", "unknown")
    assert row["bot"] == 0
    assert "current_browser" in codes(row)
    assert row["classifier"] == CLASSIFIER_VERSION


def test_a_security_gateway_s_own_user_agent_is_a_scanner(proxied, db_path):
    account = create_account(db_path)
    row = click(proxied, account, {"user-agent": "Barracuda Sentinel (EE)"}, ip="198.51.100.20")
    assert row["verdict"] == "scanner"
    assert row["bot"] == 1
    assert "security_vendor" in codes(row)


def test_a_scan_from_exchange_online_protection_is_a_scanner_with_its_reasons(proxied, db_path):
    account = create_account(db_path)
    row = click(proxied, account, {"user-agent": DEFENDER_CHROME}, ip="40.107.22.9")
    assert row["verdict"] == "scanner"
    assert row["bot"] == 1
    reasons = {reason["code"]: reason for reason in json.loads(row["reasons"])}
    assert reasons["scanner_network"]["evidence"]["network"] == "microsoft_eop"
    assert {"no_accept_language", "chrome_full_version", "early_hit"} <= set(reasons)
    # The score is the reasons' weights added up (bounded at ±100), as docs/classification.md says.
    assert row["score"] == max(-100, sum(reason["weight"] for reason in reasons.values()))


def test_a_script_is_a_bot_and_an_empty_user_agent_is_flagged(proxied, db_path):
    account = create_account(db_path)
    script = click(proxied, account, {"user-agent": "python-requests/2.32.3"}, ip="192.0.2.50")
    assert script["verdict"] == "bot" and script["bot"] == 1
    empty = click(proxied, account, {"user-agent": ""}, ip="192.0.2.51")
    assert "empty_user_agent" in codes(empty)


def test_the_verdict_is_stored_with_the_click_details(proxied, db_path):
    account = create_account(db_path)
    click(proxied, account, PERSON, ip="203.0.113.8")
    (row,) = query(db_path, "SELECT details FROM events WHERE type = 'click' AND account_id = ?", (account.id,))
    details = json.loads(row["details"])
    assert {"verdict", "score", "reasons", "classifier", "bot"} <= set(details)
    assert all(set(reason) == {"code", "weight", "evidence"} for reason in details["reasons"])
