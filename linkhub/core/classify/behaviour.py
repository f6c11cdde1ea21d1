"""Behaviour across hits: what a hit means next to the other hits of the same email and client IP.

A link scanner gives itself away less by any one request than by what it does to a whole email: it
opens every link within a second, often with a HEAD first, sometimes from several machines at once,
unsubscribe link included, and one scanner IP does so for many companies' recipients. A person opens
one link, reads, perhaps comes back for another. `Window` holds the recent hits in memory and, for each
new hit, adds these reasons to its per-hit ones (`signals.hit_reasons`):

- `burst`: different links of one email within `BURST_MS` of each other;
- `head_then_get`: a GET right after a HEAD of the same link from the same network (Defender);
- `every_link`: every link of an email (three or more) hit within two minutes;
- `multi_network`: one email's links hit from several networks within seconds;
- `unsubscribe_with_content`: an unsubscribe link hit in the same burst as content links;
- `shared_ip`: one IP hitting the links of many recipients in several companies within minutes;
- `confirmed_later`: a current browser, long after a scan of the same email, from a network the scan
  did not use: the person the email was for (the scan's own verdicts stay);
- `scanner_companion` (weight 0): a hit that came with a known scanner's hit of the same link, from
  another network: the person whose click Safe Links checked at click time, not a second machine.

A burst is only visible once its later hits arrive, so a hit's verdict may change while it is younger
than the settle window: `observe()` returns those changes with the new hit's own verdict, and the
caller stores them (the redirect rewrites the earlier click and records the change). Past the window a
verdict is settled. The window lives in one process's memory and is bounded (`MAX_HELD` hits); it is a
cache of what the store holds, so losing it (a restart) costs only the evidence of bursts that span the
restart, and `linkhub classify rescore` replays stored clicks through a fresh one.

Weights are set so that no behaviour signal alone, against a current browser, makes a machine of a
person: the hard cases are people who click twice within seconds, or from a phone and then a laptop
(see docs/classification.md for the sources and the measured corpus).
"""

from __future__ import annotations

import functools
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable, Sequence
from typing import Generic, NamedTuple, TypeVar

import regex

from linkhub.core.classify import signals
from linkhub.core.classify.hits import Hit
from linkhub.core.classify.verdict import Reason, Verdict, decide

DEFAULT_SETTLE_MS = 120_000

# Different links this close together are one program's work: nobody reads a page and comes back for
# the next link of the email within seconds (Marketo's "proximity" rule counts 0-3 s; warmbly two links
# within 5 s).
BURST_MS = 10_000
FAST_PAIR_MS = 2_000
# Defender sends HEAD then GET, milliseconds apart.
HEAD_GET_MS = 5_000
# Several networks on one email: IntellectIT's rule is 3+ distinct IPs within 30 s; two networks count
# only within seconds, because a person's phone and laptop can follow each other within minutes.
NETWORKS_MS = 30_000
TWO_NETWORKS_MS = 5_000
# Every link of an email within two minutes: Defender scans each link between 8 and 120 s after delivery.
EVERY_LINK_MS = 120_000
# One IP for many companies' recipients: a scanner's or a crawler's, within minutes.
SHARED_IP_MS = 300_000
# A later hit confirms a person when it comes this long after the email's last machine hit.
CONFIRM_AFTER_MS = 600_000

WEIGHTS: dict[str, int] = {
    "burst_many_fast": -70,  # three or more links within FAST_PAIR_MS: a person opening tabs that fast is rare
    "burst_many": -60,       # three or more links within BURST_MS
    "burst_fast_pair": -40,  # two links within FAST_PAIR_MS
    "burst_pair": -15,       # two links within BURST_MS
    "head_then_get": -40,
    "every_link": -30,
    "multi_network_many": -45,  # three or more networks within NETWORKS_MS
    "multi_network_pair": -30,  # two networks within TWO_NETWORKS_MS
    "unsubscribe_with_content": -30,
    "shared_ip_many": -40,   # three or more recipient domains
    "shared_ip_pair": -25,   # two domains, three or more recipients
    "confirmed_later": 40,
}

