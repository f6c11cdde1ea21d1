"""A labelled corpus of click traces: what scanners, bots and people do to a tracked email's links.

    import corpus
    records = corpus.generate(seed=1, per_scenario=300)   # dicts, in time order
    corpus.write(path, records)                           # one JSON object a line

Every record is a line `linkhub classify trace` reads (the fields of `linkhub.core.classify.hits.Hit`:
`t`, `at`, `method`, `ip`, `headers`, `recipient`, `mailing`, `email`, `url`, `links_in_email`) plus
what the classifier must not see: `label` (`human`, `scanner` or `bot`), `scenario` (a name of
`SCENARIOS`) and `case` (one generated trace: the hits of one scenario's story, which may involve
several parties, each hit labelled by who made it).

**What it is built from.** Published descriptions, not captured traffic: GitHub issues of projects
whose one-time links were used up by link scanners (Defender's HEAD-then-GET, its user agents and
addresses), the vendors' own pages (their networks, as shipped in linkhub's lists), the trackers that
filter scanners (warmbly, Mautic, the IntellectIT plugin, Dub, Marketo's documentation), and the
browsers' documented request headers. Each scenario's docstring says which. Where the sources are
silent (whether Defender sends Accept-Language, how many addresses a vendor scans from, what user
agent Proofpoint's scanner sends), the choice made here is stated where it is made; the corpus cannot
tell how often each case happens, or what scanners do that nobody has written about.

**Time.** `t` counts ms from the moment the recipient's links were minted (Outreach asks for them just
before it sends); `at` is the hit's absolute time, ms since the epoch. The emails of one mailing are
minted over a span (Outreach sends a sequence step over minutes to hours), the mailings over three
weeks before the classifier's reference date (`linkhub.core.classify.agents.REFERENCE_DATE`), so
browser versions are "current" relative to the data, as the classifier judges them.

**Addresses** are real: the vendors' from the lists linkhub ships (`linkhub/core/classify/data/`);
clouds', Zscaler's and iCloud Private Relay's from their published ranges; people's from residential,
mobile and business ISPs' address space, each checked against the shipped lists (no person's address
falls in one, except by design: browser isolation, Safe Links' own fetch). Company domains and names
are made up (`.example`, RFC 2606), as are the senders' (`example.com`, `.net`, `.org`).

Deterministic: the same seed and size give the same records, byte for byte.
"""

from __future__ import annotations

import ipaddress
import json
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec

from linkhub.core.classify.agents import CHROME_MAJOR, FIREFOX_MAJOR, REFERENCE_DATE
from linkhub.core.classify.data import manifest, read_list
from linkhub.core.classify.hits import Hit
from linkhub.core.classify.networks import Networks

Label = Literal["human", "scanner", "bot"]
LABELS: tuple[Label, ...] = ("human", "scanner", "bot")
Record = dict[str, Any]

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

# The mailings are sent over the three weeks before the reference date, starting on a Monday.
START = datetime(REFERENCE_DATE.year, REFERENCE_DATE.month, REFERENCE_DATE.day, tzinfo=UTC) - timedelta(days=29)
START_MS = int(START.timestamp() * 1000)
MAILING_DAYS = 21
MAILINGS = 60

# -- addresses ---------------------------------------------------------------------------------------


def shipped(label: str) -> tuple[str, ...]:
    """The CIDRs of one shipped network list (the classifier's own data: the corpus uses the same)."""
    info = next(item for item in manifest().lists if item.label == label)
    return tuple(read_list(info))


# People's networks. Residential and mobile ranges of large ISPs; business ranges for offices. They only
# need to be ordinary ISP space, on none of the shipped lists (checked per address, see `Corpus.address`).
HOME = ("73.0.0.0/8",          # Comcast (US)
        "2601::/20",           # Comcast IPv6
        "79.192.0.0/10",       # Deutsche Telekom (DE)
        "2003::/19",           # Deutsche Telekom IPv6
        "86.128.0.0/10",       # UK broadband
        "90.0.0.0/9",          # Orange (FR)
        "2a01:cb00::/24")      # Orange IPv6
MOBILE = ("172.56.0.0/14",     # T-Mobile US (CGNAT)
          "2607:fb90::/32",    # T-Mobile US IPv6
          "174.192.0.0/10",    # Verizon Wireless
          "80.187.0.0/16")     # Telekom mobile (DE)
OFFICE = ("12.0.0.0/8",        # AT&T business
          "38.0.0.0/8",        # Cogent
          "195.0.0.0/8", "212.0.0.0/8", "217.0.0.0/8")  # European business ISPs (RIPE space)
# Clouds, from the providers' published ranges (AWS ip-ranges.json, Azure service tags, GCP cloud.json):
# where scripts, link previewers and some scanners run. linkhub ships no cloud list (see its manifest).
AWS = ("3.80.0.0/12", "18.204.0.0/14", "34.192.0.0/10", "44.192.0.0/11", "54.144.0.0/12", "52.0.0.0/11")
AZURE = ("20.36.0.0/14", "20.64.0.0/10", "13.64.0.0/11", "40.112.0.0/13", "52.224.0.0/11")
GCP = ("34.64.0.0/11", "35.184.0.0/13", "104.196.0.0/14")
CLOUD = AWS + AZURE + GCP
# Defender seen scanning from Microsoft addresses outside Exchange Online Protection's published ranges:
# 20.72.100.79 (edalzell/laravel-passwordless-login#79), 40.94.16.* (opencollective/opencollective#3656).
MICROSOFT_OUTSIDE_EOP = ("20.72.0.0/14", "40.94.0.0/16")
# Microsoft's Teams ranges (Microsoft 365 endpoints, Teams: 52.112.0.0/14): where the Teams/Skype URL
# preview service is assumed to fetch from (its egress is not published).
MICROSOFT_TEAMS = ("52.112.0.0/14",)
# Zscaler Internet Access egress (Zscaler's "Cloud Enforcement Node Ranges", as firewall configurations
# in public repositories list them): thousands of companies' employees share these addresses.
ZSCALER = ("165.225.0.0/17", "165.225.192.0/18", "136.226.0.0/16", "147.161.128.0/17", "170.85.0.0/16")
# iCloud Private Relay egress (Apple's mask-api.icloud.com/egress-ip-ranges.csv; rows as public code quotes
# them: 172.224.226.0/27 London, 104.28.30.0/26 Tokyo, 146.75.136.0/22 Bremerton, ...). Relay addresses
# rotate: one person's two clicks can come from two of them.
PRIVATE_RELAY = ("172.224.226.0/27", "172.224.226.32/31", "172.224.226.34/31", "104.28.30.0/26",
                 "146.75.136.0/22", "146.75.253.246/31", "2a02:26f7:b3c0:4000::/64", "2a04:4e41:275f:1700::/56",
                 "2a09:bac2:b089:100::/56")
