"""/v1/webhooks in-process, against real local receivers."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from linkhub.settings import Settings
from linkhub.store import connect
from linkhub.store.schema import migrate

import pgserver
from conftest import ON_POSTGRESQL, create_account, linkhub, query
from inprocess import InProcess
from sink import Answer

# A public address literal: accepted without a DNS lookup, and never contacted (no verify).
PUBLIC_URL = "http://93.184.215.14/hook"


def bearer(account: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.api_key}"}


def create(client: Any, account: Any, **body: Any) -> dict[str, Any]:
    answer = client.post("/v1/webhooks", json=body, headers=bearer(account))
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.fixture
def api(make_app: Any, account: Any) -> Any:
    """(client, account) on an app that lets webhooks reach 127.0.0.1 receivers."""
    app = make_app(allow_private_targets=True)
    with app.client() as client:
        yield client, account


@pytest.fixture(scope="module")
def shared(tmp_path_factory: Any, request: pytest.FixtureRequest) -> Any:
    """One app for the many read-only validation cases, as a user's server sees many requests."""
    if ON_POSTGRESQL:  # a database of the module's own, made from the migrated template
        with pgserver.copy_of(request.getfixturevalue("postgresql_server"), request.getfixturevalue("migrated")) as url:
            yield from _shared(url)
        return
    path = tmp_path_factory.mktemp("webhooks") / "linkhub.db"
    conn = connect(path)
    migrate(conn)
    conn.close()
    yield from _shared(path)


def _shared(path: Path | str) -> Any:
    account = create_account(path)
    app = InProcess(Settings(db=path))  # private targets refused: SSRF cases run here too
    with app.client() as client:
        yield client, account, path
    assert app.stop() == 0


# -- CRUD ----------------------------------------------------------------------------------------


def test_create_list_show_patch_delete(api: Any, db_path: Path) -> None:
    client, account = api
    made = create(client, account, url="https://example.com/hook")
    assert made["id"].startswith("wh_")
    assert made["secret"].startswith("whsec_")
    assert len(base64.b64decode(made["secret"].removeprefix("whsec_"))) == 32
    assert {k: made[k] for k in ("url", "types", "format", "auth", "batch_size", "retry", "max_age_s",
                                 "timeout_s", "ordered", "description", "status", "status_reason")} == {
        "url": "https://example.com/hook", "types": [], "format": "linkhub", "auth": {"type": "none"},
        "batch_size": 100, "retry": {"policy": "exponential"}, "max_age_s": 259200, "timeout_s": 10,
        "ordered": True,
        "description": None, "status": "inactive", "status_reason": None,
    }

    listed = client.get("/v1/webhooks", headers=bearer(account)).json()["webhooks"]
    assert [w["id"] for w in listed] == [made["id"]]
    shown = client.get(f"/v1/webhooks/{made['id']}", headers=bearer(account))
    assert shown.status_code == 200
    assert "secret" not in shown.json() and "secret" not in listed[0]

    patched = client.patch(f"/v1/webhooks/{made['id']}", headers=bearer(account), json={
        "batch_size": 10, "retry": {"policy": "fixed", "interval_s": 10}, "types": ["open", "click", "open"],
        "format": "optimizely", "description": "CRM", "ordered": False, "max_age_s": 60, "timeout_s": 30,
    })
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["batch_size"] == 10 and body["retry"] == {"policy": "fixed", "interval_s": 10}
    assert body["types"] == ["open", "click"]  # canonical order, no duplicates
    assert (body["format"], body["description"], body["ordered"], body["max_age_s"]) == ("optimizely", "CRM", False, 60)
    assert body["timeout_s"] == 30
    assert body["url"] == "https://example.com/hook"  # untouched fields stay
    assert client.get(f"/v1/webhooks/{made['id']}", headers=bearer(account)).json() == body

    cleared = client.patch(f"/v1/webhooks/{made['id']}", headers=bearer(account),
                           json={"types": None, "description": None}).json()
    assert cleared["types"] == [] and cleared["description"] is None

    deleted = client.delete(f"/v1/webhooks/{made['id']}", headers=bearer(account))
    assert deleted.status_code == 200
    assert deleted.json() == {"id": made["id"], "deleted": True, "dropped": {"pending": 0, "dead": 0}}
    assert client.get(f"/v1/webhooks/{made['id']}", headers=bearer(account)).status_code == 404
    assert query(db_path, "SELECT count(*) FROM webhooks")[0][0] == 0


