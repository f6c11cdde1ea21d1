"""Verdicts that settle: a burst of one email's links, seen through /r/, changes the verdicts of the
clicks that came first, in the store and in `verdict_changes`; past the settle window they stay.

Through the real app (in-process) behind a trusted proxy, as deployed behind a load balancer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linkhub.settings import parse_networks
from linkhub.store import connect
from linkhub.util.times import now_rfc3339

from conftest import create_account, linkhub, linkhub_process, outreach_body, post_links, query

CURRENT_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/154.0.0.0 Safari/537.36")
# A gateway's scanner in a browser's clothes: a current Chrome, even an Accept-Language.
DISGUISED = {"user-agent": CURRENT_CHROME, "accept-language": "en-US"}
LINKS = [f"https://example.com/{page}" for page in ("pricing", "blog/launch", "docs", "unsubscribe?u=7")]


def mint(app, account, prospect: str) -> dict[str, str]:
    """Mint the email's links for one recipient: original URL -> path of its short link."""
    with app.client() as client:
        answer = post_links(client, account, outreach_body(LINKS, prospect=prospect,
                                                           email=f"{prospect}@corp.example"))
    return {url: short[len(app.url):] for url, short in answer.json()["data"].items()}


def hit_all(app, paths: dict[str, str], ip: str, headers: dict[str, str]) -> None:
    with app.client() as client:
        for path in paths.values():
            assert client.get(path, headers={**headers, "x-forwarded-for": ip}).status_code == 302


def verdicts(db_path: Path, prospect: str) -> list[str]:
    return [row[0] for row in query(db_path, "SELECT verdict FROM clicks WHERE prospect_id = ? ORDER BY seq",
                                    (prospect,))]


def test_a_burst_turns_its_first_click_into_a_scanner_and_records_the_change(make_app, db_path):
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"))
    account = create_account(db_path)
    hit_all(app, mint(app, account, "p-burst"), "198.51.100.80", DISGUISED)

    # Alone, the first hit looked like a person's; the three links right after it made it a scanner's.
    assert verdicts(db_path, "p-burst") == ["scanner"] * 4
    first = dict(query(db_path, "SELECT seq, details FROM events WHERE recipient_id = 'p-burst' ORDER BY seq")[0])
    details = json.loads(first["details"])
    assert details["bot"] is True
    codes = {reason["code"]: reason for reason in details["reasons"]}
    assert codes["burst"]["evidence"]["links"] >= 2
    changes = [dict(row) for row in query(db_path, "SELECT * FROM verdict_changes ORDER BY id")]
    assert changes, "the first click's change is recorded"
    change = changes[0]
    assert change["event_seq"] == first["seq"]
    assert change["account_id"] == account.id
    assert change["cause"] == "settle"
    assert change["old_verdict"] in ("human", "unknown") and change["new_verdict"] == "scanner"
    assert change["new_score"] <= -60 and change["classifier"] == details["classifier"]
    assert "burst" in [reason["code"] for reason in json.loads(change["reasons"])]
    # Every change is one of a click, old -> new, and the click holds the newest.
    assert all(row["old_verdict"] != row["new_verdict"] for row in changes)
    # The verdict column the reports read changed with it.
    assert [row[0] for row in query(db_path, "SELECT verdict FROM events WHERE recipient_id = 'p-burst'")] == [
        "scanner"] * 4
    mailing = query(db_path, "SELECT people_clicks, machine_clicks FROM mailing_stats")
    assert [tuple(row) for row in mailing] == [(0, 4)]


def test_a_person_clicking_one_link_of_the_same_email_elsewhere_is_not_changed(make_app, db_path):
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"))
    account = create_account(db_path)
    paths = mint(app, account, "p-person")
    with app.client() as client:
        assert client.get(paths[LINKS[0]], headers={**DISGUISED, "x-forwarded-for": "203.0.113.9"}).status_code == 302
    assert verdicts(db_path, "p-person") in (["human"], ["unknown"])
    assert query(db_path, "SELECT count(*) FROM verdict_changes")[0][0] == 0


def test_with_no_settle_window_earlier_verdicts_stay_as_first_given(make_app, db_path):
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"), classify_settle_s=0)
    account = create_account(db_path)
    hit_all(app, mint(app, account, "p-nosettle"), "198.51.100.81", DISGUISED)
    stored = verdicts(db_path, "p-nosettle")
    # The later hits still see the earlier ones (a burst), but nothing goes back to change the first.
    assert stored[0] in ("human", "unknown")
    assert stored[-1] == "scanner"
    assert query(db_path, "SELECT count(*) FROM verdict_changes")[0][0] == 0


def test_an_operator_network_file_makes_its_addresses_scanners(make_app, db_path, tmp_path):
    networks = tmp_path / "gateway.txt"
    networks.write_text("# our mail gateway's egress\n198.18.7.0/24 our_gateway high\n")
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"), scanner_networks=networks)
    account = create_account(db_path)
    paths = mint(app, account, "p-gateway")
    with app.client() as client:
        assert client.get(paths[LINKS[0]], headers={**DISGUISED, "x-forwarded-for": "198.18.7.44"}).status_code == 302
    [row] = query(db_path, "SELECT verdict, reasons FROM clicks WHERE prospect_id = 'p-gateway'")
    network = next(r for r in json.loads(row["reasons"]) if r["code"] == "scanner_network")
    assert network["evidence"]["network"] == "our_gateway"
    assert row["verdict"] == "scanner"


