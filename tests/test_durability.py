"""Clicks survive the process: graceful shutdown commits them, and SIGKILL loses none that was answered.

Many concurrent redirects run against a real server; once a given number of answers
has come back (a counter and an Event, not a sleep) the server is stopped. Each request
has its own code and its own User-Agent, so its click row can be found afterwards.
"""

from __future__ import annotations

import re
import signal
import ssl
import threading
from dataclasses import dataclass, field

import httpx
from conftest import outreach_body, post_links, query

TOTAL = 400
CONNECTIONS = 32
# A safety net for a hung server, never a synchronisation point.
WAIT_S = 60


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


def run_and_stop(server, account, *, trigger_after: int, stop, **options) -> tuple[Hammer, list[str]]:
    paths = mint_many(server, account, TOTAL)
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
        hammer.run_until_stopped(lambda: server.stop(signal.SIGTERM))
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
    hammer, paths = run_and_stop(server, account, trigger_after=120, stop=server.kill)

    answered = hammer.answered()
    assert len(answered) >= 120
    # The kill came mid-way: some requests never got their answer.
    assert len(answered) < TOTAL, "the server finished before it was killed; the test proved nothing"
    statuses = {r for r in hammer.results.values() if isinstance(r, int)}
    assert statuses == {302}, statuses

    # A new server on the same file: SQLite recovers the WAL, and serves the old links.
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