def test_delete_active_is_409_saying_why_then_cascades(api: Any, db_path: Path, make_receiver: Any) -> None:
    client, account = api
    receiver = make_receiver()
    made = create(client, account, url=receiver.url, active=True)
    assert made["status"] == "active"
    assert client.post(f"/v1/webhooks/{made['id']}/verify", headers=bearer(account)).json()["ok"]

    refused = client.delete(f"/v1/webhooks/{made['id']}", headers=bearer(account))
    assert refused.status_code == 409
    assert refused.json()["error"] == "webhook_active"
    assert "deactivate" in refused.json()["message"]

    deactivated = client.post(f"/v1/webhooks/{made['id']}/deactivate", headers=bearer(account))
    assert deactivated.status_code == 200 and deactivated.json()["status"] == "inactive"
    assert query(db_path, "SELECT count(*) FROM deliveries")[0][0] == 1
    assert client.delete(f"/v1/webhooks/{made['id']}", headers=bearer(account)).status_code == 200
    assert query(db_path, "SELECT count(*) FROM deliveries")[0][0] == 0  # ON DELETE CASCADE


def test_delete_with_pending_or_dead_deliveries_is_409_unless_forced(shared: Any) -> None:
    client, account, path = shared
    made = create(client, account, url=PUBLIC_URL)  # inactive: nothing is ever sent to it
    answer = client.post("/v1/events", headers=bearer(account), json=[
        {"id": f"drop-{i}", "type": "open", "occurred_at": "2026-11-23T09:15:02Z", "email": "ann@example.com"}
        for i in range(3)])
    assert answer.status_code == 202, answer.text
    replay = linkhub("outbox", "replay", "--webhook", made["id"], "--db", str(path))
    assert replay.returncode == 0, replay.stderr
    conn = connect(path)  # one of them expired (a statement is its own transaction)
    conn.execute("UPDATE outbox SET state = 'dead' WHERE id = (SELECT min(id) FROM outbox WHERE webhook_id = ?)",
                 (made["id"],))
    conn.close()
    queued = query(path, "SELECT count(*) FROM outbox WHERE webhook_id = ?", (made["id"],))[0][0]
    assert queued >= 3  # the shared account's earlier events are replayed too

    refused = client.delete(f"/v1/webhooks/{made['id']}", headers=bearer(account))
    assert refused.status_code == 409
    body = refused.json()
    assert (body["error"], body["pending"], body["dead"]) == ("webhook_has_queue", queued - 1, 1)
    assert "force=true" in body["message"]
    for bad in ("yes", "2", ""):
        invalid = client.delete(f"/v1/webhooks/{made['id']}?force={bad}", headers=bearer(account))
        assert invalid.status_code == 422 and invalid.json()["field"] == "force", bad
    assert client.delete(f"/v1/webhooks/{made['id']}?force=false", headers=bearer(account)).status_code == 409
    assert query(path, "SELECT count(*) FROM outbox WHERE webhook_id = ?", (made["id"],))[0][0] == queued

    forced = client.delete(f"/v1/webhooks/{made['id']}?force=true", headers=bearer(account))
    assert forced.status_code == 200
    assert forced.json() == {"id": made["id"], "deleted": True, "dropped": {"pending": queued - 1, "dead": 1}}
    assert query(path, "SELECT count(*) FROM outbox WHERE webhook_id = ?", (made["id"],))[0][0] == 0
    assert client.get(f"/v1/webhooks/{made['id']}", headers=bearer(account)).status_code == 404


def test_target_refused_says_which_server_setting_lifts_it(shared: Any) -> None:
    client, account, _ = shared
    answer = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:1/"}, headers=bearer(account))
    assert answer.status_code == 422 and answer.json()["error"] == "target_refused"
    assert "LINKHUB_ALLOW_PRIVATE_TARGETS=1" in answer.json()["message"]


def test_activate_and_deactivate(api: Any) -> None:
    client, account = api
    made = create(client, account, url=PUBLIC_URL)
    path = f"/v1/webhooks/{made['id']}"
    assert client.post(f"{path}/activate", headers=bearer(account)).json()["status"] == "active"
    assert client.post(f"{path}/activate", headers=bearer(account)).json()["status"] == "active"  # idempotent
    assert client.get(path, headers=bearer(account)).json()["status"] == "active"
    assert client.post(f"{path}/deactivate", headers=bearer(account)).json()["status"] == "inactive"


# -- validation ----------------------------------------------------------------------------------

OK = {"url": "https://example.com/hook"}

