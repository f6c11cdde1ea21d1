"""The classifier's shipped network lists: real published addresses match their list and their
neighbours do not, the operator's own file (good and bad lines), the manifest against the files, and
`linkhub classify data`."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from linkhub.core.classify import data
from linkhub.core.classify.networks import NetworkList, Networks, parse_operator_file

from conftest import linkhub


@pytest.fixture(scope="module")
def networks() -> Networks:
    return Networks.load()


def labels(networks: Networks, ip: str | None) -> list[str]:
    return sorted(match.label for match in networks.match(ip))


# -- the shipped lists: published addresses and their neighbours --------------------------------------

@pytest.mark.parametrize(("ip", "label"), [
    ("40.107.1.1", "microsoft_eop"),          # 40.107.0.0/16, Exchange Online endpoint set 10
    ("40.92.0.0", "microsoft_eop"),           # first address of 40.92.0.0/15
    ("40.93.255.255", "microsoft_eop"),       # last address of 40.92.0.0/15
    ("52.103.12.34", "microsoft_eop"),        # inside 52.100.0.0/14
    ("104.47.127.255", "microsoft_eop"),      # last of 104.47.0.0/17
    ("2a01:111:f400:7e8b::1", "microsoft_eop"),
    ("2a01:111:f403:c10c::5", "microsoft_eop"),
    ("66.249.87.1", "google_special_crawlers"),    # 66.249.87.0/27 in special-crawlers.json
    ("209.85.238.130", "google_special_crawlers"),  # 209.85.238.128/27
    ("2001:4860:4801:2008::1", "google_special_crawlers"),
    ("209.222.80.10", "barracuda"),
    ("64.235.150.1", "barracuda"),
    ("67.231.150.5", "proofpoint"),
    ("91.220.42.100", "mimecast"),
])
def test_a_published_address_matches_its_list(networks: Networks, ip: str, label: str) -> None:
    assert labels(networks, ip) == [label]


@pytest.mark.parametrize("ip", [
    "40.91.255.255",    # just below 40.92.0.0/15
    "40.94.0.0",        # just above it
    "40.106.255.255", "40.108.0.0",   # either side of 40.107.0.0/16
    "52.99.255.255", "52.104.0.0",    # either side of 52.100.0.0/14
    "104.47.128.0",     # just past 104.47.0.0/17
    "2a01:111:f401::1", "2a01:111:f402::1",  # between the two EOP /48s (f402 is SharePoint's)
    "66.249.88.1",      # between the file's 66.249.87.0/24 and 66.249.89.0/24 blocks
    "66.249.66.1",      # Googlebot (common-crawlers.json): a different file, not shipped
    "209.222.88.0",     # just past Barracuda's /21
    "8.8.8.8", "1.1.1.1", "192.168.1.10", "::1", "2001:db8::1",
])
def test_an_address_just_outside_matches_nothing(networks: Networks, ip: str) -> None:
    assert networks.match(ip) == []


@pytest.mark.parametrize("ip", [None, "", "not an ip", "40.107.1.1.1", "40.107.1.256", "40.107.1.1/32",
                                "[2a01:111:f400::1]", "40.107.1.1:443"])
def test_invalid_or_absent_ips_match_nothing(networks: Networks, ip: str | None) -> None:
    assert networks.match(ip) == []


def test_an_ipv4_mapped_ipv6_client_is_its_ipv4_address(networks: Networks) -> None:
    assert labels(networks, "::ffff:40.107.1.1") == ["microsoft_eop"]


def test_a_match_says_which_list_what_it_is_how_sure_and_the_cidr(networks: Networks) -> None:
    (match,) = networks.match("40.107.1.1")
    assert (match.label, match.kind, match.certainty, match.scope, match.cidr, match.origin) == (
        "microsoft_eop", "scanner", "high", "clicks", "40.107.0.0/16", "shipped")
    (google,) = networks.match("66.249.87.1")
    assert (google.kind, google.cidr) == ("crawler", "66.249.87.0/27")


def test_overlapping_lists_both_answer_and_the_edges_are_exact() -> None:
    nets = Networks([
        NetworkList("wide", "scanner", "low", "both", ("10.0.0.0/8",)),
        NetworkList("narrow", "scanner", "high", "both", ("10.1.0.0/16", "10.1.0.0/24")),
    ])
    assert labels(nets, "10.0.255.255") == ["wide"]
    assert labels(nets, "10.1.0.0") == ["narrow", "narrow", "wide"]  # both CIDRs of `narrow` contain it
    assert labels(nets, "10.1.1.0") == ["narrow", "wide"]
    assert labels(nets, "10.2.0.0") == ["wide"]
    assert labels(nets, "10.255.255.255") == ["wide"]
    assert labels(nets, "11.0.0.0") == []
    assert labels(nets, "9.255.255.255") == []


def test_a_look_up_takes_microseconds(networks: Networks) -> None:
    ips = ["40.107.1.1", "8.8.8.8", "2a01:111:f400::1", "2001:db8::1", "66.249.87.1"] * 2000
    started = time.perf_counter()
    for ip in ips:
        networks.match(ip)
    per_lookup = (time.perf_counter() - started) / len(ips)
    assert per_lookup < 50e-6, f"{per_lookup * 1e6:.1f} µs a look-up"  # ~2-3 µs here; generous for slow CI


# -- the operator's file -------------------------------------------------------------------------------

def test_the_operator_file_adds_its_own_lists(tmp_path: Path) -> None:
    path = tmp_path / "gateways.txt"
    path.write_text("# our Cisco gateway's egress, from the security team\n"
                    "\n"
                    "198.51.100.0/24   cisco_egress   high\n"
                    "198.51.100.77 cisco_egress high   # a single address is its /32\n"
                    "2001:db8:42::/48 isolation_proxy low\n"
                    "40.107.0.0/16 our_m365_tenant medium\n")
    nets = Networks.load(path)
    assert labels(nets, "198.51.100.5") == ["cisco_egress"]
    assert labels(nets, "198.51.100.77") == ["cisco_egress", "cisco_egress"]
    assert labels(nets, "198.51.101.1") == []
    assert labels(nets, "2001:db8:42:1::9") == ["isolation_proxy"]
    assert labels(nets, "40.107.1.1") == ["microsoft_eop", "our_m365_tenant"]  # the shipped list still answers
    (match,) = nets.match("198.51.100.5")
    assert (match.kind, match.certainty, match.scope, match.cidr, match.origin) == (
        "scanner", "high", "both", "198.51.100.0/24", str(path))


@pytest.mark.parametrize(("line", "says"), [
    ("198.51.100.0/24 cisco_egress", "expected `CIDR label certainty`, found 2 field(s)"),
    ("198.51.100.0/24 cisco egress high", "found 4 field(s)"),
    ("198.51.100.1/24 cisco_egress high", "did you mean 198.51.100.0/24?"),
    ("198.51.100.0/33 cisco_egress high", "'198.51.100.0/33' is not a CIDR"),
    ("gateway.example cisco_egress high", "'gateway.example' is not a CIDR"),
    ("198.51.100.0/24 Cisco-Egress high", "label 'Cisco-Egress'"),
    ("198.51.100.0/24 cisco_egress certain", "certainty 'certain' is not one of high, medium, low"),
    ("198.51.100.0/24 microsoft_eop high", "label 'microsoft_eop' is a shipped list's"),
])
def test_a_bad_operator_line_names_the_file_the_line_and_what_is_wrong(tmp_path: Path, line: str, says: str) -> None:
    path = tmp_path / "gateways.txt"
    path.write_text(f"# ours\n203.0.113.0/24 fine high\n{line}\n")
    with pytest.raises(ValueError, match=r"gateways\.txt:3: ") as raised:
        Networks.load(path)
    assert says in str(raised.value)
    assert "\n" not in str(raised.value)


def test_one_label_keeps_one_certainty(tmp_path: Path) -> None:
    path = tmp_path / "gateways.txt"
    path.write_text("203.0.113.0/24 gw high\n198.51.100.0/24 gw low\n")
    with pytest.raises(ValueError, match=r"gateways.txt:2: label 'gw' has certainty low here but high on line 1"):
        parse_operator_file(path)


def test_a_missing_operator_file_is_a_value_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nothing.txt: cannot read the scanner networks file: No such file"):
        Networks.load(tmp_path / "nothing.txt")


# -- the manifest --------------------------------------------------------------------------------------

MANIFEST = data.manifest()


@pytest.mark.parametrize("info", MANIFEST.lists, ids=[info.label for info in MANIFEST.lists])
def test_the_manifest_counts_and_hashes_each_file_as_it_is(info: data.ListInfo) -> None:
    entries, digest = data.describe(data.list_text(info))
    assert (entries, digest) == (info.entries, info.sha256), (
        f"{info.file} was edited without its manifest entry: set \"entries\": {entries}, \"sha256\": \"{digest}\"")
    assert data.problems(info) == []


@pytest.mark.parametrize("info", MANIFEST.lists, ids=[info.label for info in MANIFEST.lists])
def test_every_list_names_its_source_date_and_terms(info: data.ListInfo) -> None:
    assert info.sources and all(url.startswith("https://") for url in info.sources)
    assert info.licence and info.description
    assert info.sources[0] in data.list_text(info).decode(), f"{info.file}: its comments must name its source"
    assert len(data.read_list(info)) == info.entries


def test_a_file_edited_without_its_manifest_is_caught() -> None:
    info = MANIFEST.lists[0]
    edited = data.list_text(info) + b"203.0.113.0/24\n"
    entries, digest = data.describe(edited)
    assert entries == info.entries + 1 and digest != info.sha256


def test_labels_are_unique_and_every_manifest_file_ships() -> None:
    assert len({info.label for info in MANIFEST.lists}) == len(MANIFEST.lists)
    shipped = {path.name for path in (Path(data.__file__).parent / "data").iterdir() if path.suffix == ".txt"}
    assert shipped == {info.file for info in MANIFEST.lists}


def test_the_issue_s_vendors_are_each_shipped_or_explained() -> None:
    labels_ = {info.label for info in MANIFEST.lists}
    assert {"microsoft_eop", "google_special_crawlers", "barracuda", "proofpoint", "mimecast"} <= labels_
    assert any("Cisco" in item["vendor"] for item in MANIFEST.not_shipped)


def test_stale_lists_are_those_older_than_180_days() -> None:
    newest = max(info.retrieved for info in MANIFEST.lists)
    oldest = min(info.retrieved for info in MANIFEST.lists)
    assert data.stale_lists(oldest) == []
    assert data.stale_lists(oldest + timedelta(days=180)) == []
    assert [i.label for i in data.stale_lists(oldest + timedelta(days=181))] == [
        i.label for i in MANIFEST.lists if i.retrieved == oldest]
    assert len(data.stale_lists(newest + timedelta(days=181))) == len(MANIFEST.lists)
    assert data.stale_lists(date(2026, 1, 1)) == []  # before any retrieval: nothing is old


# -- `linkhub classify data` ---------------------------------------------------------------------------

def test_classify_data_prints_an_aligned_table_with_each_list_s_age() -> None:
    result = linkhub("classify", "data")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[0]
    assert header.split() == ["list", "kind", "certainty", "scope", "entries", "retrieved", "age", "(days)", "source"]
    today = datetime.now(UTC).date()
    for info, line in zip(MANIFEST.lists, lines[1:], strict=False):
        assert line.startswith(info.label)
        assert line.index(info.retrieved.isoformat()) == header.index("retrieved")  # aligned
        age = (today - info.retrieved).days
        assert line[header.index("age"):].split()[0] == str(age)
        assert info.sources[0] in line
    assert "Cisco Secure Email" in result.stdout


def test_classify_data_json_carries_the_whole_manifest() -> None:
    result = linkhub("classify", "data", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["stale_after_days"] == 180
    by_label = {item["label"]: item for item in doc["lists"]}
    eop = by_label["microsoft_eop"]
    assert eop["entries"] == 6 and eop["sha256"] == MANIFEST.lists[0].sha256
    assert eop["age_days"] == (date.fromisoformat(doc["today"]) - date.fromisoformat(eop["retrieved"])).days
    assert eop["stale"] is (eop["age_days"] > 180)
    assert {"sources", "licence", "notes", "kind", "certainty", "scope"} <= set(eop)
    assert doc["operator"] == []


def test_classify_data_checks_and_lists_the_operator_file(tmp_path: Path) -> None:
    path = tmp_path / "gateways.txt"
    path.write_text("198.51.100.0/24 cisco_egress high\n203.0.113.0/24 cisco_egress high\n")
    result = linkhub("classify", "data", "--scanner-networks", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["operator"] == [{"label": "cisco_egress", "kind": "scanner", "certainty": "high",
                                                     "scope": "both", "entries": 2, "file": str(path)}]
    by_env = linkhub("classify", "data", env={"LINKHUB_SCANNER_NETWORKS": str(path)})
    assert by_env.returncode == 0 and "cisco_egress" in by_env.stdout


def test_classify_data_turns_a_bad_operator_line_into_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "gateways.txt"
    path.write_text("198.51.100.0/24 cisco_egress\n")
    result = linkhub("classify", "data", "--scanner-networks", str(path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {path}:1: expected `CIDR label certainty`, found 2 field(s): '198.51.100.0/24 cisco_egress'"]


# -- the server's start-up warning ---------------------------------------------------------------------

def test_the_server_warns_at_start_when_shipped_data_is_older_than_180_days(caplog: pytest.LogCaptureFixture) -> None:
    from linkhub.web import server

    oldest = min(MANIFEST.lists, key=lambda info: info.retrieved)
    with caplog.at_level("WARNING", logger="linkhub.server"):
        server._warn_if_classifier_data_is_old(oldest.retrieved + timedelta(days=180))
    assert caplog.records == []
    with caplog.at_level("WARNING", logger="linkhub.server"):
        server._warn_if_classifier_data_is_old(oldest.retrieved + timedelta(days=181))
    (record,) = caplog.records
    assert f"{oldest.label} (181 days)" in record.getMessage()
    assert "--scanner-networks" in record.getMessage()