# Commercial VPNs exit from hosting providers' networks (rented servers), shared by their customers.
VPN = ("146.70.0.0/16", "89.187.160.0/19", "185.156.172.0/22")

# -- user agents -----------------------------------------------------------------------------------------
# Real strings; the people's are the current formats at the reference date (Chrome's reduced
# `N.0.0.0`, Firefox's `rv:N.0`, Safari's `Version/N`), with majors around CHROME_MAJOR and FIREFOX_MAJOR.

# Defender for Office 365's scans: full four-part builds of old Chromes, a reduced old Chrome, or nothing.
DEFENDER_AGENTS = (
    # edalzell/laravel-passwordless-login#79 (from 20.72.100.79)
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/97.0.4692.99 "
    "Safari/537.36",
    # opencollective/opencollective#3656 (from 40.94.16.*, 40.107.235.*): "Chrome version seems to vary"
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/72.0.3626.109 "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/64.0.3282.140 "
    "Safari/537.36",
    # fleetdm/fleet#26976: "from a Microsoft IP using e.g. Chrome 125 (so, 8+ versions old) on Windows 10"
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 "
    "Safari/537.36",
    # edalzell/laravel-passwordless-login#79, later: "the user-agent is always blank" (from 104.47.*)
    "",
)
BARRACUDA = "Barracuda Sentinel (EE)"  # listed by Crawler-Detect (Crawlers.php); Braze's bot-filtering docs
PREVIEWERS = (
    # (user agent, where it fetches from): Slack unfurls from AWS (api.slack.com/robots);
    # Teams' URL preview service sends SkypeUriPreview; Microsoft's own preview crawler names itself.
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", AWS),
    ("Slackbot 1.0 (+https://api.slack.com/robots)", AWS),
    ("Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
     MICROSOFT_TEAMS),
    ("Mozilla/5.0 (compatible; SkypeUriPreview; +https://www.skype.com)", MICROSOFT_TEAMS),
    ("MicrosoftPreview/2.0 +https://aka.ms/MicrosoftPreview", MICROSOFT_TEAMS),
)
HTTP_LIBRARIES = (
    # (user agent, the headers the library sends by default besides it)
    ("python-requests/2.32.3", {"accept": "*/*", "accept-encoding": "gzip, deflate", "connection": "keep-alive"}),
    ("python-requests/2.31.0", {"accept": "*/*", "accept-encoding": "gzip, deflate", "connection": "keep-alive"}),
    ("curl/8.5.0", {"accept": "*/*"}),
    ("curl/7.81.0", {"accept": "*/*"}),
    ("Go-http-client/1.1", {"accept-encoding": "gzip"}),
    ("Go-http-client/2.0", {"accept-encoding": "gzip"}),
    ("Wget/1.21.4", {"accept": "*/*", "accept-encoding": "identity", "connection": "Keep-Alive"}),
    ("okhttp/4.12.0", {"accept-encoding": "gzip", "connection": "Keep-Alive"}),
    ("axios/1.7.7", {"accept": "application/json, text/plain, */*", "accept-encoding": "gzip, compress, deflate, br"}),
    ("python-httpx/0.27.0", {"accept": "*/*", "accept-encoding": "gzip, deflate", "connection": "keep-alive"}),
    ("Python/3.11 aiohttp/3.9.5", {"accept": "*/*", "accept-encoding": "gzip, deflate"}),
    ("Apache-HttpClient/4.5.14 (Java/17.0.9)", {"accept-encoding": "gzip,deflate", "connection": "keep-alive"}),
    ("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", {"accept": "*/*", "accept-encoding": "gzip,deflate"}),
    ("libwww-perl/6.77", {"te": "deflate,gzip;q=0.3", "connection": "TE, close"}),
)
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/{chrome}.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/{chrome}.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.109 "
    "Safari/537.36",
    "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X) AppleWebKit/534.34 (KHTML, like Gecko) PhantomJS/1.9.8 Safari/534.34",
)
IE11_WIN7 = "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko"

CHROMIUM_ACCEPT = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,"
                   "application/signed-exchange;v=b3;q=0.7")
FIREFOX_SAFARI_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# (tag, language): people read in their own language; Chrome, Firefox and Safari write the header differently.
LOCALES = (("en-US", "en"), ("en-US", "en"), ("en-US", "en"), ("en-GB", "en"), ("de-DE", "de"), ("de-DE", "de"),
           ("fr-FR", "fr"), ("nl-NL", "nl"), ("es-ES", "es"), ("it-IT", "it"), ("sv-SE", "sv"), ("pl-PL", "pl"),
           ("pt-BR", "pt"))


def chrome_build(major: int) -> str:
    """A plausible full Chrome version for `major` (builds grow ~62 a major: Chrome 120 was 120.0.6099)."""
    return f"{major}.0.{6099 + (major - 120) * 62}.{(major * 37) % 180 + 20}"


@dataclass(frozen=True)
class Browser:
    """A person's browser: its user agent and the headers it sends on a navigation."""

    user_agent: str
    headers: dict[str, str]
    mobile: bool


def accept_language(family: str, tag: str, language: str) -> str:
    if family == "firefox":
        return "en-US,en;q=0.5" if tag == "en-US" else f"{tag},{language};q=0.8,en-US;q=0.5,en;q=0.3"
    if family == "safari":
        return f"{tag},{language};q=0.9"
    return "en-US,en;q=0.9" if tag == "en-US" else f"{tag},{language};q=0.9,en-US;q=0.8,en;q=0.7"