# An unsubscribe or preference-centre link, in the languages linkhub's users send in most.
_UNSUBSCRIBE = regex.compile(
    r"unsub|opt[-_]?out|optout|abmelden|abbestellen|desinscri|d[eé]sabonn|désinscri|baja|"
    r"cancelar|annulla|afmeld|uitschrijv|preferences|email-settings|manage[-_]?subscription",
    regex.IGNORECASE,
)

# Bounds of the memory and time the window may use; past them the oldest hits are let go (settled early).
MAX_HELD = 100_000
# Hits of one email judged together: a scan opens each link once or twice, a person a few times.
MAX_PER_EMAIL = 32
# Recent recipients remembered per client address: shared_ip needs to tell 1, 2, 3 or more apart.
MAX_RECIPIENTS_PER_ADDRESS = 8
# Hits of one address re-scored when it turns out to be shared: the most recent ones.
MAX_PER_ADDRESS = 32
MAX_SCANS = 100_000

_NOT_JUDGED = Verdict(verdict="unknown", score=0, reasons=[])

R = TypeVar("R", bound=Hashable)
EmailKey = tuple[str, str | None, str | None]


class Change(NamedTuple, Generic[R]):
    """An earlier hit whose verdict a later one changed: the caller's `ref`, the old and new verdict."""

    ref: R
    old: Verdict
    new: Verdict


class _Held(Generic[R]):
    """One hit held in the window, with what its later re-scoring needs."""

    __slots__ = ("at", "base", "current", "domain", "email_key", "head", "hit", "machine_net", "net", "proxied",
                 "ref", "unsubscribe", "verdict")

    def __init__(self, ref: R, hit: Hit, at: int, email_key: EmailKey, base: list[Reason]) -> None:
        self.ref = ref
        self.hit = hit
        self.at = at
        self.email_key = email_key
        self.base = base
        self.net = _network_key(hit.ip)
        self.machine_net = self.current = False
        for r in base:  # one pass: this runs for every click of /r/
            if r.code == "current_browser":
                self.current = True
            elif r.code in ("scanner_network", "crawler_network") and r.weight < 0:
                self.machine_net = True
        self.head = hit.method.upper() == "HEAD"
        # An open a mail proxy fetched (Gmail's, Apple's MPP): its address is the proxy's, shared by all its
        # users, so it says nothing of this reader's network nor makes the address look shared.
        self.proxied = signals.fetcher_of(base) is not None
        self.unsubscribe = hit.url is not None and _is_unsubscribe(hit.url)
        self.domain = hit.email.rpartition("@")[2].lower() if hit.email and "@" in hit.email else None
        # Window.observe() judges the hit right after holding it; nothing reads this before.
        self.verdict: Verdict = _NOT_JUDGED


# A mailing's people click the same few URLs: each is matched against the pattern once.
@functools.lru_cache(maxsize=8192)
def _is_unsubscribe(url: str) -> bool:
    return _UNSUBSCRIBE.search(url) is not None


class _Address(Generic[R]):
    """What the window knows of one client address: its recent recipients, and its recent hits."""

    __slots__ = ("hits", "recipients")

    def __init__(self) -> None:
        self.hits: deque[_Held[R]] = deque(maxlen=MAX_PER_ADDRESS)
        # email -> (its last hit's time, its recipient's domain), the most recent last
        self.recipients: OrderedDict[EmailKey, tuple[int, str | None]] = OrderedDict()

    def note(self, held: _Held[R]) -> bool:
        """Add a hit; True when it changes how shared the address looks (the `shared_ip` weight), so
        that its earlier hits must be re-scored."""
        self.hits.append(held)
        new_recipient = held.email_key not in self.recipients
        # Only a third recipient or more can make an address shared: count only then.
        before = _sharing(self.recipients, held.at) if new_recipient and len(self.recipients) >= 2 else 0
        self.recipients[held.email_key] = (held.at, held.domain)
        self.recipients.move_to_end(held.email_key)
        if len(self.recipients) > MAX_RECIPIENTS_PER_ADDRESS:
            self.recipients.popitem(last=False)
        return new_recipient and len(self.recipients) >= 3 and _sharing(self.recipients, held.at) != before


