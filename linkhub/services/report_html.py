"""One mailing's report as a single HTML file a marketer can forward: its numbers, its top links and a
chart of clicks over time (people vs scanners and bots) as inline SVG.

The file stands alone: inline CSS, inline SVG, no script, no font, image or style sheet fetched from
anywhere, and no hyperlink out (a link's URL is shown as text), so it reads the same in a mail client,
offline, or printed. Every value from the database is escaped. Nothing here reads the database:
`render` is a pure function of a `MailingReport` (services.reports.mailing_report builds one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any, Literal

Unit = Literal["hour", "day", "month"]

# A chart of hours while the clicks span at most two days, of days up to four months, then of months:
# enough bars to see the shape, few enough to tell them apart on paper.
MAX_HOURLY_SPAN = timedelta(hours=48)
MAX_DAILY_SPAN = timedelta(days=120)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Colours that stay apart in grey on a black-and-white printer: a dark solid fill for people, a light
# hatched one for machines.
PEOPLE_FILL = "#1f4e79"
MACHINE_FILL = "#d9d9d9"
MACHINE_LINE = "#555555"
# Drawn as attributes, not only by the page's CSS: the chart keeps its axes when the SVG is read alone.
GRID_LINE, AXIS_LINE = "#e3e3e3", "#333333"

# The chart's geometry, in SVG user units (the SVG scales to the page's width).
WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 16, 58
MAX_X_LABELS = 8


@dataclass(frozen=True)
class MailingReport:
    account_id: str
    account_name: str | None
    mailing_id: str
    stats: dict[str, Any]  # the mailing's `mailing_stats` row
    links: list[dict[str, Any]]  # its top `link_stats` rows, most clicked by people first
    more_links: int  # links left out of `links`
    hours: list[tuple[str, int, int]]  # (UTC hour `YYYY-MM-DDTHH`, people's clicks, machines'), hours with clicks
    generated_at: str  # RFC 3339, UTC


@dataclass(frozen=True)
class Bucket:
    start: datetime
    people: int
    machines: int


# -- values -------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _number(value: Any) -> str:
    return "–" if value is None else f"{value:,}"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _when(value: str | None) -> str:
    """A stored UTC time, as a person reads it; the exact value stays in `datetime`."""
    if value is None:
        return "–"
    moment = _parse(value)
    shown = f"{moment.day} {MONTHS[moment.month - 1]} {moment.year} {moment:%H:%M} UTC"
    return f'<time datetime="{_e(value)}">{_e(shown)}</time>'


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


# -- the chart's buckets --------------------------------------------------------------------------


def _next_month(moment: datetime) -> datetime:
    return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)


def _floor(moment: datetime, unit: Unit) -> datetime:
    if unit == "hour":
        return moment
    if unit == "day":
        return moment.replace(hour=0)
    return moment.replace(day=1, hour=0)


def _step(moment: datetime, unit: Unit) -> datetime:
    if unit == "hour":
        return moment + timedelta(hours=1)
    if unit == "day":
        return moment + timedelta(days=1)
    return _next_month(moment)


def buckets(hours: list[tuple[str, int, int]]) -> tuple[Unit, list[Bucket]]:
    """The hours with clicks as the chart's bars: hours, days or months by the span, with the empty
    ones between filled in (a gap in the chart is a time nobody clicked)."""
    parsed = [(datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC), people, machines)
              for hour, people, machines in hours]
    if not parsed:
        return "hour", []
    span = parsed[-1][0] - parsed[0][0]
    unit: Unit = "hour" if span <= MAX_HOURLY_SPAN else "day" if span <= MAX_DAILY_SPAN else "month"
    sums: dict[datetime, tuple[int, int]] = {}
    for moment, people, machines in parsed:
        key = _floor(moment, unit)
        before = sums.get(key, (0, 0))
        sums[key] = (before[0] + people, before[1] + machines)
    filled, moment, last = [], _floor(parsed[0][0], unit), _floor(parsed[-1][0], unit)
    while moment <= last:
        people, machines = sums.get(moment, (0, 0))
        filled.append(Bucket(moment, people, machines))
        moment = _step(moment, unit)
    return unit, filled


def _label(moment: datetime, unit: Unit) -> str:
    month = MONTHS[moment.month - 1]
    if unit == "hour":
        return f"{moment.day} {month} {moment:%H}:00"
    if unit == "day":
        return f"{moment.day} {month}"
    return f"{month} {moment.year}"


def _bucket_key(moment: datetime, unit: Unit) -> str:
    return moment.strftime({"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m"}[unit])


def _scale(top: int) -> tuple[int, int]:
    """The y axis's (maximum, step): a 1-2-5 step giving at most five intervals."""
    raw = max(top, 1) / 5
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), 10 * magnitude)
    step = max(1, int(step))
    return step * math.ceil(max(top, 1) / step), step