def browser(rng: random.Random, *, mobile: bool | None = None, family: str | None = None) -> Browser:
    """A current browser (relative to the reference date) with a navigation's headers, as people use them."""
    if mobile is None:
        mobile = rng.random() < 0.45
    tag, language = rng.choice(LOCALES)
    chrome = CHROME_MAJOR - rng.choice((0, 0, 1, 1, 2, 3))
    firefox = FIREFOX_MAJOR - rng.choice((0, 0, 1, 2))
    safari = rng.choice(("26.0", "26.1", "26.1", "26.2", "26.3", "18.6"))
    if family is None:
        family = rng.choices(
            ("chrome", "edge", "firefox", "safari", "chrome_ios", "samsung", "webview", "ios_webview"),
            weights=(30, 8, 6, 30, 6, 6, 8, 6) if mobile else (50, 25, 10, 15, 0, 0, 0, 0))[0]
    platform = ""
    if family in ("chrome", "edge"):
        if mobile:
            ua, platform = (f"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
                            f"Chrome/{chrome}.0.0.0 Mobile Safari/537.36"), "Android"
            if family == "edge":
                ua += f" EdgA/{chrome}.0.0.0"
        else:
            os_token, platform = rng.choice((("Windows NT 10.0; Win64; x64", "Windows"),
                                             ("Windows NT 10.0; Win64; x64", "Windows"),
                                             ("Macintosh; Intel Mac OS X 10_15_7", "macOS"),
                                             ("X11; Linux x86_64", "Linux")))
            ua = f"Mozilla/5.0 ({os_token}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{chrome}.0.0.0 Safari/537.36"
            if family == "edge":
                ua += f" Edg/{chrome}.0.0.0"
        brand = '"Microsoft Edge"' if family == "edge" else '"Google Chrome"'
        headers = {"accept": CHROMIUM_ACCEPT, "accept-encoding": "gzip, deflate, br, zstd",
                   "accept-language": accept_language("chrome", tag, language),
                   "sec-ch-ua": f'"Chromium";v="{chrome}", {brand};v="{chrome}", "Not_A Brand";v="24"',
                   "sec-ch-ua-mobile": "?1" if mobile else "?0", "sec-ch-ua-platform": f'"{platform}"',
                   "sec-fetch-dest": "document", "sec-fetch-mode": "navigate", "sec-fetch-site": "cross-site",
                   "sec-fetch-user": "?1", "upgrade-insecure-requests": "1"}
    elif family == "firefox":
        ua = (f"Mozilla/5.0 (Android 15; Mobile; rv:{firefox}.0) Gecko/{firefox}.0 Firefox/{firefox}.0" if mobile
              else rng.choice((f"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{firefox}.0) Gecko/20100101 "
                               f"Firefox/{firefox}.0",
                               f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:{firefox}.0) Gecko/20100101 "
                               f"Firefox/{firefox}.0",
                               f"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:{firefox}.0) Gecko/20100101 "
                               f"Firefox/{firefox}.0")))
        headers = {"accept": FIREFOX_SAFARI_ACCEPT, "accept-encoding": "gzip, deflate, br, zstd",
                   "accept-language": accept_language("firefox", tag, language), "upgrade-insecure-requests": "1",
                   "sec-fetch-dest": "document", "sec-fetch-mode": "navigate", "sec-fetch-site": "cross-site",
                   "sec-fetch-user": "?1", "priority": "u=0, i"}
    else:
        if family == "safari":
            # Safari 26 on iOS no longer names the system's version: it says 18_6 (WebKit, "WebKit Features in
            # Safari 26.0"), later releases 18_7.
            ios = "18_6" if safari in ("18.6", "26.0") else "18_7"
            ua = (f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                  f"Version/{safari} Mobile/15E148 Safari/604.1" if mobile else
                  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                  f"Version/{safari} Safari/605.1.15")
        elif family == "chrome_ios":
            ua = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                  f"CriOS/{chrome_build(chrome)} Mobile/15E148 Safari/604.1")
        elif family == "samsung":
            # Samsung Internet trails Chromium by design (its own token after Chrome/).
            ua = ("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
                  f"SamsungBrowser/29.0 Chrome/{chrome - 18}.0.0.0 Mobile Safari/537.36")
        elif family == "webview":
            # A mail app's in-app browser on Android (Outlook, Gmail): a WebView, full build.
            ua = ("Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240205.004; wv) AppleWebKit/537.36 "
                  f"(KHTML, like Gecko) Version/4.0 Chrome/{chrome_build(chrome)} Mobile Safari/537.36")
        else:
            # A mail app's in-app browser on iOS (WKWebView): no Safari token, no version.
            ua = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                  "Mobile/15E148")
        chromium = family in ("samsung", "webview")
        headers = {"accept": CHROMIUM_ACCEPT if chromium else FIREFOX_SAFARI_ACCEPT,
                   "accept-encoding": "gzip, deflate, br, zstd" if chromium else "gzip, deflate, br",
                   "accept-language": accept_language("chrome" if chromium else "safari", tag, language),
                   "sec-fetch-dest": "document", "sec-fetch-mode": "navigate", "sec-fetch-site": "cross-site"}
        if not chromium:
            headers["priority"] = "u=0, i"
    return Browser(ua, {"user-agent": ua, **headers}, mobile)


# -- mailings, emails, hits ----------------------------------------------------------------------------------

FIRST = ("anna", "ben", "carla", "david", "elena", "felix", "grace", "hugo", "ines", "jonas", "kate", "lukas",
         "maria", "noah", "olivia", "paul", "quentin", "rosa", "sam", "tina", "ulrich", "vera", "will", "yara")
LAST = ("adams", "becker", "costa", "dubois", "evans", "fischer", "garcia", "hansen", "ito", "jensen", "keller",
        "lopez", "meyer", "novak", "olsen", "peters", "quinn", "rossi", "schmidt", "taylor", "vogel", "weber")
COMPANY_A = ("north", "blue", "bright", "iron", "silver", "green", "clear", "swift", "stone", "river", "oak",
             "summit", "harbor", "pine", "cedar", "polar", "amber", "lumen", "vector", "atlas")
COMPANY_B = ("logistics", "analytics", "systems", "foods", "health", "labs", "capital", "energy", "retail",
             "robotics", "media", "works", "partners", "insurance", "motors", "pharma", "cloud", "textiles")
PAGES = ("/pricing", "/demo", "/case-studies/{slug}", "/blog/{slug}", "/webinar/{slug}", "/product/{slug}",
         "/events/{slug}", "/whitepaper/{slug}", "/customers/{slug}", "/integrations/{slug}", "/about", "/contact")
SLUGS = ("roi-calculator", "q4-planning", "supply-chain-2027", "ai-forecasting", "security-report", "onboarding",
         "benchmark", "migration-guide", "pricing-update", "customer-story")


@dataclass
class Mailing:
    id: str
    start: int          # ms since the epoch: the first email minted
    span: int           # the emails are minted over this many ms
    sender: str         # the sender's domain
    pages: list[str]    # the content links, the same for every recipient
    unsubscribe: bool   # whether the template carries an unsubscribe link


