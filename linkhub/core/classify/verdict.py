"""What the classifier answers about a hit: a verdict, a score, and the reasons that made it.

Every signal that fires adds a `Reason`: a stable `code`, a signed `weight` (negative: machine-like;
positive: person-like) and the `evidence` it saw. `decide()` turns the reasons into a `Verdict`:

- the **score** is the sum of the weights, with two bounds: reasons of one *group* that describe the
  same thing twice (the user agent's looks: an old Chrome is usually also a full-build Chrome) count
  at most that group's cap, and the total is clamped to -100..100;
- a score at or below `MACHINE_SCORE` is a machine. *Which* machine follows from the strongest
  named evidence: the most negative reason whose kind is `scanner` (a security vendor, a link
  previewer, a gateway's network) or `bot` (a crawler, an HTTP library, a headless browser, a
  prefetch). When no reason names the kind (a HEAD, an empty user agent, an impossible browser,
  timing), the machine is a `scanner`: crawlers and scripts say who they are, while the programs that
  fetch an email's links in a browser's clothes, seconds after delivery, are link scanners (Defender's
  Safe Links, Proofpoint, Mimecast: every public report of such hits names one of them);
- a score at or above `HUMAN_SCORE` is `human`;
- anything between is `unknown`, the honest answer when evidence is weak or mixed.

Calling a person a scanner is the costliest error (a sales rep stops calling a real lead), so no
single weak signal reaches `MACHINE_SCORE` on its own: the weak ones weigh 10-25, and the user agent's
looks are capped at 50 together.

Codes are registered in `CODES` with their kind and group; the behaviour-across-hits codes
(linkhub.core.classify.behaviour) follow the same rule.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

# Bump when a weight, threshold or rule changes: a stored verdict says which rules made it, and
# `classify rescore` can tell the clicks judged by older rules.
CLASSIFIER_VERSION = "2026.12.3"

VerdictName = Literal["human", "unknown", "scanner", "bot"]
# What a reason says about the client: `scanner` and `bot` name the kind of machine; `machine` says a
# machine without saying which; `human` is evidence for a person; `neutral` records an observation
# that changes nothing (a mail client's user agent that kept a crawler list from firing).
Kind = Literal["scanner", "bot", "machine", "human", "neutral"]

MACHINE_SCORE = -60
HUMAN_SCORE = 25
SCORE_BOUND = 100


class Reason(msgspec.Struct, frozen=True, gc=False):
    """One signal that fired: `code` (stable, listed in `CODES`), `weight`, and what it saw.

    Reasons of a user agent are cached and shared between hits: treat `evidence` as read-only (build
    a new Reason to change it).
    """

    code: str
    weight: int
    evidence: dict[str, Any] = msgspec.field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {"code": self.code, "weight": self.weight, "evidence": self.evidence}


class Verdict(msgspec.Struct, frozen=True, gc=False):
    """The classifier's answer for one hit, and the rules' version that gave it."""

    verdict: VerdictName
    score: int
    reasons: list[Reason]
    version: str = CLASSIFIER_VERSION

    @property
    def machine(self) -> bool:
        """True for `scanner` and `bot`: what the click's `details.bot` records."""
        return self.verdict in ("scanner", "bot")

    def document(self) -> dict[str, Any]:
        """The JSON shape stored with a click and sent to webhooks."""
        return {
            "verdict": self.verdict,
            "score": self.score,
            "reasons": [r.document() for r in self.reasons],
            "version": self.version,
        }


class CodeInfo(msgspec.Struct, frozen=True):
    kind: Kind
    group: str
    summary: str


