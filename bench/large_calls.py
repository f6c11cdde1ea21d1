"""Link replacement for one large email: a first call and its retry, for growing numbers of links.

    .venv/bin/python bench/large_calls.py [--links 1000,10000,40000]

Each size runs on a new account of one `linkhub serve` (a fresh database in a temporary
directory). A retry must cost about what the first call does, linearly in the links: it
reads back each link's code with one index seek. Prints a Markdown table: the status and
the time of each call (a status 503 means the answer missed the 1 s deadline; the links are
stored anyway, and the retry is then timed against them).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import httpx

import seed
from fleet import Fleet
from load import signature


def _post(client: httpx.Client, account: seed.Account, body: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    answer = client.post(f"/outreach/{account.id}/links", content=body,
                         headers={"Outreach-Webhook-Signature": signature(account.secret, body),
                                  "Content-Type": "application/json"})
    return answer.status_code, time.perf_counter() - started


def first_and_retry(client: httpx.Client, db: Path, n: int) -> tuple[int, tuple[int, float], tuple[int, float]]:
    """One call of `n` links on a new account, and the same call again once its links are stored."""
    account = seed.account(db, f"large-{n}", "secret")
    data = [f"https://e.io/{i}" for i in range(n)]
    body = json.dumps({"data": data, "meta": {"mailing": {"id": 1}, "prospect": {"id": 1}}}).encode()
    first = _post(client, account, body)
    deadline = time.monotonic() + 120
    stored = "SELECT count(*) FROM links WHERE account_id = ?"
    while seed.count(db, stored, account.id) < n and time.monotonic() < deadline:  # a 503 still stores
        time.sleep(0.05)
    return len(body), first, _post(client, account, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", default="1000,10000,40000", help="comma-separated link counts per email")
    sizes = [int(n) for n in parser.parse_args().links.split(",")]
    with tempfile.TemporaryDirectory() as tmp, Fleet() as fleet:
        db = Path(tmp) / "bench.db"
        server = fleet.linkhub("linkhub", db)  # serve creates and migrates the database
        with httpx.Client(base_url=server.url, timeout=120) as client:
            rows = [(n, *first_and_retry(client, db, n)) for n in sizes]
    print("| links | body bytes | first call | retry |")
    print("|---:|---:|---:|---:|")
    for n, size, (s1, t1), (s2, t2) in rows:
        print(f"| {n:,} | {size:,} | {t1 * 1000:,.0f} ms ({s1}) | {t2 * 1000:,.0f} ms ({s2}) |")


if __name__ == "__main__":
    main()
