"""Per-hit click classification: each signal fires on the input it is for, and never turns a person
into a machine on its own.

User agents are real strings as the clients send them (browser majors set to ones current at the
classifier's reference date, which is what a person's self-updating browser sends then).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkhub.core.classify import agents
from linkhub.core.classify.hits import Hit, decode
from linkhub.core.classify.signals import classify
from linkhub.core.classify.verdict import CLASSIFIER_VERSION, CODES, MACHINE_SCORE, Reason, decide

AL = {"accept-language": "en-US,en;q=0.9"}

# People's browsers, desktop and mobile.
CHROME_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/154.0.0.0 Safari/537.36")
CHROME_ANDROID = ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/154.0.0.0 Mobile Safari/537.36")
CHROME_IOS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "CriOS/154.0.7590.41 Mobile/15E148 Safari/604.1")
FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:157.0) Gecko/20100101 Firefox/157.0"
FIREFOX_ANDROID = "Mozilla/5.0 (Android 15; Mobile; rv:157.0) Gecko/157.0 Firefox/157.0"
SAFARI_MAC = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/26.1 Safari/605.1.15")
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Version/26.1 Mobile/15E148 Safari/604.1")
EDGE_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/154.0.0.0 Safari/537.36 Edg/154.0.0.0")
EDGE_ANDROID = ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/154.0.0.0 Mobile Safari/537.36 EdgA/154.0.0.0")
# An Android WebView (the in-app browser of Outlook for Android, among others) keeps the full build.
ANDROID_WEBVIEW = ("Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240205.004; wv) AppleWebKit/537.36 "
                   "(KHTML, like Gecko) Version/4.0 Chrome/154.0.7590.102 Mobile Safari/537.36")
# An iOS app's in-app browser (WKWebView): no Safari token, no version.
IOS_WEBVIEW = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Mobile/15E148")

# Mail clients and proxies: crawler lists match some of them.
OUTLOOK_WINDOWS = ("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; .NET4.0E; "
                   ".NET CLR 2.0.50727; .NET CLR 3.0.30729; .NET CLR 3.5.30729; Microsoft Outlook 16.0.5095; "
                   "Microsoft Outlook 16.0.5095; ms-office; MSOffice 16)")
OUTLOOK_IOS = "Outlook-iOS/709.2189947.prod.iphone (3.24.0)"
OUTLOOK_ANDROID = "Outlook-Android/2.0"
OUTLOOK_MAC = "MacOutlook/16.80.23121017 (Intelx64 Mac OS X 14.2.1 (Build 23C71))"
APPLE_MAIL = "Mail/3826.300.87.2.22 CFNetwork/1568.300.101 Darwin/24.2.0"
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"

# Machines.
DEFENDER_97 = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/97.0.4692.99 Safari/537.36")
DEFENDER_72 = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/72.0.3626.109 Safari/537.36")
CURL = "curl/8.5.0"
PYTHON_REQUESTS = "python-requests/2.32.3"
GO_HTTP = "Go-http-client/1.1"
HEADLESS_CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "HeadlessChrome/120.0.6099.109 Safari/537.36")
SLACKBOT = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
TELEGRAMBOT = "TelegramBot (like TwitterBot)"
FACEBOOK = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
SKYPE = "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com"
BINGPREVIEW = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/79.0.3945.74 Safari/537.36 Edg/79.0.309.43 BingPreview/1.0b")
BARRACUDA = "Barracuda Sentinel (EE)"
MSIE8_WIN7 = "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)"
MSIE8_XP = "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0)"
CHROME_XP = ("Mozilla/5.0 (Windows NT 5.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/49.0.2623.112 "
             "Safari/537.36")
EDGE_18 = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/70.0.3538.102 Safari/537.36 Edge/18.19045")
IE11 = "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko"
SAFARI_ON_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                     "Version/17.0 Safari/605.1.15")
CHROME_FULL_BUILD_REDUCED = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                             "Chrome/150.0.7700.52 Safari/537.36")

PEOPLE = [CHROME_WINDOWS, CHROME_ANDROID, CHROME_IOS, FIREFOX_WINDOWS, FIREFOX_ANDROID, SAFARI_MAC, SAFARI_IPHONE,
          EDGE_WINDOWS, EDGE_ANDROID]
MAIL = [OUTLOOK_WINDOWS, OUTLOOK_IOS, OUTLOOK_ANDROID, OUTLOOK_MAC, APPLE_MAIL, GMAIL_PROXY, YAHOO_PROXY]


def hit(ua: str | None, *, t: int | None = None, method: str = "GET", headers: dict[str, str] | None = None,
        ip: str | None = None, event: str = "click") -> Hit:
    all_headers = dict(AL if headers is None else headers)
    if ua is not None:
        all_headers["user-agent"] = ua
    return msgspec.convert({"t": t, "method": method, "ip": ip, "headers": all_headers, "event": event}, Hit)


def codes(verdict_reasons: list[Reason]) -> set[str]:
    return {r.code for r in verdict_reasons}


MACHINE_CODES = {code for code, info in CODES.items() if info.kind in ("scanner", "bot", "machine")}


# --- people ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("ua", PEOPLE)
def test_a_current_browser_is_a_person_or_unknown_and_named_nothing_machine_like(ua: str) -> None:
    verdict = classify(hit(ua))
    assert verdict.verdict == "unknown"
    assert codes(verdict.reasons) == {"current_browser"}
    # The same click an hour after the email was sent: a person.
    late = classify(hit(ua, t=2 * 3_600_000))
    assert late.verdict == "human", late
    assert codes(late.reasons) == {"current_browser", "late_hit"}


@pytest.mark.parametrize("ua", [ANDROID_WEBVIEW, IOS_WEBVIEW])
def test_in_app_browsers_raise_nothing(ua: str) -> None:
    # A WebView keeps Chrome's full build: not the anomaly a four-part build is on Chrome itself.
    verdict = classify(hit(ua))
    assert verdict.verdict == "unknown" and not codes(verdict.reasons) & MACHINE_CODES


def test_a_fast_reader_fifteen_seconds_after_minting_stays_unknown() -> None:
    verdict = classify(hit(SAFARI_IPHONE, t=15_000))
    assert verdict.verdict == "unknown"
    assert codes(verdict.reasons) == {"current_browser", "early_hit"}
    # Even a very fast one, without Accept-Language: two weak signals, still not a machine.
    assert classify(hit(SAFARI_IPHONE, t=4_000, headers={})).verdict == "unknown"


# --- the trap: mail clients and mail proxies that crawler lists match ------------------------------

def test_the_crawler_list_does_match_mail_proxies() -> None:
    # Why the allow-list exists: run the list alone and Gmail's and Yahoo's fetches become crawlers.
    listed = agents.crawler_list()
    assert listed.matcher.extract(GMAIL_PROXY) is not None
    assert listed.matcher.extract(YAHOO_PROXY) is not None


@pytest.mark.parametrize("ua", MAIL)
@pytest.mark.parametrize("event", ["click", "open"])
def test_mail_clients_and_proxies_never_turn_a_person_into_a_bot(ua: str, event: str) -> None:
    verdict = classify(hit(ua, event=event))
    assert verdict.verdict == "unknown"
    # An image proxy's fetch of an open pixel is also marked as the proxy's (its device is not the reader's).
    proxied = {"proxied"} if event == "open" and agents.read(ua).proxy is not None else set()
    assert codes(verdict.reasons) == {"mail_client"} | proxied
    # Not even with the Windows XP and MSIE 7 tokens Gmail's proxy and Outlook carry.
    assert not codes(verdict.reasons) & {"old_windows", "msie", "outdated_browser", "crawler_user_agent",
                                         "link_preview"}


def test_a_mail_client_records_the_crawler_pattern_it_overrode() -> None:
    (reason,) = classify(hit(GMAIL_PROXY)).reasons
    assert reason.evidence["overrides"]["pattern"] == "GoogleImageProxy"


# --- named machines --------------------------------------------------------------------------------

@pytest.mark.parametrize(("ua", "verdict", "code"), [
    (CURL, "bot", "http_library"),
    (PYTHON_REQUESTS, "bot", "http_library"),
    (GO_HTTP, "bot", "http_library"),
    (HEADLESS_CHROME, "bot", "headless_browser"),
    (SLACKBOT, "scanner", "link_preview"),
    (TELEGRAMBOT, "scanner", "link_preview"),
    (FACEBOOK, "scanner", "link_preview"),
    (SKYPE, "scanner", "link_preview"),
    (BINGPREVIEW, "scanner", "link_preview"),
    (BARRACUDA, "scanner", "security_vendor"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot", "crawler_user_agent"),
])
def test_a_named_machine_is_one_even_with_browser_headers(ua: str, verdict: str, code: str) -> None:
    result = classify(hit(ua))
    assert result.verdict == verdict
    assert codes(result.reasons) == {code}
    assert result.score <= MACHINE_SCORE


def test_security_vendor_evidence_says_who_listed_the_token() -> None:
    (reason,) = classify(hit(BARRACUDA)).reasons
    assert reason.evidence["token"] == "Barracuda Sentinel" and "Crawler-Detect" in reason.evidence["listed_by"]


# --- Defender and the browser's looks --------------------------------------------------------------

@pytest.mark.parametrize("ua", [DEFENDER_97, DEFENDER_72])
def test_defender_head_right_after_minting_is_a_scanner(ua: str) -> None:
    verdict = classify(hit(ua, t=20_000, method="HEAD", headers={}))
    assert verdict.verdict == "scanner"
    assert codes(verdict.reasons) == {"head_request", "no_accept_language", "outdated_browser",
                                      "chrome_full_version", "early_hit"}


def test_defender_get_without_accept_language_is_a_scanner() -> None:
    verdict = classify(hit(DEFENDER_97, t=45_000, headers={}))
    assert verdict.verdict == "scanner"
    assert codes(verdict.reasons) == {"no_accept_language", "outdated_browser", "chrome_full_version", "early_hit"}


def test_an_odd_user_agent_alone_is_never_a_machine() -> None:
    # Chrome 49 on Windows XP: three anomalies of one string, capped together at 50.
    verdict = classify(hit(CHROME_XP))
    assert codes(verdict.reasons) == {"old_windows", "outdated_browser", "chrome_full_version"}
    assert sum(r.weight for r in verdict.reasons) < -50
    assert verdict.score == -50 and verdict.verdict == "unknown"
    assert classify(hit(DEFENDER_97)).verdict == "unknown"


def test_outdated_browser_evidence_states_the_reference() -> None:
    reason = next(r for r in classify(hit(DEFENDER_97)).reasons if r.code == "outdated_browser")
    assert reason.evidence == {"browser": "Chrome", "major": 97, "expected_major": agents.CHROME_MAJOR,
                               "reference_date": agents.REFERENCE_DATE.isoformat()}
    assert 150 <= agents.CHROME_MAJOR <= 160


def test_a_four_part_build_on_a_chrome_that_reduces_its_version_weighs_more() -> None:
    verdict = classify(hit(CHROME_FULL_BUILD_REDUCED))
    (reason,) = verdict.reasons
    assert reason.code == "chrome_full_version" and reason.weight == -35
    assert reason.evidence["version"] == "150.0.7700.52"
    assert verdict.verdict == "unknown"


@pytest.mark.parametrize(("ua", "expected"), [
    (MSIE8_WIN7, {"msie"}),
    (MSIE8_XP, {"msie", "old_windows"}),
    (IE11, {"trident"}),
    (EDGE_18, {"edgehtml"}),
    (SAFARI_ON_WINDOWS, {"os_mismatch"}),
])
def test_retired_and_impossible_browsers_are_named_but_alone_stay_unknown(ua: str, expected: set[str]) -> None:
    verdict = classify(hit(ua))
    assert codes(verdict.reasons) == expected
    assert verdict.verdict == "unknown"


def test_msie8_on_windows_xp_without_accept_language_is_a_scanner() -> None:
    verdict = classify(hit(MSIE8_XP, headers={}))
    assert verdict.verdict == "scanner"
    assert codes(verdict.reasons) == {"msie", "old_windows", "no_accept_language"}


def test_a_user_agent_claiming_two_systems_contradicts_itself() -> None:
    ua = ("Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/154.0.0.0 Safari/537.36 (Windows NT 10.0; Win64; x64)")
    (reason,) = classify(hit(ua)).reasons
    assert reason.code == "os_mismatch" and reason.evidence["platforms"] == ["Windows", "Android"]


# --- request signals -------------------------------------------------------------------------------

def test_empty_user_agent() -> None:
    assert codes(classify(hit("")).reasons) == {"empty_user_agent"}
    assert classify(hit("")).verdict == "unknown"
    absent = classify(hit(None, headers={}))
    assert codes(absent.reasons) == {"empty_user_agent", "no_accept_language"}
    assert absent.verdict == "scanner"


@pytest.mark.parametrize(("name", "value", "code", "verdict"), [
    ("sec-purpose", "prefetch", "prefetch", "bot"),
    ("sec-purpose", "prefetch;anonymous-client-ip", "prefetch", "bot"),
    ("purpose", "prefetch", "prefetch", "bot"),
    ("x-moz", "prefetch", "prefetch", "bot"),
    ("sec-purpose", "prefetch;prerender", "prerender", "unknown"),
])
def test_prefetch_headers(name: str, value: str, code: str, verdict: str) -> None:
    result = classify(hit(CHROME_WINDOWS, headers={**AL, name: value}))
    assert codes(result.reasons) == {code}
    assert result.verdict == verdict


def test_head_alone_is_a_machine() -> None:
    verdict = classify(hit(CHROME_WINDOWS, method="HEAD"))
    assert codes(verdict.reasons) == {"head_request"} and verdict.verdict == "scanner"


@pytest.mark.parametrize("weak", [
    hit(CHROME_WINDOWS, headers={}),                    # no Accept-Language
    hit(CHROME_WINDOWS, t=1_000),                       # one second after minting
    hit(""),                                            # an empty user agent, otherwise a browser's request
    hit(SAFARI_IPHONE, ip="198.51.100.20"),             # a cloud network
])
def test_no_single_weak_signal_makes_a_machine(weak: Hit) -> None:
    assert classify(weak, networks=FakeNetworks()).verdict == "unknown"


# --- networks (the duck type linkhub.core.classify.networks provides) ------------------------------

@dataclass(frozen=True)
class FakeMatch:
    label: str
    kind: str
    certainty: str


class FakeNetworks:
    """Microsoft's published Exchange Online Protection range 40.107.0.0/16, Google's 66.249.64.0/27
    (special crawlers' list), and a documentation range standing for a cloud provider's."""

    RANGES = (
        (ipaddress.ip_network("40.107.0.0/16"), FakeMatch("Microsoft Exchange Online Protection", "scanner", "high")),
        (ipaddress.ip_network("66.249.64.0/27"), FakeMatch("Google special crawlers", "crawler", "high")),
        (ipaddress.ip_network("198.51.100.0/24"), FakeMatch("a cloud provider", "cloud", "low")),
    )

    def match(self, ip: str) -> list[FakeMatch]:
        address = ipaddress.ip_address(ip)
        return [m for network, m in self.RANGES if address in network]


def test_an_eop_address_during_the_scan_window_is_a_scanner() -> None:
    verdict = classify(hit(CHROME_WINDOWS, ip="40.107.22.5", t=40_000), networks=FakeNetworks())
    assert verdict.verdict == "scanner"
    reason = next(r for r in verdict.reasons if r.code == "scanner_network")
    assert reason.weight == -70 and reason.evidence["network"] == "Microsoft Exchange Online Protection"


def test_a_vendor_network_hours_later_counts_half_for_browser_isolation() -> None:
    verdict = classify(hit(CHROME_WINDOWS, ip="40.107.22.5", t=3 * 3_600_000), networks=FakeNetworks())
    reason = next(r for r in verdict.reasons if r.code == "scanner_network")
    assert reason.weight == -35 and reason.evidence["after_scan_window"] is True
    assert verdict.verdict == "unknown"


def test_a_cloud_network_alone_is_weak() -> None:
    verdict = classify(hit(SAFARI_IPHONE, ip="198.51.100.20"), networks=FakeNetworks())
    assert codes(verdict.reasons) == {"current_browser", "cloud_network"}
    assert verdict.verdict == "unknown"


def test_gmail_proxy_from_google_ranges_is_a_real_open() -> None:
    verdict = classify(hit(GMAIL_PROXY, ip="66.249.64.9", event="open"), networks=FakeNetworks())
    assert verdict.verdict == "unknown"
    network = next(r for r in verdict.reasons if r.code == "crawler_network")
    assert network.weight == 0 and network.evidence["mail_client"] is True
    # The same range with a crawler's own user agent stays a crawler.
    bot = classify(hit("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                       ip="66.249.64.9"), networks=FakeNetworks())
    assert bot.verdict == "bot" and codes(bot.reasons) == {"crawler_user_agent", "crawler_network"}


def test_no_networks_or_no_ip_adds_no_network_reason() -> None:
    assert classify(hit(CHROME_WINDOWS, ip="40.107.22.5")).verdict == "unknown"
    assert codes(classify(hit(CHROME_WINDOWS), networks=FakeNetworks()).reasons) == {"current_browser"}


# --- the verdict, its shape and its input ----------------------------------------------------------

def test_the_document_shape() -> None:
    verdict = classify(hit(DEFENDER_97, t=20_000, method="HEAD", headers={}))
    document = json.loads(msgspec.json.encode(verdict.document()))
    assert set(document) == {"verdict", "score", "reasons", "version"}
    assert document["version"] == CLASSIFIER_VERSION
    assert document["reasons"][0] == {"code": "head_request", "weight": -70, "evidence": {"method": "HEAD"}}
    assert all(set(r) == {"code", "weight", "evidence"} for r in document["reasons"])
    assert verdict.machine


def test_the_strongest_named_evidence_decides_the_kind_of_machine() -> None:
    # A crawler's user agent from a vendor's network: the crawler pattern weighs more.
    assert decide([Reason("crawler_user_agent", -80), Reason("scanner_network", -70)]).verdict == "bot"
    assert decide([Reason("prefetch", -70), Reason("security_vendor", -90)]).verdict == "scanner"
    # Only unnamed machine signs: a scanner (a program in browser clothes at delivery).
    assert decide([Reason("head_request", -70), Reason("early_hit", -20)]).verdict == "scanner"
    # Mixed evidence lands in between.
    assert decide([Reason("no_accept_language", -20), Reason("late_hit", 10)]).verdict == "unknown"


def test_a_head_request_is_a_machine_even_an_hour_late() -> None:
    # Nobody's browser sends HEAD for a click: Safe Links' click-time check can come late, too.
    late = classify(hit(FIREFOX_WINDOWS, t=7_200_000, method="HEAD"))
    assert late.verdict == "scanner" and "late_hit" in codes(late.reasons)


def test_every_code_a_signal_emits_is_registered() -> None:
    samples = [hit(ua) for ua in [*PEOPLE, *MAIL, DEFENDER_97, CURL, HEADLESS_CHROME, SLACKBOT, BARRACUDA, MSIE8_XP,
                                  EDGE_18, IE11, SAFARI_ON_WINDOWS, CHROME_FULL_BUILD_REDUCED, ""]]
    samples += [hit(CHROME_WINDOWS, method="HEAD", t=1_000, headers={"sec-purpose": "prefetch"}),
                hit(CHROME_WINDOWS, ip="40.107.1.1", t=7_200_000), hit(CHROME_WINDOWS, ip="198.51.100.1")]
    for sample in samples:
        for reason in classify(sample, networks=FakeNetworks()).reasons:
            assert reason.code in CODES


def test_a_trace_line_decodes_to_a_hit_and_header_names_are_lowered() -> None:
    line = json.dumps({"t": 12_000, "method": "GET", "ip": "40.107.3.4",
                       "headers": {"User-Agent": CURL, "Accept-Language": "de"},
                       "recipient": "r1", "mailing": "m1", "url": "https://example.com/a", "links_in_email": 4})
    decoded = decode(line)
    assert decoded.headers == {"user-agent": CURL, "accept-language": "de"}
    assert decoded.event == "click" and decoded.links_in_email == 4
    assert classify(decoded).verdict == "bot"
    with pytest.raises(msgspec.ValidationError):
        decode('{"event": "view"}')


# --- the documentation ----------------------------------------------------------------------------

DOC = Path(__file__).parent.parent / "docs" / "classification.md"


def test_every_code_and_its_weights_are_documented() -> None:
    text = DOC.read_text()
    for code in CODES:
        assert f"| `{code}` |" in text, f"docs/classification.md has no table row for {code}"


def test_the_documented_example_is_what_the_classifier_answers() -> None:
    text = DOC.read_text()
    example = json.loads(text.split("```json\n", 1)[1].split("```", 1)[0])
    verdict = classify(hit(DEFENDER_97, t=20_000, method="HEAD", headers={}))
    assert json.loads(msgspec.json.encode(verdict.document())) == example


# --- hostile input: classification runs on the redirect, it must never raise -----------------------

@pytest.mark.parametrize("ua", [
    "Mozilla/5.0 Chrome/" + "9" * 5000 + ".0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; MSIE " + "1" * 5000 + ".0)",
    "Mozilla/5.0 Firefox/" + "7" * 5000,
    "Mozilla/5.0 (Windows NT 10.0) " + "AppleWebKit/537.36 " * 400,
    "\x00\udcff Chrome/1.2.3.4.5.6 Edge/",
])
def test_hostile_user_agents_are_classified_without_raising(ua: str) -> None:
    verdict = classify(hit(ua))
    assert verdict.verdict in ("human", "unknown", "scanner", "bot")


@given(ua=st.text(max_size=300), method=st.sampled_from(["GET", "HEAD", "POST", "get", ""]),
       t=st.none() | st.integers(min_value=-(2**63), max_value=2**63),
       extra=st.dictionaries(st.sampled_from(["sec-purpose", "purpose", "x-moz", "accept-language", "Accept-Language"]),
                             st.text(max_size=40), max_size=3))
@settings(max_examples=300, deadline=None)
def test_any_hit_gets_a_bounded_verdict(ua: str, method: str, t: int | None, extra: dict[str, str]) -> None:
    verdict = classify(Hit(t=t, method=method, ip="40.107.0.1", headers={"user-agent": ua, **extra}),
                       networks=FakeNetworks())
    assert verdict.verdict in ("human", "unknown", "scanner", "bot")
    assert -100 <= verdict.score <= 100
    assert all(reason.code in CODES for reason in verdict.reasons)


@pytest.mark.parametrize("ua", [
    # Chromium forks and embeddings that keep full builds and trail Chromium: people.
    "Mozilla/5.0 (Linux; Android 12; HarmonyOS; NOH-AN00; HMSCore 6.13.0.302) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/114.0.5735.196 HuaweiBrowser/15.0.4.312 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; U; Android 13; en-US; SM-A145F Build/TP1A.220624.014) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/123.0.6312.80 UCBrowser/13.4.0.1306 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 "
    "Edg/130.0.0.0 Teams/24295.606.3238.6194/49",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/29.0 "
    "Chrome/136.0.0.0 Mobile Safari/537.36",
])
def test_chromium_forks_are_not_judged_as_google_chrome(ua: str) -> None:
    verdict = classify(hit(ua, headers={}, t=10_000))
    assert not codes(verdict.reasons) & {"chrome_full_version", "outdated_browser"}
    assert verdict.verdict == "unknown"


@pytest.mark.parametrize("ua", ["Mozilla/5.0 (compatible; AcmeFreshBot/0.3; +https://acme.example/bot)",
                                "NewsHarvest-Crawler/2.1"])
def test_a_crawler_no_list_names_yet_is_still_a_bot_by_ua_parser_s_rules(ua: str) -> None:
    verdict = classify(hit(ua))
    assert verdict.verdict == "bot"
    [reason] = [r for r in verdict.reasons if r.code == "crawler_user_agent"]
    assert reason.evidence == {"device": "Spider", "rules": "ua-parser"} and reason.weight == -70
