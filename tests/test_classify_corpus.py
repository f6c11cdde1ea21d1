"""The labelled corpus (tests/corpus.py) and the classifier's goals on it.

The goals of the issue are people ≥ 99 % right, scanners ≥ 90 %, bots ≥ 95 %; this test holds the
classifier to a few points below them on one fixed seed (bench/classify.py reports the real figures
and every scenario's). The corpus itself is checked too: deterministic, its hits are trace lines, its
addresses are where the scenario says, and its people look like people (current browsers with their
headers), so a passing goal means something.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from linkhub.core.classify import agents
from linkhub.core.classify.behaviour import settle
from linkhub.core.classify.hits import decode
from linkhub.core.classify.networks import Networks
from linkhub.core.classify.verdict import Verdict

import corpus
from conftest import linkhub

SEED = 20261201
PER_SCENARIO = 150
THRESHOLDS = {"human": 0.97, "scanner": 0.87, "bot": 0.92}
RIGHT = {"human": ("human", "unknown"), "scanner": ("scanner", "bot"), "bot": ("scanner", "bot")}


@pytest.fixture(scope="module")
def networks() -> Networks:
    return Networks.load()


@pytest.fixture(scope="module")
def records(networks: Networks) -> list[corpus.Record]:
    return corpus.generate(SEED, PER_SCENARIO, networks=networks)


@pytest.fixture(scope="module")
def verdicts(records: list[corpus.Record], networks: Networks) -> list[Verdict]:
    return settle(corpus.hits(records), networks=networks)


def lists_of(networks: Networks, ip: str) -> set[str]:
    return {match.label for match in networks.match(ip)}


# -- the corpus -----------------------------------------------------------------------------------------

def test_the_same_seed_gives_the_same_corpus_and_another_seed_another() -> None:
    first = corpus.generate(3, 4)
    assert first == corpus.generate(3, 4)
    assert first != corpus.generate(4, 4)


def test_every_scenario_gives_its_number_of_traces_and_its_labels(records: list[corpus.Record]) -> None:
    cases: dict[str, set[str]] = collections.defaultdict(set)
    labels: dict[str, set[str]] = collections.defaultdict(set)
    for record in records:
        cases[record["scenario"]].add(record["case"])
        labels[record["scenario"]].add(record["label"])
    for scenario in corpus.SCENARIOS:
        assert len(cases[scenario.name]) == round(PER_SCENARIO * scenario.weight), scenario.name
        assert labels[scenario.name] == set(scenario.labels), scenario.name


def test_records_are_trace_lines_in_time_order(records: list[corpus.Record]) -> None:
    ats = [record["at"] for record in records]
    assert ats == sorted(ats)
    minted: dict[str, int] = {}
    for record in records[:2000]:
        hit = decode(json.dumps(record))  # the labels ride along; the decoder ignores them
        assert hit.t is not None and hit.t >= 0 and hit.at == record["at"]
        assert hit.headers == record["headers"] and hit.url == record["url"]
        # `at` and `t` tell the same story: one recipient's links were minted once.
        assert minted.setdefault(record["recipient"], record["at"] - record["t"]) == record["at"] - record["t"]


def test_emails_have_several_links_often_an_unsubscribe_one_in_many_domains(records: list[corpus.Record]) -> None:
    urls: dict[str, set[str]] = collections.defaultdict(set)
    links: dict[str, int] = {}
    for record in records:
        urls[record["recipient"]].add(record["url"])
        links[record["recipient"]] = record["links_in_email"]
        assert record["email"].endswith(".example") and "@" in record["email"]
    assert all(2 <= n <= 8 for n in links.values())
    assert all(len(urls[r]) <= links[r] for r in urls)
    with_unsubscribe = sum(any("/unsubscribe?" in url for url in found) for found in urls.values())
    assert with_unsubscribe > len(urls) * 0.2
    assert len({record["email"].split("@")[1] for record in records}) > 1000


def test_scanners_come_from_the_networks_their_scenarios_name(records: list[corpus.Record],
                                                              networks: Networks) -> None:
    expected = {"defender": "microsoft_eop", "proofpoint": "proofpoint", "mimecast": "mimecast"}
    for record in records:
        found = lists_of(networks, record["ip"])
        if record["label"] == "scanner" and record["scenario"] in expected:
            assert expected[record["scenario"]] in found, record
        if record["scenario"] in ("defender_azure", "cloud_burst", "http_library", "headless_browser"):
            assert not found, record
    barracuda = [r for r in records if r["scenario"] == "barracuda" and r["label"] == "scanner"]
    assert sum("barracuda" in lists_of(networks, r["ip"]) for r in barracuda) > len(barracuda) * 0.6


def test_a_cloud_burst_uses_several_addresses_and_hits_the_unsubscribe_link(records: list[corpus.Record]) -> None:
    bursts: dict[str, list[corpus.Record]] = collections.defaultdict(list)
    for record in records:
        if record["scenario"] == "cloud_burst" and record["label"] == "scanner":
            bursts[record["case"]].append(record)
    for burst in bursts.values():
        assert len({r["ip"] for r in burst}) >= min(3, len(burst))
        assert any("/unsubscribe?" in r["url"] for r in burst)
        assert max(r["at"] for r in burst) - min(r["at"] for r in burst) < 30_000


def test_defender_sends_head_then_get_on_every_link_within_milliseconds(records: list[corpus.Record]) -> None:
    scans: dict[str, list[corpus.Record]] = collections.defaultdict(list)
    for record in records:
        if record["scenario"] == "defender":
            scans[record["case"]].append(record)
    for scan in scans.values():
        assert len(scan) == 2 * scan[0]["links_in_email"]
        assert [r["method"] for r in sorted(scan, key=lambda r: (r["url"], r["at"]))][:2] == ["HEAD", "GET"]
        assert 8_000 <= min(r["t"] for r in scan) <= 120_000
        assert max(r["at"] for r in scan) - min(r["at"] for r in scan) < 500 * len(scan)


def test_safe_links_checks_come_within_50_ms_of_the_person_s_click(records: list[corpus.Record],
                                                                    networks: Networks) -> None:
    by_case: dict[str, list[corpus.Record]] = collections.defaultdict(list)
    for record in records:
        if record["scenario"] == "safelinks_click":
            by_case[record["case"]].append(record)
    for hits in by_case.values():
        for person in (r for r in hits if r["label"] == "human"):
            assert not lists_of(networks, person["ip"])
            assert any(r["label"] == "scanner" and r["url"] == person["url"] and abs(r["at"] - person["at"]) <= 50
                       and "microsoft_eop" in lists_of(networks, r["ip"]) for r in hits)


def test_people_look_like_people(records: list[corpus.Record], networks: Networks) -> None:
    """Every person's hit is a GET with a browser's headers and a user agent with nothing odd about it
    (current at the reference date); only browser isolation puts a person in a vendor's network."""
    people = [r for r in records if r["label"] == "human"]
    assert len(people) > 3000
    for record in people:
        headers = record["headers"]
        assert record["method"] == "GET"
        assert headers["accept-language"] and headers["accept"].startswith("text/html")
        reading = agents.read(headers["user-agent"])
        assert not [r for r in reading.reasons if r.weight < 0], (headers["user-agent"], reading.reasons)
        found = lists_of(networks, record["ip"])
        assert not found or (record["scenario"] in ("proofpoint", "mimecast") and found <= {"proofpoint", "mimecast"})
    assert sum(agents.read(r["headers"]["user-agent"]).current for r in people) > len(people) * 0.8