def _sharing(recipients: OrderedDict[EmailKey, tuple[int, str | None]], at: int) -> int:
    """The `shared_ip` weight of an address's recipients within SHARED_IP_MS of `at` (0: not shared)."""
    near = [domain for seen, domain in recipients.values() if abs(seen - at) <= SHARED_IP_MS]
    if len(near) < 3:
        return 0
    domains = len({domain for domain in near if domain is not None})
    return WEIGHTS["shared_ip_many"] if domains >= 3 else WEIGHTS["shared_ip_pair"] if domains == 2 else 0


def _network_key(ip: str | None) -> str | None:
    """The network a client IP stands for here: its /24 (IPv4) or /48 (IPv6)."""
    if not ip:
        return None
    if "." in ip:
        return ip.rpartition(":")[2].rpartition(".")[0]  # also an IPv4-mapped IPv6 address
    return ":".join(ip.split(":")[:3]).lower()


class Window(Generic[R]):
    """The recent hits, held in memory: of each email for the settle window, of each IP for minutes."""

    def __init__(self, networks: signals.Networks | None, *, settle_ms: int = DEFAULT_SETTLE_MS,
                 every_change: bool = False) -> None:
        self.networks = networks
        self.settle_ms = settle_ms
        # False: a Change only when the verdict itself changes (what the redirect stores); True: also when
        # only the score or the reasons do (what an offline trace prints).
        self.every_change = every_change
        self._hold_ms = max(settle_ms, SHARED_IP_MS, BURST_MS, NETWORKS_MS, EVERY_LINK_MS)
        self._order: deque[_Held[R]] = deque()
        self._by_email: dict[EmailKey, list[_Held[R]]] = {}
        self._by_ip: dict[str, _Address[R]] = {}
        # Each email's last machine hit (time, networks), kept longer: what a later click confirms against.
        self._scans: OrderedDict[EmailKey, tuple[int, frozenset[str | None]]] = OrderedDict()
        self._now = 0

    def __len__(self) -> int:
        return len(self._order)

    def observe(self, ref: R, hit: Hit, *, at_ms: int, scope: str = "") -> tuple[Verdict, list[Change[R]]]:
        """The new hit's verdict, and the changes it makes to earlier hits still settling.

        `ref` is the caller's handle for the hit (returned in a later Change); `at_ms` its time;
        `scope` keeps accounts apart (one recipient id in two accounts is two people).
        """
        self._now = max(self._now, at_ms)
        self._expire()
        email_key = (scope, hit.mailing, hit.recipient)
        held = _Held(ref, hit, at_ms, email_key, signals.hit_reasons(hit, networks=self.networks))
        email = self._by_email.setdefault(email_key, [])
        email.append(held)
        if len(email) > MAX_PER_EMAIL:
            del email[0]
        shared_now = False
        if hit.ip and not held.proxied:
            address = self._by_ip.get(hit.ip)
            if address is None:
                address = self._by_ip[hit.ip] = _Address()
            shared_now = address.note(held)
        self._order.append(held)
        if len(self._order) > MAX_HELD:
            self._forget(self._order.popleft())

        held.verdict = self._judge(held, email)
        if len(email) == 1 and not shared_now:  # a lone hit, the common case: nothing else to re-score
            return held.verdict, []
        # Re-score the email's other hits, and the address's when it just turned out to be shared.
        others = list(email)
        if shared_now and hit.ip:
            others += self._by_ip[hit.ip].hits
        changes: list[Change[R]] = []
        since = at_ms - self.settle_ms
        seen = {id(held)}
        for other in others:
            if id(other) in seen or other.at <= since:  # settled: as old as the window (0: at once)
                continue
            seen.add(id(other))
            new = self._judge(other, self._by_email.get(other.email_key, [other]))
            if new.verdict != other.verdict.verdict or (self.every_change and new != other.verdict):
                changes.append(Change(other.ref, other.verdict, new))
            other.verdict = new
        return held.verdict, changes

    def held(self) -> Iterable[tuple[R, Verdict]]:
        """Every hit still held, with its current verdict (oldest first)."""
        return ((h.ref, h.verdict) for h in self._order)

    # -- the signals ---------------------------------------------------------

    def _judge(self, held: _Held[R], email: list[_Held[R]]) -> Verdict:
        reasons = list(held.base)
        if len(email) > 1:
            reasons.extend(self._email_reasons(held, email))
        address = self._by_ip.get(held.hit.ip) if held.hit.ip and not held.proxied else None
        if address is not None and len(address.recipients) >= 3:
            reasons.extend(_shared_ip(held, address))
        confirmed = self._confirmation(held)
        if confirmed is not None:
            reasons.append(confirmed)
        verdict = decide(reasons)
        if verdict.machine:
            self._note_scan(held)
        return verdict

    def _email_reasons(self, held: _Held[R], email: list[_Held[R]]) -> list[Reason]:
        reasons: list[Reason] = []
        multi_network = _networks_reasons(held, email)
        if not held.machine_net:
            # A known scanner's hits from its own network are its burst, not this client's: a person who
            # clicks while Defender scans the email is judged on their own hits.
            email = [o for o in email if not o.machine_net or o.net == held.net]
        near = [o for o in email if abs(o.at - held.at) <= BURST_MS]
        links = {o.hit.url for o in near if o.hit.url is not None}
        if len(links) >= 2:
            span = max(o.at for o in near) - min(o.at for o in near)
            if len(links) >= 3:
                weight = WEIGHTS["burst_many_fast"] if span <= FAST_PAIR_MS else WEIGHTS["burst_many"]
            else:
                closest = min((abs(o.at - held.at) for o in near if o.hit.url != held.hit.url), default=span)
                weight = WEIGHTS["burst_fast_pair"] if closest <= FAST_PAIR_MS else WEIGHTS["burst_pair"]
            reasons.append(Reason("burst", weight, {"links": len(links), "span_ms": span}))
            unsubscribe = next((o.hit.url for o in near if o.unsubscribe), None)
            if unsubscribe is not None:
                reasons.append(Reason("unsubscribe_with_content", WEIGHTS["unsubscribe_with_content"],
                                      {"url": unsubscribe}))
        if not held.head:
            head = next((o for o in email if o.head and o.hit.url == held.hit.url
                         and o.net == held.net and 0 <= held.at - o.at <= HEAD_GET_MS), None)
            if head is not None:
                reasons.append(Reason("head_then_get", WEIGHTS["head_then_get"], {"after_ms": held.at - head.at}))
        expected = held.hit.links_in_email
        if expected is not None and 3 <= expected <= len(email):
            window = {o.hit.url for o in email if abs(o.at - held.at) <= EVERY_LINK_MS and o.hit.url is not None}
            if len(window) >= expected:
                reasons.append(Reason("every_link", WEIGHTS["every_link"], {"links": expected}))
        reasons.extend(multi_network)
        return reasons

    def _confirmation(self, held: _Held[R]) -> Reason | None:
        if not held.current or held.machine_net:
            return None
        scan = self._scans.get(held.email_key)
        if scan is None:
            return None
        scanned_at, nets = scan
        after = held.at - scanned_at
        if after < CONFIRM_AFTER_MS or held.net in nets:
            return None
        return Reason("confirmed_later", WEIGHTS["confirmed_later"], {"after_scan_ms": after})

    def _note_scan(self, held: _Held[R]) -> None:
        known = self._scans.get(held.email_key)
        if known is not None and known[0] > held.at:
            return
        nets = known[1] | {held.net} if known is not None and held.at - known[0] < CONFIRM_AFTER_MS \
            else frozenset({held.net})
        self._scans[held.email_key] = (held.at, nets)
        self._scans.move_to_end(held.email_key)
        if len(self._scans) > MAX_SCANS:
            self._scans.popitem(last=False)

    # -- memory ------------------------------------------------------------------

    def _expire(self) -> None:
        cutoff = self._now - self._hold_ms
        while self._order and self._order[0].at < cutoff:
            self._forget(self._order.popleft())

    def _forget(self, held: _Held[R]) -> None:
        email = self._by_email.get(held.email_key)
        if email is not None:
            for index, other in enumerate(email):
                if other is held:
                    del email[index]
                    break
            if not email:
                del self._by_email[held.email_key]
        if held.hit.ip:
            address = self._by_ip.get(held.hit.ip)
            if address is not None:
                # Hits leave oldest first; one the bounded deque let go of already is not there.
                if address.hits and address.hits[0] is held:
                    address.hits.popleft()
                if not address.hits:
                    del self._by_ip[held.hit.ip]


