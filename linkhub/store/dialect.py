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


def fill(template: str, **parts: Sql) -> Sql:
    """`template` in each dialect, its `{name}`s replaced by that dialect's text of each part."""
    return Sql(sqlite=template.format(**{name: part.sqlite for name, part in parts.items()}),
               postgresql=template.format(**{name: part.postgresql for name, part in parts.items()}))


def json_values(param: str, cast: str | None = None) -> Sql:
    """The values of the JSON array parameter `param` (`?` or `:name`), as a subquery for `IN`; on
    PostgreSQL they are text, `cast` to the type compared with (`bigint` for seqs)."""
    value = f"value::{cast}" if cast else "value"
    return Sql(sqlite=f"(SELECT value FROM json_each({param}))",
               postgresql=f"(SELECT {value} FROM jsonb_array_elements_text(CAST({param} AS jsonb)))")


def address_in(column: str, param: str) -> Sql:
    """`column` is one of the addresses of the JSON array `param`, ignoring the case of ASCII letters:
    SQLite's NOCASE, PostgreSQL's lower() (which its address indexes are on; with the C locale it
    folds ASCII letters only, as NOCASE does)."""
    return Sql(sqlite=f"{column} COLLATE NOCASE IN (SELECT value FROM json_each({param}))",
               postgresql=f"lower({column}) IN"
                          f" (SELECT lower(value) FROM jsonb_array_elements_text(CAST({param} AS jsonb)))")


def is_postgresql(conn: Connection) -> bool:
    return conn.dialect == "postgresql"


# The database's clock as linkhub stores times: RFC 3339 UTC with milliseconds and a Z.
NOW = Sql(
    sqlite="strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    postgresql="to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
)