@dataclass
class Email:
    """One recipient's email: its links as minted (the original URLs) and when."""

    recipient: str
    mailing: str
    address: str
    domain: str
    minted: int
    links: list[str]
    unsubscribe: str | None

    @property
    def content(self) -> list[str]:
        return [link for link in self.links if link != self.unsubscribe]


@dataclass
class Corpus:
    rng: random.Random
    networks: Networks
    records: list[Record] = field(default_factory=list)
    mailings: list[Mailing] = field(default_factory=list)
    recipients: int = 0
    offices: dict[str, str] = field(default_factory=dict)
    pools: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rng = self.rng
        for number in range(MAILINGS):
            day = rng.randrange(MAILING_DAYS)
            start = START_MS + day * DAY + rng.randrange(7 * HOUR, 17 * HOUR)
            pages = []
            links = rng.randint(2, 8)
            sender = rng.choice(("example.com", "example.net", "example.org"))
            # Most B2B templates carry an unsubscribe link (one of the 2-8 links), some do not.
            unsubscribe = rng.random() < 0.7
            for _ in range(links - (1 if unsubscribe else 0)):
                page = rng.choice(PAGES).format(slug=rng.choice(SLUGS))
                pages.append(f"https://www.{sender}{page}?utm_source=outreach&utm_campaign=m{number}")
            self.mailings.append(Mailing(f"{7_100_000 + number}", start, rng.randrange(10 * MINUTE, 4 * HOUR),
                                         sender, list(dict.fromkeys(pages)), unsubscribe))

    # -- addresses

    def address(self, cidrs: Iterable[str], *, unlisted: bool = True) -> str:
        """A random address in one of `cidrs`; with `unlisted`, one that no shipped list contains."""
        choices = tuple(cidrs)
        for _ in range(100):
            net = ipaddress.ip_network(self.rng.choice(choices))
            if net.num_addresses <= 2:
                host = int(net.network_address) + self.rng.randrange(net.num_addresses)
            else:
                host = int(net.network_address) + self.rng.randrange(1, net.num_addresses - 1)
            ip = str(ipaddress.ip_address(host))
            if not unlisted or not self.networks.match(ip):
                return ip
        raise AssertionError(f"no unlisted address in {choices}")

    def pool(self, name: str, cidrs: Iterable[str], size: int, *, unlisted: bool = True) -> list[str]:
        """A fixed pool of addresses shared by a scenario's traces: a vendor's or a proxy's egress."""
        if name not in self.pools:
            self.pools[name] = [self.address(cidrs, unlisted=unlisted) for _ in range(size)]
        return self.pools[name]

    def office(self, domain: str) -> str:
        """The company's office address (its NAT): the same for every colleague."""
        if domain not in self.offices:
            self.offices[domain] = self.address(OFFICE)
        return self.offices[domain]

    def home(self, mobile: bool) -> str:
        return self.address(MOBILE if mobile else HOME)

    # -- emails

    def company(self) -> str:
        return f"{self.rng.choice(COMPANY_A)}{self.rng.choice(COMPANY_B)}{self.rng.randrange(1, 400)}.example"

    def email(self, *, domain: str | None = None, mailing: Mailing | None = None, unsubscribe: bool | None = None,
              minted: int | None = None) -> Email:
        rng = self.rng
        mailing = mailing or rng.choice(self.mailings)
        domain = domain or self.company()
        self.recipients += 1
        recipient = f"{400_000 + self.recipients}"
        has_unsubscribe = mailing.unsubscribe if unsubscribe is None else unsubscribe
        # A template without an unsubscribe link given one (a scenario needs it) keeps to eight links.
        links = list(mailing.pages[:7] if has_unsubscribe else mailing.pages)
        unsubscribe_url = None
        if has_unsubscribe:
            unsubscribe_url = f"https://{mailing.sender}/unsubscribe?r={recipient}&m={mailing.id}&sig={rng.getrandbits(64):016x}"
            links.insert(rng.randrange(len(links) + 1) if links else 0, unsubscribe_url)
        if len(links) < 2:
            links.append(f"https://www.{mailing.sender}/?utm_source=outreach")
        minted_at = minted if minted is not None else mailing.start + rng.randrange(mailing.span)
        return Email(recipient, mailing.id, f"{rng.choice(FIRST)}.{rng.choice(LAST)}@{domain}", domain, minted_at,
                     links, unsubscribe_url)

    def hit(self, email: Email, url: str, t: int, *, label: Label, scenario: str, case: str, ip: str,
            headers: dict[str, str], method: str = "GET") -> None:
        self.records.append({
            "t": t, "at": email.minted + t, "method": method, "ip": ip, "headers": dict(headers),
            "recipient": email.recipient, "mailing": email.mailing, "email": email.address, "url": url,
            "links_in_email": len(email.links), "label": label, "scenario": scenario, "case": case,
        })

    # -- timing

    def log_uniform(self, low: int, high: int) -> int:
        """A time between `low` and `high` ms, as likely in each decade: people click minutes to days later."""
        return int(math.exp(self.rng.uniform(math.log(low), math.log(high))))

    def person_click(self, email: Email, scenario: str, case: str, *, t: int, ip: str, who: Browser,
                     url: str | None = None) -> str:
        """A person's click on one link (a content link mostly, now and then the unsubscribe link)."""
        if url is None:
            url = (email.unsubscribe if email.unsubscribe and self.rng.random() < 0.08
                   else self.rng.choice(email.content))
        self.hit(email, url, t, label="human", scenario=scenario, case=case, ip=ip, headers=who.headers)
        return url


# -- scenarios ---------------------------------------------------------------------------------------------

Make = Callable[[Corpus, str, str], None]


@dataclass(frozen=True)
class Scenario:
    name: str
    labels: tuple[Label, ...]   # the labels its hits carry
    summary: str                # one line, for the docs and the bench
    make: Make
    weight: float = 1.0         # traces relative to `per_scenario`


