"""A click on a short link, as the event the redirect stores: who clicked (the link's recipient),
what (the original URL), what the request says of the device that clicked, and the classifier's
verdict on it (a person, or a security scanner or bot acting without one).

`Clicks` holds the classifier's window of recent hits (memory only: see
linkhub.core.classify.behaviour); `store()` writes a click and the verdict changes it made to earlier
clicks in the caller's transaction, so a click and what it says about its burst commit together.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, NamedTuple

import msgspec

from linkhub.core import outbox
from linkhub.core.classify.behaviour import Change, Window
from linkhub.core.classify.hits import Hit, Since
from linkhub.core.classify.signals import Networks
from linkhub.core.classify.verdict import Reason, Verdict, decide
from linkhub.core.events import Event
from linkhub.core.useragent import describe
from linkhub.store import Connection
from linkhub.store.dialect import Sql
from linkhub.store.links import Link
from linkhub.util.ipnet import network_address
from linkhub.util.times import format_ms, now_rfc3339, rfc3339_to_ms

# The request headers the classifier reads, besides the user agent (docs/classification.md). Those a
# request carried are stored with its click (`details.headers`), so `classify rescore` can judge it again.
CLASSIFIED_HEADERS = frozenset((b"accept-language", b"sec-purpose", b"purpose", b"x-moz"))

log = logging.getLogger("linkhub.clicks")

# A click's handle in the window: (account id, event id), what a later change is written against.
ClickRef = tuple[str, str]


class ClickWrite(NamedTuple):
    """What one hit of /r/ writes: its click, and the verdicts it changed of earlier clicks."""

    event: Event
    changes: list[Change[ClickRef]]


class Origins:
    """When recent emails were sent or delivered, as the events reported to this server say: what a
    click's timing counts from, when it is known (a sender may mint links long before it sends).

    Memory only and bounded: after a restart, clicks count from the minting again until the next
    event, and `classify rescore` reads the store's events instead.
    """

    MAX = 200_000

    def __init__(self) -> None:
        self._at: OrderedDict[tuple[str, str, str], tuple[int, Since]] = OrderedDict()

    def note(self, events: Iterable[Event]) -> None:
        """Remember the `sent` and `delivered` events among these (stored ones)."""
        for event in events:
            if event.type not in ("sent", "delivered") or not event.mailing_id:
                continue
            at = rfc3339_to_ms(event.occurred_at)
            kind: Since = "delivered" if event.type == "delivered" else "sent"
            for key in _origin_keys(event.account_id, event.mailing_id, event.recipient_id, event.email):
                known = self._at.get(key)
                # Delivery is the moment that counts; a `sent` only stands in until it is known.
                if known is None or (known[1] == "sent" and (kind == "delivered" or at > known[0])):
                    self._at[key] = (at, kind)
                self._at.move_to_end(key)
        while len(self._at) > self.MAX:
            self._at.popitem(last=False)

    def of(self, link: Link) -> tuple[int, Since] | None:
        """(ms since the epoch, 'sent' or 'delivered') of the link's email, or None."""
        return self.of_email(link.account_id, link.mailing_id, link.prospect_id, link.prospect_email)

    def of_email(self, account_id: str, mailing_id: str, recipient_id: str | None,
                 email: str | None) -> tuple[int, Since] | None:
        """The same for an email named by its mailing and recipient (an open pixel's)."""
        if not self._at:  # a server whose senders report no deliveries (Outreach alone): the usual case
            return None
        for key in _origin_keys(account_id, mailing_id, recipient_id, email):
            found = self._at.get(key)
            if found is not None:
                return found
        return None


def _origin_keys(account_id: str, mailing_id: str, recipient_id: str | None,
                 email: str | None) -> list[tuple[str, str, str]]:
    keys = []
    if recipient_id:
        keys.append((account_id, mailing_id, "id:" + recipient_id))
    if email:
        keys.append((account_id, mailing_id, "email:" + email.lower()))
    return keys


