"""A fast webhook receiver for the benchmarks: answers 200 at once and notes when each event arrived.

Runs as its own process (so it does not share the GIL with linkhub):

    python bench/sink.py [PORT]

PORT 0 (the default) takes a free port; once listening it prints `sink: serving on URL` on
stderr, as linkhub does.

POSTs are JSON arrays of events in linkhub's format; the sink records (event id, arrival
time) for each. `GET /stats` answers {"events": n, "first": t, "last": t, "arrivals": {id: t}}.
A bare asyncio protocol rather than a framework: the receiver must not be the bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

arrivals: dict[str, float] = {}
window: list[float] = []  # first and last arrival


class Sink(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            if head.startswith("GET"):
                self._answer(json.dumps({"events": len(arrivals), "first": window[0] if window else None,
                                         "last": window[-1] if window else None,
                                         "arrivals": arrivals}).encode())
                continue
            now = time.time()
            for event in json.loads(body):
                arrivals.setdefault(event["id"], now)
            if not window:
                window.append(now)
            window[1:] = [now]
            self._answer(b"")

    def _answer(self, body: bytes) -> None:
        self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (len(body), body))


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Sink, "127.0.0.1", port)
    port = server.sockets[0].getsockname()[1]
    print(f"sink: serving on http://127.0.0.1:{port}", file=sys.stderr, flush=True)  # as linkhub announces itself
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
