"""Inbound webhooks: the providers' own payloads posted to /in/<token> become the account's events, are
deduplicated on the provider's identity and delivered onward; /v1/inbound and `linkhub inbound` manage
the endpoints. In-process app on a real SQLite file; onward delivery to a real local receiver."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Account, create_account, linkhub, query
from delivery_support import bearer, create_webhook, wait_until
from inbound_examples import (
    ARPOONE_ALL_TYPES,
    ESPUTNIK_ALL_STATUSES,
    OPTIMIZELY_BOUNCE,
    OPTIMIZELY_CLICK,
    OPTIMIZELY_OPENS,
    OPTIMIZELY_SENT,
    OPTIMIZELY_SPAMCOMPLAINT,
    OPTIMIZELY_UNSUBSCRIBE,
)

PUBLIC = "https://t.example.com"


def create_endpoint(client: httpx.Client, account: Account, provider: str, **spec: Any) -> dict[str, Any]:
    answer = client.post("/v1/inbound", json={"provider": provider, **spec}, headers=bearer(account))
    assert answer.status_code == 201, answer.text
    document = answer.json()
    assert document["url"].startswith(f"{PUBLIC}/in/inb_"), document
    return document


def path_of(endpoint: dict[str, Any]) -> str:
    return endpoint["url"].removeprefix(PUBLIC)


def stored(db_path: Path, source: str) -> dict[str, dict[str, Any]]:
    """The account's events from that source, by id, as stored."""
    rows = query(db_path, "SELECT * FROM events WHERE source = ? ORDER BY seq", (source,))
    return {row["id"]: {**dict(row), "details": json.loads(row["details"])} for row in rows}


def post(client: httpx.Client, endpoint: dict[str, Any], body: str | bytes, **headers: str) -> httpx.Response:
    return client.post(path_of(endpoint), content=body, headers={"content-type": "application/json", **headers})


@pytest.fixture
def inbound_app(make_app: Any) -> Any:
    return make_app(public_url=PUBLIC, allow_private_targets=True)


# -- every example of the providers' documents is accepted ----------------------------------------


def test_every_optimizely_example_is_accepted_and_normalised(inbound_app, account, db_path):
    examples = [OPTIMIZELY_OPENS, OPTIMIZELY_CLICK, OPTIMIZELY_SENT, OPTIMIZELY_BOUNCE, OPTIMIZELY_UNSUBSCRIBE,
                OPTIMIZELY_SPAMCOMPLAINT]
    with inbound_app.client() as client:
        endpoint = create_endpoint(client, account, "optimizely")
        answers = [post(client, endpoint, body) for body in examples]
    assert [(a.status_code, a.json()) for a in answers] == (
        [(200, {"accepted": 2, "duplicates": 0, "rejected": 0})] + [(200, {"accepted": 1, "duplicates": 0,
                                                                           "rejected": 0})] * 5)
    events = list(stored(db_path, "inbound:optimizely").values())
    assert [e["type"] for e in events] == ["open", "open", "click", "sent", "bounce", "unsubscribe", "spamcomplaint"]
    assert {e["account_id"] for e in events} == {account.id}
    assert {e["email"] for e in events} == {"john.smith@example.com"}
    first_open, second_open, click, sent, bounce, unsubscribe, spam = events
    # 2019-07-31T16:20:54Z is 1564590054000 ms; the opens have no `id`: theirs is a hash, one per mailId.
    assert first_open["occurred_at"] == "2019-07-31T16:20:54.000Z"
    assert first_open["id"].startswith("optimizely:h:") and first_open["id"] != second_open["id"]
    assert (first_open["recipient_id"], first_open["mailing_id"], first_open["message_id"]) == (
        "123456789005", "123456789004", "3P5W8B4-3P5W0LI-BSLXEC")
    assert second_open["message_id"] == "4P6W8B4-4P6W0LI-BSLXEC"
    # "10.420.3.42" is no IP address: not a details.ip, but kept as received.
    assert first_open["details"] == {"device": "desktop", "os": "Windows 10", "browser": "Firefox 64.1",
                                     "inbound": {"userListId": 123456789003, "remoteAddress": "10.420.3.42",
                                                 "subscriptionId": 1234567}}
    # recipientId is the address there: the event has the address and no recipient id.
    assert (click["url"], click["recipient_id"], click["mailing_id"]) == ("https://www.optimizely.com", None,
                                                                          "10230355206")
    assert click["occurred_at"] == "2021-03-30T12:52:43.000Z"
    assert {k: click["details"][k] for k in ("device", "os", "browser")} == {
        "device": "desktop", "os": "Mac 10.13", "browser": "Safari 13.1"}
    assert click["details"]["inbound"]["linkId"] == 10180855027
    assert sent["id"] == "optimizely:0a673110-17883138caf-178832ea49f-2690c03e51f4cc26"
    assert sent["occurred_at"] == "2021-03-30T12:49:35.391Z"
    assert sent["details"] == {"mailing_name": "Welcome", "inbound": {"mailingType": "campaign",
                                                                      "userListId": 10180860004,
                                                                      "subscriptionId": 10227900201}}
    assert bounce["id"] == "optimizely:0a673102-178d27b2c8c-178d2cac0e4-c7420699923845e"
    assert {k: bounce["details"][k] for k in ("category", "reason", "threshold_exceeded")} == {
        "category": "soft", "reason": "other", "threshold_exceeded": False}
    assert (unsubscribe["mailing_id"], unsubscribe["details"]["reason"]) == ("10230355205", "Unsubscribe via REST API")
    assert spam["id"] == "optimizely:0a0a3742-17k7f11690c-13c82b66689-63eb542f53667a61"
    assert (spam["mailing_id"], spam["details"]["provider"]) == ("365704742069", "AOL")


