"""The statements that differ between SQLite and PostgreSQL, written out for each, side by side.

Most of linkhub's SQL is the same in both dialects and is written once (with SQLite's `?` and `:name`
placeholders, which `store.pg` spells for psycopg). Where the dialects differ (a JSON array as a set
of values, the database's clock, an upsert's number, a case-blind comparison), the statement is an
`Sql` holding both texts, and `Sql.on(conn)` picks the connection's. (What SQLite's write lock gives
every write transaction for free, PostgreSQL's gets from `pg.PgConnection.begin`: see there.)
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
