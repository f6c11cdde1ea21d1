"""The statements that differ between SQLite and PostgreSQL, written out for each, side by side.

Most of linkhub's SQL is the same in both dialects and is written once (with SQLite's `?` and `:name`
placeholders, which `store.pg` spells for psycopg). Where the dialects differ (a JSON array as a set
of values, the database's clock, an upsert's number, a case-blind comparison), the statement is an
`Sql` holding both texts, and `Sql.on(conn)` picks the connection's.
"""

from __future__ import annotations

from dataclasses import dataclass

from linkhub.store.db import Connection


@dataclass(frozen=True, slots=True)
class Sql:
    """One statement in SQLite's dialect and in PostgreSQL's."""

    sqlite: str
    postgresql: str

    def on(self, conn: Connection) -> str:
        return self.postgresql if conn.dialect == "postgresql" else self.sqlite


def is_postgresql(conn: Connection) -> bool:
    return conn.dialect == "postgresql"


# The database's clock as linkhub stores times: RFC 3339 UTC with milliseconds and a Z.
NOW = Sql(
    sqlite="strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    postgresql="to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
)

# The key of the transaction-level advisory lock that every transaction writing events or outbox rows
# takes first on PostgreSQL (`serialize_events`): see its docstring.
EVENTS_LOCK = 0x6C696E6B68756232  # 'linkhub2'


def serialize_events(conn: Connection) -> None:
    """Before a transaction takes `seq` numbers (events) or outbox ids, wait for every other such
    transaction to end. On SQLite the write lock already does this. On PostgreSQL a sequence hands out
    its numbers before commit, so two transactions could commit out of order, and a reader of
    `seq > cursor` (GET /v1/events, export, an ordered webhook's next batch) could pass a number that
    commits later. Under one transaction-level advisory lock, numbers are taken in commit order. It is
    held until the commit and taken again for free within the same transaction."""
    if conn.dialect == "postgresql":
        conn.execute(f"SELECT pg_advisory_xact_lock({EVENTS_LOCK})")
