"""`linkhub classify`: the click classifier's data, as shipped and as the operator adds to it, stored clicks
judged again (`rescore`), and the classifier run offline on a file of hits (`trace`)."""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import date as date_type
from pathlib import Path
from typing import IO, Any

import click
import msgspec

from linkhub.cli.common import db_option, emit, json_option, moment, open_db, setting_options, table
from linkhub.core.classify import data
from linkhub.core.classify.behaviour import settle
from linkhub.core.classify.hits import Hit, decode
from linkhub.core.classify.networks import Networks, parse_operator_file
from linkhub.services import classify
from linkhub.util.wording import plural


@click.group("classify")
def classify_group() -> None:
    """The click classifier: its shipped data, stored clicks judged again, and verdicts on a file of hits."""


@classify_group.command("data")
@click.option("--scanner-networks", "scanner_networks", type=click.Path(dir_okay=False, path_type=Path),
              envvar="LINKHUB_SCANNER_NETWORKS", default=None, metavar="FILE",
              help="Also check and list an operator file of `CIDR label certainty` lines "
                   "[env LINKHUB_SCANNER_NETWORKS].")
@json_option
def data_command(scanner_networks: Path | None, as_json: bool) -> None:
    """The shipped network lists: source, retrieval date, age in days, entries, licence, sha256.

    A list older than 180 days is marked stale: its vendor may have renumbered since.
    """
    today = datetime.now(UTC).date()
    shipped = data.manifest()
    operator: list[dict[str, Any]] = []
    if scanner_networks is not None:
        try:
            lists = parse_operator_file(scanner_networks, taken={info.label for info in shipped.lists})
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        operator = [{"label": item.label, "kind": item.kind, "certainty": item.certainty, "scope": item.scope,
                     "entries": len(item.cidrs), "file": str(scanner_networks)} for item in lists]
    document = {
        "today": today.isoformat(),
        "stale_after_days": data.STALE_AFTER_DAYS,
        "lists": [{**info.as_dict(today), "stale": info.age_days(today) > data.STALE_AFTER_DAYS}
                  for info in shipped.lists],
        "not_shipped": list(shipped.not_shipped),
        "operator": operator,
    }
    emit(as_json, document, _text(shipped, operator, today))


def _text(shipped: data.Manifest, operator: list[dict[str, Any]], today: date_type) -> str:
    rows = []
    for info in shipped.lists:
        age = info.age_days(today)
        rows.append([info.label, info.kind, info.certainty, info.scope, str(info.entries),
                     info.retrieved.isoformat(), f"{age}{' (stale)' if age > data.STALE_AFTER_DAYS else ''}",
                     info.sources[0]])
    lines = [table(["list", "kind", "certainty", "scope", "entries", "retrieved", "age (days)", "source"], rows,
                   right=frozenset({4}))]
    if operator:
        lines += ["", table(["operator list", "kind", "certainty", "scope", "entries", "file"],
                            [[o["label"], o["kind"], o["certainty"], o["scope"], str(o["entries"]), o["file"]]
                             for o in operator], right=frozenset({4}))]
    if shipped.not_shipped:
        lines += ["", "not shipped:"] + [f"  {item['vendor']}: {item['why']}" for item in shipped.not_shipped]
    lines += ["", "licences, sha256 and notes: linkhub classify data --json"]
    return "\n".join(lines)


