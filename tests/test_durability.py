"""Clicks survive the process: graceful shutdown commits them, and SIGKILL loses none that was answered.

Many concurrent redirects run against a real server; once a given number of answers
has come back (a counter and an Event, not a sleep) the server is stopped. Each request
has its own code and its own User-Agent, so its click row can be found afterwards.
SIGTERM also ends the process when connections, requests and deliveries would never end on their own.
"""

from __future__ import annotations

import http.client
import re
import select
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from linkhub.store import connect
from linkhub.store.schema import migrate
from linkhub.web.server import GRACEFUL_TIMEOUT_S, SHUTDOWN_MARGIN_S

from conftest import Server, create_account, outreach_body, post_links, query, start_server
from delivery_support import bearer, create_webhook, events, post_events, states, wait_until
from sink import Answer, Sink, closed_port

T = TypeVar("T")

TOTAL = 400
CONNECTIONS = 32
# A safety net for a hung server, never a synchronisation point.
WAIT_S = 60


class Background:
    """`fn()` run in a thread of its own from now on; `result()` waits for it and returns or raises what it did."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._outcome: list[Any] = []
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._outcome.append((True, fn()))
        except BaseException as exc:  # handed to result(), in the test's thread
            self._outcome.append((False, exc))

    def result(self) -> Any:
        self._thread.join(STOP_BOUND_S + WAIT_S)
        assert self._outcome, "still running"
        ok, value = self._outcome[0]
        if not ok:
            raise value
        return value


@dataclass
class Shutdown:
    """A server stopping in the background: the two shutdowns that wait out the server's own bounds
    (10 s and 15 s) are started when the module starts, each on a server, a database and receivers of
    its own, so that those waits overlap the module's other tests instead of adding to them. Nothing
    they check depends on the other tests: the waiting servers are idle, blocked on a receiver or a
    client that never answers."""

    server: Server
    checked: Background
    verify: threading.Thread | None = None


def new_database(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    path = tmp_path_factory.mktemp(name) / "linkhub.db"
    conn = connect(path)
    migrate(conn)
    conn.close()
    return path


def mint_many(server, account, count: int) -> list[str]:
    """`count` distinct short links (one email with `count` links); returns their paths."""
    data = [f"https://example.com/page/{i}" for i in range(count)]
    with server.client() as client:
        answer = post_links(client, account, outreach_body(data))
    assert answer.status_code == 200, answer.text
    links = answer.json()["data"]
    return [links[url][len(server.url) :] for url in data]


@dataclass
class Hammer:
    """`connections` threads, each with its own keep-alive connection, work through `paths` once."""

    url: str
    paths: list[str]
    trigger_after: int
    connections: int = CONNECTIONS
    agent: str = "durability-test"
    results: dict[int, int | str] = field(default_factory=dict)
    triggered: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0
    _answered: int = 0

    def user_agent(self, index: int) -> str:
        return f"{self.agent}/{index}"

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= len(self.paths):
                return None
            index = self._next
            self._next += 1
            return index

    def _worker(self, tls: ssl.SSLContext) -> None:
        # Each thread its own keep-alive connection, as separate visitors' browsers have.
        with httpx.Client(base_url=self.url, timeout=30, follow_redirects=False, verify=tls) as client:
            while (index := self._take()) is not None:
                try:
                    answer = client.get(self.paths[index], headers={"User-Agent": self.user_agent(index)})
                    outcome: int | str = answer.status_code
                except httpx.HTTPError as exc:  # the server went away mid-request
                    outcome = type(exc).__name__
                with self._lock:
                    self.results[index] = outcome
                    if isinstance(outcome, int):
                        self._answered += 1
                    answered = self._answered
                if answered >= self.trigger_after:
                    self.triggered.set()

    def run_until_stopped(self, stop) -> None:
        """Run every request; call `stop()` once `trigger_after` answers have come back."""
        tls = ssl.create_default_context()  # unused over http://, but costly to build per client
        threads = [threading.Thread(target=self._worker, args=(tls,), daemon=True) for _ in range(self.connections)]
        for thread in threads:
            thread.start()
        assert self.triggered.wait(WAIT_S), f"only {self._answered} answers within {WAIT_S}s"
        stop()
        for thread in threads:
            thread.join(WAIT_S)
            assert not thread.is_alive()

    def answered(self, status: int = 302) -> list[int]:
        return sorted(i for i, r in self.results.items() if r == status)


def stored_clicks(db_path) -> dict[str, list[str]]:
    """User-Agent → codes of its click rows."""
    found: dict[str, list[str]] = {}
    for row in query(db_path, "SELECT code, user_agent FROM clicks"):
        found.setdefault(row["user_agent"], []).append(row["code"])
    return found


def run_and_stop(server, account, *, trigger_after: int, stop, total: int = TOTAL,
                 **options) -> tuple[Hammer, list[str]]:
    paths = mint_many(server, account, total)
    hammer = Hammer(url=server.url, paths=paths, trigger_after=trigger_after, **options)
    hammer.run_until_stopped(stop)
    return hammer, paths


def test_graceful_shutdown_commits_every_answered_click(make_server, account, db_path):
    server = make_server()
    exit_codes: list[int] = []
    hammer, paths = run_and_stop(server, account, trigger_after=100,
                                 stop=lambda: exit_codes.append(server.stop(signal.SIGTERM)))

    assert exit_codes == [0], server.output[-3000:]
    statuses = {r for r in hammer.results.values() if isinstance(r, int)}
    # Requests that arrive after the signal are refused with 503 (and store nothing).
    assert statuses <= {302, 503}, statuses
    clicks = stored_clicks(db_path)
    refused = [i for i, r in hammer.results.items() if r == 503]
    assert [i for i in refused if hammer.user_agent(i) in clicks] == [], "a refused request stored a click"
    answered = hammer.answered()
    assert len(answered) >= 100
    missing = [i for i in answered if clicks.get(hammer.user_agent(i)) != [paths[i][3:]]]
    assert missing == [], f"{len(missing)} answered redirects have no click row, e.g. {missing[:5]}"
    assert "database writer drained and closed" in server.output


def test_graceful_shutdown_answers_every_request_it_processed(make_server, account, db_path):
    """In-flight requests finish: a redirect whose click was recorded must reach its visitor.

    A request the server no longer takes may be refused (the client sees the connection
    close and can go elsewhere), but one it has processed must get its 302 - otherwise
    the visitor gets an error page while linkhub counts a click. The moment of the signal
    decides which requests are in flight, so the shutdown is repeated a few times, with
    many connections, to make each run likely to catch requests at every stage.
    """
    paths = None
    for attempt in range(3):
        server = make_server()
        if paths is None:
            paths = mint_many(server, account, TOTAL)
        hammer = Hammer(url=server.url, paths=paths, trigger_after=100, connections=64, agent=f"attempt-{attempt}")
        hammer.run_until_stopped(lambda: server.stop(signal.SIGTERM))  # noqa: B023 - called in this iteration
        clicks = stored_clicks(db_path)
        processed = [i for i in range(TOTAL) if hammer.user_agent(i) in clicks]
        unanswered = [(i, hammer.results.get(i)) for i in processed if hammer.results.get(i) != 302]
        assert unanswered == [], (
            f"SIGTERM #{attempt + 1}: {len(unanswered)} redirects were processed (click stored) "
            f"but their 302 never arrived: {unanswered[:5]}"
        )


def test_sigint_also_shuts_down_cleanly(make_server, account, db_path):
    server = make_server()
    [path] = mint_many(server, account, 1)
    with server.client() as client:
        assert client.get(path).status_code == 302
    assert server.stop(signal.SIGINT) == 0
    assert len(query(db_path, "SELECT * FROM clicks")) == 1


_UNCONFIRMED = re.compile(r"click on (\S+) (?:not committed|could not be stored)")


def test_sigkill_loses_no_answered_click(make_server, account, db_path):
    server = make_server()
    # Many more links than answers before the kill: the client threads share one GIL with the one
    # that sends the kill, and on a quiet machine 400 were sometimes all answered before it went out.
    total = 10 * TOTAL
    hammer, paths = run_and_stop(server, account, trigger_after=120, stop=server.kill, total=total)

    answered = hammer.answered()
    assert len(answered) >= 120
    # The kill came mid-way: some requests never got their answer.
    assert len(answered) < total, "the server finished before it was killed; the test proved nothing"
    statuses = {r for r in hammer.results.values() if isinstance(r, int)}
    assert statuses == {302}, statuses

    # A new server on the same database (a SQLite file recovers its WAL) serves the old links.
    restarted = make_server()
    with restarted.client() as client:
        again = client.get(paths[answered[0]], headers={"User-Agent": "after-restart"})
    assert again.status_code == 302

    clicks = stored_clicks(db_path)
    # The issue allows one loss: a click the writer could not commit within its short deadline is
    # still redirected, logged and counted. Only such a logged loss may be missing.
    unconfirmed = set(_UNCONFIRMED.findall(server.output))
    missing = [i for i in answered if clicks.get(hammer.user_agent(i)) != [paths[i][3:]]]
    unexplained = [i for i in missing if paths[i][3:] not in unconfirmed]
    assert unexplained == [], (
        f"{len(unexplained)} of {len(answered)} answered redirects lost their click: {unexplained[:10]}"
    )
    # No click is stored twice.
    for agent, codes in clicks.items():
        assert len(codes) == 1, (agent, codes)


# -- SIGTERM with connections and deliveries that never finish on their own --------------------

# A liveness bound for stop(): the documented bound (GRACEFUL_TIMEOUT_S + SHUTDOWN_MARGIN_S, then
# the last commit) with a wide margin for a loaded machine; not a timing assertion.
STOP_BOUND_S = GRACEFUL_TIMEOUT_S + SHUTDOWN_MARGIN_S + 15
# How long sends must make no progress before a client that never reads is taken to have stalled the server.
STALL_S = 2.0
# The delivery loop's missed stop depended on timing (one stop in two to four with the webhooks
# of busy_delivery_loop, before the fixes): eight stops make it unlikely to go unseen.
STOP_REPEATS = 8


def open_idle_connection(server) -> socket.socket:
    """A keep-alive connection that has had its answer and now sends nothing."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT_S)
    connection.request("GET", "/healthz")
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200 and not answer.will_close, answer.getheaders()
    assert connection.sock is not None
    return connection.sock