def _defender_scan(c: Corpus, email: Email, scenario: str, case: str, *, start: int, addresses: list[str]) -> None:
    """Defender for Office 365 at delivery: HEAD then GET on every link, milliseconds apart.

    Sources: opencollective/opencollective#3656, edalzell/laravel-passwordless-login#79 (a "GET to HEAD
    request"; several 104.47.* addresses for one message), SergeyMosin/Appointments#293 (every link of the
    email, the cancel link included), nitinsh06/Django-Verify-Email#62 (HEAD before the redirect).
    Not published: whether it sends Accept-Language (here one scan in five does), how many addresses one
    scan uses (here one, or one per link), the order of the links (here shuffled, sequential).
    """
    rng = c.rng
    ua = rng.choice(DEFENDER_AGENTS)
    headers = {"accept": rng.choice(("*/*", CHROMIUM_ACCEPT)), "accept-encoding": "gzip, deflate, br"}
    if ua or rng.random() < 0.5:  # an empty user agent: the header sent empty, or left out
        headers["user-agent"] = ua
    if rng.random() < 0.2:
        headers["accept-language"] = "en-US,en;q=0.9"
    one_address = rng.random() < 0.6
    ip = rng.choice(addresses)
    at = start
    for url in rng.sample(email.links, len(email.links)):
        if not one_address:
            ip = rng.choice(addresses)
        c.hit(email, url, at, label="scanner", scenario=scenario, case=case, ip=ip, headers=headers, method="HEAD")
        at += rng.randint(3, 60)
        c.hit(email, url, at, label="scanner", scenario=scenario, case=case, ip=ip, headers=headers)
        at += rng.randint(5, 400)


def eop_pool(c: Corpus) -> list[str]:
    # Exchange Online Protection's published ranges (the shipped list), a tenth of them IPv6. How many
    # addresses Defender scans from is not published; a pool of 300 makes one address scan for several
    # companies' recipients within minutes, as a shared service does.
    v4 = [cidr for cidr in shipped("microsoft_eop") if ":" not in cidr]
    v6 = [cidr for cidr in shipped("microsoft_eop") if ":" in cidr]
    return c.pool("eop", v4, 270, unlisted=False) + c.pool("eop6", v6, 30, unlisted=False)


def defender(c: Corpus, scenario: str, case: str) -> None:
    """Defender for Office 365 scans every link at delivery, 8-120 s after minting, from EOP's ranges."""
    email = c.email()
    _defender_scan(c, email, scenario, case, start=c.rng.randint(8 * SECOND, 120 * SECOND), addresses=eop_pool(c))


def defender_azure(c: Corpus, scenario: str, case: str) -> None:
    """The same scan from Microsoft addresses outside EOP's published ranges (20.72.*, 40.94.*: reported)."""
    email = c.email()
    addresses = c.pool("microsoft_outside_eop", MICROSOFT_OUTSIDE_EOP, 120)
    _defender_scan(c, email, scenario, case, start=c.rng.randint(8 * SECOND, 120 * SECOND), addresses=addresses)


def safelinks_click(c: Corpus, scenario: str, case: str) -> None:
    """Safe Links at click time: the person's GET and Microsoft's check of the same link within 50 ms.

    Safe Links does not proxy the click: it checks the URL, then the person's browser opens it from the
    person's own address (warmbly/warmbly#412, quoting Microsoft's Safe Links documentation), so the
    check arrives just before the person's hit (now and then just after, as requests race). Half of
    these emails were also scanned at delivery.
    """
    rng = c.rng
    email = c.email()
    if rng.random() < 0.5:
        _defender_scan(c, email, scenario, case, start=rng.randint(8 * SECOND, 120 * SECOND), addresses=eop_pool(c))
    who = browser(rng, mobile=rng.random() < 0.3)
    ip = c.office(email.domain) if not who.mobile and rng.random() < 0.6 else c.home(who.mobile)
    t = c.log_uniform(3 * MINUTE, 3 * DAY)
    ms_ua = rng.choice(DEFENDER_AGENTS)
    ms_headers = {"accept": CHROMIUM_ACCEPT, "accept-encoding": "gzip, deflate, br"}
    if ms_ua:
        ms_headers["user-agent"] = ms_ua
    for _ in range(rng.choice((1, 1, 1, 2))):
        url = rng.choice(email.content)
        gap = rng.randint(0, 50)
        microsoft_t = t - gap if rng.random() < 0.8 else t + gap
        c.hit(email, url, microsoft_t, label="scanner", scenario=scenario, case=case, ip=rng.choice(eop_pool(c)),
              headers=ms_headers)
        c.person_click(email, scenario, case, t=t, ip=ip, who=who, url=url)
        t += rng.randint(20 * SECOND, 10 * MINUTE)


def _vendor_burst(c: Corpus, email: Email, scenario: str, case: str, *, addresses: list[str],
                  extra: dict[str, str] | None = None) -> None:
    """A gateway's scan at delivery: a GET of every link within seconds, from the vendor's network.

    Sources: warmbly's scanner networks (certainty per network, a 600 s window for probable ones); the
    vendors' rewriting (urldefense.com, mimecastprotect.com). What Proofpoint's and Mimecast's scanners
    send as user agent is not published beyond "browser-like": here a Chrome one to three years old,
    Internet Explorer 11 on Windows 7, or (one in five) a current Chrome; Accept-Language half the time.
    """
    rng = c.rng
    kind = rng.random()
    if kind < 0.2:
        ua = (f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              f"Chrome/{CHROME_MAJOR - rng.randint(0, 3)}.0.0.0 Safari/537.36")
    elif kind < 0.3:
        ua = IE11_WIN7
    else:
        ua = (f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              f"Chrome/{CHROME_MAJOR - rng.randint(12, 36)}.0.0.0 Safari/537.36")
    headers = {"user-agent": ua, "accept": CHROMIUM_ACCEPT, "accept-encoding": "gzip, deflate, br", **(extra or {})}
    if rng.random() < 0.5:
        headers["accept-language"] = "en-US,en;q=0.9"
    at = rng.randint(15 * SECOND, 5 * MINUTE)
    ip = rng.choice(addresses)
    for url in rng.sample(email.links, len(email.links)):
        if rng.random() < 0.3:
            ip = rng.choice(addresses)
        c.hit(email, url, at, label="scanner", scenario=scenario, case=case, ip=ip, headers=headers)
        at += rng.randint(50, 3 * SECOND)