def _networks_reasons(held: _Held[R], email: list[_Held[R]]) -> list[Reason]:
    """`multi_network`, or `scanner_companion` when the other network is a known scanner's."""
    if held.proxied:
        return []
    near = [o for o in email if abs(o.at - held.at) <= NETWORKS_MS and o.net is not None and not o.proxied]
    nets = {o.net for o in near}
    if len(nets) < 2 or held.net is None:
        return []
    others = [o for o in near if o.net != held.net]
    if not held.machine_net and all(o.machine_net for o in others):
        # Safe Links at click time: Microsoft fetches the link as the person's browser does.
        return [Reason("scanner_companion", 0, {"networks": len(nets)})]
    if len(nets) >= 3:
        span = max(o.at for o in near) - min(o.at for o in near)
        return [Reason("multi_network", WEIGHTS["multi_network_many"], {"networks": len(nets), "span_ms": span})]
    closest = min(abs(o.at - held.at) for o in others)
    if closest <= TWO_NETWORKS_MS:
        return [Reason("multi_network", WEIGHTS["multi_network_pair"], {"networks": 2, "span_ms": closest})]
    return []


def _shared_ip(held: _Held[R], address: _Address[R]) -> list[Reason]:
    near = [(key, domain) for key, (seen, domain) in address.recipients.items() if abs(seen - held.at) <= SHARED_IP_MS]
    if len(near) < 3:
        return []
    domains = {domain for _key, domain in near if domain is not None}
    if len(domains) >= 3:
        weight = WEIGHTS["shared_ip_many"]
    elif len(domains) == 2:
        weight = WEIGHTS["shared_ip_pair"]
    else:  # one company's people behind its own NAT, or nothing known of the domains
        return []
    return [Reason("shared_ip", weight, {"recipients": len(near), "domains": len(domains)})]


