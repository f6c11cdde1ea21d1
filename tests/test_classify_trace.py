"""`linkhub classify trace`: the classifier on a file of hits (or stdin), one verdict a line, in order.

Through the command, as users run it on their own logs: real user agents, real published addresses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from linkhub.core.classify.behaviour import settle
from linkhub.core.classify.hits import decode
from linkhub.core.classify.networks import Networks
from linkhub.core.classify.verdict import CLASSIFIER_VERSION

from conftest import linkhub

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/154.0.0.0 Safari/537.36")
DEFENDER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/97.0.4692.99 Safari/537.36")


def line(**fields: Any) -> str:
    hit: dict[str, Any] = {"t": 45_000, "method": "GET", "ip": "73.21.4.7", "headers": {}, "recipient": "401",
                           "mailing": "7100001", "url": "https://www.example.com/pricing", "links_in_email": 3}
    hit.update(fields)
    return json.dumps(hit)


def person(**fields: Any) -> str:
    return line(t=2 * 3_600_000, headers={"user-agent": CHROME, "accept-language": "de-DE,de;q=0.9"}, **fields)


def scan(**fields: Any) -> str:
    return line(method="HEAD", ip="40.107.22.9", headers={"user-agent": DEFENDER}, **fields)


def run(*args: str, input: str | None = None) -> tuple[int, list[dict[str, Any]], str]:
    result = linkhub("classify", "trace", *args, input=input)
    out = [json.loads(text) for text in result.stdout.splitlines()]
    return result.returncode, out, result.stderr


def test_a_file_gives_one_verdict_a_line_in_the_input_s_order(tmp_path: Path) -> None:
    path = tmp_path / "hits.jsonl"
    path.write_text("\n".join([scan(), person(), line(headers={"user-agent": "python-requests/2.32.3"})]) + "\n")
    code, out, stderr = run(str(path))
    assert code == 0, stderr
    assert [o["verdict"] for o in out] == ["scanner", "human", "bot"]
    assert [o["line"] for o in out] == [1, 2, 3]
    assert {o["classifier"] for o in out} == {CLASSIFIER_VERSION}
    codes = [r["code"] for r in out[0]["reasons"]]
    assert "head_request" in codes and "scanner_network" in codes
    network = next(r for r in out[0]["reasons"] if r["code"] == "scanner_network")
    assert network["evidence"]["network"] == "microsoft_eop" and isinstance(network["weight"], int)
    assert out[0]["score"] <= -60 and out[1]["score"] >= 25  # the documented thresholds of scanner and human


def test_stdin_blank_lines_unknown_fields_and_header_case(tmp_path: Path) -> None:
    text = "\n".join(["", person(label="human", scenario="mine"), "   ",
                      line(t=3 * 3_600_000, headers={"User-Agent": CHROME, "Accept-Language": "en-US"}), ""])
    code, out, stderr = run("-", input=text)
    assert code == 0, stderr
    # Blank lines give no output; `line` says which input line each verdict is for.
    assert [o["line"] for o in out] == [2, 4]
    # Header names are read case-insensitively: the second hit has its Accept-Language.
    assert [o["verdict"] for o in out] == ["human", "human"]
    assert not any(r["code"] == "no_accept_language" for r in out[1]["reasons"])


def test_an_empty_input_prints_nothing() -> None:
    assert run("-", input="") == (0, [], "")


def test_the_verdicts_do_not_depend_on_the_order_of_the_lines() -> None:
    """Logs merged from several servers need not be sorted: the hits are settled in time order (`at`)."""
    base = 1_790_000_000_000
    hits = [scan(at=base + 20_000 + i, t=20_000 + i, url=f"https://www.example.com/{i}") for i in range(3)]
    hits.append(person(at=base + 7_200_000))
    code, forward, _ = run("-", input="\n".join(hits))
    code_back, backward, _ = run("-", input="\n".join(reversed(hits)))
    assert code == code_back == 0
    assert [o["verdict"] for o in forward] == [o["verdict"] for o in reversed(backward)]
    assert [o["line"] for o in backward] == [1, 2, 3, 4]


@pytest.mark.parametrize(("text", "says"), [
    ('{"t": "soon"}', "stdin:2: Expected `int | null`, got `str` - at `$.t`"),
    ('[1, 2]', "stdin:2: Expected `object`, got `array`"),
    ('{"t": 5', "stdin:2: not valid JSON (Input data was truncated)"),
    ('{"headers": {"user-agent": 7}}', "stdin:2: Expected `str`, got `int`"),
    ('{"event": "view"}', "stdin:2: Invalid enum value 'view' - at `$.event`"),
])
def test_a_bad_line_is_one_error_line_naming_it(text: str, says: str) -> None:
    result = linkhub("classify", "trace", "-", input=person() + "\n" + text + "\n" + person() + "\n")
    assert result.returncode == 1
    assert result.stdout == ""  # nothing written: the whole file is read first
    assert result.stderr.startswith("Error: ") and says in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_bad_line_of_a_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "hits.jsonl"
    path.write_bytes(person().encode() + b"\n" + b'{"url": "\xff"}\n')
    result = linkhub("classify", "trace", str(path))
    assert result.returncode == 1 and f"{path}:2: not valid JSON (Invalid UTF-8" in result.stderr


def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "hits.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + person().encode() + b"\r\n")
    code, out, stderr = run(str(path))
    assert code == 0 and [o["verdict"] for o in out] == ["human"], stderr


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = linkhub("classify", "trace", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2 and "No such file" in result.stderr and "Traceback" not in result.stderr


def test_the_operator_s_networks_count(tmp_path: Path) -> None:
    networks = tmp_path / "ours.txt"
    networks.write_text("198.51.100.0/24 cisco_egress high\n")
    hit = line(t=40_000, ip="198.51.100.77", headers={"user-agent": CHROME, "accept-language": "en-US"})
    code, plain, _ = run("-", input=hit)
    code_ours, ours, _ = run("--scanner-networks", str(networks), "-", input=hit)
    assert code == code_ours == 0
    assert not any(r["code"] == "scanner_network" for r in plain[0]["reasons"])
    reason = next(r for r in ours[0]["reasons"] if r["code"] == "scanner_network")
    assert reason["evidence"]["network"] == "cisco_egress" and reason["weight"] < 0
    by_env = linkhub("classify", "trace", "-", input=hit, env={"LINKHUB_SCANNER_NETWORKS": str(networks)})
    assert json.loads(by_env.stdout)["reasons"] == ours[0]["reasons"]


def test_a_bad_operator_file_is_one_error_line(tmp_path: Path) -> None:
    networks = tmp_path / "ours.txt"
    networks.write_text("198.51.100.1/24 cisco_egress high\n")
    result = linkhub("classify", "trace", "--scanner-networks", str(networks), "-", input=person())
    assert result.returncode == 1 and f"{networks}:1:" in result.stderr
    assert "did you mean 198.51.100.0/24" in result.stderr
    assert result.stdout == ""


def test_the_settle_window_is_the_server_s_setting_within_its_bounds() -> None:
    assert run("--classify-settle-s", "0", "-", input=person())[0] == 0  # the flag serve and rescore take
    by_env = linkhub("classify", "trace", "-", input=person(), env={"LINKHUB_CLASSIFY_SETTLE_S": "30"})
    assert by_env.returncode == 0
    too_long = linkhub("classify", "trace", "--classify-settle-s", "4000", "-", input=person())
    assert too_long.returncode == 2 and "--classify-settle-s" in too_long.stderr
    help_text = linkhub("classify", "trace", "--help").stdout
    assert "LINKHUB_CLASSIFY_SETTLE_S" in help_text and "default: 120" in " ".join(help_text.split())


def test_the_documented_example_is_what_trace_answers() -> None:
    """docs/classification.md's trace example: its five hits (the shortened lines filled in as the text
    says) give the verdicts, scores and reason codes the page shows."""
    text = (Path(__file__).parent.parent / "docs" / "classification.md").read_text()
    section = text.split("## Trying it on your own logs", 1)[1]
    shown = [json.loads(line) for line in section.split("| jq -c", 1)[1].split("```", 1)[0].splitlines()[1:]
             if line.startswith("{")]
    full = [json.loads(line) for line in section.split("```\n", 2)[1].splitlines() if "…" not in line]
    defender, person = full[0], full[-1]
    hits = [defender,
            {**defender, "t": 21420, "at": 1795600821420, "method": "GET"},
            {**defender, "t": 21650, "at": 1795600821650, "method": "GET", "url": "https://www.example.com/demo"},
            {**defender, "t": 21700, "at": 1795600821700, "method": "GET", "url": "https://example.com/unsubscribe?r=4711"},
            person]
    got = settle([decode(json.dumps(h)) for h in hits], networks=Networks.load())
    assert [{"line": i, "verdict": v.verdict, "score": v.score, "codes": [r.code for r in v.reasons]}
            for i, v in enumerate(got, start=1)] == shown
