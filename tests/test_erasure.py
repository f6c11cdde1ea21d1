"""Erasing a recipient (`DELETE /v1/recipients`, `linkhub erase`): what goes (events of every type, clicks,
their outbox rows and verdict history, the address on links), what stays (the links keep redirecting and
record nothing), the receipt (a salted hash, never the identifier), and the bytes: after the erasure no
file of the database holds the address, with the server running (on PostgreSQL, whose files are the
server's, no row of any table holds it).

Counts are checked against queries of the test's own; the bytes by reading every file of the database,
or every row of every table as text.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx

from linkhub.core import erasure
from linkhub.core import minting as minting_core
from linkhub.core.erasure import Target
from linkhub.core.minting import Link, Recipient
from linkhub.settings import parse_networks
from linkhub.store import connect, transaction

from conftest import ON_POSTGRESQL, Account, create_account, linkhub, outreach_body, post_links, query
from delivery_support import bearer, create_webhook, event, post_events

ANN = "Ann.Person@Example.com"
ANN_ID = "p-ann"
BOB = "bob@corp.example"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/154.0.0.0 Safari/537.36")
# A gateway's scanner in a browser's clothes: its burst over one email's links changes verdicts (verdict_changes).
DISGUISED = {"user-agent": CHROME, "accept-language": "en-US"}
LINKS = ["https://example.com/pricing", "https://example.com/docs", "https://example.com/blog/launch"]
# A link that carries the address itself (a personalised URL): it cannot keep redirecting without it.
PERSONAL = "https://example.com/prefs?e=ann.person%40example.com"


def mint(client: httpx.Client, account: Account, prospect: str, email: str, targets: list[str],
         base: str) -> dict[str, str]:
    answer = post_links(client, account, outreach_body(targets, prospect=prospect, email=email))
    assert answer.status_code == 200, answer.text
    return {url: short[len(base):] for url, short in answer.json()["data"].items()}


def variants(address: str) -> list[bytes]:
    """The address as it could sit in a file: any case (the files are searched lowered), '@' or %40."""
    low = address.lower()
    return [low.encode(), low.replace("@", "%40").encode()]


def hits_in_files(db_path: Path, needles: list[bytes]) -> dict[str, int]:
    """How often each needle is in the database's files (linkhub.db, -wal, -shm), case ignored. On
    PostgreSQL, in how many rows of each table (the whole row as text, lowered) it is."""
    found: dict[str, int] = {}
    if ON_POSTGRESQL:
        tables = [row[0] for row in query(db_path, "SELECT table_name FROM information_schema.tables"
                                          " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]
        for table in sorted(tables):
            for needle in needles:
                count = query(db_path, f"SELECT count(*) FROM {table} AS r WHERE strpos(lower(r::text), ?) > 0",
                              (needle.decode(),))[0][0]
                if count:
                    found[f"{table}: {needle.decode()}"] = count
        return found
    for path in sorted(db_path.parent.glob(db_path.name + "*")):
        data = path.read_bytes().lower()
        for needle in needles:
            if data.count(needle):
                found[f"{path.name}: {needle.decode()}"] = data.count(needle)
    return found


def expected(db_path: Path, account_id: str, emails: list[str], ids: list[str]) -> dict[str, int]:
    """What erasing the person should remove, counted here from the tables themselves."""
    marks_e, marks_i = ",".join("?" * len(emails)) or "NULL", ",".join("?" * len(ids)) or "NULL"
    person = f"account_id = ? AND (lower(email) IN ({marks_e}) OR recipient_id IN ({marks_i}))"
    args = (account_id, *[e.lower() for e in emails], *ids)
    seqs = f"SELECT seq FROM events WHERE {person}"
    links = f"account_id = ? AND (lower(prospect_email) IN ({marks_e}) OR prospect_id IN ({marks_i}))"
    holds = "replace(lower(target_url), ?, '') <> lower(target_url)"  # holds the text (instr, portably)
    addressed = f" AND ({holds} OR {holds})"
    needles = (emails[0].lower(), emails[0].lower().replace("@", "%40")) if emails else ("\0", "\0")
    linked = query(db_path, f"SELECT count(*) FROM links WHERE {links}", args)[0][0]
    deleted = query(db_path, f"SELECT count(*) FROM links WHERE {links}{addressed}", (*args, *needles))[0][0]
    return {
        "events": query(db_path, f"SELECT count(*) FROM events WHERE {person}", args)[0][0],
        "clicks": query(db_path, f"SELECT count(*) FROM events WHERE {person} AND type = 'click'", args)[0][0],
        "outbox": query(db_path, f"SELECT count(*) FROM outbox WHERE event_seq IN ({seqs})", args)[0][0],
        "verdict_changes": query(db_path, f"SELECT count(*) FROM verdict_changes WHERE event_seq IN ({seqs})",
                                 args)[0][0],
        "links_kept": linked - deleted,
        "links_deleted": deleted,
        "pixels": query(db_path, f"SELECT count(*) FROM pixels WHERE {person} AND erased_at IS NULL", args)[0][0],
        "inbound_rejects": 0,
    }


def everything(db_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables an erasure touches, to compare before and after. Of the outbox, which rows
    there are: the app's delivery loop goes on retrying them meanwhile (their attempts and times change,
    and its deliveries are logged), which is not the erasure's doing."""
    found = {table: [tuple(row) for row in query(db_path, f"SELECT * FROM {table} ORDER BY 1")]
             for table in ("events", "links", "verdict_changes", "erasures")}
    found["outbox"] = [tuple(row) for row in query(db_path, "SELECT id, webhook_id, event_seq FROM outbox ORDER BY 1")]
    return found