def test_the_esputnik_example_is_accepted_with_its_bare_media_type_words(inbound_app, account, db_path):
    assert '"mediaType": email,' in ESPUTNIK_ALL_STATUSES  # as eSputnik's page has it: not JSON
    with inbound_app.client() as client:
        endpoint = create_endpoint(client, account, "esputnik")
        answer = post(client, endpoint, ESPUTNIK_ALL_STATUSES)
    assert (answer.status_code, answer.json()) == (200, {"accepted": 8, "duplicates": 0, "rejected": 0})
    events = stored(db_path, "inbound:esputnik")
    assert [e["type"] for e in events.values()] == ["subscription_changed", "delivered", "undelivered",
                                                   "undelivered", "open", "unsubscribe", "click", "spamcomplaint"]
    changed = events["esputnik:ffd3e1a7-a270-4e58-94de-5ac681c5c8e7:SUBSCRIPTION_CHANGED:2019-09-26T14:45:18.000Z"]
    assert (changed["email"], changed["recipient_id"]) == (None, "687266822")
    assert changed["details"] == {"categories": ["SMARTPHONES", "TABLETS", "LAPTOPS"]}
    # The same iid twice (DELIVERED, then UNDELIVERED six seconds later): two events.
    delivered = events["esputnik:76662EBB-9FD4-4A6A-B1F8-2F594DF9B7B4:DELIVERED:2018-03-01T13:31:52.000Z"]
    failed = events["esputnik:76662EBB-9FD4-4A6A-B1F8-2F594DF9B7B4:UNDELIVERED:2018-03-01T13:31:58.000Z"]
    assert (delivered["email"], delivered["recipient_id"], delivered["message_id"]) == (
        "test@rambler.ru", "295953704", "976440")
    assert delivered["details"] == {"broadcast_id": 2833914, "inbound": {
        "messageInstanceId": 1344540, "viewMessageLink": "https://123.esclick.me/test"}}
    assert failed["details"]["description"] == "smtp;554 5.7.1 Spam message rejected; If this is not spam contact abuse"
    assert "category" not in failed["details"]  # hardBounce false
    sms = events["esputnik:D5AF8EFC-2E8F-4BB5-B427-77D554B30E65:UNDELIVERED:2019-10-01T03:43:49.000Z"]
    assert (sms["email"], sms["recipient_id"]) == (None, "357885291")
    assert sms["details"] == {"broadcast_id": 2833915, "description": "IM_NO_MONEY",
                              "inbound": {"sms": "380671234567", "mediaType": "sms"}}
    read = events["esputnik:0bb5e1dc-0d1b-4deb-948f-8cea4d8ef738:READ:2018-05-15T04:05:53.000Z"]
    assert (read["email"], read["message_id"], read["occurred_at"]) == (
        "test@gmail.com", "1235215", "2018-05-15T04:05:53.000Z")
    assert read["details"]["inbound"]["messageTag"] == "1522397496"
    click = events["esputnik:d08d1e15-ea92-4d5c-8dc9-6f750250a6ff:CLICKED:2018-05-15T04:45:04.000Z"]
    assert (click["url"], click["message_id"]) == ("https://test.ua/promo/", "1242672")
    spam = events["esputnik:0ae4b6a3-59ad-426e-a40b-ce8f55bd40bc:SPAM:2018-05-15T08:23:56.000Z"]
    assert spam["email"] == "test@mail.ru"
    assert events["esputnik:92227CB7-4EEF-4168-9EA5-43F3ED3559F8:UNSUBSCRIBED:2018-05-15T09:56:40.000Z"][
        "message_id"] == "1166457"


