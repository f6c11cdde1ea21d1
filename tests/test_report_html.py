"""`linkhub report mailing ID --html FILE`: one self-contained page a marketer can forward.

The database is test_reports.py's (links minted through the Outreach endpoint, clicks through /r/ from
people and a security gateway, other events posted), plus a link whose URL holds `<`, `&` and `"`,
clicked by a person and by the gateway. The page is read back with the standard library's HTML
parser: what it shows is checked against the views' rows and against counts made here from the raw
events.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from linkhub.core import accounts, reports
from linkhub.services import report_html
from linkhub.settings import parse_networks
from linkhub.store import connect

from conftest import ON_POSTGRESQL, linkhub, query
from test_reports import GATEWAY, PERSON, built, hit, machine, mint, people, raw  # noqa: F401 - built: a fixture

TRICKY = 'https://example.com/offer?a=<b>&c="d"'
TRICKY_NAME = 'Ann & Bob\'s <"Shop">'


class Page(HTMLParser):
    """What a reader of the report sees, and what would make it less than self-contained."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.columns: dict[str, str] = {}  # data-column of the numbers table → its text
        self.figures: dict[str, str] = {}
        self.times: dict[str, str] = {}  # data-column → the <time datetime> inside it
        self.links: list[dict[str, str]] = []  # the top links' rows: url and data-column cells
        self.bars: list[dict[str, str | None]] = []
        self.style = ""
        self.text: list[str] = []
        self._open: list[tuple[str, str]] = []  # (kind, key) of the cells being read
        self._table = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "table":
            self._table = attributes.get("class") or ""
        elif tag == "tr" and attributes.get("class") == "link":
            self.links.append({})
        elif tag == "style":
            self._in_style = True
        elif tag == "rect" and attributes.get("data-series"):
            self.bars.append(attributes)
        elif tag == "time" and self._open and self._open[-1][0] == "column":
            self.times[self._open[-1][1]] = attributes["datetime"] or ""
        if tag == "td" and attributes.get("class") == "url":
            self._open.append(("url", "original_url"))
        elif tag == "td" and attributes.get("data-column"):
            self._open.append(("column" if self._table == "numbers" else "link", attributes["data-column"] or ""))
        elif attributes.get("data-figure"):
            self._open.append(("figure", attributes["data-figure"] or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        elif tag in ("td", "span") and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_style:
            self.style += data
        if not self._open:
            return
        kind, key = self._open[-1]
        target = {"column": self.columns, "figure": self.figures}.get(kind)
        if target is not None:
            target[key] = target.get(key, "") + data
        else:
            self.links[-1][key] = self.links[-1].get(key, "") + data


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def shown(value: Any) -> str:
    """How the page writes a count or a rate."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value * 100:.1f} %"
    return f"{value:,}"


@pytest.fixture
def tricky(built: dict[str, Any], make_app: Any, db_path: Path) -> dict[str, Any]:  # noqa: F811 - the fixture
    """test_reports.py's database, plus a link with markup in its URL (a person's click and the
    gateway's), and account a named with markup too."""
    a = built["a"]
    app = make_app(trusted_proxies=parse_networks("127.0.0.1/32"))
    with app.client() as client:
        minted = mint(client, app, a, "m-1", "p-fay", "fay@corp.example", [TRICKY])
        hit(client, minted[TRICKY], "203.0.113.40", PERSON)
        hit(client, minted[TRICKY], "198.51.100.20", GATEWAY)
    app.stop()
    conn = connect(db_path)
    try:
        accounts.update(conn, a.id, name=TRICKY_NAME)
    finally:
        conn.close()
    return built


def write(db_path: Path, out: Path, *args: str) -> Any:
    return linkhub("report", "mailing", "m-1", *args, "--html", str(out), "--db", str(db_path))


def test_the_page_shows_the_mailings_numbers_links_and_clicks(tricky, db_path, tmp_path):
    a = tricky["a"].id
    out = tmp_path / "m-1.html"
    # Generated-at is written to the millisecond: compare at that precision.
    started = datetime.now(UTC)
    before = started.replace(microsecond=started.microsecond // 1000 * 1000)
    ran = write(db_path, out, "--account", a)
    assert ran.returncode == 0, ran.stderr
    assert str(out) in ran.stdout
    page = parse(out)

    [row] = [dict(r) for r in query(db_path, "SELECT * FROM mailing_stats WHERE account_id = ? AND mailing_id = 'm-1'",
                                    (a,))]
    # Every number of the table is the view's, as the page writes it; the times are the view's exactly.
    for key, text in page.columns.items():
        if key in ("first_click_at", "last_click_at"):
            assert page.times[key] == row[key]
        else:
            assert text == shown(row[key]), key
    assert set(page.columns) >= {"recipients", "delivered", "bounces", "unique_opens", "people_clicks",
                                 "unique_people_clicks", "machine_clicks", "click_through_rate", "unsubscribes",
                                 "spam_complaints", "first_click_at", "last_click_at"}
    assert page.figures["recipients"] == shown(row["recipients"])
    assert page.figures["click_through_rate"] == shown(row["click_through_rate"])

    # The same counts, made here from the raw events.
    events, _ = raw(db_path)
    mine = [e for e in events if e["account_id"] == a and e["mailing_id"] == "m-1"]
    person_clicks, machine_clicks = sum(1 for e in mine if people(e)), sum(1 for e in mine if machine(e))
    assert page.columns["people_clicks"] == shown(person_clicks)
    assert page.columns["machine_clicks"] == shown(machine_clicks)
    assert machine_clicks >= 4 and person_clicks >= 5  # the scenario has both, so the split means something

    # The chart: two series whose bars add up to people's and machines' clicks.
    series = {bar["data-series"] for bar in page.bars}
    assert series == {"people", "machines"}
    total = {name: sum(int(bar["data-clicks"] or 0) for bar in page.bars if bar["data-series"] == name)
             for name in series}
    assert total == {"people": person_clicks, "machines": machine_clicks}
    text = " ".join(page.text)
    assert f"people ({person_clicks:,})" in text and f"scanners and bots ({machine_clicks:,})" in text
    assert "clicks per day" in text  # the clicks span weeks: posted in November, through /r/ today

    # The top links: every link of the mailing, most clicked by people first, the view's numbers.
    expected = [dict(r) for r in query(db_path, "SELECT * FROM link_stats WHERE account_id = ? AND mailing_id = 'm-1'"
                                       " ORDER BY people_clicks DESC, clicks DESC, original_url", (a,))]
    assert [link["original_url"] for link in page.links] == [link["original_url"] for link in expected]
    for shown_link, link in zip(page.links, expected, strict=True):
        for key in ("recipients", "people_clicks", "unique_people_clicks", "machine_clicks"):
            assert shown_link[key] == shown(link[key])
    assert TRICKY in [link["original_url"] for link in page.links]

    # Who and when: the account's name and id, the mailing, the time it was made (UTC).
    assert TRICKY_NAME in text and a in text and "m-1" in text
    [generated] = [attrs["datetime"] for tag, attrs in page.tags if tag == "time" and attrs.get("datetime")
                   and attrs["datetime"] not in (row["first_click_at"], row["last_click_at"])]
    assert generated is not None and generated.endswith("Z")
    assert before <= datetime.fromisoformat(generated) <= datetime.now(UTC)


def test_the_page_needs_nothing_from_anywhere_and_carries_no_secret(tricky, db_path, tmp_path):
    out = tmp_path / "m-1.html"
    assert write(db_path, out, "--account", tricky["a"].id).returncode == 0
    page = parse(out)
    names = [tag for tag, _ in page.tags]
    assert "script" not in names
    assert not {"link", "img", "iframe", "object", "embed", "base", "form"} & set(names)
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)  # no event handlers either
            if name in ("src", "href", "xlink:href", "srcset", "action"):
                assert value is not None and value.startswith("#"), (tag, name, value)
            if value is not None and "url(" in value:
                assert value.startswith("url(#"), (tag, name, value)
    assert "@import" not in page.style and "url(" not in page.style
    assert page.tags[0][0] == "html" and ("meta", {"charset": "utf-8"}) in page.tags
    # Nothing of the account but its name and id.
    raw_html = out.read_bytes()
    [account] = query(db_path, "SELECT outreach_secret FROM accounts WHERE id = ?", (tricky["a"].id,))
    assert account["outreach_secret"].encode() not in raw_html
    assert tricky["a"].api_key.encode() not in raw_html


def test_every_value_is_escaped(tricky, db_path, tmp_path):
    out = tmp_path / "m-1.html"
    assert write(db_path, out, "--account", tricky["a"].id).returncode == 0
    html = out.read_text(encoding="utf-8")
    assert "https://example.com/offer?a=&lt;b&gt;&amp;c=&quot;d&quot;" in html
    assert "<b>" not in html and '"d"' not in html
    assert "Ann &amp; Bob&#x27;s &lt;&quot;Shop&quot;&gt;" in html
    page = parse(out)
    assert not [tag for tag, _ in page.tags if tag in ("b", "shop")]  # the markup stayed text
    assert TRICKY in [link["original_url"] for link in page.links]


def test_the_file_is_not_replaced_unless_forced(tricky, db_path, tmp_path):
    a = tricky["a"].id
    out = tmp_path / "m-1.html"
    out.write_text("keep me")
    ran = write(db_path, out, "--account", a)
    assert ran.returncode != 0 and "Traceback" not in ran.stderr
    [line] = ran.stderr.strip().splitlines()
    assert f"{out} exists" in line and "--force" in line
    assert out.read_text() == "keep me"
    assert write(db_path, out, "--account", a, "--force").returncode == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(("args", "message"), [
    (("--json",), "choose one"),
    (("--csv",), "choose one"),
])
def test_html_takes_no_other_format(tricky, db_path, tmp_path, args, message):
    out = tmp_path / "m-1.html"
    ran = write(db_path, out, "--account", tricky["a"].id, *args)
    assert ran.returncode == 2 and message in ran.stderr and len(ran.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_refusals_are_one_line_and_write_nothing(tricky, db_path, tmp_path):
    a = tricky["a"].id
    # --force alone would do nothing.
    ran = linkhub("report", "mailing", "m-1", "--account", a, "--force", "--db", str(db_path))
    assert ran.returncode == 2 and "--html" in ran.stderr and len(ran.stderr.strip().splitlines()) == 1
    # Two accounts have m-1: say which.
    out = tmp_path / "m-1.html"
    ran = write(db_path, out)
    assert ran.returncode != 0 and "--account" in ran.stderr and len(ran.stderr.strip().splitlines()) == 1
    assert not out.exists()
    # No such mailing; a folder that does not exist.
    ran = linkhub("report", "mailing", "nope", "--html", str(out), "--db", str(db_path))
    assert ran.returncode != 0 and "no mailing 'nope'" in ran.stderr and not out.exists()
    ran = write(db_path, tmp_path / "missing" / "m-1.html", "--account", a)
    assert ran.returncode != 0 and "Traceback" not in ran.stderr and len(ran.stderr.strip().splitlines()) == 1


def test_a_mailing_without_clicks_says_so(tricky, db_path, tmp_path):
    out = tmp_path / "m-2.html"
    ran = linkhub("report", "mailing", "m-2", "--html", str(out), "--db", str(db_path))
    assert ran.returncode == 0, ran.stderr
    page = parse(out)
    assert not page.bars and "No clicks yet." in " ".join(page.text)
    assert page.columns["people_clicks"] == "0" and page.columns["first_click_at"] == "–"


@pytest.mark.skipif(ON_POSTGRESQL, reason="SQLite's query plan: PostgreSQL's planner chooses its own")
def test_the_clicks_per_hour_are_read_through_the_mailing_index(tricky, db_path):
    plan = "\n".join(row[3] for row in query(db_path, f"EXPLAIN QUERY PLAN {reports.CLICK_HOURS.sqlite}", ("a", "m")))
    assert "COVERING INDEX events_by_mailing (mailing_id=? AND account_id=? AND type=?)" in plan, plan


@pytest.mark.skipif(not ON_POSTGRESQL, reason="PostgreSQL's plan")
def test_the_clicks_per_hour_can_be_read_from_the_mailing_index_alone_on_postgresql(tricky, db_path):
    """events_by_mailing holds every column the query reads: PostgreSQL can answer it from the index. (Its
    planner reads a table this small whole; told not to, what it can do instead shows.)"""
    conn = connect(db_path, readonly=True)
    try:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {reports.CLICK_HOURS.postgresql}", ("a", "m")))
    finally:
        conn.close()
    assert "Index Only Scan using events_by_mailing" in plan, plan


# -- the chart's buckets, on hours given here -------------------------------------------------------


def test_buckets_are_hours_days_or_months_by_the_span_with_gaps_filled():
    unit, bars = report_html.buckets([("2026-11-02T10", 2, 1), ("2026-11-02T13", 0, 4)])
    assert unit == "hour" and [(b.start.hour, b.people, b.machines) for b in bars] == [
        (10, 2, 1), (11, 0, 0), (12, 0, 0), (13, 0, 4)]

    unit, bars = report_html.buckets([("2026-11-02T10", 2, 1), ("2026-11-02T23", 1, 0), ("2026-11-05T01", 3, 3)])
    assert unit == "day" and [(b.start.day, b.people, b.machines) for b in bars] == [
        (2, 3, 1), (3, 0, 0), (4, 0, 0), (5, 3, 3)]

    unit, bars = report_html.buckets([("2026-11-30T10", 1, 0), ("2027-06-01T00", 0, 2)])
    assert unit == "month" and [(b.start.year, b.start.month) for b in bars][::7] == [(2026, 11), (2027, 6)]
    assert len(bars) == 8 and sum(b.people for b in bars) == 1 and sum(b.machines for b in bars) == 2
    assert report_html.buckets([]) == ("hour", [])


# -- the page as a browser draws it (only where chromium is installed) ------------------------------


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not on PATH")
def test_chromium_draws_the_page(tricky, db_path, tmp_path):
    out = tmp_path / "m-1.html"
    assert write(db_path, out, "--account", tricky["a"].id).returncode == 0
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=800,1400", out.as_uri()], check=True, timeout=120, capture_output=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # A blank page compresses to almost nothing; one with text, tables and a chart does not.
    assert len(data) > 20_000


def test_the_chart_draws_every_click_of_every_bucket():
    hours = [("2026-11-02T10", 1, 1), ("2026-11-02T11", 0, 1), ("2026-11-02T12", 7, 0), ("2026-11-02T14", 1, 250)]
    page = Page()
    page.feed(report_html.chart(hours))
    totals = {name: sum(int(bar["data-clicks"] or 0) for bar in page.bars if bar["data-series"] == name)
              for name in ("people", "machines")}
    assert totals == {"people": 9, "machines": 252}
    assert {bar["data-bucket"] for bar in page.bars} == {"2026-11-02T10", "2026-11-02T11", "2026-11-02T12",
                                                         "2026-11-02T14"}
    # The y axis reaches the tallest bar, in round steps.
    ticks = [int(t.replace(",", "")) for t in page.text if t.replace(",", "").isdigit()]
    assert max(ticks) >= 251 and ticks[:2] == [0, ticks[1]] and max(ticks) % ticks[1] == 0
