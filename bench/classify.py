"""How well the click classifier tells people from scanners and bots, on the labelled corpus.

    .venv/bin/python bench/classify.py [--seed 1] [--per-scenario 300] [--repeats 3]

Generates the corpus (tests/corpus.py: seeded, hundreds of traces per scenario, every hit labelled
`human`, `scanner` or `bot`), settles it as `linkhub classify trace` does (one `settle()` over the
whole corpus in time order, the shipped network lists, the server's default settle window), and prints
Markdown tables, also appended to bench/results/classify.md:

- per class: hits, how many were right and the rate (the issue's rule: a person's hit is right when its
  verdict is `human` or `unknown`, a scanner's or bot's when it is `scanner` or `bot`), against the
  goals; and precision and recall, where `human` or `unknown` predicts a person, `scanner` a scanner,
  `bot` a bot (so a scanner called `bot` is right, but counts against scanner recall and bot precision);
  a last row takes scanner and bot together as "machine", the question a CRM asks;
- per scenario and label: traces, hits, right, rate, and how the verdicts split;
- for every row with wrong verdicts: the reason codes the wrong hits carried, most frequent first
  (what to tune on);
- time: µs per hit for `settle()` (median of the repeats), and the corpus's size and generation time.

The corpus is built from published descriptions of scanners and people, not captured traffic: the
figures say how the classifier does on those descriptions, not how often each case occurs in real mail.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from linkhub.core import useragent
from linkhub.core.classify import agents
from linkhub.core.classify.behaviour import DEFAULT_SETTLE_MS, settle
from linkhub.core.classify.networks import Networks
from linkhub.core.classify.verdict import CLASSIFIER_VERSION, Verdict

import report
from fleet import ROOT

sys.path.append(str(ROOT / "tests"))  # appended, as fleet does: the corpus lives with the tests
import corpus  # tests/corpus.py

# The goals, per class: the share of hits that must be right.
GOALS = {"human": 0.99, "scanner": 0.90, "bot": 0.95}
RIGHT = {"human": ("human", "unknown"), "scanner": ("scanner", "bot"), "bot": ("scanner", "bot")}
PREDICTS = {"human": "human", "unknown": "human", "scanner": "scanner", "bot": "bot"}
VERDICTS = ("human", "unknown", "scanner", "bot")


@dataclass
class Row:
    hits: int = 0
    right: int = 0
    cases: set[str] | None = None

    @property
    def rate(self) -> float:
        return self.right / self.hits if self.hits else 0.0


def pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def machine() -> list[str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [f"- CPU: {cpu}, {os.cpu_count()} cores ({platform.system()} {platform.release()}); "
            f"Python {platform.python_version()}",
            f"- {report.revision()}; classifier {CLASSIFIER_VERSION}; crawler-user-agents "
            f"{importlib.metadata.version('crawler-user-agents')}"]


def class_table(records: Sequence[corpus.Record], verdicts: Sequence[Verdict]) -> list[str]:
    labelled = collections.Counter(r["label"] for r in records)
    predicted = collections.Counter(PREDICTS[v.verdict] for v in verdicts)
    both = collections.Counter((r["label"], PREDICTS[v.verdict]) for r, v in zip(records, verdicts, strict=True))
    right = collections.Counter(r["label"] for r, v in zip(records, verdicts, strict=True)
                                if v.verdict in RIGHT[r["label"]])
    lines = ["| class | hits | right | rate | goal | precision | recall |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label in corpus.LABELS:
        precision = both[label, label] / predicted[label] if predicted[label] else 0.0
        recall = both[label, label] / labelled[label] if labelled[label] else 0.0
        lines.append(f"| {label} | {labelled[label]} | {right[label]} | {pct(right[label] / labelled[label])} | "
                     f"≥ {GOALS[label] * 100:.0f} % | {pct(precision)} | {pct(recall)} |")
    machines = labelled["scanner"] + labelled["bot"]
    called = predicted["scanner"] + predicted["bot"]
    caught = right["scanner"] + right["bot"]
    lines.append(f"| machine (scanner + bot) | {machines} | {caught} | {pct(caught / machines)} | | "
                 f"{pct(caught / called if called else 0.0)} | {pct(caught / machines)} |")
    return lines


def scenario_tables(records: Sequence[corpus.Record], verdicts: Sequence[Verdict], *, why: int) -> list[str]:
    rows: dict[tuple[str, str], Row] = {}
    split: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(collections.Counter)
    wrong: dict[tuple[str, str], collections.Counter[tuple[str, ...]]] = collections.defaultdict(collections.Counter)
    scores: dict[tuple[str, tuple[str, ...]], list[int]] = collections.defaultdict(list)
    for record, verdict in zip(records, verdicts, strict=True):
        key = (record["scenario"], record["label"])
        row = rows.setdefault(key, Row(cases=set()))
        row.hits += 1
        assert row.cases is not None
        row.cases.add(record["case"])
        split[key][verdict.verdict] += 1
        if verdict.verdict in RIGHT[record["label"]]:
            row.right += 1
        else:
            codes = tuple(reason.code for reason in verdict.reasons) or ("(none)",)
            wrong[key][codes] += 1
            scores[(key[0] + "/" + key[1], codes)].append(verdict.score)
    order = {scenario.name: i for i, scenario in enumerate(corpus.SCENARIOS)}
    keys = sorted(rows, key=lambda k: (order[k[0]], corpus.LABELS.index(k[1])))
    lines = ["| scenario | label | traces | hits | right | rate | " + " | ".join(VERDICTS) + " |",
             "|---|---|---:|---:|---:|---:|" + "---:|" * len(VERDICTS)]
    for key in keys:
        row = rows[key]
        assert row.cases is not None
        lines.append(f"| {key[0]} | {key[1]} | {len(row.cases)} | {row.hits} | {row.right} | {pct(row.rate)} | "
                     + " | ".join(str(split[key][v]) for v in VERDICTS) + " |")
    failing = [key for key in keys if wrong[key]]
    if failing and why:
        lines += ["", "Wrong verdicts, by the reasons they carried (most frequent first; score range):", "",
                  "| scenario | label | wrong | reasons | hits | score |", "|---|---|---:|---|---:|---:|"]
        for key in failing:
            total = sum(wrong[key].values())
            for number, (codes, count) in enumerate(wrong[key].most_common(why)):
                span = scores[(key[0] + "/" + key[1], codes)]
                low, high = min(span), max(span)
                lines.append(f"| {key[0] if not number else ''} | {key[1] if not number else ''} | "
                             f"{total if not number else ''} | {', '.join(codes)} | {count} | "
                             f"{low if low == high else f'{low}..{high}'} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-scenario", type=int, default=300, help="traces per scenario (default 300)")
    parser.add_argument("--repeats", type=int, default=3, help="settle() runs timed (default 3)")
    parser.add_argument("--why", type=int, default=3, help="reason sets shown per failing row (default 3; 0: none)")
    args = parser.parse_args()

    # What the server does at start: the crawler patterns and ua-parser's rules compiled, the lists read.
    useragent.load_rules()
    agents.load()
    networks = Networks.load()
    started = time.perf_counter()
    records = corpus.generate(args.seed, args.per_scenario, networks=networks)
    generated_s = time.perf_counter() - started
    hits = corpus.hits(records)
    timings = []
    verdicts: list[Verdict] = []
    for _ in range(max(1, args.repeats)):
        agents.read.cache_clear()  # each run reads its user agents afresh, as a new trace run would
        started = time.perf_counter()
        verdicts = settle(hits, networks=networks, settle_ms=DEFAULT_SETTLE_MS)
        timings.append(time.perf_counter() - started)
    per_hit_us = statistics.median(timings) / len(hits) * 1e6
    labels = collections.Counter(r["label"] for r in records)
    cases = len({r["case"] for r in records})

    out = [f"## Click classification on the labelled corpus — {report.now_utc()}", "",
           f"`python bench/classify.py --seed {args.seed} --per-scenario {args.per_scenario}`", "",
           f"- corpus: {len(corpus.SCENARIOS)} scenarios, {cases} traces, {len(hits)} hits "
           f"({', '.join(f'{labels[label]} {label}' for label in corpus.LABELS)}), generated in {generated_s:.2f} s",
           f"- settle(): {per_hit_us:.1f} µs per hit (median of {len(timings)} runs: "
           f"{', '.join(f'{t:.2f}' for t in timings)} s), settle window {DEFAULT_SETTLE_MS // 1000} s",
           *machine(), "", *class_table(records, verdicts), "", *scenario_tables(records, verdicts, why=args.why), ""]
    text = "\n".join(out)
    print(text)
    report.write(report.RESULTS / "classify.md", text + "\n", append=True)


if __name__ == "__main__":
    main()
