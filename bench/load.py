"""Load generators: wrk for redirects, and link-replacement calls in a closed and an open loop.

The link-replacement client is raw HTTP/1.1 on asyncio streams (keep-alive, uvloop when
installed): it shares the machine's cores with the server, so it must cost as little as possible.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fleet import BENCH, host_port, log
from seed import Account

LUA = BENCH / "redirect.lua"
OPEN_CALL_TIMEOUT_S = 30.0
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)")
_CLOSE = re.compile(rb"(?im)^connection:\s*close")
T = TypeVar("T")


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile; NaN of nothing."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


# -- redirects (wrk) ----------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    status_errors: int  # responses with status >= 400
    socket_errors: int  # connect + read + write + timeout

    @property
    def redirects(self) -> int:
        return self.requests - self.status_errors


def wrk(url: str, codes_file: Path, *, duration: float, connections: int, threads: int,
        clients: str = "one-address", prefix: str = "/r/") -> WrkResult:
    """One wrk run of GET /r/<a random code of `codes_file`> (bench/redirect.lua; `prefix` "/o/" for
    open pixels); `clients` is where the hits seem to come from: "one-address" (wrk's own) or
    "people" (an X-Forwarded-For each)."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "10s",
            "-s", str(LUA), url, "--", str(codes_file), clients, prefix]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line[len("BENCH "):])
    duration_s = data["duration_us"] / 1e6
    return WrkResult(
        requests=data["requests"],
        duration_s=duration_s,
        rps=data["requests"] / duration_s,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        status_errors=data["status"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
    )


# -- link replacement: the calls --------------------------------------------------------------


def email_body(run: str, n: int | str, links: int) -> bytes:
    """One outgoing email of `links` links to a new (mailing, prospect), as Outreach sends it."""
    data = [f"https://www.example.com/blog/post-{k}?utm_source=outreach&utm_campaign={run}-{n}"
            for k in range(links)]
    return json.dumps({
        "data": data,
        "meta": {
            "mailing": {"id": f"{run}-m{n}"},
            "prospect": {"id": f"{run}-p{n}", "email": f"prospect{n}@example.org"},
            "user": {"id": "u1", "email": "sender@example.com"},
            "urls": {url: url for url in data},
        },
    }).encode()


def email_bodies(run: str, links: int) -> Callable[[int], bytes]:
    """email_body(run, n, links) for any n, by one bytes.replace on a template: the load
    generator shares the server's 2 cores, so it builds each email in ~10 µs, not ~65."""
    marker = "NNNNNNNN"
    template = email_body(run, marker, links)
    return lambda n: template.replace(marker.encode(), str(n).encode())


def signature(secret: str, body: bytes) -> str:
    """The Outreach-Webhook-Signature of `body`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_request(url: str, account: Account, body: bytes) -> bytes:
    """The raw HTTP/1.1 link-replacement request for `body`, signed with the account's secret."""
    host, port = host_port(url)
    return (f"POST /outreach/{account.id}/links HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nOutreach-Webhook-Signature: {signature(account.secret, body)}\r\n\r\n"
            ).encode() + body


async def read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 answer: its head and its body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(_CONTENT_LENGTH.search(head)[1])  # type: ignore[index]
    return head, await reader.readexactly(length)


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


class _Latencies:
    """Percentiles and rates shared by both link-replacement results."""

    latencies_ms: list[float]
    links: int
    elapsed_s: float

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 99)

    @property
    def links_per_s(self) -> float:
        return self.links / self.elapsed_s


# -- link replacement: the closed loop ------------------------------------------------------


@dataclass
class MintResult(_Latencies):
    calls: int
    failures: int
    links: int
    elapsed_s: float
    latencies_ms: list[float]

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.elapsed_s


