"""`linkhub classify rescore`: stored clicks judged again, together and in order, with the current
rules and data; a dry run changes nothing, a real run stores the new verdicts and records each change."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from linkhub.settings import parse_networks
from linkhub.store import connect

from conftest import create_account, linkhub, outreach_body, post_links, query

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/154.0.0.0 Safari/537.36")
BROWSER = {"user-agent": CHROME, "accept-language": "en-US"}
LINKS = [f"https://example.com/{page}" for page in ("a", "b", "c", "d")]


def record(make_app, db_path: Path, *, settle_s: int, ip: str, prospect: str, links: list[str] = LINKS) -> str:
    """One recipient's links hit from `ip` through the real app; returns the account id."""
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"), classify_settle_s=settle_s)
    account = create_account(db_path)
    with app.client() as client:
        answer = post_links(client, account, outreach_body(links, prospect=prospect))
        for short in answer.json()["data"].values():
            assert client.get(short[len(app.url):], headers={**BROWSER, "x-forwarded-for": ip}).status_code == 302
    app.stop()
    return account.id


def stored(db_path: Path) -> list[str]:
    return [row[0] for row in query(db_path, "SELECT verdict FROM clicks ORDER BY seq")]


def test_a_dry_run_reports_what_would_change_and_changes_nothing(make_app, db_path):
    # With no settle window, the burst's first click kept the verdict it had alone.
    record(make_app, db_path, settle_s=0, ip="198.51.100.80", prospect="p1")
    before = stored(db_path)
    assert before[0] in ("human", "unknown") and before[-1] == "scanner"

    ran = linkhub("classify", "rescore", "--since", "2000-01-01", "--dry-run", "--json", "--db", str(db_path))
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["dry_run"] is True and report["clicks"] == 4
    expected = Counter((old, "scanner") for old in before)
    assert {(t["from"], t["to"]): t["clicks"] for t in report["transitions"]} == expected
    assert stored(db_path) == before
    assert query(db_path, "SELECT count(*) FROM verdict_changes")[0][0] == 0


def test_a_real_run_stores_the_new_verdicts_and_records_each_change_once(make_app, db_path):
    account_id = record(make_app, db_path, settle_s=0, ip="198.51.100.81", prospect="p2")
    before = stored(db_path)
    first = before[0]
    ran = linkhub("classify", "rescore", "--since", "2000-01-01", "--account", account_id, "--db", str(db_path))
    assert ran.returncode == 0, ran.stderr
    people = sum(old != "scanner" for old in before)
    assert re.search(rf"^{first}\s+scanner\s+{people}$", ran.stdout, re.MULTILINE), ran.stdout
    assert "4 clicks judged again" in ran.stdout
    assert stored(db_path) == ["scanner"] * 4
    assert [row[0] for row in query(db_path, "SELECT verdict FROM events WHERE type = 'click'")] == ["scanner"] * 4
    changes = [dict(row) for row in query(db_path, "SELECT * FROM verdict_changes ORDER BY id")]
    assert len(changes) == people
    change = changes[0]
    assert change["cause"] == "rescore" and change["old_verdict"] == first and change["new_verdict"] == "scanner"
    assert change["event_seq"] == query(db_path, "SELECT min(seq) FROM events WHERE type = 'click'")[0][0]
    # Judged again, the same clicks change no more.
    again = linkhub("classify", "rescore", "--since", "2000-01-01", "--json", "--db", str(db_path))
    assert json.loads(again.stdout)["changed"] == 0
    assert query(db_path, "SELECT count(*) FROM verdict_changes")[0][0] == people


def test_the_operator_s_networks_turn_old_clicks_into_scanners(make_app, db_path, tmp_path):
    record(make_app, db_path, settle_s=120, ip="198.18.9.9", prospect="p3", links=LINKS[:1])
    assert stored(db_path)[0] in ("human", "unknown")
    networks = tmp_path / "ours.txt"
    networks.write_text("198.18.9.0/24 our_gateway high\n")
    ran = linkhub("classify", "rescore", "--since", "2000-01-01", "--scanner-networks", str(networks),
                  "--db", str(db_path))
    assert ran.returncode == 0, ran.stderr
    assert stored(db_path) == ["scanner"]


def test_clicks_judged_by_an_older_classifier_are_judged_from_what_they_stored(make_app, db_path):
    record(make_app, db_path, settle_s=120, ip="203.0.113.5", prospect="p4", links=LINKS[:1])
    # As classifier 2026.12.1 stored clicks: no method, no headers; a missing Accept-Language as a reason.
    with_reason = [{"code": "no_accept_language", "weight": -20, "evidence": {}}]
    conn = connect(db_path)
    for seq, text in conn.execute("SELECT seq, details FROM events").fetchall():  # read and written back: either SQL
        details = {k: v for k, v in json.loads(text).items() if k not in ("headers", "method")}
        details.update(classifier="2026.12.1", reasons=with_reason)
        conn.execute("UPDATE events SET details = ? WHERE seq = ?", (json.dumps(details), seq))
    conn.close()
    ran = linkhub("classify", "rescore", "--since", "2000-01-01", "--json", "--db", str(db_path))
    report = json.loads(ran.stdout)
    assert report["changed"] == 1
    [reasons] = [json.loads(row[0]) for row in query(db_path, "SELECT reasons FROM clicks")]
    assert "no_accept_language" in {reason["code"] for reason in reasons}


def test_bad_times_and_files_are_one_line_errors(db_path, tmp_path):
    ran = linkhub("classify", "rescore", "--since", "last tuesday", "--db", str(db_path))
    assert ran.returncode == 2 and "--since" in ran.stderr and "Traceback" not in ran.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("10.0.0.0/8 x\n")
    ran = linkhub("classify", "rescore", "--since", "2026-01-01", "--scanner-networks", str(bad), "--db", str(db_path))
    assert ran.returncode == 1 and f"{bad}:1" in ran.stderr and "Traceback" not in ran.stderr
