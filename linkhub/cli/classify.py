"""`linkhub classify`: the click classifier's data, as shipped and as the operator adds to it."""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import date as date_type
from pathlib import Path
from typing import Any

import click

from linkhub.cli.common import emit, json_option, table
from linkhub.core.classify import data
from linkhub.core.classify.networks import parse_operator_file


@click.group("classify")
def classify_group() -> None:
    """The click classifier: its shipped data."""


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
