"""Per-hit signals: what one request says on its own (request, user agent, network, timing), and
`classify()`, which turns them into a verdict.

Plain functions, no I/O: the redirect calls `classify()` on its hot path. The behaviour across hits
(bursts, settling, confirmation) builds on the same `Reason` list and `decide()` rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from linkhub.core.classify import agents
from linkhub.core.classify.hits import Hit
from linkhub.core.classify.verdict import Reason, Verdict, decide

WEIGHTS: dict[str, int] = {
    "head_request": -70,
    "prefetch": -70,
    "prerender": -40,
    "empty_user_agent": -45,
    "no_accept_language": -20,
    "cloud_network": -15,
    "late_hit": 10,
}

# A network match's weight by its certainty: a vendor's published gateway ranges are `high`; ranges
# attributed to a vendor by third parties, `medium`; ASNs that also carry other customers, `low`.
SCANNER_NETWORK_WEIGHTS = {"high": -70, "medium": -45, "low": -25}
CRAWLER_NETWORK_WEIGHTS = {"high": -60, "medium": -40, "low": -20}
# Scanners open an email's links at delivery, within minutes (warmbly waits 600 s for probable
# networks); a hit from a vendor's network long after that may be a person behind the vendor's browser
# isolation (Proofpoint, Mimecast), so the network then counts half.
SCAN_WINDOW_MS = 600_000

# Time since the links were minted, in bands: (below ms, weight). Defender scans 8-120 s after
# delivery; a fast reader can click within 15 s, so timing alone stays weak. Under 5 s no person has
# received, opened and read the email.
EARLY_BANDS: tuple[tuple[int, int], ...] = ((5_000, -30), (30_000, -20), (120_000, -10))
LATE_MS = 3_600_000


class NetworkMatch(Protocol):
    """One network a client IP falls in (`linkhub.core.classify.networks` builds them)."""

    @property
    def label(self) -> str: ...
    @property
    def kind(self) -> str: ...  # 'scanner' | 'crawler' | 'cloud'
    @property
    def certainty(self) -> str | float: ...


class Networks(Protocol):
    def match(self, ip: str) -> Sequence[NetworkMatch]: ...


def _certainty(value: str | float) -> str:
    """'high' / 'medium' / 'low' from a word or a number between 0 and 1."""
    if isinstance(value, str):
        word = value.strip().lower()
        return {"certain": "high", "probable": "medium", "possible": "low"}.get(word, word)
    return "high" if value >= 0.8 else "medium" if value >= 0.5 else "low"


def request_reasons(hit: Hit) -> list[Reason]:
    """HEAD, prefetch headers, an empty user agent, a missing Accept-Language."""
    reasons: list[Reason] = []
    if hit.method.upper() == "HEAD":
        reasons.append(Reason("head_request", WEIGHTS["head_request"], {"method": "HEAD"}))
    purpose = hit.header("sec-purpose") or hit.header("purpose") or hit.header("x-moz") or ""
    if "prefetch" in purpose.lower():
        # Chrome's prerender sends `Sec-Purpose: prefetch;prerender`; a prerendered page the person then
        # opens sends nothing more, so a prerender may be the person's own navigation: weaker.
        code = "prerender" if "prerender" in purpose.lower() else "prefetch"
        reasons.append(Reason(code, WEIGHTS[code], {"header": purpose}))
    ua = hit.header("user-agent")
    if ua is None or not ua.strip():
        reasons.append(Reason("empty_user_agent", WEIGHTS["empty_user_agent"], {"present": ua is not None}))
    if not (hit.header("accept-language") or "").strip():
        reasons.append(Reason("no_accept_language", WEIGHTS["no_accept_language"], {}))
    return reasons


def timing_reasons(hit: Hit) -> list[Reason]:
    """How soon after the email was sent, delivered or its links minted the hit came (nothing when `t` is
    unknown); the evidence names the `since` when it is not the minting."""
    if hit.t is None or hit.t < 0:
        return []
    since = {} if hit.since == "minted" else {"since": hit.since}
    for below, weight in EARLY_BANDS:
        if hit.t < below:
            return [Reason("early_hit", weight, {"t_ms": hit.t, "below_ms": below, **since})]
    if hit.t >= LATE_MS:
        return [Reason("late_hit", WEIGHTS["late_hit"], {"t_ms": hit.t, **since})]
    return []


def _in_scope(found: NetworkMatch, event: str) -> bool:
    """Whether a list's match is evidence for this kind of hit (its `scope`: clicks, opens or both)."""
    scope = getattr(found, "scope", "both")
    return scope == "both" or scope == ("opens" if event == "open" else "clicks")


def network_reasons(hit: Hit, networks: Networks | None, *, mail_client: bool = False) -> list[Reason]:
    """The client IP against the shipped and operator-supplied network lists that count for the hit's kind."""
    if networks is None or not hit.ip:
        return []
    return _network_reasons(hit, [found for found in networks.match(hit.ip) if _in_scope(found, hit.event)],
                            mail_client=mail_client)


