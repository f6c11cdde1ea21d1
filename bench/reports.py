"""Reports on a big file: one mailing's report, the page of mailings, one recipient, and export rows
per second, on 100,000, 1,000,000 and 10,000,000 generated events — one table.

    python bench/reports.py [--sizes 100000,1000000,10000000] [--samples 15] [--keep DIR]

Each database is generated in SQLite itself (a recursive CTE, 500,000 events a transaction: minutes
for ten million) in the documented schema, after linkhub's migrations; the `mailings` table is filled at the end
with the moments linkhub's inserts would have noted. Its shape is the same whatever its size, only the number of
mailings grows: 10 accounts; mailings of 500 recipients with 2 links each, 1,500 events a mailing
(a `sent` and a `delivered` for everyone, then opens, people's and a scanner's clicks, an
unsubscribe); 50 mailings under way at once, their events interleaved row by row, so one mailing's
events lie on pages of their own, as on a server that sends all day. A recipient is in many mailings
of their account (5,000 people per account).

What is timed, in this process, through the use cases `linkhub report` and the HTTP API call
(`linkhub.services.reports`), on a warm file (the first call of each kind is not counted; the OS
holds the file in memory, as on a server that serves it): the median of `--samples` different
mailings (or recipients) per size, in milliseconds; every size in each of `--rounds` rounds, and the
median of the rounds, so the sizes are compared over the same minutes of the machine. Then the
mailings page as it was read before the `mailings` table (every event of the account added up, then
the newest 100 kept), once a round. Then, in the first round, `linkhub events export` and
`linkhub clicks export` (JSON Lines, a process each, start-up included).
The goal: one mailing's report on 10,000,000 events at most 2× the time on 100,000.

    python bench/reports.py --write-cost DB

prints instead what noting each batch's mailings in the `mailings` table adds to each click inserted,
on a copy of DB, with and without it in interleaved rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import export

import linkhub.core.mailings
from linkhub.cli.common import store
from linkhub.core.events import Event, insert_many
from linkhub.services import reports
from linkhub.store.db import connect

import seed

ACCOUNTS = 10
RECIPIENTS = 500  # per mailing
PEOPLE = 5_000  # per account: a recipient is in many of their account's mailings
ROUNDS = 3  # events per recipient and mailing
PER_MAILING = RECIPIENTS * ROUNDS
CONCURRENT = 50  # mailings whose events interleave
BLOCK = CONCURRENT * PER_MAILING
CHUNK = 500_000  # events a transaction while generating
START_JD = 2461041.5  # 2026-01-01T00:00:00Z as a Julian day
STEP_S = 0.05  # between two consecutive events

# The event number i → its mailing, its recipient in that mailing, its round: block by block of
# CONCURRENT mailings, round-robin inside a block.
_GENERATED = f"""
WITH RECURSIVE n(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :hi),
shaped AS (
    SELECT i, (i / {BLOCK}) * {CONCURRENT} + (i % {BLOCK}) % {CONCURRENT} AS m,
           ((i % {BLOCK}) / {CONCURRENT}) % {RECIPIENTS} AS r,
           ((i % {BLOCK}) / {CONCURRENT}) / {RECIPIENTS} AS round
    FROM n
),
typed AS (
    SELECT i, m, r, m % {ACCOUNTS} AS a, (m * 37 + r) % {PEOPLE} AS person,
           CASE WHEN round = 0 THEN 'sent' WHEN round = 1 THEN 'delivered'
                WHEN r % 10 IN (0, 1) THEN 'click-person' WHEN r % 10 = 2 THEN 'click-scanner'
                WHEN r % 10 = 9 THEN 'unsubscribe' ELSE 'open' END AS kind
    FROM shaped
)
INSERT INTO events (id, account_id, type, occurred_at, received_at, source, email, recipient_id, mailing_id,
                    message_id, url, code, verdict, details)