INVALID_CREATE = [
    ({}, "url"),
    ({"url": "ftp://example.com/x"}, "url"),
    ({"url": "http://"}, "url"),
    ({"url": "example.com/hook"}, "url"),
    ({"url": "https://user:pw@example.com/hook"}, "url"),
    ({"url": "https://example.com:99999/"}, "url"),
    ({"url": 5}, "url"),
    ({**OK, "types": ["open", "nope"]}, "types[1]"),
    ({**OK, "types": "open"}, "types"),
    ({**OK, "format": "xml"}, "format"),
    ({**OK, "format": "arpoone", "types": ["sent", "delivered"]}, "types"),
    ({**OK, "auth": {"type": "digest"}}, "auth.type"),
    ({**OK, "auth": {"username": "u"}}, "auth.type"),
    ({**OK, "auth": {"type": "basic", "username": "u"}}, "auth.password"),
    ({**OK, "auth": {"type": "basic", "username": "a:b", "password": "p"}}, "auth.username"),
    ({**OK, "auth": {"type": "bearer", "token": ""}}, "auth.token"),
    ({**OK, "auth": {"type": "bearer", "token": "t", "extra": 1}}, "auth.extra"),
    ({**OK, "auth": {"type": "header", "name": "Content-Type", "value": "v"}}, "auth.name"),
    ({**OK, "auth": {"type": "header", "name": "webhook-signature", "value": "v"}}, "auth.name"),
    ({**OK, "auth": {"type": "header", "name": "HOST", "value": "v"}}, "auth.name"),
    ({**OK, "auth": {"type": "header", "name": "User-Agent", "value": "v"}}, "auth.name"),
    ({**OK, "auth": {"type": "header", "name": "Content-Length", "value": "1"}}, "auth.name"),
    ({**OK, "auth": {"type": "header", "name": "Bad Name", "value": "v"}}, "auth.name"),
    ({**OK, "auth": {"type": "header", "name": "X-Key", "value": "a\r\nX-Evil: 1"}}, "auth.value"),
    ({**OK, "batch_size": 0}, "batch_size"),
    ({**OK, "batch_size": 1001}, "batch_size"),
    ({**OK, "batch_size": "10"}, "batch_size"),
    ({**OK, "retry": {"policy": "linear"}}, "retry.policy"),
    ({**OK, "retry": {"policy": "fixed"}}, "retry.interval_s"),
    ({**OK, "retry": {"policy": "fixed", "interval_s": 0}}, "retry.interval_s"),
    ({**OK, "retry": {"policy": "fixed", "interval_s": 86_401}}, "retry.interval_s"),
    ({**OK, "retry": {"policy": "fixed", "interval_s": 2**63}}, "retry.interval_s"),  # past SQLite's INTEGER
    ({**OK, "max_age_s": 0}, "max_age_s"),
    ({**OK, "max_age_s": 315_360_001}, "max_age_s"),
    ({**OK, "max_age_s": 2**63 - 1}, "max_age_s"),  # fits SQLite, but not a date: it broke every delivery
    ({**OK, "max_age_s": 2**64}, "max_age_s"),
    ({**OK, "timeout_s": 0}, "timeout_s"),
    ({**OK, "timeout_s": 61}, "timeout_s"),
    ({**OK, "ordered": "yes"}, "ordered"),
    ({**OK, "active": 1}, "active"),
    ({**OK, "description": "x" * 1001}, "description"),
    ({**OK, "colour": "blue"}, "colour"),
    ({**OK, "verdicts": []}, "verdicts"),  # not "all": a webhook that takes clicks and never gets one
    ({**OK, "verdicts": None}, "verdicts"),
    ({**OK, "verdicts": "human"}, "verdicts"),
    ({**OK, "verdicts": ["human", "person"]}, "verdicts[1]"),
    ({**OK, "verdicts": ["Human"]}, "verdicts[0]"),
    ({**OK, "verdicts": ["human", "unknown", "human"]}, "verdicts[2]"),
    ({**OK, "verdicts": [1]}, "verdicts[0]"),
    ({**OK, "wait_for_verdict": "yes"}, "wait_for_verdict"),
    ({**OK, "wait_for_verdict": 1}, "wait_for_verdict"),
]


@pytest.mark.parametrize(("body", "field"), INVALID_CREATE)
def test_invalid_create_is_422_naming_the_field(shared: Any, body: dict[str, Any], field: str) -> None:
    client, account, path = shared
    answer = client.post("/v1/webhooks", json=body, headers=bearer(account))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_webhook"
    assert answer.json()["field"] == field, answer.json()
    assert query(path, "SELECT count(*) FROM webhooks")[0][0] == 0


INVALID_HOSTS = [
    "http://a..b/",
    "http://.example.com/",
    "http://" + "a" * 64 + ".example.com/",  # a label of 64 characters
    "http://" + ".".join(["a" * 60] * 5) + "/",  # 304 characters in all
    "http://ex\u00adample.com/",  # soft hyphen: invisible, dropped by IDNA mapping
    "http://exa\u0085mple.com/",  # C1 control
    "http://exa\u009fmple.com/",
    "http://a\u200db.example/",  # zero-width joiner
    "http://\u202eevil.example/",  # right-to-left override
    "http://\u2603.example/",  # a snowman: not valid IDNA
    "http://\ufffe.example/",  # a noncharacter
    "http://xn--zz.example/",  # not a valid A-label
    "http://ex%41mple.com/",  # percent-encoding in the host
    "http://ex%zzample.com/",
    "http://-bad.example/",
    "http://a*b.example/",
    "http://127.1/",  # numeric but not dotted-decimal: an IPv4 address to some parsers
    "http://[fe80::1%25eth0]/",
]


