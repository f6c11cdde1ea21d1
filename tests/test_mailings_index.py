"""The `mailings` table: when each mailing began, kept by the inserts themselves, and the page of the
all-mailings report read from it — exact cursors, ties included, and no mailing left behind once
nothing of it is kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import create_account, linkhub, outreach_body, post_links, query
from delivery_support import bearer, post_events

SAME_MOMENT = "2026-11-02T10:00:00.000Z"


def began(db_path: Path) -> dict[tuple[str, str], str]:
    return {(row[0], row[1]): row[2] for row in query(db_path, "SELECT account_id, mailing_id, first_at FROM mailings")}


def test_a_mailing_began_at_its_earliest_link_or_event_whichever_path_wrote_it(make_app, db_path):
    app = make_app()
    account = create_account(db_path)
    with app.client() as client:
        post_events(client, account, [{"id": "late", "type": "open", "occurred_at": "2026-11-20T10:00:00.000Z",
                                       "email": "ann@example.com", "mailing_id": "m-1"}])
        assert began(db_path) == {(account.id, "m-1"): "2026-11-20T10:00:00.000Z"}
        # An earlier event moves the start back; a later one does not move it.
        post_events(client, account, [
            {"id": "early", "type": "sent", "occurred_at": "2026-11-01T08:00:00.000Z", "email": "ann@example.com",
             "mailing_id": "m-1"},
            {"id": "later", "type": "open", "occurred_at": "2026-11-25T10:00:00.000Z", "email": "ann@example.com",
             "mailing_id": "m-1"},
            {"id": "no-mailing", "type": "open", "occurred_at": "2026-10-01T10:00:00.000Z",
             "email": "ann@example.com"},
        ])
        assert began(db_path) == {(account.id, "m-1"): "2026-11-01T08:00:00.000Z"}
        # Links minted now for a new mailing: it began when they were minted.
        answer = post_links(client, account, outreach_body(["https://example.com/a"], mailing="m-2"))
        assert answer.status_code == 200, answer.text
    minted = query(db_path, "SELECT min(created_at) FROM links WHERE mailing_id = 'm-2'")[0][0]
    assert began(db_path)[(account.id, "m-2")] == minted
    # The report's first_at is that moment.
    rows = {row["mailing_id"]: row for row in query(db_path, "SELECT * FROM mailing_stats")}
    assert rows["m-1"]["first_at"] == "2026-11-01T08:00:00.000Z" and rows["m-2"]["first_at"] == minted
    app.stop()


def page_all(client: Any, account: Any, limit: int) -> list[str]:
    seen: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    for _ in range(100):  # bounded: far more pages than the test makes
        answer = client.get("/v1/reports/mailings", headers=bearer(account), params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        seen += [row["mailing_id"] for row in page["mailings"]]
        if page["next_cursor"] is None:
            return seen
        params = {"limit": limit, "cursor": page["next_cursor"]}
    raise AssertionError("the pages never ended")


def test_pages_of_mailings_that_began_in_the_same_millisecond_miss_none_and_repeat_none(make_app, db_path):
    app = make_app()
    account, other = create_account(db_path), create_account(db_path)
    names = [f"m-{n:02d}" for n in range(7)]
    with app.client() as client:
        post_events(client, account, [{"id": name, "type": "sent", "occurred_at": SAME_MOMENT,
                                       "email": "ann@example.com", "mailing_id": name} for name in names]
                    + [{"id": "newer", "type": "sent", "occurred_at": "2026-11-03T00:00:00.000Z",
                        "email": "ann@example.com", "mailing_id": "m-newer"}])
        post_events(client, other, [{"id": "theirs", "type": "sent", "occurred_at": SAME_MOMENT,
                                     "email": "zed@example.com", "mailing_id": "m-theirs"}])
        for limit in (1, 2, 3, 100):
            assert page_all(client, account, limit) == ["m-newer", *sorted(names, reverse=True)]
        refused = client.get("/v1/reports/mailings", headers=bearer(account), params={"cursor": "not-ours"})
        assert refused.status_code == 422
        assert refused.json()["error"] == "invalid_parameter" and refused.json()["field"] == "cursor"
    app.stop()
    # Over every account from the command line, the same walk.
    seen, cursor = [], None
    for _ in range(20):
        ran = linkhub("report", "mailings", "--limit", "3", "--json", "--db", str(db_path),
                      *(["--cursor", cursor] if cursor else []))
        assert ran.returncode == 0, ran.stderr
        page = json.loads(ran.stdout)
        seen += [(row["account_id"], row["mailing_id"]) for row in page["mailings"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([(account.id, n) for n in [*names, "m-newer"]] + [(other.id, "m-theirs")])
    assert len(seen) == len(set(seen))
    bad = linkhub("report", "mailings", "--cursor", "%%%", "--db", str(db_path))
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "cursor" in bad.stderr


def test_a_mailing_with_nothing_left_leaves_the_report_after_pruning_or_erasure(make_app, db_path):
    app = make_app()
    account = create_account(db_path)
    with app.client() as client:
        post_events(client, account, [
            {"id": "old", "type": "sent", "occurred_at": "2020-01-01T00:00:00.000Z", "email": "ann@example.com",
             "mailing_id": "m-old"},
            {"id": "ann", "type": "sent", "occurred_at": "2026-11-01T00:00:00.000Z", "email": "ann@example.com",
             "mailing_id": "m-ann"},
            {"id": "shared-ann", "type": "sent", "occurred_at": "2026-11-01T00:00:00.000Z",
             "email": "ann@example.com", "mailing_id": "m-shared"},
            {"id": "shared-bob", "type": "sent", "occurred_at": "2026-11-02T00:00:00.000Z",
             "email": "bob@example.com", "mailing_id": "m-shared"},
            {"id": "newest", "type": "open", "occurred_at": "2026-11-03T00:00:00.000Z", "email": "bob@example.com"},
        ])
    app.stop()
    assert {m for _, m in began(db_path)} == {"m-old", "m-ann", "m-shared"}
    pruned = linkhub("events", "prune", "--older-than", "365", "--db", str(db_path))
    assert pruned.returncode == 0, pruned.stderr
    assert {m for _, m in began(db_path)} == {"m-ann", "m-shared"}
    erased = linkhub("erase", "--account", account.id, "--email", "ann@example.com", "--db", str(db_path))
    assert erased.returncode == 0, erased.stderr
    # m-ann was Ann's alone; m-shared keeps Bob's event and the moment it began.
    assert began(db_path) == {(account.id, "m-shared"): "2026-11-01T00:00:00.000Z"}
    listed = linkhub("report", "mailings", "--json", "--db", str(db_path))
    assert [row["mailing_id"] for row in json.loads(listed.stdout)["mailings"]] == ["m-shared"]
