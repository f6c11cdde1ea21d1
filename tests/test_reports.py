"""The reporting views and `linkhub report`, on a database built through the real paths.

Links are minted through the Outreach endpoint, clicks made through /r/ behind a trusted proxy (people
from their own addresses in a current browser, a security gateway by its user agent, HEAD requests),
and the other events posted to POST /v1/events. Every column of every view is then checked against
numbers computed here, in Python, from the raw `events` and `links` rows.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from linkhub.settings import parse_networks
from linkhub.store import connect

from conftest import ON_POSTGRESQL, Account, create_account, linkhub, outreach_body, post_links, query
from delivery_support import bearer, post_events

CURRENT_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/154.0.0.0 Safari/537.36")
PERSON = {"user-agent": CURRENT_CHROME, "accept-language": "en-GB,en;q=0.9"}
GATEWAY = {"user-agent": "Barracuda Sentinel (EE)"}
PRICING, BLOG, DOCS = "https://example.com/pricing", "https://example.com/blog", "https://example.com/docs"
MACHINE = ("scanner", "bot")


# -- the database ---------------------------------------------------------------------------------


def mint(client: Any, app: Any, account: Account, mailing: str, prospect: str, email: str,
         urls: list[str]) -> dict[str, str]:
    answer = post_links(client, account, outreach_body(urls, mailing=mailing, prospect=prospect, email=email))
    assert answer.status_code == 200, answer.text
    return {url: short[len(app.url):] for url, short in answer.json()["data"].items()}


def hit(client: Any, path: str, ip: str, headers: dict[str, str], method: str = "GET") -> None:
    answer = client.request(method, path, headers={**headers, "x-forwarded-for": ip})
    assert answer.status_code == 302


def at(minute: int) -> str:
    return f"2026-11-02T10:{minute:02d}:00.000Z"


@pytest.fixture
def built(make_app: Any, db_path: Path) -> dict[str, Account]:
    """Two accounts; account `a` has mailings m-1 (links, clicks, every kind of event), m-2 (events
    only) and m-3 (links only); account `b` has a mailing m-1 too, and a recipient ann@corp.example."""
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"))
    a, b = create_account(db_path), create_account(db_path)
    with app.client() as client:
        ann = mint(client, app, a, "m-1", "p-ann", "Ann@Corp.example", [PRICING, BLOG, DOCS])
        bob = mint(client, app, a, "m-1", "p-bob", "bob@corp.example", [PRICING, BLOG, DOCS])
        cat = mint(client, app, a, "m-1", "p-cat", "cat@corp.example", [PRICING, BLOG, DOCS])
        mint(client, app, a, "m-3", "p-dan", "dan@corp.example", [PRICING])
        other = mint(client, app, b, "m-1", "p-zed", "zed@else.example", [PRICING])

        # People, each from an address of their own, one link at a time.
        hit(client, ann[PRICING], "203.0.113.10", PERSON)
        hit(client, ann[PRICING], "203.0.113.10", PERSON)  # the same person again: unique counts once
        hit(client, bob[BLOG], "203.0.113.11", PERSON)
        # A security gateway scanning cat's links, and HEAD requests (always a machine's).
        for url in (PRICING, BLOG):
            hit(client, cat[url], "198.51.100.20", GATEWAY)
        hit(client, cat[DOCS], "198.51.100.21", PERSON, method="HEAD")
        hit(client, other[PRICING], "203.0.113.30", PERSON)

        post_events(client, a, [
            # ann and bob were sent and delivered; eve got a `sent` only (no link minted), by address.
            {"id": "s1", "type": "sent", "occurred_at": at(0), "email": "ann@corp.example", "mailing_id": "m-1"},
            {"id": "s2", "type": "sent", "occurred_at": at(0), "recipient_id": "p-bob", "email": "BOB@corp.example",
             "mailing_id": "m-1"},
            {"id": "s3", "type": "sent", "occurred_at": at(1), "email": "eve@corp.example", "mailing_id": "m-1"},
            {"id": "s4", "type": "sent", "occurred_at": at(1), "recipient_id": "r-no-address", "mailing_id": "m-1"},
            {"id": "d1", "type": "delivered", "occurred_at": at(2), "email": "ann@corp.example", "mailing_id": "m-1"},
            {"id": "d2", "type": "delivered", "occurred_at": at(2), "email": "bob@corp.example", "mailing_id": "m-1"},
            {"id": "u1", "type": "undelivered", "occurred_at": at(3), "email": "eve@corp.example",
             "mailing_id": "m-1", "details": {"description": "mailbox full"}},
            {"id": "b1", "type": "bounce", "occurred_at": at(3), "email": "eve@corp.example", "mailing_id": "m-1",
             "details": {"category": "hard", "reason": "unknown user"}},
            {"id": "b2", "type": "bounce", "occurred_at": at(4), "email": "cat@corp.example", "mailing_id": "m-1",
             "details": {"category": "soft"}},
            {"id": "b3", "type": "bounce", "occurred_at": at(4), "recipient_id": "r-no-address", "mailing_id": "m-1"},
            {"id": "o1", "type": "open", "occurred_at": at(5), "email": "ann@corp.example", "mailing_id": "m-1"},
            {"id": "o2", "type": "open", "occurred_at": at(7), "email": "Ann@Corp.Example", "mailing_id": "m-1"},
            {"id": "o3", "type": "open", "occurred_at": at(6), "email": "bob@corp.example", "mailing_id": "m-1"},
            # A click a sender reported, without a verdict: counted with people's.
            {"id": "c1", "type": "click", "occurred_at": at(8), "email": "bob@corp.example", "mailing_id": "m-1",
             "url": DOCS},
            {"id": "x1", "type": "unsubscribe", "occurred_at": at(9), "email": "bob@corp.example",
             "mailing_id": "m-1"},
            {"id": "x2", "type": "spamcomplaint", "occurred_at": at(9), "email": "ann@corp.example",
             "mailing_id": "m-1"},
            {"id": "m2-sent", "type": "sent", "occurred_at": "2026-11-05T09:00:00.000Z", "email": "ann@corp.example",
             "mailing_id": "m-2"},
            {"id": "m2-open", "type": "open", "occurred_at": "2026-11-05T10:00:00.000Z", "email": "ann@corp.example",
             "mailing_id": "m-2"},
            # No mailing: a recipient's activity, in no mailing's numbers.
            {"id": "n1", "type": "subscription_changed", "occurred_at": at(10), "email": "ann@corp.example",
             "details": {"categories": ["news"]}},
        ])
        post_events(client, b, [
            {"id": "s1", "type": "sent", "occurred_at": at(0), "email": "ann@corp.example", "mailing_id": "m-1"},
        ])
    app.stop()
    return {"a": a, "b": b}


# -- the same numbers, in Python ----------------------------------------------------------------


def raw(db_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events = [dict(row) for row in query(db_path, "SELECT * FROM events ORDER BY seq")]
    for event in events:
        event["details"] = json.loads(event["details"])
    links = [dict(row) for row in query(db_path, "SELECT * FROM links")]
    return events, links


def who(email: str | None, recipient_id: str | None) -> str | None:
    return email.lower() if email is not None else recipient_id


def machine(event: dict[str, Any]) -> bool:
    return event["type"] == "click" and event["details"].get("verdict") in MACHINE


def people(event: dict[str, Any]) -> bool:
    return event["type"] == "click" and not machine(event)


def machine_verdict(event: dict[str, Any]) -> bool:
    return event["details"].get("verdict") in MACHINE


def people_open(event: dict[str, Any]) -> bool:
    """An open that is neither a machine's nor Apple Mail Privacy Protection's prefetch."""
    return event["type"] == "open" and not machine_verdict(event) and not event["details"].get("apple_mpp")


def expected_mailings(events: list[dict[str, Any]], links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = {(e["account_id"], e["mailing_id"]) for e in events if e["mailing_id"] is not None}
    keys |= {(link["account_id"], link["mailing_id"]) for link in links}
    rows = []
    for account_id, mailing_id in keys:
        mine = [e for e in events if (e["account_id"], e["mailing_id"]) == (account_id, mailing_id)]
        minted = [link for link in links if (link["account_id"], link["mailing_id"]) == (account_id, mailing_id)]

        def count(test: Any, events: list[dict[str, Any]] = mine) -> int:
            return sum(1 for e in events if test(e))

        def unique(test: Any, events: list[dict[str, Any]] = mine) -> int:
            return len({who(e["email"], e["recipient_id"]) for e in events if test(e)})

        def of(kind: str) -> Any:
            return lambda event: event["type"] == kind

        recipients = len({who(link["prospect_email"], link["prospect_id"]) for link in minted}
                         | {who(e["email"], e["recipient_id"]) for e in mine if e["type"] == "sent"})
        people_times = [e["occurred_at"] for e in mine if people(e)]
        times = [e["occurred_at"] for e in mine] or [link["created_at"] for link in minted]
        # When it began: its first link or event, whichever is earlier.
        began = min([e["occurred_at"] for e in mine] + [link["created_at"] for link in minted])
        unique_people = unique(people)
        rows.append({
            "account_id": account_id, "mailing_id": mailing_id, "recipients": recipients,
            "sent": count(of("sent")), "delivered": count(of("delivered")), "undelivered": count(of("undelivered")),
            "bounces": count(of("bounce")),
            "hard_bounces": count(lambda e: e["type"] == "bounce" and e["details"].get("category") == "hard"),
            "soft_bounces": count(lambda e: e["type"] == "bounce" and e["details"].get("category") == "soft"),
            "opens": count(of("open")), "unique_opens": unique(of("open")),
            "people_opens": count(people_open), "unique_people_opens": unique(people_open),
            "proxied_opens": count(lambda e: people_open(e) and e["details"].get("proxy") is not None),
            "apple_mpp_opens": count(lambda e: e["type"] == "open" and not machine_verdict(e)
                                     and bool(e["details"].get("apple_mpp"))),
            "machine_opens": count(lambda e: e["type"] == "open" and machine_verdict(e)),
            "first_open_at": min((e["occurred_at"] for e in mine if people_open(e)), default=None),
            "clicks": count(of("click")), "unique_clicks": unique(of("click")),
            "people_clicks": count(people), "unique_people_clicks": unique_people, "machine_clicks": count(machine),
            "unsubscribes": count(of("unsubscribe")), "spam_complaints": count(of("spamcomplaint")),
            "first_click_at": min(people_times, default=None), "last_click_at": max(people_times, default=None),
            "first_at": began, "last_at": max(times),
            "click_through_rate": unique_people / recipients if recipients else None,
            "open_rate": unique(people_open) / recipients if recipients else None,
        })
    return sorted(rows, key=lambda row: (row["account_id"], row["mailing_id"]))


def expected_links(events: list[dict[str, Any]], links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    clicks = [e for e in events if e["type"] == "click" and e["mailing_id"] is not None and e["url"] is not None]
    keys = {(e["account_id"], e["mailing_id"], e["url"]) for e in clicks}
    keys |= {(link["account_id"], link["mailing_id"], link["original_url"]) for link in links}
    rows = []
    for key in keys:
        mine = [e for e in clicks if (e["account_id"], e["mailing_id"], e["url"]) == key]
        minted = [link for link in links if (link["account_id"], link["mailing_id"], link["original_url"]) == key]
        person = [e for e in mine if people(e)]
        rows.append({
            "account_id": key[0], "mailing_id": key[1], "original_url": key[2],
            "recipients": len({who(link["prospect_email"], link["prospect_id"]) for link in minted}),
            "clicks": len(mine), "unique_clicks": len({who(e["email"], e["recipient_id"]) for e in mine}),
            "people_clicks": len(person),
            "unique_people_clicks": len({who(e["email"], e["recipient_id"]) for e in person}),
            "machine_clicks": sum(1 for e in mine if machine(e)),
            "first_click_at": min((e["occurred_at"] for e in person), default=None),
            "last_click_at": max((e["occurred_at"] for e in person), default=None),
        })
    return sorted(rows, key=lambda row: (row["account_id"], row["mailing_id"], row["original_url"]))


def expected_recipients(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        key = who(e["email"], e["recipient_id"])
        if key is not None:
            groups[(e["account_id"], key)].append(e)
    rows = []
    for (account_id, key), mine in groups.items():
        opens = [e["occurred_at"] for e in mine if people_open(e)]
        person = [e["occurred_at"] for e in mine if people(e)]
        every_open = [e for e in mine if e["type"] == "open"]
        last = max(mine, key=lambda e: (e["occurred_at"], e["seq"]))
        rows.append({
            "account_id": account_id, "recipient": key,
            "recipient_id": max((e["recipient_id"] for e in mine if e["recipient_id"] is not None), default=None),
            "email": max((e["email"] for e in mine if e["email"] is not None), default=None),
            "events": len(mine), "mailings": len({e["mailing_id"] for e in mine if e["mailing_id"] is not None}),
            **{name: sum(1 for e in mine if e["type"] == kind) for name, kind in
               [("sent", "sent"), ("delivered", "delivered"), ("bounces", "bounce"), ("opens", "open")]},
            "people_opens": len(opens),
            "apple_mpp_opens": sum(1 for e in every_open if not machine_verdict(e) and e["details"].get("apple_mpp")),
            "machine_opens": sum(1 for e in every_open if machine_verdict(e)),
            "first_open_at": min(opens, default=None), "last_open_at": max(opens, default=None),
            "clicks": len(person), "first_click_at": min(person, default=None),
            "last_click_at": max(person, default=None),
            "machine_clicks": sum(1 for e in mine if machine(e)),
            "unsubscribes": sum(1 for e in mine if e["type"] == "unsubscribe"),
            "spam_complaints": sum(1 for e in mine if e["type"] == "spamcomplaint"),
            "last_event_at": last["occurred_at"], "last_event_type": last["type"],
        })
    return sorted(rows, key=lambda row: (row["account_id"], row["recipient"]))


def view(db_path: Path, name: str, order: str) -> list[dict[str, Any]]:
    return [dict(row) for row in query(db_path, f"SELECT * FROM {name} ORDER BY {order}")]


# -- the views ------------------------------------------------------------------------------------


def test_the_database_has_people_machines_and_head_hits(built, db_path):
    # The checks below mean something only if the clicks are of every kind.
    verdicts = [row["verdict"] for row in query(db_path, "SELECT verdict FROM clicks WHERE code IS NOT NULL")]
    assert {"human", "unknown"} & set(verdicts) and set(MACHINE) & set(verdicts)
    [head] = query(db_path, "SELECT verdict FROM clicks WHERE method = 'HEAD'")
    assert head["verdict"] in MACHINE


def test_mailing_stats_matches_the_raw_events(built, db_path):
    events, links = raw(db_path)
    assert view(db_path, "mailing_stats", "account_id, mailing_id") == expected_mailings(events, links)


def test_mailing_stats_counts_what_the_scenario_made(built, db_path):
    # The same, for m-1 of account a, as a person would count it from the scenario.
    [row] = query(db_path, "SELECT * FROM mailing_stats WHERE account_id = ? AND mailing_id = 'm-1'",
                  (built["a"].id,))
    # ann, bob, cat (links) + eve and r-no-address (sent only); ann's two spellings are one person.
    assert row["recipients"] == 5
    assert (row["sent"], row["delivered"], row["undelivered"]) == (4, 2, 1)
    assert (row["bounces"], row["hard_bounces"], row["soft_bounces"]) == (3, 1, 1)
    assert (row["opens"], row["unique_opens"]) == (3, 2)
    assert (row["unsubscribes"], row["spam_complaints"]) == (1, 1)
    assert row["clicks"] == 7  # 6 through /r/ (a HEAD among them), 1 posted
    assert row["machine_clicks"] >= 3  # the gateway's two and the HEAD
    assert row["click_through_rate"] == row["unique_people_clicks"] / 5


def test_link_stats_matches_the_raw_events(built, db_path):
    events, links = raw(db_path)
    assert view(db_path, "link_stats", "account_id, mailing_id, original_url") == expected_links(events, links)
    # A link minted and never clicked has its row, with its recipients.
    [unclicked] = query(db_path, "SELECT * FROM link_stats WHERE account_id = ? AND mailing_id = 'm-3'",
                        (built["a"].id,))
    assert (unclicked["recipients"], unclicked["clicks"], unclicked["first_click_at"]) == (1, 0, None)


def test_recipient_activity_matches_the_raw_events(built, db_path):
    events, _ = raw(db_path)
    assert view(db_path, "recipient_activity", "account_id, recipient") == expected_recipients(events)


@pytest.mark.skipif(ON_POSTGRESQL, reason="SQLite's query plans: PostgreSQL's planner chooses its own")
def test_one_mailing_and_one_recipient_are_read_through_indexes(built, db_path):
    def plan(sql: str, *params: str) -> str:
        return "\n".join(row[3] for row in query(db_path, f"EXPLAIN QUERY PLAN {sql}", params))

    def scans(text: str) -> list[str]:
        """The steps that read a whole table (by its name or the views' aliases), not a subquery's rows."""
        return [line for line in text.splitlines() if re.match(r"SCAN (events|links|[elsx])\b", line)]

    mailing = plan("SELECT * FROM mailing_stats WHERE account_id = ? AND mailing_id = ?", "a", "m")
    links = plan("SELECT * FROM link_stats WHERE account_id = ? AND mailing_id = ?", "a", "m")
    person = plan("SELECT * FROM recipient_activity WHERE account_id = ? AND recipient = ?", "a", "x")
    for text in (mailing, links, person):
        assert not scans(text), text
    assert "events_by_mailing (mailing_id=? AND account_id=?)" in mailing
    assert "links_by_recipient (account_id=? AND mailing_id=?)" in mailing
    assert "events_by_recipient" in person


# -- the command ----------------------------------------------------------------------------------


def report(db_path: Path, *args: str) -> Any:
    return linkhub("report", *args, "--db", str(db_path))


def test_report_mailing_refuses_an_id_two_accounts_have_naming_them(built, db_path):
    ran = report(db_path, "mailing", "m-1")
    assert ran.returncode != 0
    assert "Traceback" not in ran.stderr
    [line] = ran.stderr.strip().splitlines()
    assert built["a"].id in line and built["b"].id in line and "--account" in line
    ran = report(db_path, "recipient", "ann@corp.example")
    assert ran.returncode != 0 and built["a"].id in ran.stderr and built["b"].id in ran.stderr


def test_report_mailing_in_a_table_in_json_and_in_csv(built, db_path):
    a = built["a"].id
    [row] = [dict(r) for r in query(db_path, "SELECT * FROM mailing_stats WHERE account_id = ? AND mailing_id = 'm-1'",
                                    (a,))]
    ran = report(db_path, "mailing", "m-1", "--account", a)
    assert ran.returncode == 0, ran.output
    lines = dict(line.split(":", 1) for line in ran.stdout.splitlines())
    assert lines["recipients"].strip() == "5"
    assert lines["people's clicks"].strip() == str(row["people_clicks"])
    assert lines["scanner/bot clicks"].strip() == str(row["machine_clicks"])
    assert lines["click-through rate"].strip() == f"{row['click_through_rate'] * 100:.1f} %"
    # The values line up in one column.
    assert len({line.index(line.split(":", 1)[1].strip()) for line in ran.stdout.splitlines()}) == 1

    ran = report(db_path, "mailing", "m-1", "--account", a, "--json")
    assert json.loads(ran.stdout) == row

    ran = report(db_path, "mailing", "m-1", "--account", a, "--csv")
    [parsed] = list(csv.DictReader(io.StringIO(ran.stdout)))
    assert list(parsed) == list(row)  # every column, in the view's order
    assert parsed == {key: "" if value is None else str(value) for key, value in row.items()}

    # The only account that has m-2 needs no --account.
    assert json.loads(report(db_path, "mailing", "m-2", "--json").stdout)["account_id"] == a


def test_report_mailings_is_newest_first_bounded_and_filtered(built, db_path):
    a = built["a"].id
    ran = report(db_path, "mailings", "--account", a, "--json")
    document = json.loads(ran.stdout)
    assert [m["mailing_id"] for m in document["mailings"]][:1] == ["m-3"]  # minted last, today
    firsts = [m["first_at"] for m in document["mailings"]]
    assert firsts == sorted(firsts, reverse=True) and document["next_cursor"] is None
    assert {m["mailing_id"] for m in document["mailings"]} == {"m-1", "m-2", "m-3"}

    ran = report(db_path, "mailings", "--account", a, "--limit", "1", "--json")
    first = json.loads(ran.stdout)
    assert len(first["mailings"]) == 1 and first["next_cursor"]
    assert f"--cursor {first['next_cursor']}" in ran.stderr
    # Page by page with the cursor: every mailing once, in the same order as one page.
    seen, cursor = list(first["mailings"]), first["next_cursor"]
    while cursor:
        page = json.loads(report(db_path, "mailings", "--account", a, "--limit", "1", "--cursor", cursor,
                                 "--json").stdout)
        seen += page["mailings"]
        cursor = page["next_cursor"]
    assert seen == document["mailings"]

    window = report(db_path, "mailings", "--account", a, "--since", "2026-11-03", "--until", "2026-11-06", "--json")
    assert [m["mailing_id"] for m in json.loads(window.stdout)["mailings"]] == ["m-2"]

    # Every account's, as an aligned table: one row per mailing, numbers right-aligned under their heading.
    ran = report(db_path, "mailings")
    header, *rows = ran.stdout.splitlines()
    assert header.split()[:3] == ["account", "mailing", "first"]
    assert len(rows) == 4
    end = header.index("recipients") + len("recipients")
    assert all(row[end - 1] != " " and (len(row) == end or row[end] == " ") for row in rows)

    ran = report(db_path, "mailings", "--csv", "--account", a)
    parsed = list(csv.DictReader(io.StringIO(ran.stdout)))
    assert len(parsed) == 3 and "click_through_rate" in parsed[0]
    # No mailing matches: the header row alone, so a spreadsheet import still knows the columns.
    empty = report(db_path, "mailings", "--csv", "--since", "2030-01-01")
    described = connect(db_path, readonly=True)
    header_only = [column[0] for column in described.execute("SELECT * FROM mailing_stats LIMIT 0").description]
    described.close()
    assert empty.stdout.splitlines() == [",".join(header_only)]
    assert report(db_path, "mailings", "--since", "2030-01-01").stdout.strip() == "no mailings"
    assert report(db_path, "mailings", "--since", "yesterday").returncode == 2


def test_report_links_lists_every_link_of_the_mailing(built, db_path):
    a = built["a"].id
    expected = [dict(r) for r in query(db_path, "SELECT * FROM link_stats WHERE account_id = ? AND mailing_id = 'm-1'",
                                       (a,))]
    ran = report(db_path, "links", "--mailing", "m-1", "--account", a, "--json")
    document = json.loads(ran.stdout)
    assert document["account_id"] == a
    assert sorted(document["links"], key=lambda r: r["original_url"]) == sorted(expected,
                                                                               key=lambda r: r["original_url"])
    people_clicks = [link["people_clicks"] for link in document["links"]]
    assert people_clicks == sorted(people_clicks, reverse=True)

    ran = report(db_path, "links", "--mailing", "m-1", "--account", a)
    assert ran.stdout.splitlines()[0].split()[:2] == ["link", "recipients"]
    assert {line.split()[0] for line in ran.stdout.splitlines()[1:]} == {PRICING, BLOG, DOCS}

    parsed = list(csv.DictReader(io.StringIO(report(db_path, "links", "--mailing", "m-1", "--account", a,
                                                    "--csv").stdout)))
    assert {row["original_url"] for row in parsed} == {PRICING, BLOG, DOCS}
    assert report(db_path, "links", "--mailing", "m-1").returncode != 0  # two accounts have m-1


def test_report_recipient_by_address_in_any_case(built, db_path):
    a = built["a"].id
    ran = report(db_path, "recipient", "BOB@Corp.Example", "--json")  # only account a knows bob
    row = json.loads(ran.stdout)
    [expected] = [dict(r) for r in query(db_path, "SELECT * FROM recipient_activity"
                                         " WHERE recipient = 'bob@corp.example'")]
    assert row == expected
    # His click through /r/ happened now, after the events posted with their November times.
    [latest] = query(db_path, "SELECT occurred_at FROM clicks WHERE prospect_id = 'p-bob' AND code IS NOT NULL")
    assert (row["last_event_at"], row["last_event_type"]) == (latest["occurred_at"], "click")
    assert row["recipient_id"] == "p-bob" and row["unsubscribes"] == 1

    ran = report(db_path, "recipient", "ann@corp.example", "--account", a)
    lines = dict(line.split(":", 1) for line in ran.stdout.splitlines())
    assert lines["people's opens"].strip() == lines["all opens"].strip() == "3"
    assert lines["mailings"].strip() == "2"
    # A recipient known only by id.
    by_id = json.loads(report(db_path, "recipient", "r-no-address", "--json").stdout)
    assert (by_id["bounces"], by_id["email"], by_id["last_event_type"]) == (1, None, "bounce")


@pytest.mark.parametrize(("args", "message"), [
    (("mailing", "nope"), "no mailing 'nope' in any account"),
    (("mailing", "m-2", "--account", "acc_missing"), "no account with id 'acc_missing'"),
    (("recipient", "nobody@corp.example"), "no recipient 'nobody@corp.example' in any account"),
    (("mailing", "m-2", "--json", "--csv"), "choose one"),
])
def test_report_refusals_are_one_line(built, db_path, args, message):
    ran = report(db_path, *args)
    assert ran.returncode != 0
    assert "Traceback" not in ran.stderr
    assert message in ran.stderr and len(ran.stderr.strip().splitlines()) == 1


def test_report_says_so_when_the_account_lacks_the_mailing(built, db_path):
    ran = report(db_path, "mailing", "m-2", "--account", built["b"].id)
    assert ran.returncode != 0 and f"account {built['b'].id!r} has no mailing 'm-2'" in ran.stderr


# -- over HTTP, account-scoped ---------------------------------------------------------------------


def test_the_reports_over_http_are_the_views_rows_of_the_key_s_account(built, db_path, make_app):
    a, b = built["a"], built["b"]
    app = make_app()
    with app.client() as client:
        mailing = client.get("/v1/reports/mailings/m-1", headers=bearer(a))
        assert mailing.status_code == 200
        [expected] = [row for row in view(db_path, "mailing_stats", "account_id, mailing_id")
                      if row["account_id"] == a.id and row["mailing_id"] == "m-1"]
        assert mailing.json() == expected
        # The same mailing id in the other account is the other account's mailing.
        theirs = client.get("/v1/reports/mailings/m-1", headers=bearer(b)).json()
        assert theirs["account_id"] == b.id and theirs["recipients"] == 2  # zed's link, ann's `sent`

        listed = client.get("/v1/reports/mailings", headers=bearer(a), params={"limit": 2})
        assert listed.status_code == 200
        page = listed.json()
        assert len(page["mailings"]) == 2 and {row["account_id"] for row in page["mailings"]} == {a.id}
        assert page["next_cursor"]
        rest = client.get("/v1/reports/mailings", headers=bearer(a), params={"cursor": page["next_cursor"]}).json()
        seen = [row["mailing_id"] for row in page["mailings"] + rest["mailings"]]
        assert sorted(seen) == ["m-1", "m-2", "m-3"] and rest["next_cursor"] is None

        link_rows = client.get("/v1/reports/mailings/m-1/links", headers=bearer(a)).json()["links"]
        expected_rows = [row for row in view(db_path, "link_stats", "account_id, mailing_id, original_url")
                         if row["account_id"] == a.id and row["mailing_id"] == "m-1"]
        assert sorted(link_rows, key=lambda r: r["original_url"]) == sorted(expected_rows,
                                                                             key=lambda r: r["original_url"])


def test_the_reports_over_http_refuse_clearly(built, make_app):
    a = built["a"]
    app = make_app()
    with app.client() as client:
        assert client.get("/v1/reports/mailings").status_code == 401
        missing = client.get("/v1/reports/mailings/m-9", headers=bearer(a))
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        bad = client.get("/v1/reports/mailings", headers=bearer(a), params={"limit": "0"})
        assert bad.status_code == 422 and bad.json()["field"] == "limit"
        when = client.get("/v1/reports/mailings", headers=bearer(a), params={"since": "yesterday"})
        assert when.status_code == 422 and when.json()["field"] == "since"
        unknown = client.get("/v1/reports/mailings", headers=bearer(a), params={"mailing": "m-1"})
        assert unknown.status_code == 400 and unknown.json()["parameters"] == ["mailing"]


def test_report_recipient_finds_a_non_ascii_address_as_sqlite_lowers_it(make_app, db_path):
    # SQLite's lower() changes only ASCII letters: `Jörg@Corp.Example` is `jörg@corp.example` to it,
    # but `JÖRG@…` stays `jÖrg@…` — the report must ask with the same rule the view stores.
    account = create_account(db_path)
    app = make_app()
    with app.client() as client:
        post_events(client, account, [{"id": "o1", "type": "open", "occurred_at": at(1), "email": "JÖRG@Corp.Example",
                                       "mailing_id": "m-1"}])
    app.stop()
    [stored] = query(db_path, "SELECT recipient FROM recipient_activity")
    assert stored[0] == "jÖrg@corp.example"
    ran = report(db_path, "recipient", "JÖRG@CORP.EXAMPLE", "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["opens"] == 1
