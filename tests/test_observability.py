"""Logs and metrics as an operator reads them: stderr of a real `linkhub serve`, and GET /metrics (in-process).

- `--log-format json`: every line is a JSON object with time/level/logger/message first;
- `--log-level`, and the start-up line that is written at every level;
- `--access-log`: no query string, no credential, no forged line;
- expiry to dead: one record per expiry run, with the webhook, the count and the reason;
- /metrics: queue gauges, delivery outcomes, histograms, build info, and every metric it
  exposes is documented in docs/operations.md (and every documented one is exposed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

import linkhub

from conftest import Account, Server, create_account, outreach_body, post_links, sign
from conftest import linkhub as linkhub_cli
from delivery_support import all_in, bearer, create_webhook, events, post_events, wait_until
from inprocess import InProcess
from sink import Answer, closed_port

Served = Server | InProcess

OPERATIONS_MD = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
RFC3339_UTC_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
STABLE_KEYS = ["time", "level", "logger", "message"]


# -- reading /metrics -----------------------------------------------------------------------


def scrape(server: Served) -> dict[str, dict[str, Any]]:
    """/metrics parsed: exposed family name (counters with their `_total`) → type and samples."""
    with server.client() as client:
        answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {}
    for family in text_string_to_metric_families(answer.text):
        name = family.name + "_total" if family.type == "counter" else family.name
        families[name] = {"type": family.type, "samples": family.samples}
    return families


def value(families: dict[str, dict[str, Any]], name: str, **labels: str) -> float:
    """The value of the sample `name{labels}` (a family's own name, or one of a histogram's series)."""
    family = families.get(name) or families[re.sub(r"_(bucket|sum|count)$", "", name)]
    found = [s.value for s in family["samples"] if s.name == name and s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {found} in {family['samples']}"
    return found[0]


def metric_value(server: Served, name: str, **labels: str) -> float:
    return value(scrape(server), name, **labels)


def documented_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """The metrics table of docs/operations.md: name → (type, label names)."""
    rows = re.findall(r"^\| `(linkhub_\w+)` \| (\w+) \|([^|]*)\|", OPERATIONS_MD.read_text(), re.MULTILINE)
    assert rows, "no metrics table in docs/operations.md"
    return {name: (kind, frozenset(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


# -- traffic ----------------------------------------------------------------------------------


def mint_and_click(server: Served, account: Account, target: str) -> str:
    """One Outreach call and one redirect; returns the short link's path."""
    with server.client() as client:
        answer = post_links(client, account, outreach_body([target]))
        assert answer.status_code == 200, answer.text
        path = answer.json()["data"][target][len(server.url):]
        assert client.get(path).status_code == 302
    return path


def json_lines(server: Server) -> list[dict[str, Any]]:
    records = []
    for line in server.output.splitlines():
        record = json.loads(line)  # fails the test on any line that is not JSON
        assert isinstance(record, dict), line
        records.append(record)
    return records


# -- logs -------------------------------------------------------------------------------------