@pytest.mark.parametrize("url", INVALID_HOSTS)
def test_an_invalid_host_is_422_at_create(shared: Any, url: str) -> None:
    client, account, path = shared
    answer = client.post("/v1/webhooks", json={"url": url}, headers=bearer(account))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_webhook" and answer.json()["field"] == "url", answer.json()
    assert "\n" not in answer.json()["message"]
    assert query(path, "SELECT count(*) FROM webhooks")[0][0] == 0


def test_an_invalid_host_is_422_at_update_and_changes_nothing(shared: Any) -> None:
    client, account, _ = shared
    made = create(client, account, url=PUBLIC_URL)
    try:
        for url in INVALID_HOSTS:
            answer = client.patch(f"/v1/webhooks/{made['id']}", json={"url": url}, headers=bearer(account))
            assert answer.status_code == 422, (url, answer.text)
            assert answer.json()["error"] == "invalid_webhook" and answer.json()["field"] == "url"
        assert client.get(f"/v1/webhooks/{made['id']}", headers=bearer(account)).json()["url"] == PUBLIC_URL
    finally:
        assert client.delete(f"/v1/webhooks/{made['id']}", headers=bearer(account)).status_code == 200


@pytest.mark.parametrize(("url", "stored"), [
    ("http://bücher.example/hook?x=ü", "http://xn--bcher-kva.example/hook?x=ü"),  # the host as it is contacted
    ("https://BÜCHER.example:8443/", "https://xn--bcher-kva.example:8443/"),
    ("https://Example.COM/Hook", "https://Example.COM/Hook"),  # an ASCII host is kept as given
    ("https://xn--bcher-kva.example/", "https://xn--bcher-kva.example/"),
    ("http://my_host.example./", "http://my_host.example./"),
    ("http://93.184.215.14:8080/", "http://93.184.215.14:8080/"),
    ("http://[2001:db8::1]/hook", "http://[2001:db8::1]/hook"),
])
def test_valid_hosts_are_accepted_and_an_idn_is_stored_in_ascii(api: Any, url: str, stored: str) -> None:
    client, account = api  # private targets allowed: no name is resolved
    assert create(client, account, url=url)["url"] == stored


def test_malformed_json_is_400(shared: Any) -> None:
    client, account, _ = shared
    answer = client.post("/v1/webhooks", content=b'{"url": ', headers=bearer(account))
    assert answer.status_code == 400
    assert answer.json()["error"] == "malformed_json"


def test_authorization_header_auth_and_edge_values_are_allowed(api: Any) -> None:
    client, account = api
    made = create(client, account, url=PUBLIC_URL, batch_size=1000, max_age_s=1,
                  retry={"policy": "fixed", "interval_s": 1},
                  auth={"type": "header", "name": "Authorization", "value": "ApiKey k"})
    assert made["auth"] == {"type": "header", "name": "Authorization"}
    assert made["batch_size"] == 1000


@pytest.mark.parametrize(("body", "field"), [
    ({"batch_size": 0}, "batch_size"),
    ({"max_age_s": 2**64}, "max_age_s"),
    ({"retry": {"policy": "fixed", "interval_s": 2**63}}, "retry.interval_s"),
    ({"url": "gopher://x/"}, "url"),
    ({"format": "arpoone"}, "types"),  # the webhook's types (sent) are not expressible in arpoone
    ({"active": True}, "active"),  # status changes through /activate and /deactivate
    ({"secret": "whsec_x"}, "secret"),
    ({"verdicts": []}, "verdicts"),
    ({"verdicts": ["scanner", "robot"]}, "verdicts[1]"),
    ({"verdicts": ["bot", "bot"], "wait_for_verdict": True}, "verdicts[1]"),  # nothing of the body is applied
    ({"wait_for_verdict": None}, "wait_for_verdict"),
])
def test_invalid_patch_is_422_and_changes_nothing(api: Any, body: dict[str, Any], field: str) -> None:
    client, account = api
    made = create(client, account, url=PUBLIC_URL, types=["sent"])
    answer = client.patch(f"/v1/webhooks/{made['id']}", json=body, headers=bearer(account))
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    after = client.get(f"/v1/webhooks/{made['id']}", headers=bearer(account)).json()
    assert after == {k: v for k, v in made.items() if k != "secret"}


# Every credential below holds this marker, which no answer may echo.
MARK = "Zq9x"