def populate(app: Any, db_path: Path, account: Account) -> dict[str, str]:
    """Ann and Bob in the account: links, a scanner's burst and a person's click on Ann's, API events of
    every kind (one with the address in another case, one with only her recipient id), a webhook that
    queues them all. Returns Ann's link paths."""
    with app.client() as client:
        create_webhook(client, account, "http://127.0.0.1:9/hook")
        ann = mint(client, account, ANN_ID, ANN, [*LINKS, PERSONAL], app.url)
        bob = mint(client, account, "p-bob", BOB, LINKS, app.url)
        for path in ann.values():  # a burst from one address: the first click's verdict changes
            assert client.get(path, headers={**DISGUISED, "x-forwarded-for": "198.51.100.80"}).status_code == 302
        assert client.get(ann[LINKS[0]], headers={"user-agent": CHROME, "x-forwarded-for": "203.0.113.9"}
                          ).status_code == 302
        assert client.get(bob[LINKS[1]], headers={"user-agent": CHROME, "x-forwarded-for": "203.0.113.10"}
                          ).status_code == 302
        post_events(client, account, [
            event("a-sent", "sent", 1, email=ANN, recipient_id=ANN_ID, mailing_id="m-1"),
            event("a-open", "open", 2, email=ANN.upper(), recipient_id=None, mailing_id="m-1"),
            event("a-bounce", "bounce", 3, email=None, recipient_id=ANN_ID, details={"category": "soft"}),
            event("a-unsub", "unsubscribe", 4, email=ANN.lower(), recipient_id=None,
                  details={"note": f"sent by {ANN}"}),
            event("b-open", "open", 5, email=BOB, recipient_id="p-bob"),
        ])
    assert query(db_path, "SELECT count(*) FROM verdict_changes")[0][0] > 0, "the burst changed a verdict"
    assert query(db_path, "SELECT count(*) FROM outbox")[0][0] > 0
    return ann


def erase_api(client: httpx.Client, account: Account, **params: str) -> httpx.Response:
    return client.delete("/v1/recipients", params=params, headers=bearer(account))


def test_api_erasure_removes_the_person_and_leaves_no_byte_while_the_server_runs(make_app, db_path):
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"), allow_private_targets=True)
    account = create_account(db_path)
    ann = populate(app, db_path, account)
    want = expected(db_path, account.id, [ANN], [ANN_ID])
    assert want["clicks"] == 5 and want["events"] == 9 and want["links_kept"] == 3 and want["links_deleted"] == 1
    bob_before = query(db_path, "SELECT * FROM events WHERE recipient_id = 'p-bob' ORDER BY seq")
    assert hits_in_files(db_path, variants(ANN)), "the address is in the files before"

    with app.client() as client:
        answer = erase_api(client, account, email=ANN.lower())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["removed"] == want
    # SQLite's WAL is truncated; PostgreSQL's is the server's, which linkhub does not claim to know of.
    assert body["dry_run"] is False and body["wal_truncated"] is (None if ON_POSTGRESQL else True)
    assert body["earlier"] == []
    assert body["identifier_kind"] == "email" and body["via"] == "api"

    # Gone, every table: an independent look finds nothing of hers, Bob's events as they were.
    assert expected(db_path, account.id, [ANN], [ANN_ID]) == {**dict.fromkeys(want, 0)}
    assert query(db_path, "SELECT * FROM events WHERE recipient_id = 'p-bob' ORDER BY seq") == bob_before
    kept = query(db_path, "SELECT prospect_id, prospect_email, erased_at FROM links WHERE erased_at IS NOT NULL")
    assert len(kept) == 3 and all(r[0].startswith("erased:") and r[1] is None for r in kept)
    # No byte of it in linkhub.db, -wal or -shm, while the app (its writer, checkpointer, readers) runs.
    assert hits_in_files(db_path, [*variants(ANN), ANN_ID.encode()]) == {}

    # Her links still redirect (the emails already sent keep working) and record nothing more.
    events_before = query(db_path, "SELECT count(*) FROM events")[0][0]
    with app.client() as client:
        for url in LINKS:
            answer = client.get(ann[url], headers={"user-agent": CHROME})
            assert answer.status_code == 302 and answer.headers["location"] == url
            assert client.head(ann[url]).status_code == 302
        # The link whose URL held the address could not stay without it.
        assert client.get(ann[PERSONAL]).status_code == 404
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == events_before
    assert hits_in_files(db_path, variants(ANN)) == {}