def test_every_arpoone_type_is_accepted_and_normalised(inbound_app, account, db_path):
    with inbound_app.client() as client:
        endpoint = create_endpoint(client, account, "arpoone")
        answer = post(client, endpoint, ARPOONE_ALL_TYPES)
    assert (answer.status_code, answer.json()) == (200, {"accepted": 5, "duplicates": 0, "rejected": 0})
    events = list(stored(db_path, "inbound:arpoone").values())
    assert [e["type"] for e in events] == ["open", "click", "bounce", "unsubscribe", "spamcomplaint"]
    opened, clicked, bounced, unsubscribed, spam = events
    message = "3f2b8c1e-7d4a-4e2b-9c1d-2a6b8e0f4d11"
    assert opened["id"] == f"arpoone:{message}:open:2025-12-01T11:10:00.123Z"
    assert (opened["email"], opened["message_id"], opened["recipient_id"]) == ("ana@example.com", message, None)
    assert opened["details"] == {"country": "PT", "ip": "198.51.100.23", "user_agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0")}
    assert clicked["url"] == "https://shop.example.com/promo?utm_source=arpoone"
    assert bounced["details"] == {"category": "hard", "blocked": False, "reason": "HardBounce",
                                  "description": "550 5.1.1 <rui@example.net>: Recipient address rejected: "
                                                 "User unknown"}
    assert unsubscribed["details"]["ip"] == "2001:db8::17"
    assert (spam["email"], spam["details"]) == ("marta@example.org", {"provider": "Microsoft JMRP"})


# -- deduplication, partial batches, refusals -----------------------------------------------------------