class Request(NamedTuple):
    """A GET or HEAD of `/r/<code>` as the redirect saw it: what judging and storing its click needs.

    `at_ms` is ms since the epoch (UTC); `headers` holds those of CLASSIFIED_HEADERS the request
    carried (lower-case names).
    """

    code: str
    link: Link
    event_id: str
    at_ms: int
    method: str
    ip: str | None
    user_agent: str | None
    referer: str | None
    headers: dict[str, str]


class Clicks:
    """Turns hits of /r/ into click events, judged with the hits before them, on the event loop.

    `anonymize_ip` stores the client address's network instead of the address (in the click and in its
    verdict's evidence, the verdicts it changes of earlier clicks included); `keep_user_agent` False stores
    what was read from the user agent (device, OS, browser, verdict) but not the string. The classifier
    always judges the full request: minimisation is of what is stored, after judging.

    (Judging on the writer thread instead, inside the transaction that stores the clicks, was
    measured beside this and changed the redirects' throughput nothing, while it would hold SQLite's
    write lock through Python work: docs/performance.md.)
    """

    def __init__(self, networks: Networks | None, *, settle_s: int, anonymize_ip: bool = False,
                 keep_user_agent: bool = True) -> None:
        self.anonymize_ip = anonymize_ip
        self.keep_user_agent = keep_user_agent
        self.window: Window[ClickRef] = Window(networks, settle_ms=settle_s * 1000)
        self.origins = Origins()
        # `store` for Database.add with this settle window (webhooks that wait for the verdict are due
        # after it): one function object, made once, since Database.add merges the items of the same one.
        self.store = functools.partial(store, settle_s=settle_s)

    def judge(self, request: Request) -> ClickWrite:
        """The click of one hit, with its verdict, and the verdicts it changed of earlier clicks."""
        link, at_ms = request.link, request.at_ms
        origin, since = since_origin(link.minted_ms, self.origins.of(link), at_ms)
        hit = Hit(t=at_ms - origin, method=request.method, ip=request.ip,
                  headers=hit_headers(request.headers, request.user_agent),
                  recipient=link.prospect_id, mailing=link.mailing_id, url=link.original_url,
                  links_in_email=link.links_in_email, email=link.prospect_email, since=since)
        verdict, changes = self.verdict_of((link.account_id, request.event_id), hit, at_ms=at_ms,
                                           what=f"the click on {request.code}")
        return ClickWrite(click(request, verdict, anonymize_ip=self.anonymize_ip,
                                keep_user_agent=self.keep_user_agent), changes)

    def verdict_of(self, ref: ClickRef, hit: Hit, *, at_ms: int, what: str) -> tuple[Verdict, list[Change[ClickRef]]]:
        """The window's verdict of one hit (a click's or an open's, `ref` = (account id, event id)) and the
        verdicts it changed of earlier hits, their addresses reduced when the server anonymizes."""
        try:
            verdict, changes = self.window.observe(ref, hit, at_ms=at_ms, scope=ref[0])
        except Exception:  # a bug in a rule must never cost the hit: stored as unknown, and said so
            log.exception("classifying %s failed; stored with the verdict unknown", what)
            verdict, changes = decide([]), []
        if self.anonymize_ip:
            verdict = anonymized(verdict)
            changes = [change._replace(new=anonymized(change.new)) for change in changes]
        return verdict, changes


def since_origin(minted_ms: int, reported: tuple[int, Since] | None, at_ms: int) -> tuple[int, Since]:
    """What a hit's time counts from: the sender's delivery (or send) of its email when it reported one
    between the minting and the hit, else the minting."""
    if reported is not None and minted_ms <= reported[0] <= at_ms:
        return reported
    return minted_ms, "minted"


def hit_headers(headers: dict[str, str], user_agent: str | None) -> dict[str, str]:
    """The request headers the classifier reads, the user agent among them."""
    return {**headers, "user-agent": user_agent} if user_agent is not None else headers