def test_receipt_holds_a_salted_hash_and_a_second_erasure_removes_nothing(make_app, db_path):
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"), allow_private_targets=True)
    account = create_account(db_path)
    populate(app, db_path, account)
    with app.client() as client:
        first = erase_api(client, account, email=ANN).json()
        again = erase_api(client, account, email=ANN.upper()).json()
    assert again["removed"] == dict.fromkeys(first["removed"], 0)
    assert again["earlier"] == [first["erased_at"]]
    assert again["identifier_hash"] == first["identifier_hash"]  # the address in any case is the same person

    receipts = [dict(row) for row in query(db_path, "SELECT * FROM erasures ORDER BY id")]
    assert [r["events"] for r in receipts] == [first["removed"]["events"], 0]
    text = json.dumps(receipts).lower()
    assert ANN.lower() not in text and ANN_ID not in text and "ann.person" not in text
    # Whoever is given the address again can prove it was erased: the hash is recomputed with the salt.
    salt = query(db_path, "SELECT salt FROM erasure_salt")[0][0]
    assert len(salt) == 32
    recomputed = hashlib.scrypt(f"email:{ANN.lower()}".encode(), salt=salt, n=2**14, r=8, p=1, dklen=32).hex()
    assert receipts[0]["identifier_hash"] == recomputed
    assert recomputed != hashlib.scrypt(b"email:someone@else.example", salt=salt, n=2**14, r=8, p=1,
                                        dklen=32).hex()


def test_dry_run_counts_and_changes_nothing(make_app, db_path):
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"), allow_private_targets=True)
    account = create_account(db_path)
    populate(app, db_path, account)
    want = expected(db_path, account.id, [ANN], [ANN_ID])
    with app.client() as client:
        before = everything(db_path)
        answer = erase_api(client, account, email=ANN, dry_run="true")
        assert answer.status_code == 200, answer.text
        assert answer.json()["removed"] == want and answer.json()["dry_run"] is True
        assert answer.json()["id"] is None and answer.json()["wal_truncated"] is None
        after_api = everything(db_path)
    ran = linkhub("erase", "--account", account.id, "--email", ANN, "--dry-run", "--json", "--db", str(db_path))
    assert ran.returncode == 0, ran.output
    assert json.loads(ran.stdout)["removed"] == want
    assert before == after_api == everything(db_path)
    assert everything(db_path)["erasures"] == []


def test_the_api_refuses_bad_requests_and_touches_only_the_keys_account(make_app, db_path):
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"), allow_private_targets=True)
    mine, other = create_account(db_path), create_account(db_path)
    with app.client() as client:
        mint(client, other, ANN_ID, ANN, LINKS, app.url)
        post_events(client, other, [event("o-open", "open", 1, email=ANN, recipient_id=ANN_ID)])
        other_before = everything(db_path)

        missing = erase_api(client, mine)
        assert missing.status_code == 400
        assert missing.json()["error"] == "missing_parameter" and missing.json()["field"] == "email"
        assert erase_api(client, mine, email="").status_code == 400
        both = erase_api(client, mine, email=ANN, recipient_id=ANN_ID)
        assert both.status_code == 422 and both.json()["field"] == "recipient_id"
        assert erase_api(client, mine, email="not-an-address").json()["field"] == "email"
        assert erase_api(client, mine, email=ANN, dry_run="maybe").json()["field"] == "dry_run"
        unknown = erase_api(client, mine, mail=ANN)
        assert unknown.status_code == 400 and unknown.json()["error"] == "unknown_parameter"
        unauthorised = client.delete("/v1/recipients", params={"email": ANN})
        assert unauthorised.status_code == 401 and unauthorised.json()["error"] == "unauthorized"
        wrong_key = client.delete("/v1/recipients", params={"email": ANN}, headers={"Authorization": "Bearer nope"})
        assert wrong_key.status_code == 401
        assert everything(db_path) == other_before  # no refusal changed anything

        # The same person in another account is that account's: erasing with my key removes nothing of it.
        answer = erase_api(client, mine, email=ANN)
        assert answer.status_code == 200 and answer.json()["removed"]["events"] == 0
        assert answer.json()["removed"]["links_kept"] == 0
    after = everything(db_path)
    assert after["events"] == other_before["events"] and after["links"] == other_before["links"]
    assert [r[1] for r in after["erasures"]] == [mine.id]


