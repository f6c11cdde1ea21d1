"""What a use case needs of the database: a connection to read from, and a write that commits.

The server's `Database` is one (its writer thread runs the write in a shared transaction); the
CLI's `Direct` (cli/common.py) is the other, on a connection of its own. So one code path
serves both front ends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Storage(Protocol):
    def reader(self) -> sqlite3.Connection:
        """A connection to read from, outside any write."""
        ...

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in one transaction; return its result once it is committed."""
        ...