def anonymized(verdict: Verdict) -> Verdict:
    """`verdict` with every address in its reasons' evidence (`evidence.ip`) reduced to its network."""
    if not any("ip" in reason.evidence for reason in verdict.reasons):
        return verdict
    reasons = [_anonymized(reason) for reason in verdict.reasons]
    return msgspec.structs.replace(verdict, reasons=reasons)


def _anonymized(reason: Reason) -> Reason:
    ip = reason.evidence.get("ip")
    if ip is None:
        return reason
    # A new Reason: those of a user agent are cached and shared, and this one may be held in the window.
    return Reason(reason.code, reason.weight,
                  {**reason.evidence, "ip": network_address(ip) if isinstance(ip, str) else None})


def click(request: Request, verdict: Verdict, *, anonymize_ip: bool = False,
          keep_user_agent: bool = True) -> Event:
    """The `click` event of one hit, with its verdict.

    `anonymize_ip`: `details.ip` is the address's network (None when the peer is not an IP address).
    `keep_user_agent` False: `details` has no `user_agent` key at all (a click whose request had none
    stores null), which is how `classify rescore` knows the string was not kept.
    """
    link = request.link
    client = describe(request.user_agent or "")
    now = format_ms(request.at_ms)
    ip = request.ip
    if anonymize_ip and ip is not None:
        ip = network_address(ip)
    details: dict[str, Any] = {
        "method": request.method,
        "ip": ip,
        "user_agent": request.user_agent,
        "headers": request.headers,
        "device": client.device,
        "os": client.os,
        "browser": client.browser,
        "referer": request.referer,
        **verdict_fields(verdict),
    }
    if not keep_user_agent:
        del details["user_agent"]
    if link.target_url != link.original_url:
        details["target"] = link.target_url
    if link.expires_ms is not None and request.at_ms >= link.expires_ms:
        details["expired"] = True  # the visitor was sent to the link's expired URL, or shown the expired page
    return Event(
        id=request.event_id,
        account_id=link.account_id,
        type="click",
        occurred_at=now,
        received_at=now,
        source="redirect",
        email=link.prospect_email,
        recipient_id=link.prospect_id,
        mailing_id=link.mailing_id,
        message_id=link.message_id,
        url=link.original_url,
        code=request.code,
        details=details,
    )


def verdict_fields(verdict: Verdict) -> dict[str, Any]:
    """The fields of a click's `details` that hold its verdict."""
    return {
        "bot": verdict.machine,
        "verdict": verdict.verdict,
        "score": verdict.score,
        # The Reason structs themselves: msgspec writes each as {code, weight, evidence} when the click
        # is stored, with no dict built per reason on the redirect's path.
        "reasons": verdict.reasons,
        "classifier": verdict.version,
    }


def store(conn: Connection, writes: list[ClickWrite], *, settle_s: int = outbox.DEFAULT_SETTLE_S) -> list[int]:
    """Store clicks and the verdict changes they made, in the caller's transaction (`Database.add`).

    Each click hears how many deliveries its transaction queued, so the redirect knows to wake the
    deliverer. The clicks are inserted first: a change may be about a click of the same batch.
    `settle_s` is the settle window, after which a webhook that waits for the verdict gets a click.
    """
    queued = outbox.store_clicks(conn, [write.event for write in writes], settle_s=settle_s)
    changes = [change for write in writes for change in write.changes]
    if changes:
        change_verdicts(conn, [(*change.ref, change.new) for change in changes], cause="settle")
    return queued