def start_verify(server, account, webhook_id: str) -> threading.Thread:
    """POST /v1/webhooks/{id}/verify in a thread; its receiver never answers, so the request stays running."""
    def verify() -> None:
        with httpx.Client(base_url=server.url, timeout=WAIT_S) as client:
            try:
                client.post(f"/v1/webhooks/{webhook_id}/verify", headers=bearer(account))
            except httpx.HTTPError:
                pass  # cut off by the shutdown: what this test expects
    thread = threading.Thread(target=verify, daemon=True)
    thread.start()
    return thread


def busy_delivery_loop(server, make_sink, account) -> tuple[list[dict], Sink]:
    """Three webhooks that keep the delivery loop busy: 500 then 200, a closed port (retried in an
    hour, so its worker finds nothing due and ends at each pass of the loop), and a receiver that
    never answers (60 s timeout); returns them in that order, and the receiver that never answers."""
    flaky = make_sink()
    flaky.script(500)  # then the default 200
    hung = make_sink()
    hung.default = Answer(200, hold=hung.hang())
    with server.client() as client:
        hooks = [create_webhook(client, account, flaky.url),
                 create_webhook(client, account, f"http://127.0.0.1:{closed_port()}/hook",
                                retry={"policy": "fixed", "interval_s": 3600}),
                 create_webhook(client, account, hung.url, timeout_s=60)]
    return hooks, hung