def chart(hours: list[tuple[str, int, int]]) -> str:
    """The clicks over time as an inline SVG of stacked bars (people below, scanners and bots above)."""
    unit, bars = buckets(hours)
    if not bars:
        return '<p class="empty">No clicks yet.</p>'
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top, step = _scale(max(b.people + b.machines for b in bars))
    slot = plot_w / len(bars)
    bar_w = max(slot * 0.8, 1.0)
    people_total, machine_total = sum(b.people for b in bars), sum(b.machines for b in bars)

    def y(value: int) -> float:
        return TOP + plot_h - plot_h * value / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT + 28}" role="img"'
        f' aria-labelledby="chart-title" class="chart" font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f'<title id="chart-title">Clicks per {unit} (UTC): {people_total:,} by people,'
        f' {machine_total:,} by scanners and bots</title>',
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse"'
        ' patternTransform="rotate(45)">'
        f'<rect width="6" height="6" fill="{MACHINE_FILL}"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{MACHINE_LINE}" stroke-width="2"/></pattern></defs>',
    ]
    for value in range(0, top + 1, step):  # the y axis: grid lines and their counts
        at = f"{y(value):.1f}"
        parts.append(f'<line class="grid" stroke="{GRID_LINE}" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{at}" y2="{at}"/>')
        parts.append(f'<text class="tick" fill="{AXIS_LINE}" x="{LEFT - 6}" y="{y(value) + 4:.1f}"'
                     f' text-anchor="end">{value:,}</text>')
    every = math.ceil(len(bars) / MAX_X_LABELS)
    for i, bar in enumerate(bars):
        x = LEFT + i * slot + (slot - bar_w) / 2
        when = _label(bar.start, unit)
        key = _bucket_key(bar.start, unit)
        if bar.people:
            parts.append(
                f'<rect class="people" data-series="people" data-bucket="{_e(key)}" data-clicks="{bar.people}"'
                f' x="{x:.2f}" y="{y(bar.people):.2f}" width="{bar_w:.2f}" height="{y(0) - y(bar.people):.2f}"'
                f' fill="{PEOPLE_FILL}"><title>{_e(when)}: {bar.people:,} by people</title></rect>')
        if bar.machines:
            bottom = y(bar.people)
            parts.append(
                f'<rect class="machines" data-series="machines" data-bucket="{_e(key)}"'
                f' data-clicks="{bar.machines}" x="{x:.2f}" y="{y(bar.people + bar.machines):.2f}"'
                f' width="{bar_w:.2f}" height="{bottom - y(bar.people + bar.machines):.2f}" fill="url(#hatch)"'
                f' stroke="{MACHINE_LINE}" stroke-width="0.5">'
                f'<title>{_e(when)}: {bar.machines:,} by scanners and bots</title></rect>')
        if i % every == 0:
            centre = LEFT + i * slot + slot / 2
            parts.append(f'<line class="axis" stroke="{AXIS_LINE}" x1="{centre:.2f}" x2="{centre:.2f}" y1="{y(0):.1f}"'
                         f' y2="{y(0) + 4:.1f}"/>')
            parts.append(f'<text class="tick" fill="{AXIS_LINE}" x="{centre:.2f}" y="{y(0) + 17:.1f}"'
                         f' text-anchor="middle">{_e(when)}</text>')
    parts += [
        f'<line class="axis" stroke="{AXIS_LINE}" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(0):.1f}" y2="{y(0):.1f}"/>',
        f'<line class="axis" stroke="{AXIS_LINE}" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{y(0):.1f}"/>',
        f'<text class="label" font-size="12" x="{LEFT + plot_w / 2:.1f}" y="{y(0) + 36:.1f}" text-anchor="middle">'
        f'time (UTC), one bar per {unit}</text>',
        f'<text class="label" font-size="12" transform="translate(14 {TOP + plot_h / 2:.1f}) rotate(-90)"'
        f' text-anchor="middle">clicks per {unit}</text>',
        # The legend, under the axis title.
        f'<g class="legend" font-size="12" transform="translate({LEFT} {HEIGHT + 8})">'
        f'<rect x="0" y="0" width="14" height="14" fill="{PEOPLE_FILL}"/>'
        f'<text x="20" y="12">people ({people_total:,})</text>'
        f'<rect x="200" y="0" width="14" height="14" fill="url(#hatch)" stroke="{MACHINE_LINE}" stroke-width="0.5"/>'
        f'<text x="220" y="12">scanners and bots ({machine_total:,})</text></g>',
        "</svg>",
    ]
    return "\n".join(parts)


# -- the page -------------------------------------------------------------------------------------

# The mailing's numbers: (label, mailing_stats column); the first are also shown as headline figures.
HEADLINE = [("recipients", "recipients"), ("delivered", "delivered"), ("people who opened", "unique_people_opens"),
            ("people who clicked", "unique_people_clicks"), ("click-through rate", "click_through_rate")]
