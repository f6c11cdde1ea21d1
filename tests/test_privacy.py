"""Minimisation at capture: --anonymize-ip stores a click's network, not its address (in the click, in its
verdict's evidence, in the verdict changes it makes, in the access log), while the classifier judged the
full address; --no-user-agent stores what the user agent said (device, OS, browser, verdict) but not the
string, and `classify rescore` keeps such clicks' verdicts.

Through the real app (in-process) behind a trusted proxy, as deployed behind a load balancer; "not stored"
is checked on the bytes of the database files, not only on the columns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from linkhub.core.useragent import describe
from linkhub.settings import parse_networks

from conftest import ON_POSTGRESQL, create_account, linkhub, outreach_body, post_links, query
from delivery_support import post_events

CURRENT_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/154.0.0.0 Safari/537.36")
# Defender for Office 365's scans: an old Chrome with a full four-part build number.
DEFENDER_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/97.0.4692.99 Safari/537.36")
PERSON = {"user-agent": CURRENT_CHROME, "accept-language": "en-GB,en;q=0.9"}
EOP = "40.107.22.9"  # Exchange Online Protection, in the shipped lists
LINKS = [f"https://example.com/{page}" for page in ("pricing", "blog/launch", "docs", "about")]


def proxied(make_app: Any, **settings: Any) -> Any:
    return make_app(trusted_proxies=parse_networks("127.0.0.1/32"), **settings)


def mint(app: Any, account: Any, prospect: str, links: list[str]) -> list[str]:
    """The paths of one recipient's short links, in the order of `links`."""
    with app.client() as client:
        answer = post_links(client, account, outreach_body(links, prospect=prospect, email=f"{prospect}@corp.example"))
    data = answer.json()["data"]
    return [data[url][len(app.url):] for url in links]


def hit(app: Any, paths: list[str], ip: str, headers: dict[str, str]) -> None:
    with app.client() as client:
        for path in paths:
            assert client.get(path, headers={**headers, "x-forwarded-for": ip}).status_code == 302