def held(db_path, hook: dict) -> Callable[[], bool]:
    """A check for wait_until: a batch of `hook` is being sent (claimed, waiting on its receiver)."""
    return lambda: "sending" in states(db_path, hook["id"])


def stop_and_check(server, db_path, hooks: list[dict], event_ids: set[str], *connections: socket.socket) -> None:
    """SIGTERM ends the process within the bound, exit 0; `connections` are closed by the server;
    every accepted event is committed and no batch is left claimed ('sending')."""
    try:
        code = server.stop(timeout=STOP_BOUND_S)
        assert code == 0, server.output[-3000:]
        for connection in connections:
            assert connection.recv(1) == b"", "an open connection was not closed by the shutdown"
    finally:
        for connection in connections:
            connection.close()
    assert "database writer drained and closed" in server.output
    stored = {row["id"] for row in query(db_path, "SELECT id FROM events")}
    assert event_ids <= stored, event_ids - stored
    for hook in hooks:
        assert "sending" not in states(db_path, hook["id"]), hook["url"]


@pytest.fixture(scope="module", autouse=True)
def running_request_shutdown(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shutdown]:
    """A verify call to a receiver that never answers (60 s timeout), an idle keep-alive connection
    and a half-sent request head, then SIGTERM; the wait for the graceful period goes on while
    the module's other tests run (see Shutdown)."""
    db_path = new_database(tmp_path_factory, "running-request")
    account = create_account(db_path)
    server = start_server(db_path, "--allow-private-targets")
    sinks: list[Sink] = []

    def make_sink() -> Sink:
        sinks.append(Sink())
        return sinks[-1]

    try:
        hooks, hung = busy_delivery_loop(server, make_sink, account)
        with server.client() as client:
            post_events(client, account, events("verify-stop", 3))
        wait_until(held(db_path, hooks[2]), what="a delivery held by the hung receiver")
        verify = start_verify(server, account, hooks[2]["id"])
        hung.wait_until(lambda requests: any(b'"test":true' in r.body for r in requests),
                        what="the verify call held by the hung receiver")
        idle = open_idle_connection(server)
        half = socket.create_connection(idle.getpeername(), timeout=WAIT_S)
        half.sendall(b"GET /healthz HTTP/1.1\r\n")
        checked = Background(lambda: stop_and_check(server, db_path, hooks, {f"verify-stop-{i}" for i in range(3)},
                                                    idle, half))
        yield Shutdown(server, checked, verify=verify)
    finally:
        if server.proc.poll() is None:
            server.kill()
        for sink in sinks:
            sink.stop()


