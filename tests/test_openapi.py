"""GET /v1/openapi.json: a valid OpenAPI 3.1 document of every route the app serves, made from the
registry the routes are made from (linkhub/web/contract.py), whose answers the registry enforces.

The live run of schemathesis against it is tests/test_contract_live.py.
"""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from linkhub.core import reports
from linkhub.settings import Settings
from linkhub.store import connect
from linkhub.web import contract, errors
from linkhub.web.app import OPERATIONS, LinkhubApp, openapi_document
from linkhub.web.errors import ErrorOut
from linkhub.web.reports import LinkStatsOut, MailingOut
from linkhub.web.responses import JSON

from inprocess import InProcess
from test_docs import SOURCE, called_name, refusal_classes

APP_PY = SOURCE / "web" / "app.py"
REGISTER = ("register it: an Operation in the `operations` of its web module, listed in web/app.py's OPERATIONS "
            "(docs/architecture.md, 'A new endpoint')")


def document() -> dict[str, Any]:
    return json.loads(openapi_document())


def documented() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, methods in document()["paths"].items() for method in methods}


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises, saying where, if the document breaks the OpenAPI 3.1 schema or its rules


def test_the_server_answers_it_to_anyone(app: InProcess) -> None:
    with app.client() as client:
        answer = client.get("/v1/openapi.json")
        refused = client.get("/v1/openapi.json?format=yaml")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == document()
    assert refused.status_code == 400 and refused.json()["error"] == "unknown_parameter"


def served(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path) of every route Starlette serves; HEAD where the route adds it for GET is GET's."""
    app = LinkhubApp(Settings(db=tmp_path / "x.db"))
    found = set()
    for route in app.starlette.routes:
        methods = set(getattr(route, "methods", None) or ())
        assert methods, f"a route without methods: {route!r}"
        own = methods - {"HEAD"} if "GET" in methods else methods
        found |= {(method, getattr(route, "path", "")) for method in own}
    return found


def test_every_route_the_app_serves_is_in_the_document(tmp_path: Path) -> None:
    missing = sorted(served(tmp_path) - documented())
    assert not missing, "\n".join(f"{method} {path} is served but not in the OpenAPI contract: {REGISTER}"
                                  for method, path in missing)


def raw_prefixes() -> list[str]:
    """The paths LinkhubApp.__call__ answers itself, before Starlette: `scope["path"].startswith("/r/")`."""
    tree = ast.parse(APP_PY.read_text())
    return [node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
            and node.args[0].value.startswith("/")]


def test_the_paths_answered_outside_starlette_are_in_the_document_too(tmp_path: Path) -> None:
    prefixes = raw_prefixes()
    assert "/r/" in prefixes, prefixes  # the check would see nothing if the dispatch were spelt otherwise
    paths = document()["paths"]
    missing = [prefix for prefix in prefixes if not any(path.startswith(prefix) for path in paths)]
    assert not missing, (f"LinkhubApp answers {missing} itself, and the document has no path there: register an "
                         "Operation with handler=None for each of their methods (as /r/{code} is)")
    # And nothing is documented that is served neither way.
    extra = sorted(endpoint for endpoint in documented() - served(tmp_path)
                   if not any(endpoint[1].startswith(prefix) for prefix in prefixes))
    assert not extra, f"documented but not served: {extra}"