def stored_bytes(db_path: Path) -> bytes:
    """Every byte of the database, its WAL and shared-memory file; on PostgreSQL (whose files are the
    server's), every row of every table, as text."""
    if ON_POSTGRESQL:
        tables = [row[0] for row in query(db_path, "SELECT table_name FROM information_schema.tables"
                                          " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]
        return "\n".join(str(row[0]) for table in sorted(tables)
                         for row in query(db_path, f"SELECT r::text FROM {table} AS r")).encode()
    return b"".join(path.read_bytes() for path in sorted(db_path.parent.glob(db_path.name + "*")))


def clicks(db_path: Path, prospect: str) -> list[dict[str, Any]]:
    return [dict(row) for row in query(db_path, "SELECT * FROM clicks WHERE prospect_id = ? ORDER BY seq",
                                       (prospect,))]


def test_an_anonymized_scan_from_exchange_online_protection_is_still_a_scanner(make_app, db_path):
    app = proxied(make_app, anonymize_ip=True, access_log=True)
    account = create_account(db_path)
    hit(app, mint(app, account, "p-scan", LINKS[:1]), EOP, {"user-agent": DEFENDER_CHROME})
    [row] = clicks(db_path, "p-scan")
    # Judged on the full address: the network matched, the verdict is a scanner's.
    assert row["verdict"] == "scanner" and row["bot"] == 1
    reasons = {reason["code"]: reason for reason in json.loads(row["reasons"])}
    assert reasons["scanner_network"]["evidence"]["network"] == "microsoft_eop"
    # Stored: only the /24, in the click and in the evidence.
    assert row["ip"] == "40.107.22.0"
    assert reasons["scanner_network"]["evidence"]["ip"] == "40.107.22.0"
    assert app.stop() == 0
    assert EOP.encode() not in stored_bytes(db_path)
    assert EOP not in app.output  # the access log writes the network too
    assert " 302 " in app.output and "40.107.22.0" in app.output


def test_verdict_changes_of_a_burst_keep_only_the_network(make_app, db_path, tmp_path):
    # An operator's own low-certainty scanner network: alone, a disguised browser from it is not yet a
    # scanner; the rest of the burst makes it one, and that change is recorded with its reasons.
    networks = tmp_path / "networks.txt"
    networks.write_text("198.51.100.0/24 our_gateway low\n")
    app = proxied(make_app, anonymize_ip=True, scanner_networks=networks)
    account = create_account(db_path)
    hit(app, mint(app, account, "p-burst", LINKS), "198.51.100.80", {**PERSON, "accept-language": "en-US"})
    rows = clicks(db_path, "p-burst")
    assert [row["verdict"] for row in rows] == ["scanner"] * len(LINKS)
    changes = [dict(row) for row in query(db_path, "SELECT * FROM verdict_changes")]
    assert changes, "the first click's change is recorded"
    evidence = [reason["evidence"] for change in changes for reason in json.loads(change["reasons"])
                if reason["code"] == "scanner_network"]
    assert evidence and all(item["ip"] == "198.51.100.0" for item in evidence)
    assert all(row["ip"] == "198.51.100.0" for row in rows)
    app.stop()
    assert b"198.51.100.80" not in stored_bytes(db_path)


def test_an_ipv6_address_is_stored_as_its_48(make_app, db_path):
    app = proxied(make_app, anonymize_ip=True)
    account = create_account(db_path)
    hit(app, mint(app, account, "p-six", LINKS[:1]), "2001:db8:1:2::5", PERSON)
    [row] = clicks(db_path, "p-six")
    assert row["ip"] == "2001:db8:1::"
    assert row["verdict"] in ("human", "unknown")


def test_without_anonymize_ip_the_address_is_stored_whole(make_app, db_path):
    app = proxied(make_app)
    account = create_account(db_path)
    hit(app, mint(app, account, "p-whole", LINKS[:1]), EOP, {"user-agent": DEFENDER_CHROME})
    [row] = clicks(db_path, "p-whole")
    assert row["ip"] == EOP
    assert {reason["code"]: reason for reason in json.loads(row["reasons"])}["scanner_network"]["evidence"]["ip"] == EOP


def test_events_a_sender_posts_are_stored_as_given(make_app, db_path):
    # The minimisation settings are of linkhub's own capture (the redirect); a sender's events are its data.
    app = make_app(anonymize_ip=True, no_user_agent=True)
    account = create_account(db_path)
    details = {"ip": "203.0.113.77", "user_agent": CURRENT_CHROME}
    with app.client() as client:
        post_events(client, account, [{"id": "o-1", "type": "open", "email": "ann@example.com",
                                              "occurred_at": "2026-11-23T09:15:02Z", "details": details}])
    [row] = query(db_path, "SELECT details FROM events WHERE id = 'o-1'")
    assert json.loads(row[0]) == details


def test_no_user_agent_keeps_what_it_said_but_not_the_string(make_app, db_path):
    app = proxied(make_app, no_user_agent=True)
    account = create_account(db_path)
    hit(app, mint(app, account, "p-ua", LINKS[:1]), "203.0.113.7", PERSON)
    [row] = clicks(db_path, "p-ua")
    assert row["user_agent"] is None
    # What the user agent said, as a click that kept it stores it.
    client = describe(CURRENT_CHROME)
    assert (row["os"], row["browser"]) == ("Windows 10", "Chrome 154.0")
    assert (row["device"], row["os"], row["browser"]) == (client.device, client.os, client.browser)
    assert row["verdict"] in ("human", "unknown")
    assert "current_browser" in [reason["code"] for reason in json.loads(row["reasons"])]
    [details] = query(db_path, "SELECT details FROM events WHERE type = 'click'")
    assert "user_agent" not in json.loads(details[0])  # absent, not null: rescore tells the two apart
    assert row["ip"] == "203.0.113.7"  # the other setting is independent
    app.stop()
    assert CURRENT_CHROME.encode() not in stored_bytes(db_path)

    # Rescore cannot read the user agent again: it keeps the verdict made at capture, and says so.
    answer = linkhub("classify", "rescore", "--since", "2020-01-01", "--json", "--db", str(db_path))
    assert answer.returncode == 0, answer.stderr
    result = json.loads(answer.stdout)
    assert (result["clicks"], result["changed"], result["kept_without_user_agent"]) == (1, 0, 1)
    assert clicks(db_path, "p-ua")[0]["verdict"] == row["verdict"]
    assert query(db_path, "SELECT count(*) FROM verdict_changes")[0][0] == 0
    text = linkhub("classify", "rescore", "--since", "2020-01-01", "--db", str(db_path))
    assert "kept the verdict given at capture: 1 click stored without a user agent" in text.stdout


def test_a_click_that_sent_no_user_agent_stores_null_and_is_judged_again(make_app, db_path):
    app = proxied(make_app)
    account = create_account(db_path)
    path = mint(app, account, "p-none", LINKS[:1])[0]
    with app.client() as client:
        request = client.build_request("GET", path, headers={"x-forwarded-for": "203.0.113.8"})
        del request.headers["user-agent"]
        assert client.send(request).status_code == 302
    [details] = query(db_path, "SELECT details FROM events WHERE type = 'click'")
    assert json.loads(details[0])["user_agent"] is None
    app.stop()
    answer = linkhub("classify", "rescore", "--since", "2020-01-01", "--json", "--db", str(db_path))
    assert json.loads(answer.stdout)["kept_without_user_agent"] == 0