def settle(hits: Sequence[Hit], *, networks: signals.Networks | None,
           settle_ms: int = DEFAULT_SETTLE_MS) -> list[Verdict]:
    """Every hit's settled verdict, in input order: `linkhub classify trace` on a whole file.

    A hit without `at` is placed at `t` (as if every recipient's links were minted at once).
    """
    placed = [(hit, hit.at if hit.at is not None else (hit.t or 0), "") for hit in hits]
    return judge_all(placed, networks=networks, settle_ms=settle_ms)


def judge_all(hits: Sequence[tuple[Hit, int, str]], *, networks: signals.Networks | None,
              settle_ms: int = DEFAULT_SETTLE_MS) -> list[Verdict]:
    """The settled verdict of every (hit, its time in ms, its scope), in input order.

    The window follows time, so the hits are judged in time order (a log need not be sorted: merged from
    several servers, say); a stable sort keeps the input's order among hits of the same millisecond (a
    HEAD and its GET).
    """
    window: Window[int] = Window(networks, settle_ms=settle_ms, every_change=True)
    final: list[Verdict | None] = [None] * len(hits)
    for index in sorted(range(len(hits)), key=lambda i: hits[i][1]):
        hit, at, scope = hits[index]
        verdict, changes = window.observe(index, hit, at_ms=at, scope=scope)
        final[index] = verdict
        for change in changes:
            final[change.ref] = change.new
    return [verdict for verdict in final if verdict is not None]