SELECT 'e-' || i, (SELECT id FROM bench_accounts WHERE n = a),
       CASE WHEN kind LIKE 'click%' THEN 'click' ELSE kind END,
       strftime('%Y-%m-%dT%H:%M:%fZ', {START_JD} + i * {STEP_S} / 86400.0),
       strftime('%Y-%m-%dT%H:%M:%fZ', {START_JD} + i * {STEP_S} / 86400.0),
       CASE WHEN kind LIKE 'click%' THEN 'redirect' ELSE 'api' END,
       'person' || person || '@account' || a || '.example', 'p-' || person, 'mail-' || m, 'msg-' || m || '-' || r,
       CASE WHEN kind LIKE 'click%' THEN 'https://example.com/page-' || (r % 2) END,
       CASE WHEN kind LIKE 'click%' THEN 'c' || m || '-' || r || '-' || (r % 2) END,
       CASE kind WHEN 'click-person' THEN 'human' WHEN 'click-scanner' THEN 'scanner' END,
       CASE kind
           WHEN 'click-person' THEN json_object(
               'ip', '203.0.113.' || (person % 250), 'user_agent', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) '
               || 'AppleWebKit/537.36 (KHTML, like Gecko) Chrome/154.0.0.0 Safari/537.36',
               'device', 'Other', 'os', 'Windows 10', 'browser', 'Chrome 154.0.0', 'bot', json('false'),
               'target', 'https://example.com/page-' || (r % 2), 'method', 'GET', 'verdict', 'human', 'score', -40,
               'classifier', 'bench', 'reasons', json('[{{"code":"ua_browser","weight":-20,"evidence":"Chrome"}}]'))
           WHEN 'click-scanner' THEN json_object(
               'ip', '198.51.100.7', 'user_agent', 'Barracuda Sentinel (EE)', 'bot', json('true'),
               'target', 'https://example.com/page-' || (r % 2), 'method', 'GET', 'verdict', 'scanner', 'score', 90,
               'classifier', 'bench',
               'reasons', json('[{{"code":"scanner_user_agent","weight":90,"evidence":"Barracuda"}}]'))
           ELSE '{{}}' END
FROM typed
"""

# Two links per recipient of each mailing, minted a second before its first event.
_LINKS = f"""
WITH RECURSIVE n(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :hi),
shaped AS (SELECT i / ({RECIPIENTS} * 2) AS m, (i / 2) % {RECIPIENTS} AS r, i % 2 AS u FROM n)
INSERT INTO links (code, account_id, target_url, original_url, mailing_id, prospect_id, prospect_email, user_id,
                   created_at)
SELECT 'c' || m || '-' || r || '-' || u, (SELECT id FROM bench_accounts WHERE n = m % {ACCOUNTS}),
       'https://example.com/page-' || u, 'https://example.com/page-' || u, 'mail-' || m,
       'p-' || ((m * 37 + r) % {PEOPLE}), 'person' || ((m * 37 + r) % {PEOPLE}) || '@account' || (m % {ACCOUNTS})
       || '.example', 'u-1',
       strftime('%Y-%m-%dT%H:%M:%fZ', {START_JD} + ((m / {CONCURRENT}) * {BLOCK} * {STEP_S} - 1) / 86400.0)