# The change of a click's (or open's) verdict, recorded when the verdict itself changes; then the new
# verdict's fields written into its details (jsonb on PostgreSQL, where `||` replaces the keys given).
_RECORD_CHANGE = Sql(
    sqlite=(
        "INSERT INTO verdict_changes (account_id, event_seq, changed_at, cause, old_verdict, old_score,"
        " new_verdict, new_score, reasons, classifier)"
        " SELECT account_id, seq, :at, :cause, json_extract(details, '$.verdict'), json_extract(details, '$.score'),"
        " :verdict, :score, :reasons, :classifier FROM events"
        " WHERE account_id = :account AND id = :id AND type IN ('click', 'open')"
        " AND json_extract(details, '$.verdict') IS NOT :verdict"
    ),
    postgresql=(
        "INSERT INTO verdict_changes (account_id, event_seq, changed_at, cause, old_verdict, old_score,"
        " new_verdict, new_score, reasons, classifier)"
        " SELECT account_id, seq, :at, :cause, details ->> 'verdict',"
        " CASE WHEN jsonb_typeof(details -> 'score') = 'number' THEN round((details ->> 'score')::numeric) END,"
        " :verdict, :score, :reasons, :classifier FROM events"
        " WHERE account_id = :account AND id = :id AND type IN ('click', 'open')"
        " AND (details ->> 'verdict') IS DISTINCT FROM :verdict"
    ),
)
_SET_VERDICT = Sql(
    sqlite=(
        "UPDATE events SET details = json_set(details, '$.bot', json(:bot), '$.verdict', :verdict, '$.score', :score,"
        " '$.reasons', json(:reasons), '$.classifier', :classifier), verdict = :verdict"
        " WHERE account_id = :account AND id = :id AND type IN ('click', 'open')"
    ),
    postgresql=(
        "UPDATE events SET details = details || jsonb_build_object('bot', CAST(:bot AS jsonb),"
        " 'verdict', CAST(:verdict AS text), 'score', :score, 'reasons', CAST(:reasons AS jsonb),"
        " 'classifier', CAST(:classifier AS text)), verdict = :verdict"
        " WHERE account_id = :account AND id = :id AND type IN ('click', 'open')"
    ),
)


def change_verdicts(conn: Connection, changes: list[tuple[str, str, Verdict]], *, cause: str) -> int:
    """Give clicks or opens (account id, event id: opens share the clicks' window) a new verdict; a change
    of the verdict itself is recorded in `verdict_changes` (old → new, when, why). Returns how many
    verdicts changed.

    A click not found (its write failed, or it was erased) is passed over.
    """
    at = now_rfc3339()
    changed = 0
    for account_id, event_id, verdict in changes:
        params = {"account": account_id, "id": event_id, "at": at, "cause": cause, "verdict": verdict.verdict,
                  "score": verdict.score, "classifier": verdict.version,
                  "reasons": msgspec.json.encode(verdict.reasons).decode(),
                  "bot": "true" if verdict.machine else "false"}
        changed += conn.execute(_RECORD_CHANGE.on(conn), params).rowcount
        conn.execute(_SET_VERDICT.on(conn), params)
    return changed


class StoredClick(NamedTuple):
    """A click as stored, and the hit it was: what `classify rescore` judges again."""

    account_id: str
    event_id: str
    at_ms: int
    hit: Hit
    verdict: dict[str, Any] | None  # its stored verdict fields (None: recorded before verdicts)
    # False for a click stored without its user agent (--no-user-agent): its hit lacks the header, so
    # judging it again would read "no user agent", which is not what the request said.
    user_agent_kept: bool = True