def _isolated_or_own_click(c: Corpus, email: Email, scenario: str, case: str, addresses: list[str]) -> None:
    """Hours later the person clicks: through the vendor's browser isolation (from its network), or not.

    Browser isolation opens the page in a browser on the vendor's servers, so the person's real click
    comes from the vendor's network (research note; Proofpoint's and Mimecast's isolation products). Its
    user agent is the isolation browser's, a current Chromium; the person's language is passed on.
    """
    rng = c.rng
    t = c.log_uniform(2 * HOUR, 4 * DAY)
    if rng.random() < 0.5:
        who = browser(rng, mobile=False, family="chrome")
        headers = {**who.headers}
        headers["user-agent"] = headers["user-agent"].replace("Windows NT 10.0; Win64; x64", "X11; Linux x86_64")
        c.person_click(email, scenario, case, t=t, ip=rng.choice(addresses),
                       who=Browser(headers["user-agent"], headers, False))
    else:
        who = browser(rng)
        ip = c.office(email.domain) if not who.mobile else c.home(True)
        c.person_click(email, scenario, case, t=t, ip=ip, who=who)


def proofpoint(c: Corpus, scenario: str, case: str) -> None:
    """Proofpoint URL Defense: a burst from Proofpoint's networks; often a person's click hours later."""
    email = c.email()
    addresses = c.pool("proofpoint", shipped("proofpoint"), 60, unlisted=False)
    _vendor_burst(c, email, scenario, case, addresses=addresses)
    if c.rng.random() < 0.7:
        _isolated_or_own_click(c, email, scenario, case, addresses)


def mimecast(c: Corpus, scenario: str, case: str) -> None:
    """Mimecast URL Protect: the same, from Mimecast's networks; its referer names mimecastprotect.com
    (Dub's bot list matches it) on half the scans."""
    email = c.email()
    addresses = c.pool("mimecast", shipped("mimecast"), 40, unlisted=False)
    extra = {"referer": "https://url.us.m.mimecastprotect.com/"} if c.rng.random() < 0.5 else None
    _vendor_burst(c, email, scenario, case, addresses=addresses, extra=extra)
    if c.rng.random() < 0.7:
        _isolated_or_own_click(c, email, scenario, case, addresses)


def barracuda(c: Corpus, scenario: str, case: str) -> None:
    """Barracuda's link protection names itself (`Barracuda Sentinel (EE)`): every link at delivery, from
    Barracuda's ranges (the shipped list) or, for its regional instances, AWS; a person's click later."""
    rng = c.rng
    email = c.email()
    addresses = (c.pool("barracuda", shipped("barracuda"), 40, unlisted=False) if rng.random() < 0.8
                 else c.pool("barracuda_aws", AWS, 20))
    headers = {"user-agent": BARRACUDA, "accept": "*/*"}
    at = rng.randint(5 * SECOND, 90 * SECOND)
    ip = rng.choice(addresses)
    for url in rng.sample(email.links, len(email.links)):
        c.hit(email, url, at, label="scanner", scenario=scenario, case=case, ip=ip, headers=headers)
        at += rng.randint(20, 1500)
    if rng.random() < 0.5:
        who = browser(rng)
        c.person_click(email, scenario, case, t=c.log_uniform(10 * MINUTE, 3 * DAY),
                       ip=c.office(email.domain) if not who.mobile else c.home(True), who=who)


def cloud_burst(c: Corpus, scenario: str, case: str) -> None:
    """A scanner in a browser's clothes on several cloud addresses at once, the unsubscribe link included.

    Sources: the IntellectIT Mautic plugin's rule (three or more addresses on one message within 30 s),
    SparkDevNetwork/Rock#7034 (scanners GET unsubscribe links), warmbly's "two links within 5 s". linkhub
    ships no cloud list, so nothing about the addresses themselves gives it away.
    """
    rng = c.rng
    email = c.email(unsubscribe=True)
    provider = rng.choice((AWS, AZURE, GCP, CLOUD))
    addresses = [c.address(provider) for _ in range(rng.randint(3, 6))]
    current = rng.random() < 0.5
    major = CHROME_MAJOR - (rng.randint(0, 3) if current else rng.randint(12, 30))
    headers = {"user-agent": f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                             f"Chrome/{major}.0.0.0 Safari/537.36",
               "accept": CHROMIUM_ACCEPT, "accept-encoding": "gzip, deflate, br"}
    if rng.random() < 0.5:
        headers["accept-language"] = "en-US,en;q=0.9"
    at = rng.randint(10 * SECOND, 15 * MINUTE)
    links = rng.sample(email.links, len(email.links))
    for index, url in enumerate(links):
        c.hit(email, url, at + rng.randint(0, 400), label="scanner", scenario=scenario, case=case,
              ip=addresses[index % len(addresses)], headers=headers)
        at += rng.randint(50, 2 * SECOND)
    if rng.random() < 0.4:
        who = browser(rng)
        c.person_click(email, scenario, case, t=c.log_uniform(20 * MINUTE, 3 * DAY),
                       ip=c.office(email.domain) if not who.mobile else c.home(True), who=who)


def click_follower(c: Corpus, scenario: str, case: str) -> None:
    """A scanner that follows the person's click: the same link seconds later, another network, another OS,
    the same current browser.

    Source: resend/resend-node#901 (a person's click from a residential IPv6 address on macOS with Chrome
    146, then +12 s the same link from an IPv4 address of another network on Windows with Chrome 146).
    Which product it was is not said, nor its Accept-Language (here half send one), nor its network (here
    a cloud's or a business ISP's, on no list). It looks like phone-then-laptop, a hard negative: only the
    gap (seconds, not a minute) and the browser told them apart in that report.
    """
    rng = c.rng
    email = c.email()
    who = browser(rng, mobile=False, family="chrome")
    major = who.user_agent.split("Chrome/")[1].split(".")[0]
    mac = who.user_agent.replace("Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7") \
        .replace("X11; Linux x86_64", "Macintosh; Intel Mac OS X 10_15_7")
    person_headers = {**who.headers, "user-agent": mac, "sec-ch-ua-platform": '"macOS"'}
    t = c.log_uniform(1 * MINUTE, 1 * DAY)
    url = c.person_click(email, scenario, case, t=t, ip=c.address(tuple(n for n in HOME if ":" in n)),
                         who=Browser(mac, person_headers, False))
    windows = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
               f"Chrome/{major}.0.0.0 Safari/537.36")
    headers = {**who.headers, "user-agent": windows, "sec-ch-ua-platform": '"Windows"'}
    if rng.random() < 0.5:
        del headers["accept-language"]
    c.hit(email, url, t + rng.randint(8 * SECOND, 20 * SECOND), label="scanner", scenario=scenario, case=case,
          ip=c.address(CLOUD + OFFICE), headers=headers)


