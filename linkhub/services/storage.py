"""What a use case needs of the database: a connection to read from, and a write that commits.

The server's `Database` is one (its writer thread runs the write in a shared transaction); the
CLI's `Direct` (cli/common.py) is the other, on a connection of its own. So one code path
serves both front ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from linkhub.store import Connection

T = TypeVar("T")


class Storage(Protocol):
    def reader(self) -> Connection:
        """A connection to read from, outside any write."""
        ...

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(conn)` in one transaction; return its result once it is committed."""
        ...