NUMBERS = [
    ("Recipients", "recipients"), ("Sent", "sent"), ("Delivered", "delivered"), ("Not delivered", "undelivered"),
    ("Bounces", "bounces"), ("hard", "hard_bounces"), ("soft", "soft_bounces"),
    ("Opens", "opens"), ("recipients who opened", "unique_opens"),
    ("People's opens", "people_opens"), ("people who opened", "unique_people_opens"),
    ("Apple Mail Privacy Protection prefetches", "apple_mpp_opens"), ("Scanner and bot opens", "machine_opens"),
    ("People's clicks", "people_clicks"), ("people who clicked", "unique_people_clicks"),
    ("Scanner and bot clicks", "machine_clicks"),
    ("Click-through rate", "click_through_rate"),
    ("Unsubscribes", "unsubscribes"), ("Spam complaints", "spam_complaints"),
    ("First click by a person", "first_click_at"), ("Last click by a person", "last_click_at"),
]
SUB_ROWS = frozenset({"hard_bounces", "soft_bounces", "unique_opens", "unique_people_opens", "unique_people_clicks"})
TIMES = frozenset({"first_click_at", "last_click_at"})

STYLE = """
:root { color: #1a1a1a; background: #fff; }
body { font: 15px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 760px;
       margin: 24px auto; padding: 0 16px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }
.meta { color: #444; margin: 0; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; margin: 20px 0 0; padding: 0; list-style: none; }
.figures li { border: 1px solid #bbb; border-radius: 4px; padding: 8px 12px; min-width: 110px; }
.figures .value { display: block; font-size: 22px; font-weight: 600; }
.figures .name { color: #444; font-size: 13px; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.sub th { padding-left: 24px; font-weight: normal; color: #444; }
table.numbers { width: auto; min-width: 60%; }
table.numbers th { font-weight: normal; }
td.url { word-break: break-all; }
svg.chart { width: 100%; height: auto; }
.note, .empty { color: #444; font-size: 13px; }
@page { margin: 15mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  section, tr, svg { break-inside: avoid; }
}
"""


def _cell(key: str, value: Any) -> str:
    if key in TIMES:
        return _when(value)
    if key == "click_through_rate":
        return _e(_rate(value))
    return _e(_number(value))


def _numbers(stats: dict[str, Any]) -> str:
    rows = [f'<tr class="{"sub" if key in SUB_ROWS else "main"}"><th scope="row">{_e(label)}</th>'
            f'<td class="n" data-column="{_e(key)}">{_cell(key, stats[key])}</td></tr>'
            for label, key in NUMBERS]
    return '<table class="numbers">\n' + "\n".join(rows) + "\n</table>"


def _links(report: MailingReport) -> str:
    if not report.links:
        return '<p class="empty">No links.</p>'
    head = ('<tr><th>Link</th><th class="n">Recipients</th><th class="n">People\'s clicks</th>'
            '<th class="n">People who clicked</th><th class="n">Scanner and bot clicks</th></tr>')
    rows = [
        f'<tr class="link"><td class="url">{_e(link["original_url"])}</td>'
        f'<td class="n" data-column="recipients">{_e(_number(link["recipients"]))}</td>'
        f'<td class="n" data-column="people_clicks">{_e(_number(link["people_clicks"]))}</td>'
        f'<td class="n" data-column="unique_people_clicks">{_e(_number(link["unique_people_clicks"]))}</td>'
        f'<td class="n" data-column="machine_clicks">{_e(_number(link["machine_clicks"]))}</td></tr>'
        for link in report.links
    ]
    more = "" if not report.more_links else (
        f'<p class="note">{report.more_links:,} more link{"s" if report.more_links != 1 else ""} not shown.</p>')
    return f'<table class="links">\n<thead>{head}</thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody>\n</table>" + more


def render(report: MailingReport) -> str:
    """The whole HTML document of one mailing's report."""
    stats = report.stats
    account = (f"{_e(report.account_name)} ({_e(report.account_id)})" if report.account_name
               else _e(report.account_id))
    figures = "\n".join(f'<li><span class="value" data-figure="{_e(key)}">{_cell(key, stats[key])}</span>'
                        f'<span class="name">{_e(name)}</span></li>' for name, key in HEADLINE)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mailing {_e(report.mailing_id)}: report</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>Mailing <span class="mailing">{_e(report.mailing_id)}</span></h1>
<p class="meta">Account: <span class="account">{account}</span></p>
<p class="meta">Generated {_when(report.generated_at)}</p>
<ul class="figures">
{figures}
</ul>
</header>
<section id="clicks">
<h2>Clicks over time</h2>
{chart(report.hours)}
<p class="note">People's clicks are those judged human or unknown, and clicks reported without a verdict.
Scanners and bots are mail security gateways, link previews and crawlers that follow a link before
(or instead of) a person; they are left out of the click-through rate.</p>
</section>
<section id="numbers">
<h2>Numbers</h2>
{_numbers(stats)}
<p class="note">Click-through rate: people who clicked ÷ recipients. Times are UTC.</p>
</section>
<section id="links">
<h2>Top links</h2>
{_links(report)}
</section>
</body>
</html>
"""
