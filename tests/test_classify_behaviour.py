"""The behaviour across hits: bursts, HEAD then GET, several networks, one address for many companies,
confirmation by a later click, and settling; on the hard cases a person must stay a person.

Plain calls of `settle()` / `Window.observe()` with real user agents and addresses from the shipped
lists (Microsoft's Exchange Online Protection 40.107.0.0/16).
"""

from __future__ import annotations

import pytest

from linkhub.core.classify import behaviour
from linkhub.core.classify.behaviour import Window, settle
from linkhub.core.classify.hits import Hit
from linkhub.core.classify.networks import Networks

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/154.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/18.1 Mobile/15E148 Safari/604.1")
DEFENDER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/97.0.4692.99 Safari/537.36")
PERSON = {"user-agent": CHROME, "accept-language": "de-DE,de;q=0.9,en;q=0.8"}
LINKS = ["https://shop.example/spring", "https://shop.example/blog", "https://shop.example/app",
         "https://shop.example/unsubscribe?u=1"]
NETWORKS = Networks.load()


def hit(t: int, url: str, *, ip: str = "81.2.69.142", headers: dict[str, str] | None = None, method: str = "GET",
        recipient: str = "p1", email: str | None = None, links: int | None = 4, at: int | None = None) -> Hit:
    return Hit(t=t, method=method, ip=ip, headers=dict(PERSON if headers is None else headers), recipient=recipient,
               mailing="m1", url=url, links_in_email=links, email=email, at=at)


def judged(hits: list[Hit]) -> list[tuple[str, set[str]]]:
    return [(v.verdict, {r.code for r in v.reasons}) for v in settle(hits, networks=NETWORKS)]


def people(verdicts: list[tuple[str, set[str]]]) -> bool:
    return all(verdict in ("human", "unknown") for verdict, _codes in verdicts)


# --- scanners --------------------------------------------------------------------------------------

def test_defender_head_then_get_on_every_link_is_a_scanner_throughout() -> None:
    hits = []
    t = 31_000
    for url in LINKS:
        hits += [hit(t, url, ip="40.107.7.20", headers={"user-agent": DEFENDER}, method="HEAD"),
                 hit(t + 4, url, ip="40.107.7.20", headers={"user-agent": DEFENDER})]
        t += 9
    result = judged(hits)
    assert [verdict for verdict, _ in result] == ["scanner"] * len(hits)
    gets = [codes for (_, codes), h in zip(result, hits, strict=True) if h.method == "GET"]
    assert all({"burst", "head_then_get", "every_link", "unsubscribe_with_content"} <= codes for codes in gets)


def test_a_scanner_in_a_current_browser_from_an_unlisted_network_is_caught_by_its_burst() -> None:
    # The first hit alone looks like a person; the links right after it settle it as a scan.
    hits = [hit(40_000 + 150 * i, url, ip="198.51.100.23") for i, url in enumerate(LINKS)]
    window: Window[int] = Window(NETWORKS)
    first, changes = window.observe(0, hits[0], at_ms=hits[0].t or 0)
    assert first.verdict in ("human", "unknown") and changes == []
    changed = []
    for index, h in enumerate(hits[1:], start=1):
        verdict, changes = window.observe(index, h, at_ms=h.t or 0)
        changed += [(c.ref, c.old.verdict, c.new.verdict) for c in changes]
        assert verdict.verdict == "scanner" if index >= 2 else True
    assert (0, first.verdict, "scanner") in changed
    assert {verdict.verdict for _, verdict in window.held()} == {"scanner"}


def test_a_multi_address_cloud_burst_with_the_unsubscribe_link_is_a_scanner() -> None:
    ips = ["198.51.100.7", "192.0.2.77", "203.0.113.200", "198.18.4.4"]
    hits = [hit(60_000 + 40 * i, url, ip=ips[i]) for i, url in enumerate(LINKS)]
    result = judged(hits)
    assert [verdict for verdict, _ in result] == ["scanner"] * 4
    assert all({"multi_network", "burst", "unsubscribe_with_content"} <= codes for _, codes in result)


def test_one_address_hitting_many_companies_recipients_adds_up() -> None:
    # Three companies' recipients, one link each, from one address within a minute: shared_ip.
    hits = [hit(20_000, LINKS[0], ip="198.51.100.99", recipient=f"r{i}", email=f"a@company{i}.example",
                at=1_000_000 + 20_000 * i) for i in range(3)]
    result = judged(hits)
    assert all("shared_ip" in codes for _, codes in result)


