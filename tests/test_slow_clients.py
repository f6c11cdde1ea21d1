"""Slow clients: headers or bodies that trickle in are cut off, and never starve other clients."""

from __future__ import annotations

import resource
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from conftest import outreach_body, post_links, start_server

HEADER_DRIBBLERS = 150
BODY_DRIBBLERS = 150
BODY_TIMEOUT_S = 4
# Hypercorn's keep-alive timeout (server.KEEP_ALIVE_TIMEOUT_S) bounds slow headers; bodies get
# BODY_TIMEOUT_S. Every slow connection must be closed by the server well within this.
CLOSE_WITHIN_S = 30
TRICKLE_EVERY_S = 0.5


@dataclass
class Dribbler:
    sock: socket.socket
    kind: str  # "headers" or "body"
    received: bytearray = field(default_factory=bytearray)
    closed_by_server: bool = False


def _open(address: tuple[str, int], kind: str, account_id: str) -> Dribbler:
    sock = socket.create_connection(address, timeout=5)
    sock.setblocking(False)
    if kind == "headers":  # a request head that never ends
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: linkhub.test\r\nX-Slow: ")
    else:  # a complete head, then a body far slower than the deadline
        sock.sendall(f"POST /outreach/{account_id}/links HTTP/1.1\r\nHost: linkhub.test\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[".encode())
    return Dribbler(sock, kind)


def _trickle_until_closed(dribblers: list[Dribbler], stop: threading.Event) -> None:
    """Send one byte per connection every TRICKLE_EVERY_S and read what the server answers,
    until the server has closed every connection (or CLOSE_WITHIN_S has passed)."""
    selector = selectors.DefaultSelector()
    for dribbler in dribblers:
        selector.register(dribbler.sock, selectors.EVENT_READ, dribbler)
    give_up = time.monotonic() + CLOSE_WITHIN_S
    next_trickle = time.monotonic()
    try:
        while selector.get_map() and time.monotonic() < give_up and not stop.is_set():
            if time.monotonic() >= next_trickle:
                next_trickle += TRICKLE_EVERY_S
                for key in list(selector.get_map().values()):
                    try:
                        key.data.sock.send(b"a")
                    except BlockingIOError:
                        pass
                    except OSError:  # reset by the server: it closed the connection
                        pass
            for key, _ in selector.select(timeout=max(0.0, min(next_trickle, give_up) - time.monotonic())):
                dribbler: Dribbler = key.data
                try:
                    data = dribbler.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    dribbler.received += data
                else:
                    dribbler.closed_by_server = True
                    selector.unregister(dribbler.sock)
    finally:
        selector.close()


def test_300_trickling_connections_neither_starve_others_nor_stay_open(db_path, account, tmp_path):
    # Started with a soft open-file limit below the number of connections: the server raises it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    try:
        server = start_server(db_path, "--body-timeout", str(BODY_TIMEOUT_S))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    address = (urlsplit(server.url).hostname, urlsplit(server.url).port)
    dribblers: list[Dribbler] = []
    stop = threading.Event()
    trickler = None
    try:
        with server.client() as client:
            short = post_links(client, account, outreach_body(["https://example.com/x"])).json()["data"]
        code = short["https://example.com/x"].rsplit("/", 1)[1]

        dribblers = [_open(address, "headers", account.id) for _ in range(HEADER_DRIBBLERS)]
        dribblers += [_open(address, "body", account.id) for _ in range(BODY_DRIBBLERS)]
        trickler = threading.Thread(target=_trickle_until_closed, args=(dribblers, stop), daemon=True)
        trickler.start()

        # While all 300 are connected and trickling, other clients are answered (5 s: a liveness bound).
        with httpx.Client(base_url=server.url, timeout=5) as other:
            assert other.get("/healthz").status_code == 200
            assert other.get(f"/r/{code}").status_code == 302
        assert not any(d.closed_by_server for d in dribblers), "the test needs them open at this point"

        trickler.join(CLOSE_WITHIN_S + 5)
        still_open = [d for d in dribblers if not d.closed_by_server]
        assert not still_open, f"{len(still_open)} slow connections were not closed by the server"
        for dribbler in dribblers:
            if dribbler.kind == "body":  # told why, then closed
                head = bytes(dribbler.received)
                assert head.startswith(b"HTTP/1.1 408"), head[:200]
                assert b'"error":"body_timeout"' in head
        with httpx.Client(base_url=server.url, timeout=5) as other:
            assert other.get("/healthz").status_code == 200
    finally:
        stop.set()
        if trickler is not None:
            trickler.join(10)
        for dribbler in dribblers:
            dribbler.sock.close()
        assert server.stop() == 0
    assert "Traceback" not in server.output, server.output[-3000:]

