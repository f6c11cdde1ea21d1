"""The HTTP contract: every route once, as an `Operation` (method, path, parameters, request body and
answers, each body a msgspec type), from which both the Starlette routes and the OpenAPI document
(`GET /v1/openapi.json`) are made.

Nothing else declares a route: `routes()` builds Starlette's from the operations, applying the
authentication and the query-parameter check the operation declares, and refuses (a 500 and a log
line, which the schemathesis test turns into a failure) an answer whose status the operation does
not list, or whose JSON body is not of the type it lists. So the document cannot describe a route,
a parameter or an answer the code does not have. `/r/{code}` is answered outside Starlette (raw
ASGI, for speed): its operation has no handler and is in the document only.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from linkhub.web.auth import AUTHENTICATED, authenticated
from linkhub.web.errors import ErrorOut
from linkhub.web.responses import accepts, route

# The security schemes of the document, by the names operations use in `security`.
BEARER = "bearer"
OUTREACH_SIGNATURE = "outreach_signature"
BASIC = "basic"
# In `security` beside another scheme: that scheme is optional (an endpoint created with or without Basic credentials).
ANONYMOUS = "anonymous"
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    BEARER: {
        "type": "http", "scheme": "bearer", "bearerFormat": "lhk_ API key",
        "description": "An account's API key (`linkhub accounts create` prints it once): "
                       "`Authorization: Bearer lhk_…`. Every /v1 call sees only that account's data.",
    },
    OUTREACH_SIGNATURE: {
        "type": "apiKey", "in": "header", "name": "Outreach-Webhook-Signature",
        "description": "Lower-case hex HMAC-SHA256 of the raw request body, keyed with the account's "
                       "Outreach secret: not a fixed key, a signature of each body.",
    },
    BASIC: {
        "type": "http", "scheme": "basic",
        "description": "HTTP Basic credentials, where an endpoint was created with them.",
    },
}

Handler = Callable[..., Awaitable[Response]]
Where = Literal["query", "path", "header"]


@dataclass(frozen=True)
class Param:
    """A query, path or header parameter; `type` is a msgspec type (its JSON Schema is the parameter's schema)."""

    name: str
    type: Any = str
    where: Where = "query"
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Answer:
    """One answer of an operation: a JSON body of msgspec type `type`, or another `media_type` (then
    `schema` describes it), or no body at all (`media_type=None`)."""

    description: str
    type: Any = None
    media_type: str | None = "application/json"
    schema: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # name → what it says
    # Other media types the same status may come as, each with its msgspec type (a JSON refusal
    # where the answer is otherwise a page).
    also: Mapping[str, Any] = field(default_factory=dict)

    def types(self) -> list[Any]:
        return [kind for kind in (self.type, *self.also.values()) if kind is not None]


@dataclass(frozen=True)
class Operation:
    """One method of one path, as the document shows it and as `routes()` serves it.

    `handler` takes `(request)`, or with `BEARER` in `security` `(request, state, account)`; None:
    the path is answered outside Starlette. `answers` are the successful ones (and any other the
    handler returns itself); `errors` the refusals it raises, status → when; the refusals every
    operation of its kind can give (401 with security, 400/408/413 with a body, 400 with checked
    query parameters, 500, 503) are added by `all_answers()`.
    """

    method: str  # lower case, as OpenAPI spells it: "get", "post", …
    path: str
    summary: str
    tag: str
    handler: Handler | None
    answers: Mapping[int, Answer]
    errors: Mapping[int, str] = field(default_factory=dict)
    body: Any = None  # the msgspec type the request body is decoded as
    body_required: bool = True
    params: Sequence[Param] = ()
    security: Sequence[str] = ()
    # Whether any query parameter not in `params` (or one given twice) is refused with a 400; the
    # endpoints that other systems call (Outreach, monitoring) keep ignoring theirs.
    strict_query: bool = True
    description: str = ""

    @property
    def operation_id(self) -> str:
        words = re.findall(r"[a-z0-9]+", self.path.lower())
        return "_".join([self.method, *words])

    @property
    def name(self) -> str:
        """`GET /v1/events`, as people write it."""
        return f"{self.method.upper()} {self.path}"

    def all_answers(self) -> dict[int, Answer]:
        found = dict(self.answers)

        def refusal(status: int, when: str) -> None:
            if status in found:  # another reason for the same refusal: both are said
                if found[status].type is ErrorOut and when not in found[status].description:
                    found[status] = dataclasses.replace(found[status],
                                                        description=f"{found[status].description}; {when}")
                return
            headers: dict[str, str] = {}
            if status == 401 and BEARER in self.security:
                headers = {"WWW-Authenticate": 'Bearer realm="linkhub"'}
            elif status == 401 and BASIC in self.security:
                headers = {"WWW-Authenticate": 'Basic realm="linkhub inbound"'}
            if status == 503:
                headers = {"Retry-After": "sent when the server is shutting down: 1 (seconds)"}
            found[status] = Answer(when, ErrorOut, headers=headers)

        for status, when in self.errors.items():
            refusal(status, when)
        if self.body is not None:
            refusal(400, "the body is not JSON (`malformed_json`) or nests too deep (`too_deep`)")
            refusal(408, "the body did not arrive in time (`body_timeout`); the connection is closed")
            refusal(413, "the body is over this endpoint's limit (`body_too_large`)")
        if self.strict_query and self.handler is not None:
            refusal(400, "a query parameter this operation does not take, or one given twice "
                         "(`unknown_parameter`, `repeated_parameter`)")
        if set(self.security) - {ANONYMOUS}:
            refusal(401, "missing or invalid credentials (`unauthorized`)")
        if self.handler is not None:
            refusal(500, "an unexpected failure, logged by the server (`internal_error`)")
            refusal(503, "the database did not answer, or the server is shutting down (`unavailable`)")
        return dict(sorted(found.items()))


class ContractBroken(Exception):
    """A handler answered what its operation does not declare: a bug, answered 500 and logged."""


def _conforming(operation: Operation, handler: Handler) -> Handler:
    answers = operation.all_answers()

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        response = await handler(request)
        answer = answers.get(response.status_code)
        if answer is None:
            raise ContractBroken(f"{operation.name} answered {response.status_code}, "
                                 f"which its operation does not declare")
        kind = answer.type
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct) and not isinstance(
                getattr(response, "value", None), kind):
            raise ContractBroken(f"{operation.name} answered {response.status_code} with "
                                 f"{type(getattr(response, 'value', None)).__name__}, not {kind.__name__}")
        return response

    return endpoint