@classify_group.command("rescore")
@click.option("--since", required=True, help="Clicks recorded at or after this RFC 3339 time (or date, UTC).")
@click.option("--until", default=None, help="Only clicks recorded before this RFC 3339 time (or date, UTC).")
@click.option("--account", "account", default=None, metavar="ID", help="Only this account's clicks.")
@click.option("--dry-run", is_flag=True, help="Print the transitions; change nothing.")
@setting_options("scanner_networks", "classify_settle_s")
@json_option
@db_option
def rescore(since: str, until: str | None, account: str | None, dry_run: bool, scanner_networks: Path | None,
            classify_settle_s: int, as_json: bool, db: Path) -> None:
    """Judge stored clicks again with the current rules and data, together and in order, and store the
    new verdicts (each change recorded in verdict_changes). Prints how many clicks go from each old
    verdict to each new one."""
    since_at, until_at = moment(since, "--since"), moment(until, "--until")
    try:
        networks = Networks.load(scanner_networks)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    with open_db(db, readonly=dry_run) as conn:
        result = classify.rescore(conn, since=since_at, until=until_at, account=account, networks=networks,
                                  settle_s=classify_settle_s, dry_run=dry_run)
    transitions = sorted(result.transitions.items(), key=lambda item: (-item[1], str(item[0])))
    document = {
        "since": since_at, "until": until_at, "account": account, "dry_run": dry_run,
        "clicks": result.clicks, "changed": result.changed, "kept_without_user_agent": result.kept,
        "transitions": [{"from": old, "to": new, "clicks": count} for (old, new), count in transitions],
    }
    rows = [[old or "(none)", new, f"{count:,}"] for (old, new), count in transitions]
    verb = "would change" if dry_run else "changed"
    text = [table(["from", "to", "clicks"], rows, right=frozenset({2}))] if rows else []
    text.append(f"{plural(result.clicks, 'click')} judged again; {verb}: {result.changed:,}")
    if result.kept:
        text.append(f"kept the verdict given at capture: {plural(result.kept, 'click')} stored without a user agent")
    emit(as_json, document, "\n".join(text))


_UTF8_BOM = b"\xef\xbb\xbf"


@classify_group.command("trace")
@click.argument("source", metavar="FILE", type=click.File("rb"))
@setting_options("scanner_networks", "classify_settle_s")
def trace_command(source: IO[bytes], scanner_networks: Path | None, classify_settle_s: int) -> None:
    """The verdict on every hit of FILE (`-`: stdin), one JSON object a line in, one a line out.

    Each input line is a hit: `t` (ms since the recipient's links were minted), `method`, `ip`,
    `headers` (lower-case names), `recipient`, `mailing`, `url`, `links_in_email`, and optionally
    `event` (`click` or `open`), `at` (the hit's own time in ms) and `email`; other fields are ignored.
    The whole file is read before anything is written, so every verdict is settled: a hit early in a
    scanner's burst is judged with the rest of the burst. Output lines follow the input's order (blank
    lines skipped), each with `line`, `verdict`, `score`, `reasons` and `classifier`.
    """
    try:
        networks = Networks.load(scanner_networks)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    numbers, hits = _read_hits(source)
    verdicts = settle(hits, networks=networks, settle_ms=classify_settle_s * 1000)
    encode = msgspec.json.Encoder().encode
    click.echo(b"".join(encode({"line": number, "verdict": v.verdict, "score": v.score,
                                "reasons": [r.document() for r in v.reasons], "classifier": v.version}) + b"\n"
                        for number, v in zip(numbers, verdicts, strict=True)), nl=False)


def _read_hits(source: IO[bytes]) -> tuple[list[int], list[Hit]]:
    """The hits of `source` and their line numbers; a bad line stops it with one sentence naming the line."""
    name = getattr(source, "name", "-")
    name = "stdin" if name in ("-", "<stdin>") or not isinstance(name, str) else name
    numbers: list[int] = []
    hits: list[Hit] = []
    for number, raw in enumerate(source, start=1):
        line = raw.removeprefix(_UTF8_BOM) if number == 1 else raw
        if not line.strip():
            continue
        try:
            hits.append(decode(line))
        except msgspec.ValidationError as exc:
            raise click.ClickException(f"{name}:{number}: {exc}") from None
        except msgspec.DecodeError as exc:
            raise click.ClickException(f"{name}:{number}: not valid JSON ({exc})") from None
        numbers.append(number)
    return numbers, hits