@pytest.mark.parametrize("line", ["198.18.7.0/24 our_gateway", "not-a-cidr our_gateway high"])
def test_serve_refuses_a_bad_operator_network_file_in_one_line(tmp_path, line):
    networks = tmp_path / "gateway.txt"
    networks.write_text(line + "\n")
    ran = linkhub_process("serve", "--db", str(tmp_path / "x.db"), "--port", "0", "--scanner-networks", str(networks))
    assert ran.returncode != 0
    assert "Traceback" not in ran.stderr
    assert f"{networks}:1" in ran.stderr


def test_a_click_counts_from_its_email_s_delivery_when_the_sender_reported_it(make_app, db_path):
    # A sender that mints links long before it sends: its `delivered` event is where timing starts.
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"))
    account = create_account(db_path)
    paths = mint(app, account, "p-delivered")
    delivered = {"id": "dlv-1", "type": "delivered", "occurred_at": now_rfc3339(), "mailing_id": "m-1",
                 "recipient_id": "p-delivered", "email": "P-Delivered@corp.example"}
    with app.client() as client:
        assert client.post("/v1/events", json=[delivered], headers={"Authorization": f"Bearer {account.api_key}"},
                           ).status_code == 202
        assert client.get(paths[LINKS[0]], headers={**DISGUISED, "x-forwarded-for": "203.0.113.4"}).status_code == 302
    [row] = query(db_path, "SELECT reasons FROM clicks WHERE prospect_id = 'p-delivered'")
    timing = next(r for r in json.loads(row["reasons"]) if r["code"] == "early_hit")
    assert timing["evidence"]["since"] == "delivered"
    app.stop()
    # Judged again from the store alone (no memory of the event), the click counts from it too.
    conn = connect(db_path)
    for seq, text in conn.execute("SELECT seq, details FROM events WHERE type = 'click'").fetchall():
        details = {**json.loads(text), "reasons": []}
        conn.execute("UPDATE events SET details = ? WHERE seq = ?", (json.dumps(details), seq))
    conn.close()
    ran = linkhub("classify", "rescore", "--since", "2000-01-01", "--db", str(db_path))
    assert ran.returncode == 0, ran.stderr
    [row] = query(db_path, "SELECT reasons FROM clicks WHERE prospect_id = 'p-delivered'")
    timing = next(r for r in json.loads(row["reasons"]) if r["code"] == "early_hit")
    assert timing["evidence"]["since"] == "delivered"


DEFENDER_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/97.0.4692.99 Safari/537.36")


def test_a_defender_scan_right_after_minting_is_a_scanner_and_the_person_s_click_after_it_is_not(make_app, db_path):
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"))
    account = create_account(db_path)
    paths = mint(app, account, "p-defender")
    scan = {"user-agent": DEFENDER_CHROME, "x-forwarded-for": "40.107.22.9"}
    with app.client() as client:
        for path in paths.values():  # HEAD then GET on every link, as Safe Links does at delivery
            assert client.head(path, headers=scan).status_code == 302
            assert client.get(path, headers=scan).status_code == 302
        person = {**DISGUISED, "accept-language": "en-GB", "x-forwarded-for": "81.2.69.142"}
        assert client.get(paths[LINKS[1]], headers=person).status_code == 302
    rows = [dict(row) for row in query(db_path, "SELECT method, ip, verdict, reasons FROM clicks"
                                                " WHERE prospect_id = 'p-defender' ORDER BY seq")]
    scans, [mine] = rows[:-1], rows[-1:]
    assert [row["method"] for row in scans] == ["HEAD", "GET"] * len(LINKS)
    assert {row["verdict"] for row in scans} == {"scanner"}
    gets = [{r["code"] for r in json.loads(row["reasons"])} for row in scans if row["method"] == "GET"]
    assert all({"scanner_network", "head_then_get"} <= codes for codes in gets)
    # A verdict that stays a scanner's is not rewritten as more of the burst arrives: the last GET's
    # reasons saw all of it.
    assert {"burst", "every_link", "unsubscribe_with_content"} <= gets[-1]
    assert mine["ip"] == "81.2.69.142" and mine["verdict"] in ("human", "unknown")


def test_a_failing_rule_never_costs_the_click(make_app, db_path, monkeypatch):
    from linkhub.core.classify import behaviour

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("a rule's bug")

    monkeypatch.setattr(behaviour.Window, "observe", broken)
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"))
    account = create_account(db_path)
    paths = mint(app, account, "p-broken")
    with app.client() as client:
        assert client.get(paths[LINKS[0]], headers={**DISGUISED, "x-forwarded-for": "203.0.113.8"}).status_code == 302
    [row] = query(db_path, "SELECT verdict, score FROM clicks WHERE prospect_id = 'p-broken'")
    assert tuple(row) == ("unknown", 0)
    assert any("classifying the click" in line for line in app.log)
