"""Schemathesis against a live `linkhub serve`: every operation of GET /v1/openapi.json is called with
data generated from the document itself, and every answer must be no 5xx and conform to the document
(its status is listed, its content type and body match, its declared headers too).

Bounded and deterministic: a fixed number of examples per operation (MAX_EXAMPLES), derandomized;
loopback only (the server on 127.0.0.1, webhook URLs rewritten to an IP literal on 127.0.0.1, so
nothing is resolved by DNS). Requests carry a real API key, and Outreach's are signed over the very
bytes sent (a requests auth hook, which sees the prepared body).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from linkhub.store import connect
from linkhub.store.schema import migrate
from linkhub.web.app import openapi_document

from conftest import Account, create_account, outreach_body, post_links
from servers import Server, start_server

# Per operation and per mode (valid data, invalid data): 21 operations, so about 800 requests and half a
# minute on an idle machine.
MAX_EXAMPLES = 20
# No receiver listens there: deliveries and verify batches fail at once with "connection refused".
NOWHERE = "http://127.0.0.1:9/hook"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


class Live:
    """The server, its account, and a webhook, a mailing and a link of that account."""

    def __init__(self, server: Server, account: Account, real: dict[str, str]) -> None:
        self.server = server
        self.account = account
        self.real = real  # path parameter → a real value of it: the account, a webhook, a link, an endpoint
        self.seen: dict[str, Counter[int]] = {}  # operation → how often each status was answered


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path: Path = tmp_path_factory.mktemp("contract") / "linkhub.db"
    conn = connect(path)
    migrate(conn)
    conn.close()
    account = create_account(path)
    # Private targets allowed: the one webhook posts to a closed port on 127.0.0.1, never anywhere else.
    server = start_server(path, "--allow-private-targets")
    try:
        with server.client(headers={"Authorization": f"Bearer {account.api_key}"}) as client:
            created = client.post("/v1/webhooks", json={"url": NOWHERE, "active": True})
            assert created.status_code == 201, created.text
            sent = client.post("/v1/events", json=[
                {"type": "sent", "occurred_at": "2026-11-23T09:00:00Z", "email": "a@example.com", "mailing_id": "m-1"},
                {"type": "open", "occurred_at": "2026-11-23T09:05:00Z", "email": "a@example.com", "mailing_id": "m-1"},
            ])
            assert sent.status_code == 202, sent.text
            links = post_links(client, account, outreach_body(["https://example.com/a"], mailing="m-1"))
            assert links.status_code == 200, links.text
            code = links.json()["data"]["https://example.com/a"].rsplit("/", 1)[1]
            inbound = client.post("/v1/inbound", json={"provider": "arpoone"})
            assert inbound.status_code == 201, inbound.text
        yield Live(server, account, {"account_id": account.id, "webhook_id": created.json()["id"], "mailing_id": "m-1",
                                     "code": code, "endpoint_id": inbound.json()["id"],
                                     "token": inbound.json()["url"].rsplit("/", 1)[1]})
    finally:
        assert server.stop() == 0, server.output


@pytest.fixture(scope="module")
def contract(live: Live) -> Any:
    return schemathesis.openapi.from_url(f"{live.server.url}/v1/openapi.json")


class Credentials(requests.auth.AuthBase):
    """The account's API key on /v1; on /outreach, Outreach's signature of the body as sent."""

    def __init__(self, account: Account) -> None:
        self.account = account

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        path = urlsplit(request.url or "").path
        if path.startswith("/outreach/"):
            body = request.body or b""
            raw = body.encode() if isinstance(body, str) else body
            request.headers["Outreach-Webhook-Signature"] = hmac.new(
                self.account.secret.encode(), raw, hashlib.sha256).hexdigest()
        elif path.startswith("/v1/"):
            request.headers["Authorization"] = f"Bearer {self.account.api_key}"
        return request


def _pinned(value: Any, real: str) -> Any:
    """Half the generated ids (by a property of the value itself, so it stays deterministic) become the
    real one: the answers of an existing resource are exercised as well as the 404s."""
    return real if len(str(value)) % 2 == 0 else value


def _loopback(body: Any) -> Any:
    """A generated webhook URL that could name a host is replaced: linkhub resolves webhook hosts."""
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        try:
            host = urlsplit(body["url"].strip()).hostname
        except ValueError:
            host = None
        if host:
            body = {**body, "url": NOWHERE}
    return body


@pytest.fixture(scope="module")
def session(live: Live) -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.auth = Credentials(live.account)
        yield http


def _call(case: Any, live: Live, session: requests.Session) -> None:
    params = case.path_parameters or {}
    for name, real in live.real.items():
        if name in params:
            params[name] = _pinned(params[name], real)
    if case.path.startswith("/v1/webhooks"):
        case.body = _loopback(case.body)
    response = case.call_and_validate(base_url=live.server.url, session=session, checks=CHECKS, timeout=10,
                                      allow_redirects=False)
    live.seen.setdefault(f"{case.method.upper()} {case.path}", Counter())[response.status_code] += 1


def test_every_answer_conforms_to_the_document(contract: Any, live: Live, session: requests.Session) -> None:
    """Each operation, with data valid by the document (positive) and invalid by it (negative)."""
    failures = []
    # Deletions last: the resources pinned to real ones stay there for every other operation.
    operations = sorted((result.ok() for result in contract.get_all_operations()), key=lambda op: op.method == "delete")
    assert len(operations) >= 20, [operation.label for operation in operations]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # Without shrinking (a failure is reported as found) and derandomized: bounded and repeatable.
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                _call(case, live, session)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no valid request can be made"
            except (Exception, BaseExceptionGroup) as exc:  # each operation is tried; failures are reported together
                failures.append(f"{operation.label} ({mode.value} data): {exc}")
    assert not failures, "\n\n".join(failures)
    # The run reached the operations' real work, not only their refusals: the data made with the
    # document's formats and enums, the ids pinned to real ones, pass the server's own checks too.
    succeeded = {label for label, statuses in live.seen.items() if any(200 <= status < 400 for status in statuses)}
    refused_only = sorted(set(live.seen) - succeeded)
    assert set(live.seen) == {operation.label for operation in operations}
    # (The pinned webhook is active, so its DELETE is refused; a generated one is 404.)
    assert set(refused_only) <= {"DELETE /v1/webhooks/{webhook_id}"}, {name: live.seen[name] for name in refused_only}


def test_the_live_document_is_the_one_the_app_makes(live: Live) -> None:
    """What the server answers is the registry's document (no copy kept anywhere to go stale)."""
    with live.server.client() as client:
        answer = client.get("/v1/openapi.json")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == json.loads(openapi_document())