def test_one_company_s_people_behind_its_nat_are_not_a_shared_address() -> None:
    hits = [hit(3_600_000, LINKS[0], ip="198.51.100.99", recipient=f"r{i}", email=f"person{i}@corp.example",
                at=5_000_000 + 30_000 * i) for i in range(6)]
    result = judged(hits)
    assert people(result)
    assert all("shared_ip" not in codes for _, codes in result)


# --- people: the hard negatives -----------------------------------------------------------------------

def test_a_person_clicking_two_links_six_seconds_apart_stays_a_person() -> None:
    result = judged([hit(95_000, LINKS[0]), hit(101_000, LINKS[1])])
    assert people(result)


def test_phone_then_laptop_within_two_minutes_stays_a_person() -> None:
    result = judged([hit(15_000, LINKS[0], ip="172.58.1.9", headers={"user-agent": IPHONE, "accept-language": "en"}),
                     hit(105_000, LINKS[0], ip="81.2.69.142")])
    assert people(result)
    assert all("multi_network" not in codes for _, codes in result)


def test_safe_links_at_click_time_leaves_the_person_a_person_and_microsoft_a_scanner() -> None:
    person = hit(3_000_000, LINKS[1], ip="81.2.69.142")
    microsoft = hit(3_000_030, LINKS[1], ip="40.107.3.4", headers={"user-agent": DEFENDER})
    (person_verdict, person_codes), (microsoft_verdict, _) = judged([person, microsoft])
    assert person_verdict in ("human", "unknown") and "scanner_companion" in person_codes
    assert microsoft_verdict == "scanner"


def test_a_click_long_after_a_scan_from_another_network_is_confirmed_and_the_scan_stays() -> None:
    scan = [hit(31_000 + 5 * i, url, ip="40.107.7.20", headers={"user-agent": DEFENDER}) for i, url in enumerate(LINKS)]
    later = hit(4 * 3_600_000, LINKS[0])
    result = judged([*scan, later])
    assert [verdict for verdict, _ in result[:-1]] == ["scanner"] * 4
    assert result[-1][0] == "human" and "confirmed_later" in result[-1][1]


def test_browser_isolation_a_later_click_from_the_vendors_network_is_not_called_a_scanner() -> None:
    # A person behind Microsoft's network hours after the scan: the network counts half, no confirmation.
    scan = [hit(31_000 + 5 * i, url, ip="40.107.7.20", headers={"user-agent": DEFENDER}) for i, url in enumerate(LINKS)]
    later = hit(5 * 3_600_000, LINKS[2], ip="40.107.7.21")
    verdict, codes = judged([*scan, later])[-1]
    assert verdict == "unknown" and "confirmed_later" not in codes


# --- settling and memory -----------------------------------------------------------------------------

def test_hits_after_the_settle_window_change_nothing_earlier() -> None:
    window: Window[int] = Window(NETWORKS, settle_ms=1_000)
    first = hit(40_000, LINKS[0], ip="198.51.100.23")
    window.observe(0, first, at_ms=0)
    # Within the burst's 10 s but past the 1 s window: the new hit sees the first, the first stays.
    changes = []
    for index, url in enumerate(LINKS[1:], start=1):
        changes += window.observe(index, hit(40_000 + 2_000 * index, url, ip="198.51.100.23"), at_ms=2_000 * index)[1]
    assert all(change.ref != 0 for change in changes)


def test_a_change_is_reported_once_per_verdict_change() -> None:
    window: Window[int] = Window(NETWORKS)
    reported: list[int] = []
    for index, url in enumerate(LINKS * 3):
        reported += [c.ref for c in window.observe(index, hit(40_000 + 10 * index, url, ip="198.51.100.23"),
                                                   at_ms=10 * index)[1]]
    assert len(reported) == len(set(reported))


def test_the_window_is_bounded_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(behaviour, "MAX_HELD", 50)
    window: Window[int] = Window(NETWORKS)
    for index in range(500):
        window.observe(index, hit(60_000, LINKS[0], recipient=f"r{index}", ip=f"10.0.{index // 200}.{index % 200}"),
                       at_ms=index)
    assert len(window) == 50
    # Old hits leave entirely, past the longest window.
    window.observe(999, hit(60_000, LINKS[0], recipient="late"), at_ms=10_000_000)
    assert len(window) == 1


def test_accounts_are_kept_apart() -> None:
    window: Window[int] = Window(NETWORKS)
    for index, url in enumerate(LINKS):
        verdict, _ = window.observe(index, hit(40_000, url, ip="198.51.100.23"), at_ms=index * 100,
                                    scope=f"account-{index}")
        assert "burst" not in {r.code for r in verdict.reasons}