def link_preview(c: Corpus, scenario: str, case: str) -> None:
    """The recipient pastes a link into Slack or Teams: the previewer fetches it, hours or days later;
    often colleagues then click it (from their office or phones). Previewers act for a recipient: scanners.

    Sources: Slack's robots page (Slackbot-LinkExpanding), Microsoft's Teams privacy documentation (the
    URL Preview service requests the URL as the message is typed), crawler-user-agents (SkypeUriPreview,
    MicrosoftPreview); the research note (previews usually follow forwarding).
    """
    rng = c.rng
    email = c.email()
    url = rng.choice(email.content)
    t = c.log_uniform(30 * MINUTE, 5 * DAY)
    ua, where = rng.choice(PREVIEWERS)
    headers = {"user-agent": ua, "accept": rng.choice(("*/*", "text/html")), "accept-encoding": "gzip,deflate"}
    for _ in range(rng.choice((1, 1, 2))):  # Slack and Teams sometimes fetch twice (an unfurl, then the image)
        c.hit(email, url, t, label="scanner", scenario=scenario, case=case, ip=c.address(where), headers=headers)
        t += rng.randint(100, 3 * SECOND)
    if rng.random() < 0.6:
        for _ in range(rng.randint(1, 3)):
            t += rng.randint(20 * SECOND, 2 * HOUR)
            who = browser(rng)
            c.person_click(email, scenario, case, t=t, ip=c.office(email.domain) if not who.mobile else c.home(True),
                           who=who, url=url)


def http_library(c: Corpus, scenario: str, case: str) -> None:
    """Scripts: HTTP libraries and command-line tools from cloud servers, one link or several, any time;
    link checkers send HEAD. Their user agents are in crawler-user-agents (tag `http-library`)."""
    rng = c.rng
    email = c.email()
    ua, headers = rng.choice(HTTP_LIBRARIES)
    ip = c.address(CLOUD)
    method = "HEAD" if rng.random() < 0.2 else "GET"
    t = c.log_uniform(30 * SECOND, 5 * DAY)
    for url in rng.sample(email.links, rng.randint(1, len(email.links))):
        c.hit(email, url, t, label="bot", scenario=scenario, case=case, ip=ip,
              headers={"user-agent": ua, **headers}, method=method)
        t += rng.randint(30, 5 * SECOND)


def headless_browser(c: Corpus, scenario: str, case: str) -> None:
    """Automated browsers: HeadlessChrome (which sends Accept-Language en-US by default) and PhantomJS."""
    rng = c.rng
    email = c.email()
    ua = rng.choice(HEADLESS).format(chrome=CHROME_MAJOR - rng.randint(0, 20))
    headers = {"user-agent": ua, "accept": CHROMIUM_ACCEPT, "accept-encoding": "gzip, deflate, br"}
    headers["accept-language"] = "en-US,*" if "PhantomJS" in ua else "en-US,en;q=0.9"
    ip = c.address(CLOUD)
    t = c.log_uniform(30 * SECOND, 5 * DAY)
    for url in rng.sample(email.links, rng.randint(1, len(email.links))):
        c.hit(email, url, t, label="bot", scenario=scenario, case=case, ip=ip, headers=headers)
        t += rng.randint(200, 8 * SECOND)


# Hard negatives: people whose clicks look, one way or another, like a machine's.

def fast_mobile(c: Corpus, scenario: str, case: str) -> None:
    """A fast reader on a phone: the notification, one tap, about 15 s after delivery (delivery itself
    takes a few seconds after minting), from the mobile carrier's network."""
    rng = c.rng
    email = c.email()
    who = browser(rng, mobile=True)
    t = rng.randint(2 * SECOND, 6 * SECOND) + rng.randint(10 * SECOND, 20 * SECOND)
    c.person_click(email, scenario, case, t=t, ip=c.home(True), who=who)


def two_links(c: Corpus, scenario: str, case: str) -> None:
    """A person opens two links of the email about 6 s apart (back, then the next one)."""
    rng = c.rng
    email = c.email()
    who = browser(rng)
    ip = c.office(email.domain) if not who.mobile and rng.random() < 0.6 else c.home(who.mobile)
    t = c.log_uniform(1 * MINUTE, 2 * DAY)
    first, second = rng.sample(email.content if len(email.content) >= 2 else email.links, 2)
    c.person_click(email, scenario, case, t=t, ip=ip, who=who, url=first)
    c.person_click(email, scenario, case, t=t + rng.randint(4 * SECOND, 8 * SECOND), ip=ip, who=who, url=second)


def phone_then_laptop(c: Corpus, scenario: str, case: str) -> None:
    """A person taps a link on the phone, then opens it (or another) on the laptop within 2 minutes:
    two networks, two browsers, one recipient."""
    rng = c.rng
    email = c.email()
    phone, laptop = browser(rng, mobile=True), browser(rng, mobile=False)
    t = c.log_uniform(1 * MINUTE, 2 * DAY)
    url = c.person_click(email, scenario, case, t=t, ip=c.home(True), who=phone)
    later = t + rng.randint(15 * SECOND, 2 * MINUTE)
    ip = c.office(email.domain) if rng.random() < 0.6 else c.home(False)
    c.person_click(email, scenario, case, t=later, ip=ip, who=laptop, url=url if rng.random() < 0.7 else None)


def zscaler(c: Corpus, scenario: str, case: str) -> None:
    """People behind Zscaler: a few shared egress addresses carry many companies' employees, so one
    address clicks for recipients of different companies, on different days or hours apart."""
    rng = c.rng
    email = c.email()
    who = browser(rng, mobile=False)
    ip = rng.choice(c.pool("zscaler", ZSCALER, 25))
    t = c.log_uniform(2 * MINUTE, 3 * DAY)
    c.person_click(email, scenario, case, t=t, ip=ip, who=who)
    if rng.random() < 0.3:
        c.person_click(email, scenario, case, t=t + rng.randint(10 * SECOND, 30 * MINUTE), ip=ip, who=who)


def vpn(c: Corpus, scenario: str, case: str) -> None:
    """People on a commercial VPN: exits in hosting networks, shared by the VPN's customers."""
    rng = c.rng
    email = c.email()
    who = browser(rng)
    ip = rng.choice(c.pool("vpn", VPN, 30))
    t = c.log_uniform(2 * MINUTE, 3 * DAY)
    c.person_click(email, scenario, case, t=t, ip=ip, who=who)