def endpoint_of(operation: Operation) -> Handler:
    """The operation's handler as Starlette calls it: authenticated, its query checked, its answer too."""
    assert operation.handler is not None, f"{operation.name} is answered outside Starlette"
    handler = operation.handler
    assert handler not in AUTHENTICATED, (f"{operation.name}: register the handler itself, not its @authenticated "
                                          "endpoint: security=[BEARER] authenticates it")
    if operation.strict_query:
        handler = accepts(*(p.name for p in operation.params if p.where == "query"))(handler)
    if BEARER in operation.security:
        handler = authenticated(handler)  # the key first: nothing else is said to a caller without one
    return _conforming(operation, handler)


def routes(operations: Iterable[Operation]) -> list[Route]:
    """Starlette's routes: one per path, holding all its methods (so a 405 lists every one)."""
    paths: dict[str, dict[str, Handler]] = {}
    for operation in operations:
        if operation.handler is None:
            continue
        methods = paths.setdefault(operation.path, {})
        assert operation.method == operation.method.lower(), f"{operation.name}: spell the method in lower case"
        assert operation.method.upper() not in methods, f"{operation.name} is registered twice"
        methods[operation.method.upper()] = endpoint_of(operation)
    return [route(path, **methods) for path, methods in paths.items()]


# -- the document ----------------------------------------------------------------------------------

REF = "#/components/schemas/{name}"


def document(operations: Sequence[Operation], *, title: str, version: str, description: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations`: component schemas by msgspec.json.schema_components."""
    types: list[Any] = [ErrorOut]
    for operation in operations:
        if operation.body is not None:
            types.append(operation.body)
        types.extend(kind for answer in operation.all_answers().values() for kind in answer.types())
    unique = list({_key(kind): kind for kind in types}.values())
    schemas, components = msgspec.json.schema_components(unique, ref_template=REF)
    schema_of = {_key(kind): schema for kind, schema in zip(unique, schemas, strict=True)}

    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation, schema_of)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }


def _key(kind: Any) -> str:
    return repr(kind)


def _operation(operation: Operation, schema_of: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"operationId": operation.operation_id, "summary": operation.summary,
                           "tags": [operation.tag]}
    if operation.description:
        doc["description"] = operation.description
    if operation.params:
        doc["parameters"] = [_parameter(param) for param in operation.params]
    if operation.body is not None:
        doc["requestBody"] = {"required": operation.body_required,
                              "content": {"application/json": {"schema": schema_of[_key(operation.body)]}}}
    doc["responses"] = {str(status): _answer(answer, schema_of)
                        for status, answer in operation.all_answers().items()}
    # No `security` key: open to anyone. Several schemes: any one of them will do ({}: none at all).
    if operation.security:
        doc["security"] = [{} if name == ANONYMOUS else {name: []} for name in operation.security]
    return doc


def _parameter(param: Param) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": param.name, "in": param.where,
                           "required": param.required or param.where == "path",
                           "schema": msgspec.json.schema(param.type)}
    if param.description:
        doc["description"] = param.description
    return doc


def _answer(answer: Answer, schema_of: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"description": answer.description}
    if answer.headers:
        doc["headers"] = {name: {"description": what, "schema": {"type": "string"}}
                          for name, what in answer.headers.items()}
    if answer.media_type is not None:
        schema = schema_of[_key(answer.type)] if answer.type is not None else dict(answer.schema or {})
        doc["content"] = {answer.media_type: {"schema": schema}}
    for media_type, kind in answer.also.items():
        doc.setdefault("content", {})[media_type] = {"schema": schema_of[_key(kind)]}
    return doc
