"""`linkhub filter test`: try a link filter on URLs before saving it on an account."""

from __future__ import annotations

import click

from linkhub.cli.common import emit, json_option
from linkhub.core import linkfilter, outreach


@click.group("filter")
def filter_group() -> None:
    """Work with link filters."""


@filter_group.command("test")
@click.argument("pattern")
@click.argument("urls", nargs=-1, required=True)
@json_option
def filter_test(pattern: str, urls: tuple[str, ...], as_json: bool) -> None:
    """Show which URLs PATTERN matches, as linkhub will apply it to original links.

    Each URL is reported as `match`, `no match`, `timed out` (the match took longer than
    linkhub allows one link: the link would be left out) or `not replaced` (not an absolute
    http(s) URL: linkhub leaves it alone whatever the filter).
    """
    try:
        linkfilter.validate(pattern)
    except linkfilter.InvalidFilter as exc:
        raise click.BadParameter(str(exc), param_hint="PATTERN") from None
    results = [{"url": url, "result": _filter_result(pattern, url)} for url in urls]
    width = max(len(_FILTER_LABELS[r["result"]]) for r in results)
    emit(as_json, results, "\n".join(f"{_FILTER_LABELS[r['result']]:<{width}}  {r['url']}" for r in results))


_FILTER_LABELS = {"match": "match", "no match": "no match", "timed out": "timed out",
                  "not replaced": "not replaced (not an absolute http(s) URL)"}


def _filter_result(pattern: str, url: str) -> str:
    if not outreach.replaceable(url):
        return "not replaced"
    return {True: "match", False: "no match", None: "timed out"}[linkfilter.matches(pattern, url)]