def corporate_nat(c: Corpus, scenario: str, case: str) -> None:
    """Colleagues of one company get the same mailing and click from the office's one address within
    minutes of each other: one IP, several recipients, one domain."""
    rng = c.rng
    mailing = rng.choice(c.mailings)
    domain = c.company()
    ip = c.office(domain)
    minted = mailing.start + rng.randrange(mailing.span)
    t0 = c.log_uniform(5 * MINUTE, 1 * DAY)
    for _ in range(rng.randint(3, 6)):
        email = c.email(domain=domain, mailing=mailing, minted=minted + rng.randint(0, 2 * MINUTE))
        who = browser(rng, mobile=False)
        c.person_click(email, scenario, case, t=t0 + rng.randint(0, 20 * MINUTE), ip=ip, who=who)


def private_relay(c: Corpus, scenario: str, case: str) -> None:
    """Safari with iCloud Private Relay: Apple's egress addresses, which rotate between requests."""
    rng = c.rng
    email = c.email()
    who = browser(rng, family="safari")
    t = c.log_uniform(2 * MINUTE, 3 * DAY)
    url = c.person_click(email, scenario, case, t=t, ip=c.address(PRIVATE_RELAY), who=who)
    if rng.random() < 0.4:
        c.person_click(email, scenario, case, t=t + rng.randint(5 * SECOND, 20 * MINUTE),
                       ip=c.address(PRIVATE_RELAY), who=who, url=url if rng.random() < 0.5 else None)


def forwarded(c: Corpus, scenario: str, case: str) -> None:
    """The recipient forwards the email; someone else, at another company or at home, clicks days later
    (after the recipient's own click, now and then)."""
    rng = c.rng
    email = c.email()
    t = c.log_uniform(5 * MINUTE, 1 * DAY)
    if rng.random() < 0.6:
        who = browser(rng)
        c.person_click(email, scenario, case, t=t, ip=c.office(email.domain) if not who.mobile else c.home(True),
                       who=who)
    other = browser(rng)
    c.person_click(email, scenario, case, t=t + c.log_uniform(1 * DAY, 10 * DAY),
                   ip=c.office(c.company()) if not other.mobile else c.home(True), who=other)


def ordinary(c: Corpus, scenario: str, case: str) -> None:
    """Ordinary people: one link (now and then a second, minutes later) minutes to days after the email,
    from the office, home or phone, with a current browser or a mail app's in-app browser."""
    rng = c.rng
    email = c.email()
    who = browser(rng)
    ip = c.office(email.domain) if not who.mobile and rng.random() < 0.6 else c.home(who.mobile)
    t = c.log_uniform(2 * MINUTE, 5 * DAY)
    c.person_click(email, scenario, case, t=t, ip=ip, who=who)
    if rng.random() < 0.15:
        c.person_click(email, scenario, case, t=t + rng.randint(1 * MINUTE, 30 * MINUTE), ip=ip, who=who)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("defender", ("scanner",), "Defender: HEAD+GET on every link, 8-120 s after minting, EOP addresses",
             defender),
    Scenario("defender_azure", ("scanner",), "the same from Microsoft addresses outside EOP's published ranges",
             defender_azure),
    Scenario("safelinks_click", ("human", "scanner"),
             "a person's click and Microsoft's check of it within 50 ms (half also scanned at delivery)",
             safelinks_click),
    Scenario("proofpoint", ("scanner", "human"),
             "a burst from Proofpoint's networks; a person's click hours later, half through isolation", proofpoint),
    Scenario("mimecast", ("scanner", "human"),
             "a burst from Mimecast's networks; a person's click hours later, half through isolation", mimecast),
    Scenario("barracuda", ("scanner", "human"), "`Barracuda Sentinel (EE)` on every link; a person's click later",
             barracuda),
    Scenario("cloud_burst", ("scanner", "human"),
             "every link incl. unsubscribe from 3-6 cloud addresses within seconds, browser user agent", cloud_burst),
    Scenario("click_follower", ("human", "scanner"),
             "a person's click, then the same link +8-20 s from another network and OS, same browser",
             click_follower),
    Scenario("link_preview", ("scanner", "human"), "Slackbot, Teams/Skype, MicrosoftPreview; colleagues' clicks",
             link_preview),
    Scenario("http_library", ("bot",), "python-requests, curl, Go-http-client, Wget, okhttp, ... from clouds",
             http_library),
    Scenario("headless_browser", ("bot",), "HeadlessChrome, PhantomJS from clouds", headless_browser),
    Scenario("fast_mobile", ("human",), "one tap on a phone ~15 s after delivery", fast_mobile),
    Scenario("two_links", ("human",), "two links clicked 4-8 s apart", two_links),
    Scenario("phone_then_laptop", ("human",), "phone, then laptop within 2 minutes: two networks", phone_then_laptop),
    Scenario("zscaler", ("human",), "behind Zscaler: shared egress across companies and days", zscaler),
    Scenario("vpn", ("human",), "a commercial VPN's shared exits in hosting networks", vpn),
    Scenario("corporate_nat", ("human",), "3-6 colleagues of one company, one office address, minutes apart",
             corporate_nat),
    Scenario("private_relay", ("human",), "Safari with iCloud Private Relay, rotating egress", private_relay),
    Scenario("forwarded", ("human",), "forwarded: another person, another network, days later", forwarded),
    Scenario("ordinary", ("human",), "one link, minutes to days later, current browsers and in-app browsers",
             ordinary, weight=2.0),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


def generate(seed: int = 1, per_scenario: int = 300, *, scenarios: Iterable[str] | None = None,
             networks: Networks | None = None) -> list[Record]:
    """The corpus: `per_scenario` traces of each scenario (times its weight), every hit labelled, in time
    order (`at`; hits of the same millisecond in the order they were made)."""
    chosen = [BY_NAME[name] for name in scenarios] if scenarios is not None else list(SCENARIOS)
    corpus = Corpus(random.Random(seed), networks or Networks.load())
    for scenario in chosen:
        for number in range(round(per_scenario * scenario.weight)):
            scenario.make(corpus, scenario.name, f"{scenario.name}-{number}")
    order = sorted(range(len(corpus.records)), key=lambda i: (corpus.records[i]["at"], i))
    return [corpus.records[i] for i in order]


def write(path: Path, records: Iterable[Record]) -> None:
    """One record a line, as `linkhub classify trace` reads them (the labels ride along: it ignores them)."""
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, separators=(",", ":")) + "\n")


def hits(records: Iterable[Record]) -> list[Hit]:
    """The records as the classifier's hits (label, scenario and case left out, as `trace` leaves them)."""
    return [msgspec.convert(record, Hit) for record in records]