@pytest.mark.parametrize(("auth", "field"), [
    ({"type": "bearer", "token": f"{MARK}s3cr\u00e9t"}, "auth.token"),  # non-ASCII
    ({"type": "bearer", "token": f"{MARK}\u0085"}, "auth.token"),  # C1 control
    ({"type": "bearer", "token": f"{MARK}\tmore"}, "auth.token"),
    ({"type": "bearer", "token": f" {MARK}"}, "auth.token"),  # the space would be stripped on the way
    ({"type": "bearer", "token": f"{MARK} "}, "auth.token"),
    ({"type": "basic", "username": f"{MARK}\u00e9", "password": "p"}, "auth.username"),
    ({"type": "basic", "username": "user", "password": f"{MARK}\u00e9"}, "auth.password"),
    ({"type": "basic", "username": "user", "password": f"{MARK}\r\nX-Evil: 1"}, "auth.password"),
    ({"type": "header", "name": "X-Key", "value": f"{MARK}\u00e9"}, "auth.value"),
    ({"type": "header", "name": "X-Key", "value": f"{MARK}\n"}, "auth.value"),
    ({"type": "header", "name": "X-Key", "value": f" {MARK}"}, "auth.value"),
    ({"type": "header", "name": "X-K\u00e9y", "value": MARK}, "auth.name"),
])
def test_credentials_that_cannot_be_sent_in_a_header_are_422_without_echo(shared: Any, auth: dict[str, str],
                                                                          field: str) -> None:
    client, account, path = shared
    answer = client.post("/v1/webhooks", json={"url": PUBLIC_URL, "auth": auth}, headers=bearer(account))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_webhook" and answer.json()["field"] == field
    assert MARK not in answer.text
    assert query(path, "SELECT count(*) FROM webhooks")[0][0] == 0
    made = create(client, account, url=PUBLIC_URL)
    try:
        patched = client.patch(f"/v1/webhooks/{made['id']}", json={"auth": auth}, headers=bearer(account))
        assert patched.status_code == 422 and patched.json()["field"] == field
        assert MARK not in patched.text
        assert client.get(f"/v1/webhooks/{made['id']}", headers=bearer(account)).json()["auth"] == {"type": "none"}
    finally:
        assert client.delete(f"/v1/webhooks/{made['id']}", headers=bearer(account)).status_code == 200


def test_basic_credentials_may_have_spaces_at_their_ends(api: Any) -> None:
    # They travel base64-encoded, so nothing strips them.
    client, account = api
    made = create(client, account, url=PUBLIC_URL, auth={"type": "basic", "username": " crm", "password": "pw "})
    assert made["auth"] == {"type": "basic", "username": " crm"}


# -- verify --------------------------------------------------------------------------------------


def test_verify_sends_a_signed_batch_of_test_events(api: Any, db_path: Path, make_receiver: Any) -> None:
    client, account = api
    receiver = make_receiver(body=b"thanks")
    made = create(client, account, url=receiver.url, types=["open", "click"])
    answer = client.post(f"/v1/webhooks/{made['id']}/verify", headers=bearer(account))
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["ok"] is True and result["status_code"] == 200 and result["error"] is None
    assert result["body"] == "thanks"
    assert isinstance(result["latency_ms"], int) and result["latency_ms"] >= 0

    [request] = receiver.wait_for(1)
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("linkhub/")
    events = standardwebhooks.Webhook(made["secret"]).verify(request.body, request.headers)
    assert isinstance(events, list)
    assert [e["type"] for e in events] == ["open", "click"]
    assert all(e["test"] is True and e["attempt"] == 1 for e in events)

    # Nothing stored as an event; the attempt is in the delivery log, marked as a test.
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == 0
    [logged] = client.get(f"/v1/webhooks/{made['id']}/deliveries", headers=bearer(account)).json()["deliveries"]
    assert logged["test"] is True and logged["events"] == 2 and logged["status_code"] == 200
    assert logged["error"] is None and logged["message_id"] == request.headers["webhook-id"]
    assert {"attempted_at", "duration_ms"} <= logged.keys()


@pytest.mark.parametrize("fmt", ["linkhub", "optimizely", "esputnik", "arpoone"])
def test_verify_in_each_format(api: Any, make_receiver: Any, fmt: str) -> None:
    client, account = api
    receiver = make_receiver()
    made = create(client, account, url=receiver.url, format=fmt)
    assert client.post(f"/v1/webhooks/{made['id']}/verify", headers=bearer(account)).json()["ok"]
    events = standardwebhooks.Webhook(made["secret"]).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert len(events) >= 5 and all(e["attempt"] == 1 for e in events)


def test_verify_reports_a_failing_receiver(api: Any, make_receiver: Any) -> None:
    client, account = api
    receiver = make_receiver(status=500, body=b"x" * 5000)
    made = create(client, account, url=receiver.url)
    result = client.post(f"/v1/webhooks/{made['id']}/verify", headers=bearer(account)).json()
    assert result["ok"] is False and result["status_code"] == 500
    assert result["body"] == "x" * 1024  # the first 1 KiB only
    assert "500" in result["error"]
    [logged] = client.get(f"/v1/webhooks/{made['id']}/deliveries", headers=bearer(account)).json()["deliveries"]
    assert logged["status_code"] == 500 and logged["error"]


def test_verify_reports_a_refused_connection(api: Any, make_receiver: Any) -> None:
    client, account = api
    receiver = make_receiver()
    url = receiver.url
    receiver.stop()
    made = create(client, account, url=url)
    result = client.post(f"/v1/webhooks/{made['id']}/verify", headers=bearer(account)).json()
    assert result["ok"] is False and result["status_code"] is None and result["error"]