async def _closed_loop(url: str, account: Account, *, senders: int, links: int, duration: float,
                       run: str) -> MintResult:
    counter = iter(range(1 << 62))
    body_for = email_bodies(run, links)
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + duration

    async def sender() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection(*host_port(url))
        try:
            while time.monotonic() < deadline:
                request = signed_request(url, account, body_for(next(counter)))
                started = time.perf_counter()
                writer.write(request)
                try:
                    head, payload = await read_answer(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    # The server closed the connection (it answers a 503 with `Connection: close`): a
                    # failed call, counted, and a new connection, as Outreach's next call would make.
                    failures += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(*host_port(url))
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                if status_of(head) != 200 or len(json.loads(payload)["data"]) != links:
                    failures += 1
                    if failures <= 3:
                        log(f"link replacement answered {status_of(head)}: {payload[:200]!r}")
                if _CLOSE.search(head):
                    writer.close()
                    reader, writer = await asyncio.open_connection(*host_port(url))
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    elapsed = time.perf_counter() - started
    calls = len(latencies)
    return MintResult(calls=calls, failures=failures, links=(calls - failures) * links, elapsed_s=elapsed,
                      latencies_ms=latencies)


def closed_loop(url: str, account: Account, *, senders: int, links: int, duration: float) -> MintResult:
    """`senders` senders, each sending its next email as soon as the last is answered (saturation)."""
    return run_async(_closed_loop(url, account, senders=senders, links=links, duration=duration,
                                  run="bench" + secrets.token_hex(4)))


# -- link replacement: the open loop ---------------------------------------------------------


@dataclass
class OpenMintResult(_Latencies):
    """One open-loop run: calls started on a fixed schedule, latency counted from the scheduled start."""

    offered_per_s: float
    scheduled: int  # calls the schedule started
    answered: int  # calls that got an HTTP answer (any status)
    failures: int  # non-200, wrong number of links, connection error or timeout
    ok: int  # 200 answers with every link replaced
    links: int  # links in those answers
    elapsed_s: float  # first scheduled start → last answer
    latencies_ms: list[float]  # per answered call, from its scheduled start (queueing included)
    start_lag_ms: list[float]  # how late the client itself wrote each request (its own overhead)
    connections: int  # connections opened over the run (32 if every sender kept up on one)

    @property
    def max_ms(self) -> float:
        return max(self.latencies_ms, default=float("nan"))

    @property
    def calls_per_s(self) -> float:
        return self.ok / self.elapsed_s


_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _OpenLoop:
    """Sender i starts its k-th call at t0 + i/rate + k·senders/rate, whether or not its earlier calls
    have been answered (phases staggered so the calls arrive evenly, one every 1/rate s overall).
    A call goes out on one of its sender's idle keep-alive connections, or on a new one (then kept for
    the sender's later calls) when all of them are busy. Requests are built before the clock starts."""

    def __init__(self, url: str, account: Account, *, senders: int, links: int, rate: float, duration: float,
                 run: str) -> None:
        self.url, self.links, self.rate, self.duration = url, links, rate, duration
        self.period = senders / rate
        # Sender i's k-th call is scheduled at t0 + i/rate + k·period; those scheduled before `duration` are sent.
        per_sender = [max(0, math.ceil((duration - i / rate) / self.period)) for i in range(senders)]
        numbers = iter(range(sum(per_sender)))
        self.requests = [[signed_request(url, account, email_body(run, next(numbers), links)) for _ in range(n)]
                         for n in per_sender]
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.failures = self.answered = self.ok = self.opened = 0
        self.last_answer = 0.0

    async def _connection(self, idle: list[_Connection]) -> _Connection:
        if idle:
            return idle.pop()
        self.opened += 1
        return await asyncio.open_connection(*host_port(self.url))

    def _failed(self, what: str) -> None:
        self.failures += 1
        if self.failures <= 3:
            log(f"link replacement (open loop) {what}")

    async def call(self, idle: list[_Connection], request: bytes, scheduled: float) -> None:
        conn = None
        try:
            conn = await self._connection(idle)
            reader, writer = conn
            self.lags.append((time.perf_counter() - scheduled) * 1000)  # incl. connecting, for a new one
            writer.write(request)
            head, payload = await asyncio.wait_for(read_answer(reader), OPEN_CALL_TIMEOUT_S)
            self.last_answer = time.perf_counter()
            self.latencies.append((self.last_answer - scheduled) * 1000)
            self.answered += 1
            if status_of(head) == 200 and len(json.loads(payload)["data"]) == self.links:
                self.ok += 1
            else:
                self._failed(f"answered {status_of(head)}: {payload[:200]!r}")
            if _CLOSE.search(head) is None:
                idle.append(conn)
                conn = None
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self._failed(f"failed: {exc!r}")
        finally:
            if conn is not None:
                conn[1].close()

    async def run(self) -> OpenMintResult:
        tasks: list[asyncio.Task[None]] = []
        idles: list[list[_Connection]] = [[] for _ in self.requests]
        for idle in idles:  # each sender's own keep-alive connection, opened before the clock starts
            idle.append(await asyncio.open_connection(*host_port(self.url)))
            self.opened += 1
        t0 = time.perf_counter() + 0.05

        async def sender(i: int) -> None:
            for k, request in enumerate(self.requests[i]):
                scheduled = t0 + i / self.rate + k * self.period
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.call(idles[i], request, scheduled)))

        await asyncio.gather(*(sender(i) for i in range(len(self.requests))))
        await asyncio.gather(*tasks)
        for idle in idles:
            for _, writer in idle:
                writer.close()
        return OpenMintResult(offered_per_s=self.rate, scheduled=sum(map(len, self.requests)),
                              answered=self.answered, failures=self.failures, ok=self.ok, links=self.ok * self.links,
                              elapsed_s=max(self.last_answer, t0 + self.duration) - t0, latencies_ms=self.latencies,
                              start_lag_ms=self.lags, connections=self.opened)


def open_loop(url: str, account: Account, *, senders: int, links: int, rate: float,
              duration: float) -> OpenMintResult:
    """A fixed offered load of `rate` calls/s, latency counted from each call's scheduled start."""
    loop = _OpenLoop(url, account, senders=senders, links=links, rate=rate, duration=duration,
                     run="open" + secrets.token_hex(4))
    return run_async(loop.run())