def test_cli_erases_by_recipient_id_beside_a_real_server(make_server, db_path):
    server = make_server("--allow-private-targets")
    account = create_account(db_path)
    with server.client() as client:
        ann = mint(client, account, ANN_ID, ANN, LINKS, str(client.base_url))
        for path in ann.values():
            assert client.get(path, headers={"user-agent": CHROME}).status_code == 302
        post_events(client, account, [
            event("a-open", "open", 1, email=ANN.upper(), recipient_id=None),  # only her address: found via her links
            event("b-open", "open", 2, email=BOB, recipient_id="p-bob"),
        ])
    want = expected(db_path, account.id, [ANN], [ANN_ID])
    assert want["events"] == 4 and want["clicks"] == 3

    ran = linkhub("erase", "--account", account.id, "--recipient-id", ANN_ID, "--json", "--db", str(db_path))
    assert ran.returncode == 0, ran.output
    document = json.loads(ran.stdout)
    assert document["removed"] == want and document["via"] == "cli" and document["identifier_kind"] == "recipient_id"
    assert document["wal_truncated"] is (None if ON_POSTGRESQL else True)
    assert hits_in_files(db_path, [*variants(ANN), ANN_ID.encode()]) == {}

    with server.client() as client:
        assert client.get(ann[LINKS[0]], headers={"user-agent": CHROME}).status_code == 302
        assert client.get("/healthz").status_code == 200
    assert query(db_path, "SELECT count(*) FROM events WHERE type = 'click'")[0][0] == 0
    assert server.stop() == 0
    assert hits_in_files(db_path, [*variants(ANN), ANN_ID.encode()]) == {}

    # Asked again (the same recipient id), in text: nothing left, and when it was erased before.
    text = linkhub("erase", "--account", account.id, "--recipient-id", ANN_ID, "--db", str(db_path))
    assert text.returncode == 0, text.output
    assert f"erased before: {document['erased_at']}" in text.stdout
    assert "events (all types)" in text.stdout and "warning" not in text.stdout


def test_cli_refusals_are_one_line(db_path, account):
    neither = linkhub("erase", "--account", account.id, "--db", str(db_path))
    assert neither.returncode == 2 and "--email or --recipient-id" in neither.stderr
    assert "Traceback" not in neither.stderr
    both = linkhub("erase", "--account", account.id, "--email", ANN, "--recipient-id", "x", "--db", str(db_path))
    assert both.returncode == 2 and "--recipient-id" in both.stderr
    bad = linkhub("erase", "--account", account.id, "--email", "nobody", "--db", str(db_path))
    assert bad.returncode == 2 and "--email" in bad.stderr
    unknown = linkhub("erase", "--account", "acc_nope", "--email", ANN, "--db", str(db_path))
    assert unknown.returncode == 1 and "no account with id 'acc_nope'" in unknown.stderr
    assert query(db_path, "SELECT count(*) FROM erasures")[0][0] == 0


def test_a_link_minted_while_the_erasure_read_is_erased_too(db_path, account):
    """What `find` read outside the write is looked at again inside it: a link whose minting began before
    the read and committed after it is the person's too."""
    ann = Recipient(account.id, "m-late", ANN_ID, ANN, None, None)
    late = Link("https://example.com/late", "https://example.com/late")
    minting = connect(db_path)
    reader = connect(db_path, readonly=True)
    writer = connect(db_path)
    try:
        minting.begin()
        minting_core.mint(minting, ann, [late])  # her link, not committed yet
        target = Target.of(ANN, None)
        found = erasure.find(reader, account.id, target)
        assert found.link_codes == []  # not there when it read
        minting.execute("COMMIT")
        with transaction(writer):
            receipt = erasure.erase(writer, account.id, target, found, via="cli",
                                    identifier_hash=erasure.identifier_hash(target, erasure.salt(writer)))
    finally:
        for conn in (minting, reader, writer):
            conn.close()
    assert receipt.counts.links_kept == 1
    assert query(db_path, "SELECT count(*) FROM links WHERE prospect_id = ? OR lower(prospect_email) = ?",
                 (ANN_ID, ANN.lower()))[0][0] == 0