def test_json_log_format_writes_only_json_objects_with_stable_keys(make_server, make_receiver, db_path):
    server = make_server("--log-format", "json", "--allow-private-targets", env={"LINKHUB_ACCESS_LOG": "1"})
    account = create_account(db_path)
    receiver = make_receiver(500)
    with server.client() as client:
        hook = create_webhook(client, account, receiver.url)
        post_events(client, account, events("json-log", 2))
        assert client.get("/no/such/path").status_code == 404
    receiver.wait_for(1)  # a failed delivery: a WARNING of the delivery loop
    mint_and_click(server, account, "https://example.com/json-log")
    assert server.stop() == 0

    records = json_lines(server)
    for record in records:
        assert list(record)[:4] == STABLE_KEYS, record
        assert RFC3339_UTC_MS.fullmatch(record["time"]), record
        assert record["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), record
    ready = [r for r in records if r["logger"] == "linkhub.ready"]
    assert len(ready) == 1 and ready[0]["message"].startswith(f"linkhub: serving on {server.url} ")
    assert ready[0]["url"] == server.url
    loggers = {r["logger"] for r in records}
    # Hypercorn's own messages, the delivery loop's and the access log all go the same way.
    assert {"hypercorn.error", "linkhub.delivery", "linkhub.access"} <= loggers, loggers
    failure = next(r for r in records if r["logger"] == "linkhub.delivery" and r["level"] == "WARNING")
    assert hook["id"] in failure["message"]
    assert any(r["message"] == "database writer drained and closed" for r in records)


def test_text_log_format_has_utc_times(server):
    ready = next(line for line in server.output.splitlines() if "linkhub: serving on" in line)
    time, level, logger, message = ready.split(" ", 3)
    assert RFC3339_UTC_MS.fullmatch(time) and level == "INFO" and logger == "linkhub.ready:", ready
    assert message.startswith(f"linkhub: serving on {server.url} ")


def test_log_level_from_the_environment_leaves_out_info_but_not_the_start_line(make_server):
    server = make_server(env={"LINKHUB_LOG_LEVEL": "warning"})  # start_server waits for the start line
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
    assert server.stop() == 0
    assert "linkhub: serving on" in server.output
    assert " INFO hypercorn.error" not in server.output  # Hypercorn's "Running on …"
    assert "database writer drained and closed" not in server.output  # INFO of linkhub itself
    assert [line for line in server.output.splitlines() if " INFO " in line] == [
        line for line in server.output.splitlines() if "linkhub: serving on" in line]


def test_a_log_option_with_a_bad_value_is_refused_naming_it(db_path):
    for args in (["--log-format", "xml"], ["--log-level", "loud"]):
        run = linkhub_cli("serve", "--db", str(db_path), "--port", "0", *args)  # refused before it would serve
        assert run.returncode == 2, run.stderr
        assert args[0] in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_access_log_never_records_query_strings_or_credentials(make_server, db_path):
    server = make_server("--access-log")
    account = create_account(db_path, secret="outreach-secret-not-for-logs")
    body = json.dumps(outreach_body(["https://example.com/access"])).encode()
    signature = sign(account.secret, body)
    with server.client() as client:
        answer = client.post(f"/outreach/{account.id}/links", content=body,
                             headers={"Content-Type": "application/json", "Outreach-Webhook-Signature": signature})
        assert answer.status_code == 200, answer.text
        path = answer.json()["data"]["https://example.com/access"][len(server.url):]
        assert client.get(f"{path}?utm_source=newsletter&recipient=jo%40example.com").status_code == 302
        assert client.get("/v1/events?email=x@y", headers=bearer(account)).status_code == 200
        assert client.get("/v1/events?email=x@y", headers={"Authorization": "Bearer lh_wrong_key_12345"}
                          ).status_code == 401
        assert client.get("/v1/%0Aforged 200 entry").status_code == 404
    assert server.stop() == 0

    lines = [line for line in server.output.splitlines() if " linkhub.access: " in line]
    requests = [line.split(" linkhub.access: ", 1)[1] for line in lines]
    assert any(r.startswith(f"POST /outreach/{account.id}/links 200 ") for r in requests), requests
    assert any(r.startswith(f"GET {path} 302 ") for r in requests), requests
    assert next(r for r in requests if r.startswith("GET /v1/events ")).startswith("GET /v1/events 200 ")
    assert any(r.startswith("GET /v1/events 401 ") for r in requests), requests
    assert any(r.startswith("GET /v1/%0Aforged%20200%20entry 404 ") for r in requests), requests
    assert not any(line.startswith("forged") for line in server.output.splitlines())
    for leaked in ("?", "email=", "x@y", "utm_source", "jo%40example.com", account.api_key, "lh_wrong_key_12345",
                   signature, account.secret):
        assert leaked not in "\n".join(lines), leaked
    for secret in (account.api_key, "lh_wrong_key_12345", signature, account.secret):
        assert secret not in server.output


def test_expired_events_are_logged_once_with_webhook_count_and_reason(make_server, make_receiver, db_path):
    server = make_server("--allow-private-targets", env={"LINKHUB_LOG_FORMAT": "json"})
    account = create_account(db_path)
    receiver = make_receiver(500)
    with server.client() as client:
        hook = create_webhook(client, account, receiver.url, max_age_s=1)
        post_events(client, account, events("expiring", 3))  # one request: one batch, queued together
    wait_until(all_in(db_path, hook["id"], "dead", 3), what="3 dead rows")
    families = scrape(server)
    assert value(families, "linkhub_outbox_dead", webhook=hook["id"]) == 3
    assert value(families, "linkhub_outbox_pending", webhook=hook["id"]) == 0
    assert value(families, "linkhub_outbox_oldest_pending_age_seconds", webhook=hook["id"]) == 0
    assert server.stop() == 0

    expired = [r for r in json_lines(server) if r["logger"] == "linkhub.outbox" and "expired" in r["message"]]
    assert len(expired) == 1, expired
    assert expired[0]["level"] == "WARNING"
    assert expired[0]["webhook"] == hook["id"] and expired[0]["count"] == 3
    assert "max_age_s=1" in expired[0]["reason"]


# -- metrics ----------------------------------------------------------------------------------


def test_queue_gauges_follow_a_webhooks_queue(hub_app, make_sink, db_path):
    account = create_account(db_path)
    sink = make_sink()
    hold = sink.hang()
    sink.default = Answer(200, hold=hold)
    with hub_app.client() as client:
        hook = create_webhook(client, account, sink.url)  # ordered: a later batch waits for this one
        post_events(client, account, events("queued-a", 5))
        sink.wait_for(1)
        post_events(client, account, events("queued-b", 2))
    held = scrape(hub_app)
    assert value(held, "linkhub_outbox_in_flight", webhook=hook["id"]) == 5
    assert value(held, "linkhub_outbox_pending", webhook=hook["id"]) == 2
    assert value(held, "linkhub_outbox_dead", webhook=hook["id"]) == 0
    assert 0 < value(held, "linkhub_outbox_oldest_pending_age_seconds", webhook=hook["id"]) < 60

    hold.set()
    wait_until(all_in(db_path, hook["id"], "delivered", 7), what="7 delivered rows")
    done = scrape(hub_app)
    for gauge in ("linkhub_outbox_in_flight", "linkhub_outbox_pending", "linkhub_outbox_dead",
                  "linkhub_outbox_oldest_pending_age_seconds"):
        assert value(done, gauge, webhook=hook["id"]) == 0, gauge
    assert value(done, "linkhub_webhook_deliveries_total", outcome="delivered") == 2
    assert value(done, "linkhub_webhook_events_delivered_total") == 7
    assert value(done, "linkhub_webhook_delivery_duration_seconds_count") == 2


def test_delivery_attempts_are_counted_by_outcome(hub_app, make_app, make_sink, make_receiver, db_path):
    account = create_account(db_path)
    flaky = make_sink()
    flaky.script(500)  # then the default 200
    hung = make_sink()
    hold = hung.hang()
    hung.default = Answer(200, hold=hold)
    with hub_app.client() as client:
        create_webhook(client, account, flaky.url)
        create_webhook(client, account, f"http://127.0.0.1:{closed_port()}/hook")
        create_webhook(client, account, hung.url, timeout_s=1, retry={"policy": "fixed", "interval_s": 3600})
        post_events(client, account, events("outcomes", 1))

    def counted() -> dict[str, float]:
        families = scrape(hub_app)
        found = {outcome: value(families, "linkhub_webhook_deliveries_total", outcome=outcome)
                 for outcome in ("delivered", "http_error", "timeout", "connection_error", "refused", "not_sent")}
        return found if found["delivered"] and found["http_error"] and found["timeout"] and \
            found["connection_error"] else {}

    found = wait_until(counted, what="delivered, http_error, timeout and connection_error")
    assert found["refused"] == 0 and found["not_sent"] == 0
    hold.set()
    assert hub_app.stop() == 0, hub_app.output[-3000:]

    # The same webhooks on a server that refuses private targets: the next attempts are refused.
    strict = make_app()
    with strict.client() as client:
        post_events(client, account, events("refused", 1))
    wait_until(lambda: metric_value(strict, "linkhub_webhook_deliveries_total", outcome="refused"),
               what="a refused attempt")
    assert metric_value(strict, "linkhub_webhook_deliveries_total", outcome="delivered") == 0


def test_every_exposed_metric_is_documented_and_every_documented_one_exposed(hub_app, make_receiver, db_path):
    account = create_account(db_path)
    receiver = make_receiver()
    with hub_app.client() as client:
        hook = create_webhook(client, account, receiver.url)
    mint_and_click(hub_app, account, "https://example.com/documented")  # an Outreach call, a redirect (a click event)
    with hub_app.client() as client:
        post_events(client, account, events("documented", 2))  # an ingest
    receiver.wait_events(3)  # deliveries to a local receiver
    wait_until(all_in(db_path, hook["id"], "delivered", 3), what="3 delivered rows")
    families = scrape(hub_app)

    documented = documented_metrics()
    assert sorted(families) == sorted(documented), (
        f"exposed, not documented: {sorted(set(families) - set(documented))}; "
        f"documented, not exposed: {sorted(set(documented) - set(families))}")
    for name, family in families.items():
        kind, labels = documented[name]
        assert family["type"] == kind, f"{name} is a {family['type']}, documented as a {kind}"
        exposed_labels = {label for sample in family["samples"] for label in sample.labels if label != "le"}
        assert exposed_labels == labels, f"{name} has labels {exposed_labels}, documented {set(labels)}"

    assert value(families, "linkhub_build_info", version=linkhub.__version__) == 1
    for histogram in ("linkhub_redirect_duration_seconds", "linkhub_link_replacement_duration_seconds",
                      "linkhub_webhook_delivery_duration_seconds", "linkhub_write_commit_duration_seconds"):
        assert value(families, f"{histogram}_count") >= 1, histogram
        assert value(families, f"{histogram}_bucket", le="+Inf") == value(families, f"{histogram}_count")
    assert value(families, "linkhub_outreach_requests_total", status="200") == 1
    assert value(families, "linkhub_redirects_total") == 1
