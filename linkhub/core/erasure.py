"""Erasing one recipient of an account: their events (clicks and opens included), the deliveries and
verdict history of those events, their links, which keep redirecting but record nothing more, and
their open pixels, which keep answering but record nothing more; and the receipt that says it was
done, without the identifier.

Two steps, so that a big database never holds the write lock through a scan: `find` reads on a
connection of its own (in WAL mode it waits for no writer) what belongs to the person; `erase`, in
the write transaction, deletes that and whatever arrived for them since (events and links newer
than what `find` saw: a range of the primary key, not a scan), with SQLite's secure delete on, so
the deleted rows' bytes are zeroed instead of left in free space. The WAL still holds the pages
of earlier commits until it is truncated: the caller does that (`store.truncate_wal`). On PostgreSQL
`erase` matches the account's links and pixels again in full (there is no rowid to mark how far
`find` read: see _LAST_LINK), and the deleted rows stay as dead tuples until VACUUM (docs/privacy.md).

Who "the person" is: the identifier given, and the identifiers found with it once (by email: the
recipient ids of their links and events; by recipient id: the addresses of theirs), so an event
that carries only one of the two goes too.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import msgspec

from linkhub.core import mailings
from linkhub.core.errors import LinkhubError
from linkhub.store import Connection
from linkhub.store.dialect import Sql, address_in, fill, is_postgresql, json_values
from linkhub.util.times import now_rfc3339
from linkhub.util.wording import ascii_lower

Kind = Literal["email", "recipient_id"]
# What an erased link's prospect_id becomes: unique per link, so links_by_recipient stays unique.
ERASED_PREFIX = "erased:"
MAX_IDENTIFIER = 2048
# scrypt's cost for a receipt's hash: ~30-60 ms and 16 MiB per hash. Whoever holds the file holds the
# salt too and can test guessed addresses against the receipts; this makes each guess cost as much.
SCRYPT = {"n": 2**14, "r": 8, "p": 1}

_encode = msgspec.json.encode


class InvalidIdentifier(LinkhubError):
    status = 422
    code = "invalid_parameter"


@dataclass(frozen=True)
class Target:
    """The person to erase, as the operator named them."""

    kind: Kind
    value: str

    @staticmethod
    def of(email: str | None, recipient_id: str | None) -> Target:
        """Exactly one of the two; refused (naming the field) otherwise."""
        if email is not None and recipient_id is not None:
            raise InvalidIdentifier("give either email or recipient_id, not both", field="recipient_id")
        if email is None and recipient_id is None:
            raise LinkhubError("email or recipient_id is required: the recipient to erase",
                               code="missing_parameter", field="email")
        if email is not None:
            email = email.strip()
            if "@" not in email or len(email) > MAX_IDENTIFIER:
                raise InvalidIdentifier("not an email address", field="email")
            return Target("email", email)
        assert recipient_id is not None
        if not recipient_id or len(recipient_id) > MAX_IDENTIFIER or recipient_id.startswith(ERASED_PREFIX):
            raise InvalidIdentifier("not a recipient id", field="recipient_id")
        return Target("recipient_id", recipient_id)

    def normalised(self) -> str:
        # Addresses match ignoring the case of ASCII letters (as events_by_email, COLLATE NOCASE).
        return ascii_lower(self.value) if self.kind == "email" else self.value


@dataclass
class Found:
    """What `find` saw of the person: the identifiers, the rows, and how far it read."""

    emails: list[str]
    recipient_ids: list[str]
    seqs: list[int]
    link_codes: list[str]
    last_seq: int  # the newest event when it read: `erase` looks again above it
    last_link: int  # the same for links (their rowid; 0 on PostgreSQL, which has none: see _LAST_LINK)
    pixel_codes: list[str] = field(default_factory=list)
    last_pixel: int = 0  # the same for pixels (their rowid; 0 on PostgreSQL)


@dataclass
class Counts:
    events: int = 0
    clicks: int = 0
    outbox: int = 0
    verdict_changes: int = 0
    links_kept: int = 0
    links_deleted: int = 0
    # Open pixels anonymised, still answering.
    pixels: int = 0
    inbound_rejects: int = 0  # items an inbound endpoint refused that named the person

    def document(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Receipt:
    id: int | None  # None: a dry run, nothing stored
    account_id: str
    erased_at: str
    identifier_kind: Kind
    identifier_hash: str
    via: str
    counts: Counts
    earlier: list[str] = field(default_factory=list)  # when the same identifier was erased before

    def document(self) -> dict[str, Any]:
        return {"id": self.id, "account_id": self.account_id, "erased_at": self.erased_at,
                "identifier_kind": self.identifier_kind, "identifier_hash": self.identifier_hash,
                "via": self.via, "removed": self.counts.document(), "earlier": self.earlier}


# The person's rows: addresses compared ignoring the case of ASCII letters (SQLite's NOCASE, PostgreSQL's
# lower() with the C locale, which its events_by_email index is on), the lists given as JSON arrays.
_EMAIL_MATCH = address_in("email", ":emails")
_ID_MATCH = fill("recipient_id IN {ids}", ids=json_values(":ids"))
_LINK_EMAIL = address_in("prospect_email", ":emails")
_LINK_ID = fill("prospect_id IN {ids}", ids=json_values(":ids"))
_LINK_MATCH = fill("erased_at IS NULL AND ({email} OR {id})", email=_LINK_EMAIL, id=_LINK_ID)
_PIXEL_MATCH = fill("erased_at IS NULL AND ({email} OR {id})", email=_EMAIL_MATCH, id=_ID_MATCH)
# Rows whose key is in a JSON array of them (seqs, link codes, pixel codes).
_SEQS = json_values("?", "bigint")
_CODES = json_values(":codes")


# An inbound endpoint's rejected item names the person where the provider puts an address or an id,
# or anywhere in its text (a malformed item may hold the address in a field of the wrong name).
_REJECT_MATCH = Sql(
    sqlite=("account_id = ? AND (email COLLATE NOCASE IN (SELECT value FROM json_each(?))"
            " OR recipient_id IN (SELECT value FROM json_each(?))"
            " OR EXISTS (SELECT 1 FROM json_each(?) AS n WHERE instr(lower(item), n.value)))"),
    postgresql=("account_id = ? AND (lower(email) IN"
                " (SELECT lower(value) FROM jsonb_array_elements_text(CAST(? AS jsonb)))"
                " OR recipient_id IN (SELECT value FROM jsonb_array_elements_text(CAST(? AS jsonb)))"
                " OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(CAST(? AS jsonb)) AS n"
                " WHERE strpos(lower(item), n.value) > 0))"),
)

# How far `find` read links and pixels, for `erase` to look again only past it. On SQLite, the rowid:
# a new row's is the table's highest + 1, taken under the write lock, so the rowids commit in order
# and every row at or below the highest one `find` saw was there for it to see. PostgreSQL has no
# rowid; a code begins with its number, but the number is not stored apart, and codes compared as
# text follow it only in the C collation (created_at is the minting process's clock, which says even
# less). So on PostgreSQL there is no mark (0), and `erase` matches the account's links and pixels
# again in full, in its own transaction: what it costs is the writer's time, once per erasure (about
# 0.1 s with 300,000 links in the account).
_LAST_LINK = Sql(sqlite="SELECT coalesce(max(rowid), 0) FROM links", postgresql="SELECT 0")
_LAST_PIXEL = Sql(sqlite="SELECT coalesce(max(rowid), 0) FROM pixels", postgresql="SELECT 0")
_NEWER_LINKS = Sql(sqlite="SELECT code FROM links WHERE rowid > :last_link AND account_id = :account AND {match}",
                   postgresql="SELECT code FROM links WHERE account_id = :account AND {match}")
_NEWER_PIXELS = Sql(sqlite="SELECT code FROM pixels WHERE rowid > :last_pixel AND account_id = :account AND {match}",
                    postgresql="SELECT code FROM pixels WHERE account_id = :account AND {match}")
_STORE_RECEIPT = (
    "INSERT INTO erasures (account_id, erased_at, identifier_kind, identifier_hash, via, events, clicks, outbox,"
    " verdict_changes, links_kept, links_deleted, inbound_rejects, pixels)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _reject_params(account_id: str, found: Found) -> tuple[Any, ...]:
    needles = sorted({ascii_lower(email) for email in found.emails})
    return (account_id, _encode(found.emails).decode(), _encode(found.recipient_ids).decode(),
            _encode(needles).decode())


def _params(account_id: str, emails: list[str], ids: list[str], **more: Any) -> dict[str, Any]:
    return {"account": account_id, "emails": _encode(emails).decode(), "ids": _encode(ids).decode(), **more}


def find(conn: Connection, account_id: str, target: Target) -> Found:
    """What belongs to the person in the account, read outside any write (a scan of the account's
    events when recipient ids are involved: they have no index, and an erasure is rare)."""
    # Events' seqs commit in order on both (on PostgreSQL, write transactions take turns: PgConnection.begin).
    last_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    last_link = conn.execute(_LAST_LINK.on(conn)).fetchone()[0]
    last_pixel = conn.execute(_LAST_PIXEL.on(conn)).fetchone()[0]
    email_match, id_match = _EMAIL_MATCH.on(conn), _ID_MATCH.on(conn)
    if target.kind == "email":
        emails = [target.value]
        ids = _distinct(conn, "SELECT prospect_id FROM links WHERE account_id = :account AND erased_at IS NULL"
                        f" AND {_LINK_EMAIL.on(conn)}"
                        f" UNION SELECT recipient_id FROM events WHERE account_id = :account AND {email_match}"
                        " AND recipient_id IS NOT NULL"
                        " UNION SELECT recipient_id FROM pixels WHERE account_id = :account AND erased_at IS NULL"
                        f" AND {email_match} AND recipient_id IS NOT NULL",
                        _params(account_id, emails, []))
    else:
        ids = [target.value]
        emails = _dedupe_nocase(_distinct(
            conn, "SELECT prospect_email FROM links WHERE account_id = :account AND erased_at IS NULL"
            f" AND {_LINK_ID.on(conn)} AND prospect_email IS NOT NULL"
            f" UNION SELECT email FROM events WHERE account_id = :account AND {id_match}"
            " AND email IS NOT NULL"
            " UNION SELECT email FROM pixels WHERE account_id = :account AND erased_at IS NULL"
            f" AND {id_match} AND email IS NOT NULL",
            _params(account_id, [], ids)))
    params = _params(account_id, emails, ids)
    seqs = [row[0] for row in conn.execute(
        f"SELECT seq FROM events WHERE account_id = :account AND {email_match}"
        f" UNION SELECT seq FROM events WHERE account_id = :account AND {id_match}", params)]
    codes = [row[0] for row in conn.execute(
        f"SELECT code FROM links WHERE account_id = :account AND {_LINK_MATCH.on(conn)}", params)]
    pixels = [row[0] for row in conn.execute(
        f"SELECT code FROM pixels WHERE account_id = :account AND {_PIXEL_MATCH.on(conn)}", params)]
    return Found(emails, ids, seqs, codes, last_seq, last_link, pixels, last_pixel)


def _distinct(conn: Connection, sql: str, params: dict[str, Any]) -> list[str]:
    return [row[0] for row in conn.execute(sql, params) if row[0] is not None]


def _dedupe_nocase(values: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for value in values:
        seen.setdefault(ascii_lower(value), value)
    return list(seen.values())


def count(conn: Connection, account_id: str, found: Found) -> Counts:
    """What `erase` would remove, as `find` saw it (a dry run)."""
    seqs = _encode(found.seqs).decode()
    among = _SEQS.on(conn)
    counts = Counts(events=len(found.seqs))
    counts.clicks = _one(conn, f"SELECT count(*) FROM events WHERE seq IN {among} AND type = 'click'", seqs)
    counts.outbox = _one(conn, f"SELECT count(*) FROM outbox WHERE event_seq IN {among}", seqs)
    counts.verdict_changes = _one(conn, f"SELECT count(*) FROM verdict_changes WHERE event_seq IN {among}", seqs)
    counts.inbound_rejects = _one(conn, f"SELECT count(*) FROM inbound_rejects WHERE {_REJECT_MATCH.on(conn)}",
                                  *_reject_params(account_id, found))
    deleted = _addressed(conn, found)
    counts.links_deleted = len(deleted)
    counts.links_kept = len(found.link_codes) - len(deleted)
    counts.pixels = len(found.pixel_codes)
    return counts


def _one(conn: Connection, sql: str, *params: Any) -> int:
    value: int = conn.execute(sql, params).fetchone()[0]
    return value


_ADDRESSED = Sql(
    sqlite=("SELECT code FROM links WHERE code IN (SELECT value FROM json_each(:codes)) AND EXISTS"
            " (SELECT 1 FROM json_each(:needles) AS n WHERE instr(lower(target_url), n.value)"
            " OR instr(lower(original_url), n.value) OR instr(lower(coalesce(expired_url, '')), n.value))"),
    postgresql=("SELECT code FROM links WHERE code IN"
                " (SELECT value FROM jsonb_array_elements_text(CAST(:codes AS jsonb)))"
                " AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(CAST(:needles AS jsonb)) AS n"
                " WHERE strpos(lower(target_url), n.value) > 0 OR strpos(lower(original_url), n.value) > 0"
                " OR strpos(lower(coalesce(expired_url, '')), n.value) > 0)"),
)


def _addressed(conn: Connection, found: Found) -> list[str]:
    """The person's links whose URL holds one of their addresses (as is, or with '@' as %40, in any case):
    keeping those redirecting would keep the address; they are deleted instead."""
    needles = sorted({ascii_lower(needle) for email in found.emails for needle in (email, email.replace("@", "%40"))})
    if not needles or not found.link_codes:
        return []
    return [row[0] for row in conn.execute(
        _ADDRESSED.on(conn), {"codes": _encode(found.link_codes).decode(), "needles": _encode(needles).decode()})]


def erase(conn: Connection, account_id: str, target: Target, found: Found, *, via: str,
          identifier_hash: str) -> Receipt:
    """Delete what `find` found and what arrived for the person since, in the caller's transaction, with
    secure delete on (SQLite); store and return the receipt. It reads everything it counts inside the
    transaction, so when the writer runs a batch again (after a neighbour failed and the first run
    was undone) the second run gives the same result."""
    if is_postgresql(conn):
        # No such setting: a deleted row stays in its page until VACUUM (see docs/privacy.md).
        return _erase(conn, account_id, target, found, via=via, identifier_hash=identifier_hash)
    previous = conn.execute("PRAGMA secure_delete").fetchone()[0]
    # Only here: zeroing every deleted row costs every other write a little, and nothing else deletes
    # what must not be recoverable (some SQLite builds have it on anyway).
    conn.execute("PRAGMA secure_delete = ON")
    try:
        return _erase(conn, account_id, target, found, via=via, identifier_hash=identifier_hash)
    finally:
        conn.execute(f"PRAGMA secure_delete = {int(previous)}")


def _erase(conn: Connection, account_id: str, target: Target, found: Found, *, via: str,
           identifier_hash: str) -> Receipt:
    params = _params(account_id, found.emails, found.recipient_ids, last_seq=found.last_seq,
                     last_link=found.last_link, last_pixel=found.last_pixel)
    newer = [row[0] for row in conn.execute(
        f"SELECT seq FROM events WHERE seq > :last_seq AND account_id = :account"
        f" AND ({_EMAIL_MATCH.on(conn)} OR {_ID_MATCH.on(conn)})", params)]
    newer_links = [row[0] for row in conn.execute(_NEWER_LINKS.on(conn).format(match=_LINK_MATCH.on(conn)), params)]
    newer_pixels = [row[0] for row in conn.execute(_NEWER_PIXELS.on(conn).format(match=_PIXEL_MATCH.on(conn)),
                                                   params)]
    now = Found(found.emails, found.recipient_ids, sorted({*found.seqs, *newer}),
                list(dict.fromkeys([*found.link_codes, *newer_links])), found.last_seq, found.last_link,
                list(dict.fromkeys([*found.pixel_codes, *newer_pixels])), found.last_pixel)
    seqs = _encode(now.seqs).decode()
    among, codes = _SEQS.on(conn), _CODES.on(conn)
    counts = Counts()
    counts.verdict_changes = conn.execute(f"DELETE FROM verdict_changes WHERE event_seq IN {among}", (seqs,)).rowcount
    counts.outbox = conn.execute(f"DELETE FROM outbox WHERE event_seq IN {among}", (seqs,)).rowcount
    counts.clicks = _one(conn, f"SELECT count(*) FROM events WHERE seq IN {among} AND account_id = ?"
                               " AND type = 'click'", seqs, account_id)
    touched = [(account_id, row[0]) for row in conn.execute(
        f"SELECT DISTINCT mailing_id FROM events WHERE seq IN {among} AND account_id = ?"
        " AND mailing_id IS NOT NULL", (seqs, account_id))]
    counts.events = conn.execute(f"DELETE FROM events WHERE seq IN {among} AND account_id = ?",
                                 (seqs, account_id)).rowcount
    counts.inbound_rejects = conn.execute(f"DELETE FROM inbound_rejects WHERE {_REJECT_MATCH.on(conn)}",
                                          _reject_params(account_id, now)).rowcount
    addressed = {"codes": _encode(_addressed(conn, now)).decode()}
    touched += [(account_id, row[0]) for row in conn.execute(
        f"SELECT DISTINCT mailing_id FROM links WHERE code IN {codes}", addressed)]
    counts.links_deleted = conn.execute(f"DELETE FROM links WHERE code IN {codes}", addressed).rowcount
    mailings.forget_empty(conn, touched)
    at = now_rfc3339()
    counts.links_kept = conn.execute(
        "UPDATE links SET prospect_id = :prefix || code, prospect_email = NULL, message_id = NULL, erased_at = :at"
        f" WHERE code IN {codes} AND account_id = :account AND erased_at IS NULL",
        {"prefix": ERASED_PREFIX, "at": at, "codes": _encode(now.link_codes).decode(), "account": account_id}).rowcount
    # A pixel keeps answering (a mail client showing the email again must not see a broken image) and
    # records nothing. Its message id goes too: one linkhub derived is a hash of the recipient, and a
    # sender's may hold the address; 'erased:<code>' keeps pixels_by_message unique.
    counts.pixels = conn.execute(
        "UPDATE pixels SET recipient_id = NULL, email = NULL, message_id = :prefix || code, erased_at = :at"
        f" WHERE code IN {codes} AND account_id = :account AND erased_at IS NULL",
        {"prefix": ERASED_PREFIX, "at": at, "codes": _encode(now.pixel_codes).decode(), "account": account_id}).rowcount
    earlier = receipts_of(conn, account_id, identifier_hash)
    values = (account_id, at, target.kind, identifier_hash, via, counts.events, counts.clicks, counts.outbox,
              counts.verdict_changes, counts.links_kept, counts.links_deleted, counts.inbound_rejects, counts.pixels)
    if is_postgresql(conn):  # no lastrowid
        receipt_id = conn.execute(_STORE_RECEIPT + " RETURNING id", values).fetchone()[0]
    else:
        receipt_id = conn.execute(_STORE_RECEIPT, values).lastrowid
    return Receipt(receipt_id, account_id, at, target.kind, identifier_hash, via, counts, earlier)


def salt(conn: Connection) -> bytes:
    row = conn.execute("SELECT salt FROM erasure_salt WHERE id = 1").fetchone()
    if row is None:  # the migration made it; a database where someone deleted it cannot make receipts
        raise LinkhubError("this database has no erasure salt (table erasure_salt is empty); restore it from "
                           "a backup: receipts made with another salt could not be checked", status=500,
                           code="internal_error")
    value: bytes = row[0]
    return value


def identifier_hash(target: Target, salt: bytes) -> str:
    """The receipt's hash of the identifier: scrypt of 'kind:identifier' (addresses in lower case) with the
    database's salt. The same address gives the same hash in this database, so a receipt can be found
    again from the address; without the address, the hash says nothing but that someone was erased."""
    data = f"{target.kind}:{target.normalised()}".encode()
    return hashlib.scrypt(data, salt=salt, **SCRYPT, dklen=32).hex()


def receipts_of(conn: Connection, account_id: str, hashed: str) -> list[str]:
    """When this identifier was erased in the account before (oldest first)."""
    return [row[0] for row in conn.execute(
        "SELECT erased_at FROM erasures WHERE account_id = ? AND identifier_hash = ? ORDER BY id",
        (account_id, hashed))]
