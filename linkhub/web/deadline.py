"""The request-body deadline: a client that sends its body too slowly is answered 408 and cut off.

Hypercorn bounds the headers (they must arrive within its keep-alive timeout) but not the
body: a client trickling one byte a second would hold its connection, and a handler, for
as long as it likes. The deadline wraps the ASGI `receive` of each request, so every body
reader (`responses.read_body`, Starlette's own) is bounded without knowing about it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]


class BodyTimeout(Exception):
    """The request body did not arrive within the deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"request body did not arrive within {seconds:g} s")
        self.seconds = seconds


def within(receive: Receive, seconds: float) -> Receive:
    """`receive`, raising BodyTimeout once the body is not complete `seconds` after this call.

    The deadline covers the whole body, not each read: trickled bytes do not extend it.
    Once the body is complete, later calls (Starlette listening for a disconnect) wait freely.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    complete = False

    async def receive_within() -> dict[str, Any]:
        nonlocal complete
        if complete:
            return await receive()
        try:
            # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation (a shutdown) that
            # arrives as the wait ends, and it runs each read in a task of its own.
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise BodyTimeout(seconds) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            complete = True
        return message

    return receive_within