def test_redeliveries_are_duplicates_on_the_providers_own_identity(inbound_app, account, db_path):
    with inbound_app.client() as client:
        optimizely = create_endpoint(client, account, "optimizely")
        esputnik = create_endpoint(client, account, "esputnik")
        arpoone = create_endpoint(client, account, "arpoone")
        post(client, optimizely, OPTIMIZELY_OPENS)
        # Optimizely's retry: the same events with a higher attempt.
        retried = OPTIMIZELY_OPENS.replace('"attempt":2', '"attempt":3').replace('"attempt":5', '"attempt":6')
        assert retried != OPTIMIZELY_OPENS
        again = [post(client, optimizely, retried), post(client, optimizely, OPTIMIZELY_SENT)]
        post(client, esputnik, ESPUTNIK_ALL_STATUSES)
        again.append(post(client, esputnik, ESPUTNIK_ALL_STATUSES))
        post(client, arpoone, ARPOONE_ALL_TYPES)
        # The section-heading spelling of a type is the same type: still a duplicate.
        again.append(post(client, arpoone, ARPOONE_ALL_TYPES.replace('"Opened"', '"Open"')))
        shown = client.get(f"/v1/inbound/{esputnik['id']}", headers=bearer(account)).json()
    assert [a.json() for a in again] == [{"accepted": 0, "duplicates": 2, "rejected": 0},
                                         {"accepted": 1, "duplicates": 0, "rejected": 0},
                                         {"accepted": 0, "duplicates": 8, "rejected": 0},
                                         {"accepted": 0, "duplicates": 5, "rejected": 0}]
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == 2 + 1 + 8 + 5
    assert (shown["accepted"], shown["duplicates"], shown["rejected"]) == (8, 8, 0)
    assert shown["last_received_at"] is not None


def test_a_batch_with_invalid_items_stores_the_valid_ones_and_lists_the_rejects(inbound_app, account, db_path):
    good = json.loads(ARPOONE_ALL_TYPES)
    bad = [
        {**good[0], "EventType": "Delivered"},
        {**good[0], "Email": "not-an-address"},
        {k: v for k, v in good[1].items() if k != "Time"},
        "a string",
        {**good[2], "MessageId": None},
    ]
    body = [good[0], bad[0], good[1], bad[1], bad[2], good[2], bad[3], bad[4]]
    with inbound_app.client() as client:
        endpoint = create_endpoint(client, account, "arpoone")
        answer = client.post(path_of(endpoint), json=body)
        shown = client.get(f"/v1/inbound/{endpoint['id']}", headers=bearer(account)).json()
        metrics = client.get("/metrics").text
    assert (answer.status_code, answer.json()) == (200, {"accepted": 3, "duplicates": 0, "rejected": 5})
    assert [e["type"] for e in stored(db_path, "inbound:arpoone").values()] == ["open", "click", "bounce"]
    rejects = shown["rejects"]
    assert [r["index"] for r in rejects] == [7, 6, 4, 3, 1]  # newest first: the last item of the body first
    reasons = {r["index"]: r["reason"] for r in rejects}
    assert reasons[1].startswith("EventType must be one of")
    assert reasons[3] == "the address is not an email address"
    assert reasons[4] == "Time is missing"
    assert reasons[6] == "an item must be a JSON object, not a string"
    assert reasons[7] == "MessageId is missing"
    assert json.loads(next(r["item"] for r in rejects if r["index"] == 1)) == bad[0]
    assert shown["rejected"] == 5
    assert 'linkhub_inbound_items_total{outcome="rejected",provider="arpoone"} 5.0' in metrics
    assert 'linkhub_inbound_items_total{outcome="accepted",provider="arpoone"} 3.0' in metrics
    log = "\n".join(inbound_app.log)
    assert "5 of 8 items rejected" in log
    assert path_of(endpoint).removeprefix("/in/") not in log  # the token is never logged
    # The CLI lists them too.
    ran = linkhub("inbound", "show", endpoint["id"], "--db", str(db_path))
    assert ran.returncode == 0, ran.stderr
    assert "item 3: the address is not an email address" in ran.stdout
    assert "last 5 rejected items" in ran.stdout