def _network_reasons(hit: Hit, matches: Sequence[NetworkMatch], *, mail_client: bool) -> list[Reason]:
    reasons: list[Reason] = []
    strongest: dict[str, Reason] = {}
    for found in matches:
        certainty = _certainty(found.certainty)
        evidence: dict[str, object] = {"ip": hit.ip, "network": found.label, "certainty": certainty}
        if found.kind == "scanner":
            code, weight = "scanner_network", SCANNER_NETWORK_WEIGHTS.get(certainty, -25)
            if hit.t is not None and hit.t > SCAN_WINDOW_MS:
                weight //= 2
                evidence["after_scan_window"] = True
        elif found.kind == "crawler":
            code, weight = "crawler_network", CRAWLER_NETWORK_WEIGHTS.get(certainty, -20)
            if mail_client:
                # Gmail's image proxy fetches from Google's ranges: a real open, not a crawler.
                weight = 0
                evidence["mail_client"] = True
        elif found.kind == "cloud":
            code, weight = "cloud_network", WEIGHTS["cloud_network"]
        else:
            continue
        # One reason per code, the strongest: overlapping lists must not count one network twice.
        known = strongest.get(code)
        if known is None or weight < known.weight:
            strongest[code] = Reason(code, weight, evidence)
    reasons.extend(strongest.values())
    return reasons


def classify(hit: Hit, *, networks: Networks | None = None) -> Verdict:
    """The verdict on one hit, from its own request, user agent, network and timing."""
    return decide(hit_reasons(hit, networks=networks))


def hit_reasons(hit: Hit, *, networks: Networks | None = None) -> list[Reason]:
    """Every per-hit reason, in a stable order (request, user agent, network, timing; for an open fetched
    by a mail proxy, `proxied` or `apple_mpp` first).

    The behaviour-across-hits part adds its own reasons to this list and calls `decide()` on the whole.
    """
    reasons = request_reasons(hit)
    ua = (hit.header("user-agent") or "").strip()
    mail_client = False
    reading: agents.AgentReading | None = None
    if ua:
        reading = agents.read(ua)
        reasons.extend(reading.reasons)
        mail_client = reading.mail_client
        if reading.current and hit.method.upper() == "GET" and not _machine_request(reasons):
            reasons.append(Reason("current_browser", agents.WEIGHTS["current_browser"], {}))
    matches = networks.match(hit.ip) if networks is not None and hit.ip else ()
    reasons.extend(_network_reasons(hit, [found for found in matches if _in_scope(found, hit.event)],
                                    mail_client=mail_client))
    reasons.extend(timing_reasons(hit))
    if hit.event == "open":
        fetcher = _open_fetcher(hit, ua, reading, matches)
        if fetcher is not None:
            # The request is the proxy's, not the reader's: what it lacks (Accept-Language) or shows (a
            # browser's looks) says nothing of who reads. What stays: named machines, scanners' networks,
            # timing, a HEAD.
            reasons = [fetcher, *(r for r in reasons if r.code not in _PROXY_BLIND)]
    return reasons


# Mail providers' image proxies known by their network, for opens: Outlook on the web loads a reader's
# images through Microsoft's network (why that list counts for clicks only).
OPEN_PROXY_NETWORKS: dict[str, str] = {"microsoft_eop": "Outlook's image proxy"}
# Reasons about the client's own request that a proxy's fetch makes meaningless (see hit_reasons).
_PROXY_BLIND = frozenset({"no_accept_language", "empty_user_agent", "current_browser", "outdated_browser",
                          "chrome_full_version", "msie", "trident", "edgehtml", "old_windows", "os_mismatch"})


def _open_fetcher(hit: Hit, ua: str, reading: agents.AgentReading | None,
                  matches: Sequence[NetworkMatch]) -> Reason | None:
    """`apple_mpp` when Apple Mail Privacy Protection fetched this open (its relays' network, or its bare
    user agent), `proxied` when a mail provider's image proxy did (its user agent, or its network); None
    for an open fetched by the reader's own client (or by a machine no proxy rule names)."""
    for found in matches:
        if found.kind == "mail_prefetch":
            return Reason("apple_mpp", 0, {"ip": hit.ip, "network": found.label,
                                           "certainty": _certainty(found.certainty)})
    if ua == agents.MPP_USER_AGENT:
        return Reason("apple_mpp", 0, {"user_agent": ua})
    if reading is not None and reading.proxy is not None:
        return Reason("proxied", 0, {"proxy": reading.proxy, "by": "user_agent"})
    for found in matches:
        proxy = OPEN_PROXY_NETWORKS.get(found.label)
        if proxy is not None:
            return Reason("proxied", 0, {"proxy": proxy, "by": "network", "ip": hit.ip, "network": found.label})
    return None


def fetcher_of(reasons: Sequence[Reason]) -> Reason | None:
    """The `proxied` or `apple_mpp` reason of an open's reasons (the first: hit_reasons puts it there)."""
    return reasons[0] if reasons and reasons[0].code in ("proxied", "apple_mpp") else None


def _machine_request(reasons: list[Reason]) -> bool:
    """True when the request itself already looks like a machine's (then no browser is 'current')."""
    return any(r.code in ("head_request", "prefetch", "prerender", "no_accept_language") for r in reasons)
