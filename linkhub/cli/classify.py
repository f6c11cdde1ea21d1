"""`linkhub classify`: the click classifier's data, as shipped and as the operator adds to it."""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import date as date_type
from pathlib import Path
from typing import Any

import click

from linkhub.cli.common import db_option, emit, json_option, moment, open_db, setting_options, table
from linkhub.core.classify import data
from linkhub.core.classify.networks import Networks, parse_operator_file
from linkhub.services import classify
from linkhub.util.wording import plural


@click.group("classify")
def classify_group() -> None:
    """The click classifier: its shipped data, and stored clicks judged again."""


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
        "clicks": result.clicks, "changed": result.changed,
        "transitions": [{"from": old, "to": new, "clicks": count} for (old, new), count in transitions],
    }
    rows = [[old or "(none)", new, f"{count:,}"] for (old, new), count in transitions]
    verb = "would change" if dry_run else "changed"
    text = [table(["from", "to", "clicks"], rows, right=frozenset({2}))] if rows else []
    text.append(f"{plural(result.clicks, 'click')} judged again; {verb}: {result.changed:,}")
    emit(as_json, document, "\n".join(text))