# Every reason code the classifier can emit. A code is a public name: stored clicks and webhook
# consumers keep it, so it is never renamed; a retired code stays listed.
CODES: dict[str, CodeInfo] = {
    # request
    "head_request": CodeInfo("machine", "request", "the request is a HEAD: browsers never send one for a click"),
    "prefetch": CodeInfo("bot", "request", "a prefetch header: the browser fetched ahead of any click"),
    "prerender": CodeInfo("machine", "request", "a prerender: fetched ahead, perhaps shown to the person later"),
    "empty_user_agent": CodeInfo("machine", "request", "no User-Agent, or an empty one"),
    "no_accept_language": CodeInfo("machine", "request", "no Accept-Language: every mainstream browser sends one"),
    # user agent: named clients
    "crawler_user_agent": CodeInfo("bot", "user_agent", "the user agent is a known crawler"),
    "http_library": CodeInfo("bot", "user_agent", "the user agent is an HTTP library or command-line tool"),
    "headless_browser": CodeInfo("bot", "user_agent", "the user agent is a headless or automated browser"),
    "link_preview": CodeInfo("scanner", "user_agent", "the user agent is a link previewer (chat, social)"),
    "security_vendor": CodeInfo("scanner", "user_agent", "the user agent names an email-security vendor"),
    "mail_client": CodeInfo("neutral", "user_agent", "a mail client or mail image proxy: a person's app"),
    # user agent: a browser's looks
    "outdated_browser": CodeInfo("machine", "browser", "the browser's major version is years behind"),
    "chrome_full_version": CodeInfo("machine", "browser", "a four-part Chrome build current Chrome never sends"),
    "msie": CodeInfo("machine", "browser", "Internet Explorer 10 or older"),
    "trident": CodeInfo("machine", "browser", "Internet Explorer 11, retired in 2022"),
    "edgehtml": CodeInfo("machine", "browser", "EdgeHTML (Edge Legacy), retired in 2021"),
    "old_windows": CodeInfo("machine", "browser", "Windows XP or Vista"),
    "os_mismatch": CodeInfo("machine", "browser", "the user agent contradicts its own operating system"),
    "current_browser": CodeInfo("human", "browser_positive", "a current mainstream browser with Accept-Language"),
    # network
    "scanner_network": CodeInfo("scanner", "network", "the client IP is in a security vendor's network"),
    "crawler_network": CodeInfo("bot", "network", "the client IP is in a published crawler range"),
    "cloud_network": CodeInfo("machine", "network", "the client IP is in a cloud or datacenter network"),
    # timing
    "early_hit": CodeInfo("machine", "timing", "seconds after the recipient's links were minted"),
    "late_hit": CodeInfo("human", "timing", "an hour or more after the links were minted"),
    # behaviour across hits (linkhub.core.classify.behaviour)
    "burst": CodeInfo("machine", "burst", "different links of the email within seconds of each other"),
    "head_then_get": CodeInfo("machine", "head_then_get", "a GET right after a HEAD of the same link"),
    "every_link": CodeInfo("machine", "every_link", "every link of the email hit within the settle window"),
    "multi_network": CodeInfo("machine", "multi_network", "the email's links hit from several networks at once"),
    "unsubscribe_with_content": CodeInfo("machine", "unsubscribe_with_content",
                                         "the unsubscribe link hit in the same burst as content links"),
    "shared_ip": CodeInfo("machine", "shared_ip", "one IP hitting many companies' recipients within minutes"),
    "confirmed_later": CodeInfo("human", "confirmed_later",
                                "a current browser long after a scan of the email, from another network"),
    "scanner_companion": CodeInfo("neutral", "scanner_companion",
                                  "a known scanner checked this link at the same moment from its own network"),
    # opens (the open pixel)
    "proxied": CodeInfo("neutral", "proxy",
                        "an open fetched by a mail provider's image proxy: a real open, with the proxy's device"),
    "apple_mpp": CodeInfo("neutral", "proxy",
                          "Apple Mail Privacy Protection prefetched the image: nobody's open, reported apart"),
}

# The most a group may add towards a machine verdict. The browser group's reasons often describe one
# fact twice (Chrome 97 is both years behind and a four-part build), and a user agent, however odd,
# is one thing the client says of itself: never enough alone for a machine verdict.
GROUP_CAPS: dict[str, int] = {"browser": -50}
# code -> its group, for the codes of a capped group only
_CAPPED_GROUP: dict[str, str] = {code: info.group for code, info in CODES.items() if info.group in GROUP_CAPS}


def score(reasons: list[Reason]) -> int:
    """The sum of the weights, each group's negative total bounded by `GROUP_CAPS`, clamped."""
    total = 0
    capped: dict[str, int] | None = None  # most hits have no reason of a capped group
    for reason in reasons:
        group = _CAPPED_GROUP.get(reason.code)
        if group is None:
            total += reason.weight
        else:
            if capped is None:
                capped = {}
            capped[group] = capped.get(group, 0) + reason.weight
    if capped:
        total += sum(max(value, GROUP_CAPS[group]) for group, value in capped.items())
    return max(-SCORE_BOUND, min(SCORE_BOUND, total))


def _machine_kind(reasons: list[Reason]) -> VerdictName:
    """The kind of the strongest named machine evidence; `scanner` when none names it (see above)."""
    best: Reason | None = None
    for reason in reasons:
        info = CODES.get(reason.code)
        if info is None or info.kind not in ("scanner", "bot"):
            continue
        # The most negative weight wins; on a tie, a scanner: the rarer claim to make wrongly of a bot.
        if (best is None or reason.weight < best.weight
                or (reason.weight == best.weight and info.kind == "scanner")):
            best = reason
    if best is None:
        return "scanner"
    return "bot" if CODES[best.code].kind == "bot" else "scanner"


def decide(reasons: list[Reason]) -> Verdict:
    """The verdict the reasons add up to (the rule is in the module's docstring)."""
    total = score(reasons)
    verdict: VerdictName
    if total <= MACHINE_SCORE:
        verdict = _machine_kind(reasons)
    elif total >= HUMAN_SCORE:
        verdict = "human"
    else:
        verdict = "unknown"
    return Verdict(verdict=verdict, score=total, reasons=list(reasons))
