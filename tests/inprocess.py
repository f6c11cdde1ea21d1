"""The in-process tier: the real app (`create_app(Settings(...))`) on a real SQLite file, its
lifespan run, answering an ordinary `httpx.Client` without a socket or a subprocess.

Tests of HTTP semantics (validation, CRUD, formats, auth, errors, query parameters) run here;
the subprocess tier (servers.py) is for what needs a process or a socket: signals, shutdown,
slow clients, broken transfers, file modes, start-up, delivery timing, the CLI end to end.

Not Starlette's TestClient: the installed Starlette warns that using it with httpx is deprecated
(it wants httpx2), sends `user-agent: testclient` and warns on every `timeout=`. Here the lifespan
is driven over the ASGI protocol, as Hypercorn drives it, in an event loop of its own (uvloop, as
`linkhub serve` runs) on a portal thread that every request is handed to, so the delivery loop,
the pruner and the database writer run between requests exactly as they do in the server.
Requests come from 127.0.0.1 (the peer in the scope, as Hypercorn gives it: the click's IP, the
access log). An exception that escapes the app fails the test with its traceback, where Hypercorn
would answer 500 and log it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
import uvloop

from linkhub.settings import Settings
from linkhub.util import logs
from linkhub.web.app import LinkhubApp, create_app

# Where requests seem to come from: the peer address Hypercorn would put in the scope.
CLIENT = ("127.0.0.1", 50123)
# The levels `linkhub serve` sets (logs.configure), set while any app runs; pytest's handlers stay.
LEVELS = {"": logging.INFO, "httpx": logging.WARNING, "httpcore": logging.WARNING}


class _Captured(logging.Handler):
    """Every log record, formatted as `linkhub serve` writes them to stderr."""

    running = 0  # apps in this process: the first sets LEVELS, the last one to stop restores the levels before
    saved: dict[str, int] = {}  # noqa: RUF012 - shared by every app on purpose, like the loggers themselves

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logs.TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + "\n")

    def attach(self) -> None:
        if _Captured.running == 0:
            _Captured.saved = {name: logging.getLogger(name).level for name in LEVELS}
            for name, level in LEVELS.items():
                logging.getLogger(name).setLevel(level)
        _Captured.running += 1
        logging.getLogger().addHandler(self)

    def detach(self) -> None:
        logging.getLogger().removeHandler(self)
        _Captured.running -= 1
        if _Captured.running == 0:
            for name, level in _Captured.saved.items():
                logging.getLogger(name).setLevel(level)


class _Chunks(httpx.AsyncByteStream):
    """A request body as the client gave it, chunk by chunk (a generator stays a streamed, chunked body)."""

    def __init__(self, stream: httpx.SyncByteStream) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._stream:
            yield chunk


class _Transport(httpx.BaseTransport):
    """Hands each request to the app's event loop (httpx's ASGITransport there) and waits for the answer.

    The client's read timeout bounds the wait, as it bounds a wait on a socket: a stalled event
    loop fails a test with httpx.ReadTimeout instead of hanging it.
    """

    def __init__(self, portal: anyio.from_thread.BlockingPortal, app: LinkhubApp, client: tuple[str, int]) -> None:
        self._portal = portal
        self._asgi = httpx.ASGITransport(app, client=client)  # type: ignore[arg-type]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        request.stream = _Chunks(request.stream)

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            answer = await self._asgi.handle_async_request(request)
            return answer.status_code, answer.headers.raw, await answer.aread()

        future = self._portal.start_task_soon(call)
        try:
            status, headers, body = future.result(timeout=request.extensions.get("timeout", {}).get("read"))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise httpx.ReadTimeout("the app did not answer in time", request=request) from None
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body),
                              extensions={"http_version": b"HTTP/1.1"})


class _Lifespan:
    """The ASGI lifespan protocol, spoken as a server does: startup, then shutdown once."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, app: LinkhubApp) -> None:
        self._portal = portal
        self._app = app
        self._to_app: asyncio.Queue[dict[str, Any]] = portal.call(self._queue)
        self._from_app: asyncio.Queue[dict[str, Any]] = portal.call(self._queue)
        self._task = portal.start_task_soon(self._run)

    @staticmethod
    async def _queue() -> asyncio.Queue[dict[str, Any]]:
        return asyncio.Queue()

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        await self._app(scope, self._to_app.get, self._from_app.put)

    async def _step(self, name: str) -> None:
        await self._to_app.put({"type": f"lifespan.{name}"})
        answer = await self._from_app.get()
        if answer["type"] != f"lifespan.{name}.complete":
            raise RuntimeError(f"lifespan {name} failed: {answer.get('message', answer)}")

    def startup(self) -> None:
        self._portal.call(self._step, "startup")

    def shutdown(self) -> None:
        self._portal.call(self._step, "shutdown")
        self._task.result(timeout=30)


class InProcess:
    """The app of one `Settings`, serving in this process; it stands where a `servers.Server` would.

    `url`, `db_path`, `client()`, `stop()` and `output`/`log` (the log records, formatted as the
    server writes them) mean what they mean on a Server, so a test reads the same on both tiers.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db_path = settings.db
        self.url = settings.base_url
        self._captured = _Captured()
        self._stack = ExitStack()
        self._captured.attach()
        self._stack.callback(self._captured.detach)
        try:
            self._portal = self._stack.enter_context(
                anyio.from_thread.start_blocking_portal("asyncio", {"loop_factory": uvloop.new_event_loop}))
            self.app = create_app(settings)
            self._lifespan = _Lifespan(self._portal, self.app)
            self._lifespan.startup()
        except BaseException:
            self._stack.close()
            raise
        self._running = True

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client of this app, as `Server.client()`: 10 s timeout, no redirects followed."""
        transport = _Transport(self._portal, self.app, CLIENT)
        return httpx.Client(base_url=self.url, transport=transport, **{"timeout": 10, "follow_redirects": False,
                                                                         **kwargs})

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An async client of this app, for coroutines that `run` on the app's own event loop."""
        transport = httpx.ASGITransport(self.app, client=CLIENT)  # type: ignore[arg-type]
        return httpx.AsyncClient(base_url=self.url, transport=transport, follow_redirects=False, **kwargs)

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run the coroutine function `fn(*args)` on the app's event loop and return its result."""
        return self._portal.call(fn, *args)

    def stop(self) -> int:
        """Run the lifespan's shutdown (deliveries stop, the writer drains and closes); 0, as a clean exit."""
        if self._running:
            self._running = False
            try:
                self._lifespan.shutdown()
            finally:
                self._stack.close()
        return 0

    @property
    def log(self) -> list[str]:
        return self._captured.lines

    @property
    def output(self) -> str:
        return "".join(self._captured.lines)


@pytest.fixture
def make_app(db_path: Path) -> Iterator[Callable[..., InProcess]]:
    """Factory: `make_app(**settings)` serves `Settings(db=db_path, **settings)` in-process; all stop afterwards."""
    started: list[InProcess] = []

    def make(**settings: Any) -> InProcess:
        settings.setdefault("db", db_path)
        app = InProcess(Settings(**settings))
        started.append(app)
        return app

    yield make
    for app in reversed(started):
        app.stop()


@pytest.fixture
def app(make_app: Callable[..., InProcess]) -> InProcess:
    """The app with default settings on `db_path`."""
    return make_app()


@pytest.fixture
def hub_app(make_app: Callable[..., InProcess]) -> InProcess:
    """The app, allowed to deliver to receivers on 127.0.0.1: conftest's `hub`, in-process."""
    return make_app(allow_private_targets=True)