def test_create_with_verify_refused_when_receiver_fails(api: Any, db_path: Path, make_receiver: Any) -> None:
    client, account = api
    receiver = make_receiver(status=500, body=b"boom: not ready")
    answer = client.post("/v1/webhooks", json={"url": receiver.url, "verify": True}, headers=bearer(account))
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "verify_failed"
    assert "500" in body["message"] and "boom: not ready" in body["message"]
    assert body["verify"]["status_code"] == 500 and body["verify"]["body"] == "boom: not ready"
    assert len(receiver.requests) == 1
    assert query(db_path, "SELECT count(*) FROM webhooks")[0][0] == 0  # nothing stored


def test_create_with_verify_signs_with_the_stored_secret(api: Any, make_receiver: Any) -> None:
    client, account = api
    receiver = make_receiver()
    made = create(client, account, url=receiver.url, verify=True, active=True)
    assert made["verify"]["ok"] is True and made["status"] == "active"
    standardwebhooks.Webhook(made["secret"]).verify(receiver.requests[0].body, receiver.requests[0].headers)
    [logged] = client.get(f"/v1/webhooks/{made['id']}/deliveries", headers=bearer(account)).json()["deliveries"]
    assert logged["test"] is True


def test_create_without_verify_never_contacts_the_receiver(api: Any, make_receiver: Any) -> None:
    client, account = api
    receiver = make_receiver()
    made = create(client, account, url=receiver.url, active=True)
    client.post(f"/v1/webhooks/{made['id']}/activate", headers=bearer(account))
    assert receiver.requests == []


def test_activate_with_verify(api: Any, make_receiver: Any) -> None:
    client, account = api
    receiver = make_receiver(status=503, body=b"maintenance")
    made = create(client, account, url=receiver.url)
    path = f"/v1/webhooks/{made['id']}"

    refused = client.post(f"{path}/activate?verify=true", headers=bearer(account))
    assert refused.status_code == 422
    assert refused.json()["error"] == "verify_failed" and "maintenance" in refused.json()["message"]
    assert client.get(path, headers=bearer(account)).json()["status"] == "inactive"

    receiver.default = Answer(204)
    receiver.body = b""
    activated = client.post(f"{path}/activate?verify=true", headers=bearer(account))
    assert activated.status_code == 200, activated.text
    assert activated.json()["status"] == "active" and activated.json()["verify"]["status_code"] == 204
    assert len(receiver.requests) == 2
    logged = client.get(f"{path}/deliveries", headers=bearer(account)).json()["deliveries"]
    assert [d["status_code"] for d in logged] == [204, 503]  # newest first

    assert client.post(f"{path}/activate?verify=perhaps", headers=bearer(account)).status_code == 422


def test_deliveries_limit(api: Any, make_receiver: Any) -> None:
    client, account = api
    receiver = make_receiver()
    made = create(client, account, url=receiver.url)
    path = f"/v1/webhooks/{made['id']}"
    for _ in range(3):
        client.post(f"{path}/verify", headers=bearer(account))
    assert len(client.get(f"{path}/deliveries", headers=bearer(account)).json()["deliveries"]) == 3
    [newest] = client.get(f"{path}/deliveries?limit=1", headers=bearer(account)).json()["deliveries"]
    assert newest["message_id"] == receiver.requests[-1].headers["webhook-id"]
    for bad in ("0", "-1", "x", "100000"):
        answer = client.get(f"{path}/deliveries?limit={bad}", headers=bearer(account))
        assert answer.status_code == 422 and answer.json()["field"] == "limit"


# -- auth connectors -----------------------------------------------------------------------------


@pytest.mark.parametrize(("auth", "header", "expected"), [
    ({"type": "basic", "username": "crm", "password": "s3cret-pw"},
     "authorization", "Basic " + base64.b64encode(b"crm:s3cret-pw").decode()),
    ({"type": "bearer", "token": "tok-123"}, "authorization", "Bearer tok-123"),
    ({"type": "header", "name": "X-Api-Key", "value": "key-456"}, "x-api-key", "key-456"),
    ({"type": "header", "name": "Authorization", "value": "ApiKey key-789"}, "authorization", "ApiKey key-789"),
])
def test_each_auth_connector_reaches_the_receiver(api: Any, make_receiver: Any, auth: dict[str, str],
                                                  header: str, expected: str) -> None:
    client, account = api
    receiver = make_receiver()
    made = create(client, account, url=receiver.url, auth=auth)
    assert client.post(f"/v1/webhooks/{made['id']}/verify", headers=bearer(account)).json()["ok"]
    assert receiver.requests[0].headers[header] == expected


# -- secrets -------------------------------------------------------------------------------------