_STORED = Sql(
    sqlite=(
        "SELECT e.account_id, e.id, e.occurred_at, e.details, e.url, e.mailing_id, e.recipient_id, e.email,"
        " l.created_at, (SELECT count(*) FROM links AS m WHERE m.account_id = l.account_id"
        " AND m.mailing_id = l.mailing_id AND m.prospect_id = l.prospect_id),"
        # The email's delivery (or else its sending) before the click, as the redirect's Origins knew it.
        " (SELECT json_array(d.occurred_at, d.type) FROM events AS d WHERE d.account_id = e.account_id"
        " AND d.mailing_id = e.mailing_id AND d.type IN ('delivered', 'sent')"
        " AND (d.recipient_id = e.recipient_id OR d.email = e.email COLLATE NOCASE) AND d.occurred_at <= e.occurred_at"
        " ORDER BY d.type = 'delivered' DESC, d.occurred_at DESC LIMIT 1)"
        " FROM events AS e LEFT JOIN links AS l ON l.code = e.code"
        " WHERE e.type = 'click' AND e.source = 'redirect' AND e.occurred_at >= :since"
        " AND (:until IS NULL OR e.occurred_at < :until) AND (:account IS NULL OR e.account_id = :account)"
        " ORDER BY e.occurred_at, e.seq"
    ),
    postgresql=(
        "SELECT e.account_id, e.id, e.occurred_at, e.details, e.url, e.mailing_id, e.recipient_id, e.email,"
        " l.created_at, (SELECT count(*) FROM links AS m WHERE m.account_id = l.account_id"
        " AND m.mailing_id = l.mailing_id AND m.prospect_id = l.prospect_id),"
        " (SELECT jsonb_build_array(d.occurred_at, d.type)::text FROM events AS d WHERE d.account_id = e.account_id"
        " AND d.mailing_id = e.mailing_id AND d.type IN ('delivered', 'sent')"
        " AND (d.recipient_id = e.recipient_id OR lower(d.email) = lower(e.email)) AND d.occurred_at <= e.occurred_at"
        " ORDER BY d.type = 'delivered' DESC, d.occurred_at DESC LIMIT 1)"
        " FROM events AS e LEFT JOIN links AS l ON l.code = e.code"
        " WHERE e.type = 'click' AND e.source = 'redirect' AND e.occurred_at >= :since"
        " AND (:until IS NULL OR e.occurred_at < :until) AND (:account IS NULL OR e.account_id = :account)"
        " ORDER BY e.occurred_at, e.seq"
    ),
)
_VERDICT_KEYS = ("verdict", "score", "reasons", "classifier")


def stored_clicks(conn: Connection, *, since: str, until: str | None = None,
                  account: str | None = None) -> list[StoredClick]:
    """The clicks /r/ recorded in [since, until), oldest first, each with the hit it was."""
    clicks: list[StoredClick] = []
    for row in conn.execute(_STORED.on(conn), {"since": since, "until": until, "account": account}):
        details = msgspec.json.decode(row[3])
        at_ms = rfc3339_to_ms(row[2])
        headers = _stored_headers(details)
        if details.get("user_agent") is not None:
            headers["user-agent"] = details["user_agent"]
        origin: int | None = rfc3339_to_ms(row[8]) if row[8] else None
        counted_from: Since = "minted"
        if row[10] is not None:
            reported_at, kind = msgspec.json.decode(row[10])
            if origin is None or rfc3339_to_ms(reported_at) >= origin:
                origin, counted_from = rfc3339_to_ms(reported_at), "delivered" if kind == "delivered" else "sent"
        hit = Hit(t=at_ms - origin if origin is not None else None, method=details.get("method", "GET"),
                  ip=details.get("ip"), headers=headers, recipient=row[6], mailing=row[5], url=row[4],
                  links_in_email=row[9] if row[8] else None, email=row[7], since=counted_from)
        verdict = {key: details.get(key) for key in _VERDICT_KEYS} if "verdict" in details else None
        clicks.append(StoredClick(row[0], row[1], at_ms, hit, verdict, "user_agent" in details))
    return clicks


def _stored_headers(details: dict[str, Any]) -> dict[str, str]:
    """The classified headers a click stored; for clicks of classifier 2026.12.1, which kept only their
    reasons, what those reasons say of them (an Accept-Language unless it was missing, a prefetch)."""
    if "headers" in details:
        return dict(details["headers"])
    headers: dict[str, str] = {}
    reasons = {reason.get("code"): reason for reason in details.get("reasons") or ()}
    if reasons and "no_accept_language" not in reasons:
        headers["accept-language"] = "*"
    for code in ("prefetch", "prerender"):
        if code in reasons:
            headers["sec-purpose"] = str(reasons[code].get("evidence", {}).get("header", code))
    return headers


def same_verdict(stored: dict[str, Any] | None, verdict: Verdict) -> bool:
    """True when a click's stored verdict fields are those `verdict` would store."""
    if stored is None:
        return False
    fields = verdict_fields(verdict)
    fields["reasons"] = [reason.document() for reason in verdict.reasons]
    return stored == {key: fields[key] for key in _VERDICT_KEYS}