def test_only_the_last_100_rejects_of_an_endpoint_are_kept(inbound_app, account, db_path):
    with inbound_app.client() as client:
        endpoint = create_endpoint(client, account, "optimizely")
        for batch in range(3):
            answer = client.post(path_of(endpoint), json=[{"type": "nope", "n": batch * 60 + i} for i in range(60)])
            assert answer.json() == {"accepted": 0, "duplicates": 0, "rejected": 60}
        shown = client.get(f"/v1/inbound/{endpoint['id']}", headers=bearer(account)).json()
    assert shown["rejected"] == 180
    assert query(db_path, "SELECT count(*) FROM inbound_rejects")[0][0] == 100
    assert [json.loads(r["item"])["n"] for r in shown["rejects"]] == list(range(179, 79, -1))


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"not json at all", 400, "malformed_json"),
    (b'[{"type": "open",', 400, "malformed_json"),
    (b'"a string"', 400, "invalid_body"),
    (b"[" * 100 + b"]" * 100, 400, "too_deep"),
    (json.dumps([{}] * 1001).encode(), 413, "too_many_items"),
    (b"[" + b" " * (8 * 1024 * 1024) + b"]", 413, "body_too_large"),
])
def test_a_body_that_is_no_batch_is_refused_clearly(inbound_app, account, db_path, body, status, code):
    with inbound_app.client() as client:
        endpoint = create_endpoint(client, account, "esputnik")
        answer = post(client, endpoint, body)
    assert answer.status_code == status and answer.json()["error"] == code, answer.text
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == 0


def test_bare_words_are_read_only_as_esputnik_media_types(inbound_app, account):
    with inbound_app.client() as client:
        esputnik = create_endpoint(client, account, "esputnik")
        optimizely = create_endpoint(client, account, "optimizely")
        other_key = post(client, esputnik, b'[{"iid": "x", "activityStatus": READ}]')
        not_esputnik = post(client, optimizely, b'[{"type": "open", "mediaType": email}]')
    assert other_key.status_code == 400 and other_key.json()["error"] == "malformed_json"
    assert not_esputnik.status_code == 400 and not_esputnik.json()["error"] == "malformed_json"


# -- authentication and the URL test --------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_token_and_basic_credentials_are_checked_with_one_answer_for_every_failure(inbound_app, account,
                                                                                        db_path):
    with inbound_app.client() as client:
        plain = create_endpoint(client, account, "arpoone")
        guarded = create_endpoint(client, account, "esputnik",
                                  basic_auth={"username": "esputnik", "password": "s3cret pass"})
        assert guarded["basic_auth_user"] == "esputnik"
        body = ESPUTNIK_ALL_STATUSES
        good = basic("esputnik", "s3cret pass")
        failures = [
            post(client, {"url": PUBLIC + "/in/inb_" + "x" * 43}, "[]"),  # unknown token
            post(client, {"url": PUBLIC + "/in/whatever"}, "[]"),
            post(client, guarded, body),  # no credentials
            post(client, guarded, body, authorization=basic("esputnik", "wrong")),
            post(client, guarded, body, authorization=basic("someone", "s3cret pass")),
            post(client, guarded, body, authorization="Basic !!!"),
            post(client, {"url": PUBLIC + "/in/inb_" + "y" * 43}, body, authorization=good),
            client.get(path_of(guarded)),
        ]
        ok = post(client, guarded, body, authorization=good)
        ready = client.get(path_of(guarded), headers={"authorization": good})
        plain_ready = client.get(path_of(plain) + "?check=1")
        plain_ok = post(client, plain, ARPOONE_ALL_TYPES, authorization=basic("any", "thing"))
    assert {(f.status_code, f.text, f.headers["www-authenticate"]) for f in failures} == {(
        401, '{"error":"unauthorized","message":"unknown inbound URL, or missing or wrong credentials"}',
        'Basic realm="linkhub inbound"')}
    assert ok.status_code == 200 and ok.json()["accepted"] == 8
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "provider": "esputnik"})
    assert (plain_ready.status_code, plain_ready.json()) == (200, {"status": "ok", "provider": "arpoone"})
    # An endpoint without Basic auth takes the token alone, whatever else is sent.
    assert plain_ok.status_code == 200 and plain_ok.json()["accepted"] == 5
    stored_hash = query(db_path, "SELECT basic_password_scrypt, token_sha256 FROM inbound_endpoints"
                                 " WHERE id = ?", (guarded["id"],))[0]
    assert stored_hash[0].startswith("scrypt$") and "s3cret" not in stored_hash[0]
    assert path_of(guarded).removeprefix("/in/") not in stored_hash[1]