def test_every_operation_is_complete() -> None:
    """Each one is named once, and says what it answers; an operation with a body refuses a bad one."""
    ids = [operation.operation_id for operation in OPERATIONS]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for path, methods in document()["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            assert any(status.startswith(("2", "3")) for status in responses), f"{method} {path}: no success"
            if "requestBody" in operation:
                assert {"400", "413"} <= set(responses), f"{method} {path}"
            if operation.get("security"):
                assert "401" in responses, f"{method} {path}"
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert f"{{{parameter['name']}}}" in path, f"{method} {path}: {parameter['name']}"


def test_the_security_schemes() -> None:
    doc = document()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["outreach_signature"]["in"] == "header"
    assert schemes["outreach_signature"]["name"] == "Outreach-Webhook-Signature"
    used = {name for methods in doc["paths"].values() for operation in methods.values()
            for requirement in operation.get("security", []) for name in requirement}
    assert used <= set(schemes)
    assert doc["paths"]["/outreach/{account_id}/links"]["post"]["security"] == [{"outreach_signature": []}]
    assert doc["paths"]["/v1/events"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]


def test_optional_credentials_are_said_so() -> None:
    async def hello(request: Request) -> Response:
        return JSON(PingOut(pong=True))

    optional = contract.Operation("post", "/in/{token}", "in", "test", hello,
                                  security=[contract.BASIC, contract.ANONYMOUS],
                                  params=[contract.Param("token", where="path")],
                                  answers={200: contract.Answer("pong", PingOut)})
    doc = contract.document([optional], title="t", version="1")
    validate(doc)
    operation = doc["paths"]["/in/{token}"]["post"]
    assert operation["security"] == [{"basic": []}, {}]
    assert "401" in operation["responses"]


def test_every_error_answer_is_the_one_error_body() -> None:
    doc = document()
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400 and path != "/r/{code}":
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorOut"}, f"{method} {path} {status}"
    error = doc["components"]["schemas"]["ErrorOut"]
    assert error["required"] == ["error", "message"]


def where_keys() -> dict[str, str]:
    """Every keyword a refusal is raised with, other than its status, code and headers: its "where" keys."""
    trees = [ast.parse(path.read_text()) for path in sorted(SOURCE.rglob("*.py"))]
    refusals = refusal_classes(trees)
    found: dict[str, str] = {}
    for tree in trees:
        classes = {id(method): cls.name for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef)
                   for method in cls.body}
        for scope in ast.walk(tree):
            for node in ast.walk(scope):
                if isinstance(node, ast.Call) and called_name(node.func, classes.get(id(scope))) in refusals:
                    found |= {keyword.arg: f"line {node.lineno}" for keyword in node.keywords
                              if keyword.arg not in (None, "status", "code", "headers")}
    return found


def test_every_where_key_a_refusal_carries_is_in_the_error_schema() -> None:
    keys = where_keys()
    assert {"field", "path", "index"} <= set(keys), keys  # the scan sees the refusals
    # accepts() raises with parameters=; TooDeep's offset and max_depth; WebhookHasQueue's pending and dead.
    missing = set(keys) - set(ErrorOut.__struct_fields__)
    assert not missing, f"refusals carry keys the ErrorOut schema does not list: {missing}"


def test_the_report_rows_are_the_views_columns(db_path: Path) -> None:
    conn = connect(db_path)
    try:
        assert list(MailingOut.__struct_fields__) == reports.columns(conn, "mailing_stats")
        assert list(LinkStatsOut.__struct_fields__) == reports.columns(conn, "link_stats")
    finally:
        conn.close()


# -- the registry enforces what it documents --------------------------------------------------------


class PingOut(msgspec.Struct):
    pong: bool


def answered(handler: Any, path: str) -> int:
    """The status a Starlette app made of one operation (GET /ping, answering 200 PingOut) answers."""
    operation = contract.Operation("get", "/ping", "ping", "test", handler,
                                   answers={200: contract.Answer("pong", PingOut)})
    app = Starlette(routes=contract.routes([operation]), exception_handlers=errors.HANDLERS)

    async def call() -> int:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            return (await http.get(path)).status_code

    return asyncio.run(call())


async def pong(request: Request) -> Response:
    return JSON(PingOut(pong=True))


async def wrong_type(request: Request) -> Response:
    return JSON({"pong": True})  # the right shape, but not made from the declared type


async def wrong_status(request: Request) -> Response:
    return JSON(PingOut(pong=True), status_code=201)


@pytest.mark.parametrize(("handler", "status"), [(pong, 200), (wrong_type, 500), (wrong_status, 500)])
def test_an_answer_the_operation_does_not_declare_is_refused(handler: Any, status: int) -> None:
    assert answered(handler, "/ping") == status
    assert answered(handler, "/ping?x=1") == 400  # a query parameter it does not declare (it declares none)
