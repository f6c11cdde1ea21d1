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
import hashlib
import hmac
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from linkhub.core import accounts
from linkhub.store import schema
from linkhub.store.db import connect

_READY = re.compile(r"linkhub: serving on (http://\S+)")


def _serve(db: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "linkhub", "serve", "--db", str(db), "--port", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # the server prints its URL once it listens
        if match := _READY.search(line):
            # Keep reading its log, so that a full pipe never blocks it.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, match[1]
    proc.wait()
    raise RuntimeError("linkhub serve did not start")


def _post(client: httpx.Client, account_id: str, secret: str, body: bytes) -> tuple[int, float]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    started = time.perf_counter()
    answer = client.post(f"/outreach/{account_id}/links", content=body,
                         headers={"Outreach-Webhook-Signature": signature, "Content-Type": "application/json"})
    return answer.status_code, time.perf_counter() - started


def _count(db: Path, account_id: str) -> int:
    conn = connect(db, readonly=True)
    try:
        return conn.execute("SELECT count(*) FROM links WHERE account_id = ?", (account_id,)).fetchone()[0]
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", default="1000,10000,40000", help="comma-separated link counts per email")
    sizes = [int(n) for n in parser.parse_args().links.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        conn = connect(db)
        list(schema.migrate(conn))
        proc, url = _serve(db)
        rows = []
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                for n in sizes:
                    account, _ = accounts.create(conn, f"large-{n}", "secret")
                    data = [f"https://e.io/{i}" for i in range(n)]
                    body = json.dumps({"data": data, "meta": {"mailing": {"id": 1}, "prospect": {"id": 1}}}).encode()
                    first = _post(client, account.id, "secret", body)
                    deadline = time.monotonic() + 120
                    while _count(db, account.id) < n and time.monotonic() < deadline:  # a 503 still stores
                        time.sleep(0.05)
                    retry = _post(client, account.id, "secret", body)
                    rows.append((n, len(body), first, retry))
        finally:
            conn.close()
            proc.terminate()
            proc.wait(timeout=60)
    print("| links | body bytes | first call | retry |")
    print("|---:|---:|---:|---:|")
    for n, size, (s1, t1), (s2, t2) in rows:
        print(f"| {n:,} | {size:,} | {t1 * 1000:,.0f} ms ({s1}) | {t2 * 1000:,.0f} ms ({s2}) |")


if __name__ == "__main__":
    main()