# -- managing endpoints over HTTP and with the CLI ---------------------------------------------------


def test_endpoints_are_managed_over_http_scoped_to_the_account(inbound_app, account, db_path):
    other = create_account(db_path)
    with inbound_app.client() as client:
        created = create_endpoint(client, account, "optimizely")
        assert set(created) == {"id", "account_id", "provider", "basic_auth_user", "created_at", "token_rotated_at",
                                "last_received_at", "accepted", "duplicates", "rejected", "url"}
        listed = client.get("/v1/inbound", headers=bearer(account)).json()["endpoints"]
        shown = client.get(f"/v1/inbound/{created['id']}", headers=bearer(account)).json()
        foreign = [client.get(f"/v1/inbound/{created['id']}", headers=bearer(other)),
                   client.post(f"/v1/inbound/{created['id']}/rotate-token", headers=bearer(other)),
                   client.delete(f"/v1/inbound/{created['id']}", headers=bearer(other))]
        assert client.get("/v1/inbound", headers=bearer(other)).json() == {"endpoints": []}
        refused = [client.post("/v1/inbound", json={"provider": "mailchimp"}, headers=bearer(account)),
                   client.post("/v1/inbound", json={"provider": "esputnik", "basic_auth": {"username": "a:b",
                                                    "password": "x"}}, headers=bearer(account)),
                   client.post("/v1/inbound", content=b"{", headers=bearer(account)),
                   client.post("/v1/inbound", json={"provider": "esputnik"})]
        rotated = client.post(f"/v1/inbound/{created['id']}/rotate-token", headers=bearer(account)).json()
        old, new = post(client, created, OPTIMIZELY_SENT), post(client, rotated, OPTIMIZELY_SENT)
        deleted = client.delete(f"/v1/inbound/{created['id']}", headers=bearer(account))
        after = [post(client, rotated, OPTIMIZELY_CLICK),
                 client.get(f"/v1/inbound/{created['id']}", headers=bearer(account))]
    assert [e["id"] for e in listed] == [created["id"]] and "url" not in listed[0]
    assert shown["rejects"] == [] and "url" not in shown
    assert [f.status_code for f in foreign] == [404, 404, 404]
    assert [(r.status_code, r.json()["error"]) for r in refused] == [
        (400, "invalid_body"), (400, "invalid_body"), (400, "malformed_json"), (401, "unauthorized")]
    assert rotated["url"] != created["url"] and rotated["id"] == created["id"]
    assert (old.status_code, new.status_code) == (401, 200)
    assert deleted.json() == {"id": created["id"], "deleted": True}
    assert [a.status_code for a in after] == [401, 404]
    assert len(stored(db_path, "inbound:optimizely")) == 1  # the event stays after its endpoint goes


