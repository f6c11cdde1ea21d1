"""Erasing a recipient of an account (`linkhub erase`, `DELETE /v1/recipients`): find what is theirs off
the writer, delete it in one short write with its receipt, then (SQLite) truncate the WAL so the deleted
bytes leave the files too. PostgreSQL's WAL and dead rows are the server's to recycle (VACUUM): linkhub
cannot say they are gone, so it says nothing (docs/privacy.md).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from linkhub.core import erasure
from linkhub.core.accounts import AccountNotFound, get
from linkhub.core.erasure import Receipt, Target
from linkhub.services.storage import Storage
from linkhub.store import Connection

# How often the WAL truncation is asked for again when readers on old frames held it (each attempt
# waits a little, between writes), and how long to wait between two.
TRUNCATE_ATTEMPTS = 20
TRUNCATE_PAUSE_S = 0.05


class ErasureStorage(Storage, Protocol):
    async def truncate_wal(self) -> bool:
        """Copy the WAL into the database file and truncate it; False if it could not now."""
        ...


@dataclass(frozen=True)
class Erased:
    receipt: Receipt
    dry_run: bool
    # The WAL was truncated after the erasure: no byte of the erased rows is left in the files. None: a dry
    # run, or on PostgreSQL (whose WAL and dead rows linkhub does not control).
    wal_truncated: bool | None

    def document(self) -> dict[str, Any]:
        return {**self.receipt.document(), "dry_run": self.dry_run, "wal_truncated": self.wal_truncated}


async def erase(store: ErasureStorage, account_id: str, target: Target, *, via: str,
                dry_run: bool = False) -> Erased:
    """Erase the person `target` names from the account (or, `dry_run`, say what that would remove).

    Raises AccountNotFound. Every request that is not a dry run stores a receipt, also one that finds
    nothing (erased before, or never there): the log of requests is complete, and `earlier` says when
    the same identifier was erased before.
    """

    def read() -> tuple[erasure.Found, str, erasure.Counts | None, list[str], bool]:
        conn = store.reader()
        if get(conn, account_id) is None:
            raise AccountNotFound(account_id)
        found = erasure.find(conn, account_id, target)
        hashed = erasure.identifier_hash(target, erasure.salt(conn))
        counts = erasure.count(conn, account_id, found) if dry_run else None
        return found, hashed, counts, erasure.receipts_of(conn, account_id, hashed), conn.dialect == "sqlite"

    # A scan on a big file, and scrypt: in a thread, off the server's event loop.
    found, hashed, counts, earlier, on_sqlite = await asyncio.to_thread(read)
    if counts is not None:
        receipt = Receipt(None, account_id, "", target.kind, hashed, via, counts, earlier)
        return Erased(receipt, True, None)

    def write(conn: Connection) -> Receipt:
        return erasure.erase(conn, account_id, target, found, via=via, identifier_hash=hashed)

    receipt = await store.write(write)
    return Erased(receipt, False, await _truncate(store) if on_sqlite else None)


async def _truncate(store: ErasureStorage) -> bool:
    for attempt in range(TRUNCATE_ATTEMPTS):
        if await store.truncate_wal():
            return True
        if attempt + 1 < TRUNCATE_ATTEMPTS:
            await asyncio.sleep(TRUNCATE_PAUSE_S)
    return False