def test_sigterm_ends_a_running_request_and_idle_connections_within_the_bound(running_request_shutdown):
    """The verify call is cut off after the graceful period; the idle connection and the half-sent
    request head do not hold the shutdown."""
    shutdown = running_request_shutdown
    shutdown.checked.result()
    assert shutdown.verify is not None
    shutdown.verify.join(WAIT_S)
    assert not shutdown.verify.is_alive(), "the verify call neither got an answer nor saw its connection close"


def test_sigterm_stops_the_delivery_loop_every_time(make_server, make_sink, account, db_path):
    """The delivery loop stops however its workers are caught by the signal.

    It used to miss its stop when a worker finished at that very moment, and the process then
    never exited; a webhook waiting on a retry made that moment come round constantly. It
    depends on timing, so the server is stopped several times, each time with the loop busy
    and an idle keep-alive connection open.
    """
    hooks: list[dict] = []
    for attempt in range(STOP_REPEATS):
        server = make_server("--allow-private-targets")
        if not hooks:
            hooks, _ = busy_delivery_loop(server, make_sink, account)
        with server.client() as client:
            post_events(client, account, events(f"stop-{attempt}", 3))
        wait_until(held(db_path, hooks[2]), what="a delivery held by the hung receiver")
        # wait_until calls the lambda before the loop rebinds hooks.
        wait_until(lambda: query(db_path, "SELECT 1 FROM deliveries WHERE webhook_id = ?", (hooks[1]["id"],)),  # noqa: B023
                   what="a refused delivery to the closed port")
        stop_and_check(server, db_path, hooks, {f"stop-{attempt}-{i}" for i in range(3)},
                       open_idle_connection(server))


def stalled_reader(server) -> socket.socket:
    """A client that sends request after request and never reads an answer: the server's
    writes to it block, and Hypercorn cannot close that connection."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.connect((host, int(port)))
    sock.setblocking(False)
    # /metrics: answers large enough to fill the buffers before Hypercorn's 1,000 requests per connection.
    requests = b"GET /metrics HTTP/1.1\r\nHost: linkhub.test\r\n\r\n" * 50
    for _ in range(100_000):  # bounded: ~200 MB of requests at most
        try:
            sock.send(requests)
        except BlockingIOError:
            # Hypercorn reads the next request only once its answer to the last one is written, so
            # requests that stay unsent for a while mean it is blocked writing to us. An observation
            # window for something that stops happening, not a guess at how long something takes.
            _, writable, _ = select.select([], [sock], [], STALL_S)
            if not writable:
                return sock
    raise AssertionError("the server kept reading requests whose answers were never read")


@pytest.fixture(scope="module", autouse=True)
def stalled_reader_shutdown(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shutdown]:
    """A client that never reads its answers, then SIGTERM: the server stops without Hypercorn once
    GRACEFUL_TIMEOUT_S + SHUTDOWN_MARGIN_S have passed, while the module's other tests run."""
    db_path = new_database(tmp_path_factory, "stalled-reader")
    account = create_account(db_path)
    server = start_server(db_path)
    stalled = None
    try:
        [path] = mint_many(server, account, 1)
        stalled = stalled_reader(server)
        with server.client() as client:
            assert client.get(path).status_code == 302
        # The stalled connection stays open until the stop is over: closed, it would let Hypercorn stop.
        yield Shutdown(server, Background(lambda: server.stop(timeout=STOP_BOUND_S)))
    finally:
        if stalled is not None:
            stalled.close()
        if server.proc.poll() is None:
            server.kill()


def test_sigterm_stops_even_when_a_client_never_reads_its_answers(stalled_reader_shutdown):
    server = stalled_reader_shutdown.server
    assert stalled_reader_shutdown.checked.result() == 0, server.output[-3000:]
    assert "stopping without it" in server.output, "the connection was closed: the test proved nothing"
    assert "database writer drained and closed" in server.output
    assert len(query(server.db_path, "SELECT * FROM clicks")) == 1
