"""A scriptable webhook receiver for the delivery tests: a real HTTP server on 127.0.0.1.

tests/receiver.py answers every request the same way after an optional time.sleep(); the
delivery tests need more, so this one:
- takes a script of answers, one per arriving request, in arrival order (`sink.script(...)`),
  falling back to `sink.default` — e.g. "500, 500, then 200";
- can hold an answer until a `threading.Event` is set (a hung receiver), never by sleeping;
- can hold the first requests until N of them are in flight at once (`sink.gate = N`; from then
  on the gate stays open), which proves concurrency without any timing assumption;
- lets a test wait on conditions (`wait_for`, `wait_in_flight`) signalled by the server thread.

Every request is recorded (headers lower-cased, raw body, arrival time) before it is answered.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# A generous ceiling for anything a test waits on: only reached when something is broken.
HOLD_LIMIT_S = 60.0


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hold: threading.Event | None = None  # answer only once this is set (a hung receiver until then)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    arrived: float  # time.monotonic()
    answered: int | None = None  # the status code sent back (None until answered)
    in_flight: int = 0  # requests in flight at this one's arrival, itself included

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout, SIGKILL) is expected here, not an error


class Sink:
    def __init__(self, port: int = 0) -> None:
        self.default = Answer()
        self.requests: list[Received] = []
        self.gate: int | None = None  # hold each request until this many are in flight at once…
        self.gate_timeout = 5.0  # …or for this long at most (then answer anyway: a test fails, not hangs)
        self._gate_open = False
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: deque[Answer | Callable[[Received], Answer]] = deque()
        self._holds: list[threading.Event] = []
        self._closing = threading.Event()
        self._cond = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                sink._handle(self)

            do_GET = do_PUT = do_POST  # noqa: N815 - http.server dispatches on these names

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    # -- configuration ------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def script(self, *answers: Answer | Callable[[Received], Answer] | int) -> None:
        """Answers for the next requests, in arrival order (an int is just a status code)."""
        with self._cond:
            for answer in answers:
                self._script.append(Answer(answer) if isinstance(answer, int) else answer)

    def hang(self) -> threading.Event:
        """An event to hold answers on; set at teardown at the latest."""
        event = threading.Event()
        with self._cond:
            self._holds.append(event)
        return event

    # -- the server side --------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._cond:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            received = Received(handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()},
                                body, time.monotonic(), in_flight=self.in_flight)
            self.requests.append(received)
            planned = self._script.popleft() if self._script else self.default
            self._cond.notify_all()
        try:
            answer = planned(received) if callable(planned) else planned
            if self.gate is not None:
                with self._cond:
                    if self.in_flight >= self.gate:
                        self._gate_open = True
                        self._cond.notify_all()
                    self._cond.wait_for(lambda: self._gate_open or self._closing.is_set(), self.gate_timeout)
            if answer.hold is not None:
                answer.hold.wait(HOLD_LIMIT_S)
            if self._closing.is_set() and answer.hold is not None:
                return  # torn down while hung: just drop the connection
            handler.send_response(answer.status)
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(answer.body)))
            handler.end_headers()
            handler.wfile.write(answer.body)
            handler.wfile.flush()
            received.answered = answer.status
        finally:
            with self._cond:
                self.in_flight -= 1
                self._cond.notify_all()

    # -- waiting on what arrived -----------------------------------------------------------

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """Block until at least `count` requests have arrived; return all of them."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"{self.url}: expected {count} requests within {timeout}s, "
                                     f"got {len(self.requests)}")
            return list(self.requests)

    def wait_until(self, predicate: Callable[[list[Received]], bool], timeout: float = 15.0,
                   what: str = "condition") -> list[Received]:
        """Block until `predicate(requests)` holds (re-checked on each arrival)."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.requests), timeout):
                raise AssertionError(f"{self.url}: {what} not met within {timeout}s; "
                                     f"{len(self.requests)} requests: {self.describe()}")
            return list(self.requests)

    def wait_events(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Block until answered-2xx requests carried at least `count` events; return those events in order."""
        self.wait_until(lambda _: len(self._delivered_events()) >= count, timeout, f"{count} delivered events")
        with self._cond:
            return self._delivered_events()

    def _delivered_events(self) -> list[dict[str, Any]]:
        return [e for r in self.requests if r.answered is not None and 200 <= r.answered < 300 for e in r.json()]

    def quiet(self, count: int, within: float) -> bool:
        """True if no more than `count` requests arrived in the next `within` seconds.

        Only for asserting that something does NOT happen: an observation window, not synchronisation.
        """
        with self._cond:
            return not self._cond.wait_for(lambda: len(self.requests) > count, within)

    def describe(self) -> str:
        return "; ".join(f"[{r.answered}] {r.body[:120]!r}" for r in self.requests)

    # -- teardown ------------------------------------------------------------------------

    def release(self) -> None:
        """Let every held request answer."""
        with self._cond:
            holds = list(self._holds)
        for event in holds:
            event.set()

    def stop(self) -> None:
        self._closing.set()
        self.release()
        with self._cond:
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed): connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def make_sink() -> Iterator[Callable[..., Sink]]:
    """Factory: `make_sink()` (or `make_sink(port=…)`); every sink made is stopped at teardown."""
    made: list[Sink] = []

    def make(port: int = 0) -> Sink:
        sink = Sink(port)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.stop()


@pytest.fixture
def make_receiver(make_sink: Callable[..., Sink]) -> Callable[..., Sink]:
    """Factory: a sink answering every request with `status` and `body`, for tests that need no script.

    Change its answer later with `sink.default = Answer(…)`.
    """

    def make(status: int = 200, body: bytes = b"ok") -> Sink:
        sink = make_sink()
        sink.default = Answer(status, body=body)
        return sink

    return make
