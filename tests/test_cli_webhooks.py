"""`linkhub webhooks …`: the CLI (in-process, conftest.linkhub) on a real SQLite file, verify against real local
receivers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from linkhub.store import connect

from conftest import Ran, create_account, linkhub, linkhub_process, query
from sink import Answer

PUBLIC_URL = "http://93.184.215.14/hook"  # a public literal: no DNS, never contacted without --verify


def run(db_path: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> Ran:
    return linkhub("webhooks", *args, "--db", str(db_path), env=env, input=input)


def run_json(db_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    result = run(db_path, *args, "--json", env=env)
    assert result.returncode == 0, result.output
    return json.loads(result.stdout)


def test_full_lifecycle(db_path: Path, account: Any) -> None:
    made = run_json(db_path, "create", "--account", account.id, "--url", PUBLIC_URL, "--type", "open",
                    "--type", "click", "--format", "optimizely", "--batch-size", "50", "--retry-interval", "10",
                    "--max-age", "3600", "--unordered", "--description", "CRM")
    assert made["id"].startswith("wh_") and made["secret"].startswith("whsec_")
    assert made["types"] == ["open", "click"] and made["format"] == "optimizely"
    assert made["batch_size"] == 50 and made["retry"] == {"policy": "fixed", "interval_s": 10}
    assert made["max_age_s"] == 3600 and made["ordered"] is False and made["status"] == "inactive"
    hook = made["id"]

    listed = run_json(db_path, "list")
    assert [w["id"] for w in listed] == [hook] and "secret" not in listed[0]
    assert run_json(db_path, "list", "--account", "someone-else") == []
    shown = run_json(db_path, "show", hook)
    assert shown == {k: v for k, v in made.items() if k != "secret"}

    updated = run_json(db_path, "update", hook, "--all-types", "--format", "linkhub", "--retry", "exponential",
                       "--ordered", "--description", "")
    assert updated["types"] == [] and updated["retry"] == {"policy": "exponential"}
    assert updated["ordered"] is True and updated["description"] is None and updated["batch_size"] == 50

    assert run_json(db_path, "activate", hook)["status"] == "active"
    refused = run(db_path, "delete", hook)
    assert refused.returncode == 1 and "deactivate it first" in refused.output
    assert run_json(db_path, "deactivate", hook)["status"] == "inactive"

    rotated = run_json(db_path, "rotate-secret", hook)
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != made["secret"]
    assert rotated["previous_secret_until"] > made["created_at"]  # the old one signs beside it for a day
    assert run_json(db_path, "show", hook)["previous_secret_until"] == rotated["previous_secret_until"]
    told = run(db_path, "rotate-secret", hook)
    assert "shown only now" in told.output and "previous secret also signs deliveries until" in told.output
    expired = run_json(db_path, "rotate-secret", hook, "--expire-previous")
    assert expired["previous_secret_until"] is None
    assert run_json(db_path, "show", hook)["previous_secret_until"] is None
    assert run_json(db_path, "deliveries", hook) == []

    assert run_json(db_path, "delete", hook) == {"id": hook, "deleted": True, "dropped": {"pending": 0, "dead": 0}}
    missing = run(db_path, "show", hook)
    assert missing.returncode == 1 and "no webhook" in missing.output


def test_text_output(db_path: Path, account: Any) -> None:
    created = run(db_path, "create", "--account", account.id, "--url", PUBLIC_URL)
    assert created.returncode == 0 and "whsec_" in created.output and "shown only now" in created.output
    assert "inactive" in run(db_path, "list").output
    assert run(db_path, "list", "--account", "nobody").output.strip() == "no webhooks"


@pytest.mark.parametrize(("args", "message"), [
    (["--batch-size", "0"], "Invalid value for '--batch-size'"),
    (["--batch-size", "1001"], "Invalid value for '--batch-size'"),
    (["--retry", "fixed"], "Missing option '--retry-interval'"),
    (["--retry-interval", "0"], "Invalid value for '--retry-interval'"),
    (["--max-age", "0"], "Invalid value for '--max-age'"),
    (["--timeout", "61"], "Invalid value for '--timeout'"),
    (["--auth", "basic", "--username", "u"], "Missing option '--password'"),
    (["--auth", "header", "--header-name", "Content-Type", "--header-value", "x"], "Invalid value for '--header-name'"),
    (["--auth", "header", "--header-name", "webhook-id", "--header-value", "x"], "Invalid value for '--header-name'"),
    (["--format", "arpoone", "--type", "sent"], "Invalid value for '--type'"),
    (["--verdicts", "human,person"], "Invalid value for '--verdicts': unknown verdict 'person'"),
    (["--verdicts", "human,human"], "Invalid value for '--verdicts': verdict 'human' is listed twice"),
    (["--verdicts", ""], "Invalid value for '--verdicts': must name at least one of human, unknown, scanner, bot"),
    (["--wait-for-verdict", "--verdicts", "Scanner"], "Invalid value for '--verdicts'"),
])
def test_invalid_create_names_the_flag(db_path: Path, account: Any, args: list[str], message: str) -> None:
    result = run(db_path, "create", "--account", account.id, "--url", PUBLIC_URL, *args)
    assert result.returncode == 2, result.output
    assert message in result.output
    assert "_s)" not in result.output and "auth." not in result.output  # never the JSON field's name
    assert query(db_path, "SELECT count(*) FROM webhooks")[0][0] == 0


def test_usage_errors(db_path: Path, account: Any) -> None:
    assert run(db_path, "create", "--account", account.id).returncode == 2  # no --url
    assert run(db_path, "create", "--url", PUBLIC_URL).returncode == 2  # no --account
    unknown = run(db_path, "create", "--account", "nope", "--url", PUBLIC_URL)
    assert unknown.returncode == 1 and "no account" in unknown.output
    assert run(db_path, "create", "--account", account.id, "--url", PUBLIC_URL, "--token", "t").returncode == 2


def test_credentials_from_the_environment_are_stored_but_never_shown(db_path: Path, account: Any) -> None:
    made = run_json(db_path, "create", "--account", account.id, "--url", PUBLIC_URL, "--auth", "basic",
                    "--username", "crm", env={"LINKHUB_WEBHOOK_PASSWORD": "pw-from-env"})
    assert made["auth"] == {"type": "basic", "username": "crm"}
    [row] = query(db_path, "SELECT auth FROM webhooks")
    assert json.loads(row["auth"]) == {"type": "basic", "username": "crm", "password": "pw-from-env"}
    for args in (["list"], ["show", made["id"]], ["update", made["id"], "--batch-size", "7"]):
        output = run(db_path, *args, "--json").output
        assert "pw-from-env" not in output and made["secret"] not in output


def test_account_scoping(db_path: Path, account: Any) -> None:
    other = create_account(db_path)
    hook = run_json(db_path, "create", "--account", account.id, "--url", PUBLIC_URL)["id"]
    for args in (["show", hook], ["activate", hook], ["delete", hook], ["rotate-secret", hook],
                 ["update", hook, "--batch-size", "5"], ["deliveries", hook]):
        result = run(db_path, *args, "--account", other.id)
        assert result.returncode == 1 and "no webhook" in result.output, args
    assert run_json(db_path, "show", hook, "--account", account.id)["id"] == hook


def test_ssrf_check_and_its_override(db_path: Path, account: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("LINKHUB_ALLOW_PRIVATE_TARGETS", raising=False)
    for url in ("http://127.0.0.1:9/", "http://localhost:9/", "http://[::1]/", "http://10.0.0.1/",
                "http://169.254.169.254/"):
        refused = run(db_path, "create", "--account", account.id, "--url", url)
        assert refused.returncode == 2 and "Invalid value for '--url': refused target" in refused.output, url
    assert query(db_path, "SELECT count(*) FROM webhooks")[0][0] == 0

    hook = run_json(db_path, "create", "--account", account.id, "--url", "http://127.0.0.1:9/",
                    "--allow-private-targets")["id"]
    run_json(db_path, "create", "--account", account.id, "--url", "http://10.0.0.1/",
             env={"LINKHUB_ALLOW_PRIVATE_TARGETS": "1"})
    refused = run(db_path, "update", hook, "--url", "http://169.254.169.254/")
    assert refused.returncode == 2 and "refused target" in refused.output
    assert "--allow-private-targets (or LINKHUB_ALLOW_PRIVATE_TARGETS=1) allows it" in refused.output
    assert run_json(db_path, "update", hook, "--url", "http://127.0.0.2:9/", "--allow-private-targets")["url"] \
        == "http://127.0.0.2:9/"


def test_verify_sends_a_signed_test_batch(db_path: Path, account: Any, make_receiver: Any) -> None:
    receiver = make_receiver(body=b"hello")
    made = run_json(db_path, "create", "--account", account.id, "--url", receiver.url, "--allow-private-targets",
                    "--auth", "bearer", "--token", "tok-1")
    result = run_json(db_path, "verify", made["id"], "--allow-private-targets")
    assert result["ok"] is True and result["status_code"] == 200 and result["body"] == "hello"
    [request] = receiver.wait_for(1)
    events = standardwebhooks.Webhook(made["secret"]).verify(request.body, request.headers)
    assert events and all(e["test"] is True for e in events)
    assert request.headers["authorization"] == "Bearer tok-1"
    [logged] = run_json(db_path, "deliveries", made["id"])
    assert logged["test"] is True and logged["status_code"] == 200
    assert query(db_path, "SELECT count(*) FROM events")[0][0] == 0

    receiver.default = Answer(500)
    failed = run(db_path, "verify", made["id"], "--allow-private-targets", "--json")
    assert failed.returncode == 1
    assert json.loads(failed.output)["status_code"] == 500

    # Without the override the receiver (on 127.0.0.1) is refused at send time.
    refused = run(db_path, "verify", made["id"], "--json", env={"LINKHUB_ALLOW_PRIVATE_TARGETS": ""})
    assert refused.returncode == 1 and "refused target" in json.loads(refused.output)["error"]
    assert len(receiver.requests) == 2


def test_create_and_activate_with_verify(db_path: Path, account: Any, make_receiver: Any) -> None:
    receiver = make_receiver(status=500, body=b"not yet")
    refused = run(db_path, "create", "--account", account.id, "--url", receiver.url, "--verify",
                  "--allow-private-targets")
    assert refused.returncode == 1 and "nothing was stored" in refused.output and "not yet" in refused.output
    assert query(db_path, "SELECT count(*) FROM webhooks")[0][0] == 0

    hook = run_json(db_path, "create", "--account", account.id, "--url", receiver.url,
                    "--allow-private-targets")["id"]
    refused = run(db_path, "activate", hook, "--verify", "--allow-private-targets")
    assert refused.returncode == 1 and "stays inactive" in refused.output
    receiver.default = Answer(200)
    activated = run_json(db_path, "activate", hook, "--verify", "--allow-private-targets")
    assert activated["status"] == "active" and activated["verify"]["ok"] is True
    assert [d["status_code"] for d in run_json(db_path, "deliveries", hook)] == [200, 500]

    made = run_json(db_path, "create", "--account", account.id, "--url", receiver.url, "--verify", "--active",
                    "--allow-private-targets")
    assert made["status"] == "active" and made["verify"]["ok"] is True


def test_cli_changes_are_seen_by_a_running_server(app: Any, db_path: Path, account: Any) -> None:
    hook = run_json(db_path, "create", "--account", account.id, "--url", PUBLIC_URL)["id"]
    with app.client() as client:
        headers = {"Authorization": f"Bearer {account.api_key}"}
        assert client.get(f"/v1/webhooks/{hook}", headers=headers).json()["status"] == "inactive"
        run_json(db_path, "activate", hook)
        assert client.get(f"/v1/webhooks/{hook}", headers=headers).json()["status"] == "active"
        assert client.post(f"/v1/webhooks/{hook}/deactivate", headers=headers).status_code == 200
    assert run_json(db_path, "show", hook)["status"] == "inactive"


def test_registered_on_the_linkhub_command(db_path: Path) -> None:
    # The process end to end: `python -m linkhub` finds the group's subcommand.
    result = linkhub_process("webhooks", "list", "--db", str(db_path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


# -- flags that would have no effect, secrets kept out of `ps` ----------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["--password", "p"], "--password goes with --auth basic: add --auth basic"),
    (["--username", "u"], "--username goes with --auth basic"),
    (["--header-value", "v"], "--header-value goes with --auth header"),
    (["--header-name", "X-Key"], "--header-name goes with --auth header"),
    (["--token", "t"], "--token goes with --auth bearer"),
    (["--auth", "basic", "--username", "u", "--password", "p", "--token", "t"],
     "--token goes with --auth bearer, not --auth basic"),
    (["--auth", "none", "--header-name", "X-Key", "--header-value", "v"], "goes with --auth header, not --auth none"),
    (["--retry", "exponential", "--retry-interval", "5"], "--retry-interval goes with --retry fixed"),
])
def test_credential_flags_without_their_auth_are_refused(db_path: Path, account: Any, args: list[str],
                                                         message: str) -> None:
    for command in (["create", "--account", account.id, "--url", PUBLIC_URL], ["update", "wh_any"]):
        result = run(db_path, *command, *args)
        assert result.returncode == 2 and message in result.output, (command, result.output)
    assert query(db_path, "SELECT count(*) FROM webhooks")[0][0] == 0


def test_a_credential_in_the_environment_counts_only_where_auth_asks_for_it(db_path: Path, account: Any) -> None:
    env = {"LINKHUB_WEBHOOK_TOKEN": "env-token", "LINKHUB_WEBHOOK_PASSWORD": "env-password"}
    plain = run_json(db_path, "create", "--account", account.id, "--url", PUBLIC_URL, env=env)
    assert plain["auth"] == {"type": "none"}
    bearer = run_json(db_path, "update", plain["id"], "--auth", "bearer", env=env)
    assert bearer["auth"] == {"type": "bearer"}
    [row] = query(db_path, "SELECT auth FROM webhooks")
    assert json.loads(row["auth"]) == {"type": "bearer", "token": "env-token"}


@pytest.mark.parametrize(("args", "stored"), [
    (["--auth", "basic", "--username", "crm", "--password", "-"], {"type": "basic", "username": "crm",
                                                                  "password": "from-stdin"}),
    (["--auth", "bearer", "--token", "-"], {"type": "bearer", "token": "from-stdin"}),
    (["--auth", "header", "--header-name", "X-Key", "--header-value", "-"],
     {"type": "header", "name": "X-Key", "value": "from-stdin"}),
])
def test_credentials_from_stdin(db_path: Path, account: Any, args: list[str], stored: dict[str, str]) -> None:
    result = run(db_path, "create", "--account", account.id, "--url", PUBLIC_URL, *args, "--json",
                 input="from-stdin\n")
    assert result.returncode == 0, result.stderr
    assert "from-stdin" not in result.stdout
    [row] = query(db_path, "SELECT auth FROM webhooks")
    assert json.loads(row["auth"]) == stored


# -- the private-target setting: the same variable, parsed the same way, named when it refuses ----------


@pytest.mark.parametrize(("value", "allowed"), [("1", True), ("true", True), ("yes", True), ("0", False),
                                                ("false", False), ("", False)])
def test_linkhub_allow_private_targets_is_read_like_serve_reads_it(db_path: Path, account: Any, value: str,
                                                                   allowed: bool) -> None:
    from linkhub.cli.main import serve
    env = {"LINKHUB_ALLOW_PRIVATE_TARGETS": value}
    # serve's own option, resolved from the same environment, without starting a server.
    with pytest.MonkeyPatch.context() as patch:
        for key, item in env.items():
            patch.setenv(key, item)
        ctx = serve.make_context("serve", [])
        assert ctx.params["allow_private_targets"] is allowed
    result = run(db_path, "create", "--account", account.id, "--url", "http://127.0.0.1:9/", env=env)
    assert (result.returncode == 0) is allowed, result.output
    if not allowed:
        assert "--allow-private-targets (or LINKHUB_ALLOW_PRIVATE_TARGETS=1) allows it" in result.output


def test_verify_of_a_refused_target_says_which_setting_lifts_it(db_path: Path, account: Any) -> None:
    made = run_json(db_path, "create", "--account", account.id, "--url", "http://127.0.0.1:9/",
                    "--allow-private-targets")
    text = run(db_path, "verify", made["id"], env={"LINKHUB_ALLOW_PRIVATE_TARGETS": "0"})
    assert text.returncode == 1
    assert "NOT accepted: refused target" in text.output
    assert "LINKHUB_ALLOW_PRIVATE_TARGETS=1" in text.output
    assert "None" not in text.output and "status:" not in text.output  # no HTTP answer, so no status line
    answered = run(db_path, "verify", made["id"], "--json", env={"LINKHUB_ALLOW_PRIVATE_TARGETS": "0"})
    assert "--allow-private-targets" in json.loads(answered.output)["error"]


def test_verify_text(db_path: Path, account: Any, make_receiver: Any) -> None:
    receiver = make_receiver(body=b"")
    made = run_json(db_path, "create", "--account", account.id, "--url", receiver.url, "--allow-private-targets",
                    "--type", "open")
    result = run(db_path, "verify", made["id"], "--allow-private-targets")
    assert result.returncode == 0
    lines = result.output.splitlines()
    assert lines[0] == "verify batch of 1 test event: accepted"
    assert lines[1].split() == ["status:", "HTTP", "200"] and lines[3].split() == ["body:", "(empty)"]


# -- delete refuses to drop deliveries unless forced ----------------------------------------------------


def queue_events(db_path: Path, account: Any, webhook_id: str, count: int) -> None:
    """`count` stored events, queued for the (inactive) webhook by `linkhub outbox replay`."""
    from linkhub.core import events
    from linkhub.store import connect
    from linkhub.util.times import now_rfc3339

    now = now_rfc3339()
    conn = connect(db_path)
    try:
        events.insert_many(conn, [events.Event(id=f"e-{i}", account_id=account.id, type="open", occurred_at=now,
                                               received_at=now, source="api") for i in range(count)])
    finally:
        conn.close()
    replayed = linkhub("outbox", "replay", "--webhook", webhook_id, "--db", str(db_path))
    assert replayed.returncode == 0 and replayed.output.startswith(f"{count} event"), replayed.output


def test_delete_with_pending_or_dead_deliveries_needs_force(db_path: Path, account: Any) -> None:
    hook = run_json(db_path, "create", "--account", account.id, "--url", PUBLIC_URL)["id"]
    queue_events(db_path, account, hook, 3)
    conn = connect(db_path)  # one of them expired (a statement is its own transaction)
    conn.execute("UPDATE outbox SET state = 'dead' WHERE id = (SELECT min(id) FROM outbox)")
    conn.close()

    refused = run(db_path, "delete", hook)
    assert refused.returncode == 1
    assert "still has 2 pending events and 1 dead event" in refused.output and "--force" in refused.output
    assert query(db_path, "SELECT count(*) FROM outbox")[0][0] == 3

    forced = run_json(db_path, "delete", hook, "--force")
    assert forced == {"id": hook, "deleted": True, "dropped": {"pending": 2, "dead": 1}}
    assert query(db_path, "SELECT count(*) FROM outbox")[0][0] == 0
    assert query(db_path, "SELECT count(*) FROM webhooks")[0][0] == 0

    someone = create_account(db_path)
    other = run_json(db_path, "create", "--account", someone.id, "--url", PUBLIC_URL)["id"]
    queue_events(db_path, someone, other, 1)
    told = run(db_path, "delete", other, "--force")
    assert told.output.strip() == f"Deleted webhook {other}, dropping 1 pending event and 0 dead events"


def test_list_is_an_aligned_table(db_path: Path, account: Any) -> None:
    run_json(db_path, "create", "--account", account.id, "--url", PUBLIC_URL, "--type", "open")
    run_json(db_path, "create", "--account", account.id, "--url", "http://93.184.215.14/a/longer/path")
    lines = run(db_path, "list").output.splitlines()
    assert lines[0].split() == ["id", "account", "status", "format", "types", "verdicts", "url"]
    url_column = lines[0].index("url")
    assert [line[url_column:] for line in lines[1:]] == [PUBLIC_URL, "http://93.184.215.14/a/longer/path"]
    shown = run(db_path, "show", json.loads(run(db_path, "list", "--json").output)[0]["id"]).output
    starts = {len(line) - len(line.split(":", 1)[1].lstrip()) for line in shown.splitlines()[1:]}
    assert len(starts) == 1  # every value starts in one column
    assert "True" not in shown and "None" not in shown


def test_update_with_nothing_to_change_is_refused(db_path: Path, account: Any) -> None:
    made = run_json(db_path, "create", "--account", account.id, "--url", PUBLIC_URL)
    result = run(db_path, "update", made["id"])
    assert result.returncode == 2 and "nothing to change" in result.output
    assert run_json(db_path, "show", made["id"])["updated_at"] == made["updated_at"]

@pytest.mark.parametrize("url", ["http://a..b/", "http://" + "a" * 64 + ".example/", "http://ex\u00adample.com/",
                                 "http://exa\u0085mple.com/", "http://ex%41mple.com/"])
def test_an_invalid_host_is_one_line_from_create_and_update(db_path: Path, account: Any, url: str) -> None:
    made = run_json(db_path, "create", "--account", account.id, "--url", PUBLIC_URL)
    for args in (["create", "--account", account.id, "--url", url], ["update", made["id"], "--url", url]):
        result = run(db_path, *args)
        assert result.returncode == 2, result.stderr  # an invalid value: a usage error, in one line
        assert result.stderr.count("\n") == 1 and "--url" in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == ""
    assert [row["url"] for row in query(db_path, "SELECT url FROM webhooks")] == [PUBLIC_URL]


@pytest.mark.parametrize(("args", "secret"), [
    (["--auth", "bearer", "--token", "Zq9x\u00e9"], "Zq9x"),
    (["--auth", "bearer", "--token", "Zq9x "], "Zq9x"),
    (["--auth", "basic", "--username", "u", "--password", "Zq9x\u00e9"], "Zq9x"),
    (["--auth", "header", "--header-name", "X-Key", "--header-value", "Zq9x\u00e9"], "Zq9x"),
])
def test_an_unsendable_credential_is_one_line_that_does_not_echo_it(db_path: Path, account: Any, args: list[str],
                                                                     secret: str) -> None:
    result = run(db_path, "create", "--account", account.id, "--url", PUBLIC_URL, *args)
    assert result.returncode == 2, result.stderr  # an invalid value: a usage error, in one line
    assert result.stderr.count("\n") == 1
    assert "ASCII" in result.stderr or "space" in result.stderr
    assert secret not in result.stderr and secret not in result.stdout
    assert query(db_path, "SELECT count(*) FROM webhooks")[0][0] == 0


def test_verdicts_and_waiting_from_create_to_update(db_path: Path, account: Any) -> None:
    made = run_json(db_path, "create", "--account", account.id, "--url", PUBLIC_URL)
    assert made["verdicts"] == ["human", "unknown", "scanner", "bot"] and made["wait_for_verdict"] is False
    crm = run_json(db_path, "create", "--account", account.id, "--url", PUBLIC_URL, "--verdicts", "unknown, human",
                   "--wait-for-verdict")
    assert crm["verdicts"] == ["human", "unknown"] and crm["wait_for_verdict"] is True  # canonical order
    assert run_json(db_path, "show", crm["id"])["verdicts"] == ["human", "unknown"]
    shown = run(db_path, "show", crm["id"]).output
    assert "verdicts:              human, unknown" in shown and "wait_for_verdict:      yes" in shown
    assert "human,unknown (settled)" in run(db_path, "list").output

    # Only what is given changes, as for every other setting.
    updated = run_json(db_path, "update", crm["id"], "--no-wait-for-verdict")
    assert updated["wait_for_verdict"] is False and updated["verdicts"] == ["human", "unknown"]
    updated = run_json(db_path, "update", crm["id"], "--verdicts", "bot,scanner")
    assert updated["verdicts"] == ["scanner", "bot"] and updated["wait_for_verdict"] is False

    refused = run(db_path, "update", crm["id"], "--verdicts", "human,robot", "--wait-for-verdict")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "Error: Invalid value for '--verdicts': unknown verdict 'robot'; known: human, unknown, scanner, bot"]
    assert run_json(db_path, "show", crm["id"]) == updated  # nothing of the refused update applied