def test_secrets_and_credentials_are_never_shown_again_nor_logged(make_app: Any, account: Any,
                                                                   make_receiver: Any) -> None:
    app = make_app(allow_private_targets=True)
    receiver = make_receiver()
    hidden = ["pw-SECRET-1", "tok-SECRET-2", "val-SECRET-3"]
    with app.client() as client:
        basic = create(client, account, url=receiver.url,
                       auth={"type": "basic", "username": "u", "password": hidden[0]})
        bearer_hook = create(client, account, url=receiver.url, auth={"type": "bearer", "token": hidden[1]})
        header = create(client, account, url=receiver.url, auth={"type": "header", "name": "X-K", "value": hidden[2]})
        assert basic["auth"] == {"type": "basic", "username": "u"}
        assert bearer_hook["auth"] == {"type": "bearer"}
        assert header["auth"] == {"type": "header", "name": "X-K"}
        secrets = [basic["secret"], bearer_hook["secret"], header["secret"]]
        rotated = client.post(f"/v1/webhooks/{basic['id']}/rotate-secret", headers=bearer(account)).json()["secret"]
        answers = [client.get("/v1/webhooks", headers=bearer(account)).text]
        for made in (basic, bearer_hook, header):
            path = f"/v1/webhooks/{made['id']}"
            answers += [
                client.get(path, headers=bearer(account)).text,
                client.patch(path, json={"description": "d"}, headers=bearer(account)).text,
                client.post(f"{path}/verify", headers=bearer(account)).text,
                client.post(f"{path}/activate?verify=true", headers=bearer(account)).text,
                client.post(f"{path}/deactivate", headers=bearer(account)).text,
                client.get(f"{path}/deliveries", headers=bearer(account)).text,
            ]
        app.stop()
    for text in [*answers, app.output]:
        for value in [*hidden, *secrets, rotated]:
            assert value not in text


def _verifies(secret: str, request: Any) -> bool:
    try:
        standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    except standardwebhooks.webhooks.WebhookVerificationError:
        return False
    return True


def test_a_rotated_secret_signs_beside_the_old_one_for_a_day(api: Any, make_receiver: Any) -> None:
    client, account = api
    receiver = make_receiver()
    made = create(client, account, url=receiver.url)
    path = f"/v1/webhooks/{made['id']}"
    answer = client.post(f"{path}/rotate-secret", headers=bearer(account))
    assert answer.status_code == 200, answer.text
    secret, until = answer.json()["secret"], answer.json()["previous_secret_until"]
    assert answer.json()["id"] == made["id"]
    assert secret.startswith("whsec_") and secret != made["secret"]
    day_later = datetime.now(UTC) + timedelta(days=1)
    assert abs(datetime.fromisoformat(until) - day_later) < timedelta(minutes=1)
    shown = client.get(path, headers=bearer(account)).json()
    assert shown["previous_secret_until"] == until and "secret" not in shown and "previous_secret" not in shown

    client.post(f"{path}/verify", headers=bearer(account))
    request = receiver.wait_for(1)[0]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert _verifies(secret, request) and _verifies(made["secret"], request)

    # A second rotation within the day keeps only the secret it replaces.
    third = client.post(f"{path}/rotate-secret", headers=bearer(account)).json()["secret"]
    client.post(f"{path}/verify", headers=bearer(account))
    request = receiver.wait_for(2)[1]
    assert [_verifies(s, request) for s in (third, secret, made["secret"])] == [True, True, False]


def test_rotate_secret_can_expire_the_old_one_at_once(api: Any, make_receiver: Any) -> None:
    client, account = api
    receiver = make_receiver()
    made = create(client, account, url=receiver.url)
    path = f"/v1/webhooks/{made['id']}"
    client.post(f"{path}/rotate-secret", headers=bearer(account))  # the old one would sign for a day…
    answer = client.post(f"{path}/rotate-secret", json={"expire_previous": True}, headers=bearer(account))
    assert answer.status_code == 200, answer.text
    assert answer.json()["previous_secret_until"] is None
    assert client.get(path, headers=bearer(account)).json()["previous_secret_until"] is None
    client.post(f"{path}/verify", headers=bearer(account))
    request = receiver.wait_for(1)[0]
    assert request.headers["webhook-signature"].count("v1,") == 1
    assert _verifies(answer.json()["secret"], request) and not _verifies(made["secret"], request)


def test_the_old_secret_stops_signing_when_its_day_is_over(api: Any, make_receiver: Any, db_path: Path) -> None:
    client, account = api
    receiver = make_receiver()
    made = create(client, account, url=receiver.url)
    path = f"/v1/webhooks/{made['id']}"
    secret = client.post(f"{path}/rotate-secret", headers=bearer(account)).json()["secret"]
    conn = connect(db_path)
    conn.execute("UPDATE webhooks SET previous_secret_until = '2026-01-01T00:00:00.000Z' WHERE id = ?",
                 (made["id"],))
    conn.close()
    client.post(f"{path}/verify", headers=bearer(account))
    request = receiver.wait_for(1)[0]
    assert _verifies(secret, request) and not _verifies(made["secret"], request)