FROM shaped
"""

_MAILINGS = """
INSERT INTO mailings (account_id, mailing_id, first_at)
SELECT account_id, mailing_id, min(at) FROM (
    SELECT account_id, mailing_id, min(occurred_at) AS at FROM events WHERE mailing_id IS NOT NULL
    GROUP BY account_id, mailing_id
    UNION ALL
    SELECT account_id, mailing_id, min(created_at) FROM links GROUP BY account_id, mailing_id
) GROUP BY account_id, mailing_id
"""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def build(db: Path, events: int) -> list[str]:
    """A database of `events` events (and their mailings' links); returns the account ids, by number."""
    ids = [seed.account(db, name=f"bench-{n}").id for n in range(ACCOUNTS)]
    conn = connect(db)
    try:
        conn.execute("PRAGMA cache_size = -1000000")  # a 1 GB page cache while building: index inserts stay in memory
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("CREATE TEMP TABLE bench_accounts (n INTEGER PRIMARY KEY, id TEXT NOT NULL)")
        conn.executemany("INSERT INTO bench_accounts VALUES (?, ?)", list(enumerate(ids)))
        full_mailings = (events // BLOCK) * CONCURRENT + min(events % BLOCK, CONCURRENT)
        for lo in range(0, full_mailings * RECIPIENTS * 2, CHUNK):
            with _transaction(conn):
                conn.execute(_LINKS, {"lo": lo, "hi": min(lo + CHUNK, full_mailings * RECIPIENTS * 2)})
        started = time.perf_counter()
        for lo in range(0, events, CHUNK):
            with _transaction(conn):
                conn.execute(_GENERATED, {"lo": lo, "hi": min(lo + CHUNK, events)})
            done = min(lo + CHUNK, events)
            log(f"  {done:,} events ({done / (time.perf_counter() - started):,.0f}/s)")
        # What linkhub's inserts note as they write (core/mailings.py), here in one statement at the end.
        with _transaction(conn):
            conn.execute(_MAILINGS)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return ids


@contextlib.contextmanager
def _transaction(conn: Any) -> Iterator[None]:
    conn.execute("BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def median_ms(calls: list[Callable[[], object]]) -> float:
    """The median of each call's time, after one untimed call of the first (the warm-up)."""
    calls[0]()
    times = []
    for call in calls:
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(db: Path, events: int, ids: list[str], samples: int) -> dict[str, float]:
    # Sample mailings of complete blocks, spread over the file (its oldest and its newest pages).
    complete = (events // BLOCK) * CONCURRENT
    picks = sorted({round(k * (complete - 1) / max(samples - 1, 1)) for k in range(samples)})
    out: dict[str, float] = {}
    with store(db, readonly=True) as opened:
        conn = opened.reader()
        out["mailing"] = median_ms([lambda m=m: reports.mailing(opened, f"mail-{m}", None) for m in picks])
        out["links"] = median_ms([lambda m=m: reports.links(opened, f"mail-{m}", None) for m in picks])
        out["html data"] = median_ms([lambda m=m: reports.mailing_report(opened, f"mail-{m}", None,
                                                                          generated_at="2026-12-01T00:00:00.000Z")
                                      for m in picks])
        # The k-th recipient of each sample mailing (the generator's own arithmetic).
        people = [(ids[m % ACCOUNTS], f"person{(m * 37 + k) % PEOPLE}@account{m % ACCOUNTS}.example")
                  for k, m in enumerate(picks)]
        out["recipient"] = median_ms([lambda a=a, p=p: reports.recipient(opened, p, a) for a, p in people])
        out["mailings page"] = median_ms([lambda a=a: reports.mailings(opened, a, since=None, until=None, limit=100)
                                          for a in ids])
        first = {a: reports.mailings(opened, a, since=None, until=None, limit=100).next_cursor for a in ids}
        second = [lambda a=a: reports.mailings(opened, a, since=None, until=None, limit=100, cursor=first[a])
                  for a in ids if first[a]]
        out["mailings page 2"] = median_ms(second) if second else float("nan")  # nan: one page holds them all
        started = time.perf_counter()
        conn.execute("SELECT * FROM mailing_stats WHERE account_id = ? ORDER BY first_at DESC LIMIT 100",
                     (ids[0],)).fetchall()
        out["mailings page, every event added"] = (time.perf_counter() - started) * 1000
    return out


WRITE_ROUNDS = 15
WRITE_CLICKS = 3_000  # per round and database
WRITE_BATCH = 10  # clicks a commit, about what the writer gathers under load


def write_cost(source: Path) -> str:
    """µs per click inserted (commits of WRITE_BATCH clicks in one `insert_many`, as the writer's group
    commit inserts them) into a copy of `source`, with the `mailings` upsert and without it (a no-op in
    its place), in interleaved rounds."""
    noted = linkhub.core.mailings.began
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.db"
        src, conn = connect(source, readonly=True), connect(copy)
        src.backup(conn)
        src.close()
        account_id = conn.execute("SELECT id FROM accounts ORDER BY id LIMIT 1").fetchone()[0]
        mailing_ids = [row[0] for row in conn.execute(
            "SELECT mailing_id FROM mailings WHERE account_id = ? LIMIT 3", (account_id,))]
        times: dict[str, list[float]] = {"with": [], "without": []}
        for round_ in range(WRITE_ROUNDS):
            for label in times:
                clicks = [Event(id=f"w-{label}-{round_}-{i}", account_id=account_id, type="click",
                                occurred_at="2026-12-01T10:00:00.000Z", received_at="2026-12-01T10:00:00.000Z",
                                source="redirect", email=f"person{i}@example.com", recipient_id=f"p-{i}",
                                mailing_id=mailing_ids[i % len(mailing_ids)], url="https://example.com/page-0",
                                code=f"c-{i}", details={"verdict": "human"})
                          for i in range(WRITE_CLICKS)]
                linkhub.core.mailings.began = noted if label == "with" else (lambda conn, moments: None)
                try:
                    started = time.perf_counter()
                    for lo in range(0, WRITE_CLICKS, WRITE_BATCH):
                        with _transaction(conn):
                            insert_many(conn, clicks[lo:lo + WRITE_BATCH])
                    times[label].append((time.perf_counter() - started) / WRITE_CLICKS * 1e6)
                finally:
                    linkhub.core.mailings.began = noted
        conn.close()
    with_, without = statistics.median(times["with"]), statistics.median(times["without"])
    return (f"| µs per click inserted, {WRITE_BATCH} a commit | with the mailings upsert | without | ratio |\n"
            f"|---|---:|---:|---:|\n| {source.name} | {with_:.1f} | {without:.1f} | {with_ / without:.2f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000",
                        help="event counts, comma-separated (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=15, help="mailings (and recipients) timed per size")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the timings over every size")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the databases in this directory and keep them")
    parser.add_argument("--write-cost", type=Path, metavar="DB",
                        help="instead: what the mailings table adds to each click inserted, on a copy of DB")
    options = parser.parse_args()
    if options.write_cost:
        print(write_cost(options.write_cost))
        return
    sizes = [int(size) for size in options.sizes.split(",")]
    where = options.keep or Path(tempfile.mkdtemp(prefix="linkhub-reports-"))
    where.mkdir(parents=True, exist_ok=True)
    try:
        built = {size: built_db(where, size) for size in sizes}
        # Every size in each round, the rounds one after another: the sizes' figures come from the same
        # minutes of this shared machine, and each is the median of its rounds.
        rounds: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
        for round_ in range(options.rounds):
            for size, (db, ids) in built.items():
                row = measure(db, size, ids, options.samples)
                if round_ == 0:  # once: an export reads the whole file
                    for source in ("events", "clicks"):
                        seconds, rows, _ = export.run(db, source, "export", "--format", "jsonl")
                        row[f"{source} export rows/s"] = rows / seconds
                    row["MiB"] = os.path.getsize(db) / 2**20
                rounds[size].append(row)
                log(f"round {round_ + 1}, {size:,}: {row}")
        results = {size: {key: statistics.median(r[key] for r in rows if key in r) for key in rows[0]}
                   for size, rows in rounds.items()}
    finally:
        if options.keep is None:
            shutil.rmtree(where, ignore_errors=True)
    print(table(sizes, results))


def built_db(where: Path, size: int) -> tuple[Path, list[str]]:
    """The database of `size` events in `where`, built unless it is there already, and its account ids."""
    db = where / f"reports-{size}.db"
    ids_file = db.with_suffix(".accounts")
    if not (db.exists() and ids_file.exists()):
        for leftover in where.glob(f"{db.name}*"):
            leftover.unlink()
        log(f"building {size:,} events in {db}")
        started = time.perf_counter()
        ids_file.write_text("\n".join(build(db, size)))
        log(f"built in {time.perf_counter() - started:.0f} s ({os.path.getsize(db) / 2**20:,.0f} MiB)")
    return db, ids_file.read_text().split()


def table(sizes: list[int], results: dict[int, dict[str, float]]) -> str:
    base = sizes[0]
    heads = [f"{size:,} events" for size in sizes]
    lines = ["| | " + " | ".join(heads) + f" | largest ÷ {base:,} |", "|---|" + "---:|" * (len(sizes) + 1)]
    for key in results[base]:
        unit = "" if key.endswith("rows/s") or key == "MiB" else " ms"
        values = [results[size][key] for size in sizes]
        shown = ["—" if v != v else f"{v:,.0f}" if v >= 100 else f"{v:.1f}" for v in values]  # v != v: nan
        ratio = values[-1] / values[0]
        lines.append(f"| {key}{unit} | " + " | ".join(shown) + f" | {'—' if ratio != ratio else f'{ratio:.2f}×'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