def test_endpoints_are_managed_with_the_cli(account, db_path):
    env = {"LINKHUB_PUBLIC_URL": PUBLIC}
    db = ("--db", str(db_path))
    made = linkhub("inbound", "create", "--account", account.id, "--provider", "esputnik", "--basic-auth", "-",
                   "--json", *db, env=env, input="hook-user:hook pass\n")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["url"].startswith(f"{PUBLIC}/in/inb_") and created["basic_auth_user"] == "hook-user"
    assert "hook pass" not in made.stdout
    text = linkhub("inbound", "create", "--account", account.id, "--provider", "arpoone", *db, env=env)
    assert text.returncode == 0 and "shown only now" in text.stdout and f"{PUBLIC}/in/inb_" in text.stdout
    listed = linkhub("inbound", "list", "--json", *db)
    assert [d["provider"] for d in json.loads(listed.stdout)] == ["esputnik", "arpoone"]
    table = linkhub("inbound", "list", *db).stdout
    assert created["id"] in table and "hook-user" in table and "inb_" not in table
    shown = json.loads(linkhub("inbound", "show", created["id"], "--json", *db).stdout)
    assert shown["rejects"] == [] and "url" not in shown
    rotated = json.loads(linkhub("inbound", "rotate-token", created["id"], "--json", *db, env=env).stdout)
    assert rotated["url"] != created["url"]
    assert query(db_path, "SELECT count(*) FROM inbound_endpoints WHERE token_sha256 = ?",
                 (__import__("hashlib").sha256(rotated["url"].rsplit("/", 1)[1].encode()).hexdigest(),))[0][0] == 1
    gone = linkhub("inbound", "delete", created["id"], *db)
    assert gone.returncode == 0 and created["id"] in gone.stdout
    again = linkhub("inbound", "show", created["id"], *db)
    assert again.returncode == 1 and again.stderr.strip() == f"Error: no inbound endpoint {created['id']!r}"
    refusals = [linkhub("inbound", "create", "--account", account.id, "--provider", "esputnik",
                        "--basic-auth", "no-colon", *db),
                linkhub("inbound", "create", "--account", "nope", "--provider", "esputnik", *db),
                linkhub("inbound", "create", "--account", account.id, "--provider", "mailchimp", *db)]
    assert [r.returncode for r in refusals] == [2, 1, 2]
    assert all("Traceback" not in r.stderr for r in refusals)
    assert "no account with id 'nope'" in refusals[1].stderr


# -- onward, in another provider's format ------------------------------------------------------------


def test_esputnik_events_reach_a_crm_in_optimizely_format(inbound_app, account, make_sink, db_path):
    sink = make_sink()
    with inbound_app.client() as client:
        create_webhook(client, account, sink.url, format="optimizely")
        endpoint = create_endpoint(client, account, "esputnik")
        answer = post(client, endpoint, ESPUTNIK_ALL_STATUSES)
        assert answer.json()["accepted"] == 8
        # Optimizely has no delivered, undelivered or subscription_changed: 4 of the 8 go out.
        delivered = sink.wait_events(4)
    by_type = {e["type"]: e for e in delivered}
    assert sorted(by_type) == ["click", "open", "spamcomplaint", "unsubscribe"]
    click = by_type["click"]
    assert click["id"] == "esputnik:d08d1e15-ea92-4d5c-8dc9-6f750250a6ff:CLICKED:2018-05-15T04:45:04.000Z"
    assert (click["link"], click["mailId"], click["recipientId"], click["created"]) == (
        "https://test.ua/promo/", "1242672", "1258810400", 1526359504000)
    assert click["mediaTypesToAddresses"] == {"EMAIL": "test@gmail.com"}
    assert click["clientId"] == account.id and click["linkhubVerdict"] == "unknown"
    assert by_type["spamcomplaint"]["mediaTypesToAddresses"] == {"EMAIL": "test@mail.ru"}
    wait_until(lambda: query(db_path, "SELECT count(*) FROM outbox WHERE state = 'delivered'")[0][0] == 4,
               what="the deliveries recorded")


# -- erasure ------------------------------------------------------------------------------------------


def test_erasure_deletes_the_rejects_that_name_the_person(inbound_app, account, db_path):
    with inbound_app.client() as client:
        endpoint = create_endpoint(client, account, "esputnik")
        body = [{"iid": "1", "email": "Ann@Example.com", "activityStatus": "MAYBE",
                 "activityDateTime": "2026-01-01T00:00:00"},
                {"iid": "2", "contactId": 77, "activityStatus": "READ"},
                {"iid": "3", "note": "write to ann@example.com", "activityStatus": "?"},
                {"iid": "4", "email": "bob@example.com", "activityStatus": "?"},
                {"iid": "5", "email": "ann@example.com", "contactId": 77, "activityStatus": "READ",
                 "activityDateTime": "2026-01-01T00:00:00"}]
        assert client.post(path_of(endpoint), json=body).json() == {"accepted": 1, "duplicates": 0, "rejected": 4}
        erased = client.delete("/v1/recipients", params={"email": "ann@example.com"}, headers=bearer(account))
    assert erased.status_code == 200, erased.text
    removed = erased.json()["removed"]
    # 1 (its email), 2 (contactId 77, found as ann's id through her event), 3 (the address in its text).
    assert (removed["events"], removed["inbound_rejects"]) == (1, 3)
    left = query(db_path, "SELECT item FROM inbound_rejects")
    assert [json.loads(row[0])["iid"] for row in left] == ["4"]
    assert query(db_path, "SELECT inbound_rejects FROM erasures")[0][0] == 3