def test_shared_egress_carries_several_companies(records: list[corpus.Record]) -> None:
    domains: dict[str, set[str]] = collections.defaultdict(set)
    for record in records:
        if record["scenario"] in ("zscaler", "vpn"):
            domains[record["ip"]].add(record["email"].split("@")[1])
    assert max(len(found) for found in domains.values()) >= 3


# -- the goals -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("label", corpus.LABELS)
def test_the_classifier_meets_its_goals_on_the_corpus(label: str, records: list[corpus.Record],
                                                      verdicts: list[Verdict]) -> None:
    rows: dict[str, collections.Counter[bool]] = collections.defaultdict(collections.Counter)
    for record, verdict in zip(records, verdicts, strict=True):
        if record["label"] == label:
            rows[record["scenario"]][verdict.verdict in RIGHT[label]] += 1
    right = sum(row[True] for row in rows.values())
    total = sum(row.total() for row in rows.values())
    by_scenario = ", ".join(f"{name} {row[True] / row.total():.1%}" for name, row in rows.items())
    assert right / total >= THRESHOLDS[label], (
        f"{label}: {right / total:.1%} right, below {THRESHOLDS[label]:.0%} ({by_scenario}); "
        "see python bench/classify.py for the reasons")


# -- `linkhub classify trace` on a corpus file ------------------------------------------------------------

def test_trace_on_a_corpus_file_writes_one_line_per_hit_in_order(tmp_path: Path, networks: Networks) -> None:
    records = corpus.generate(5, 8, scenarios=["defender", "safelinks_click", "cloud_burst", "ordinary"],
                              networks=networks)
    path = tmp_path / "corpus.jsonl"
    corpus.write(path, records)
    result = linkhub("classify", "trace", str(path))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["line"] for line in lines] == list(range(1, len(records) + 1))
    expected = settle(corpus.hits(records), networks=networks)
    assert [(line["verdict"], line["score"]) for line in lines] == [(v.verdict, v.score) for v in expected]
    assert [[r["code"] for r in line["reasons"]] for line in lines] == [[r.code for r in v.reasons] for v in expected]
    by_stdin = linkhub("classify", "trace", "-", input=path.read_text())
    assert by_stdin.returncode == 0 and by_stdin.stdout == result.stdout