def test_rotate_secret_refuses_a_bad_body(api: Any) -> None:
    client, account = api
    made = create(client, account, url=PUBLIC_URL)
    path = f"/v1/webhooks/{made['id']}"
    for body, status, where in [(b'{"expire_previous": "yes"}', 422, "expire_previous"),
                                (b'{"expire": true}', 422, "expire"),
                                (b'{"expire_previous": tru', 400, "$")]:
        answer = client.post(f"{path}/rotate-secret", content=body,
                             headers={**bearer(account), "Content-Type": "application/json"})
        assert answer.status_code == status, (body, answer.text)
        assert where in (answer.json().get("field") or answer.json().get("path")), (body, answer.text)
    assert client.get(path, headers=bearer(account)).json()["previous_secret_until"] is None  # nothing rotated


# -- account isolation ---------------------------------------------------------------------------

SCOPED = [
    ("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/verify"), ("POST", "/activate"),
    ("POST", "/deactivate"), ("POST", "/rotate-secret"), ("GET", "/deliveries"),
]


def test_another_accounts_webhook_is_404_and_no_key_is_401(api: Any, db_path: Path, make_receiver: Any) -> None:
    client, account = api
    receiver = make_receiver()
    other = create_account(db_path)
    made = create(client, account, url=receiver.url)
    before = client.get(f"/v1/webhooks/{made['id']}", headers=bearer(account)).json()
    assert client.get("/v1/webhooks", headers=bearer(other)).json() == {"webhooks": []}
    for method, suffix in SCOPED:
        path = f"/v1/webhooks/{made['id']}{suffix}"
        kwargs: dict[str, Any] = {"json": {"description": "mine now"}} if method == "PATCH" else {}
        answer = client.request(method, path, headers=bearer(other), **kwargs)
        assert answer.status_code == 404, (method, suffix, answer.text)
        assert client.request(method, path, **kwargs).status_code == 401
        assert client.request(method, path, headers={"Authorization": "Bearer lhk_wrong"}, **kwargs).status_code == 401
        assert client.request(method, path, headers={"Authorization": account.api_key}, **kwargs).status_code == 401
    for method in ("GET", "POST"):
        answer = client.request(method, "/v1/webhooks", json={"url": PUBLIC_URL})
        assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
    assert receiver.requests == []  # the other account's verify/activate never reached it
    assert client.get(f"/v1/webhooks/{made['id']}", headers=bearer(account)).json() == before
    assert client.get("/v1/webhooks/wh_nope", headers=bearer(account)).status_code == 404


# -- SSRF ----------------------------------------------------------------------------------------

PRIVATE_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://localhost:9999/hook",
    "http://[::1]/",
    "http://10.0.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://192.168.1.10/",
    "http://0.0.0.0/",
    "http://[::ffff:127.0.0.1]/",
    "http://[fc00::1]/",
    "http://224.0.0.1/",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_targets_are_refused_at_create(shared: Any, url: str) -> None:
    client, account, path = shared
    answer = client.post("/v1/webhooks", json={"url": url}, headers=bearer(account))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "target_refused" and answer.json()["field"] == "url"
    assert "not a public address" in answer.json()["message"]
    assert query(path, "SELECT count(*) FROM webhooks")[0][0] == 0


def test_private_targets_are_refused_at_update(shared: Any) -> None:
    client, account, _ = shared
    made = create(client, account, url=PUBLIC_URL)
    try:
        for url in ("http://127.0.0.1:1/", "http://169.254.169.254/"):
            answer = client.patch(f"/v1/webhooks/{made['id']}", json={"url": url}, headers=bearer(account))
            assert answer.status_code == 422 and answer.json()["field"] == "url"
        assert client.get(f"/v1/webhooks/{made['id']}", headers=bearer(account)).json()["url"] == PUBLIC_URL
        # Other fields can still change without a URL check.
        assert client.patch(f"/v1/webhooks/{made['id']}", json={"batch_size": 5},
                            headers=bearer(account)).status_code == 200
    finally:
        assert client.delete(f"/v1/webhooks/{made['id']}", headers=bearer(account)).status_code == 200


def test_patch_url_moves_the_webhook(api: Any, make_receiver: Any) -> None:
    client, account = api
    first, second = make_receiver(), make_receiver()
    made = create(client, account, url=first.url)
    moved = client.patch(f"/v1/webhooks/{made['id']}", json={"url": second.url}, headers=bearer(account))
    assert moved.json()["url"] == second.url
    client.post(f"/v1/webhooks/{made['id']}/verify", headers=bearer(account))
    assert first.requests == [] and len(second.requests) == 1


def test_receiver_helper_records_json(make_receiver: Any) -> None:
    # The helper itself: what the other tests rely on.
    import httpx

    receiver = make_receiver(status=202, body=b"{}")
    answer = httpx.post(receiver.url, content=json.dumps([1]).encode(), headers={"X-A": "b"})
    assert answer.status_code == 202
    assert receiver.requests[0].body == b"[1]" and receiver.requests[0].headers["x-a"] == "b"