def test_a_full_arpoone_batch_of_1000_items_is_taken_in_one_request(inbound_app, account, db_path):
    template = json.loads(ARPOONE_ALL_TYPES)[1]  # a click
    body = [{**template, "MessageId": f"00000000-0000-4000-8000-{i:012d}", "Time": 1764587460000 + i}
            for i in range(1000)]
    raw = json.dumps(body).encode()
    assert len(raw) > 256 * 1024  # decoded off the event loop
    with inbound_app.client() as client:
        endpoint = create_endpoint(client, account, "arpoone")
        answer = post(client, endpoint, raw)
        head = client.head(path_of(endpoint))
    assert (answer.status_code, answer.json()) == (200, {"accepted": 1000, "duplicates": 0, "rejected": 0})
    assert query(db_path, "SELECT count(*), count(DISTINCT message_id) FROM events WHERE type = 'click'")[0][:] == (
        1000, 1000)
    assert head.status_code == 200 and head.content == b""


def test_basic_credentials_may_be_any_text_but_a_colon_in_the_user(inbound_app, account):
    with inbound_app.client() as client:
        endpoint = create_endpoint(client, account, "optimizely",
                                   basic_auth={"username": "Jürgen ☃", "password": "pässwörd: with colon"})
        right = post(client, endpoint, OPTIMIZELY_SENT, authorization=basic("Jürgen ☃", "pässwörd: with colon"))
        wrong = post(client, endpoint, OPTIMIZELY_SENT, authorization=basic("Jurgen", "pässwörd: with colon"))
    assert (right.status_code, wrong.status_code) == (200, 401)


def test_a_real_server_takes_arpoone_events_onward_in_esputnik_format_and_never_logs_the_token(
        make_server, make_sink, db_path):
    server = make_server("--access-log", "--allow-private-targets")
    account = create_account(db_path)
    made = linkhub("inbound", "create", "--account", account.id, "--provider", "arpoone", "--json",
                   "--db", str(db_path), env={"LINKHUB_PUBLIC_URL": server.url})
    assert made.returncode == 0, made.stderr
    url = json.loads(made.stdout)["url"]
    token = url.rsplit("/", 1)[1]
    sink = make_sink()
    with server.client() as client:
        create_webhook(client, account, sink.url, format="esputnik")
        assert client.get(url).status_code == 200
        assert client.post(url[:-4] + "xxxx", content=ARPOONE_ALL_TYPES).status_code == 401
        answer = client.post(url, content=ARPOONE_ALL_TYPES, headers={"content-type": "application/json"})
        assert (answer.status_code, answer.json()) == (200, {"accepted": 5, "duplicates": 0, "rejected": 0})
        delivered = sink.wait_events(5)
    assert server.stop() == 0
    assert [e["activityStatus"] for e in delivered] == ["READ", "CLICKED", "UNDELIVERED", "UNSUBSCRIBED", "SPAM"]
    bounce = delivered[2]
    assert (bounce["email"], bounce["hardBounce"], bounce["activityDateTime"]) == (
        "rui@example.net", True, "2025-12-01T11:11:40")
    assert bounce["statusDescription"].startswith("550 5.1.1")
    requests = [line.split(" linkhub.access: ", 1)[1] for line in server.output.splitlines()
                if " linkhub.access: " in line]
    assert any(r.startswith("POST /in/* 200 ") for r in requests), requests
    assert any(r.startswith("POST /in/* 401 ") for r in requests), requests
    assert token not in server.output and token[:-4] not in server.output
