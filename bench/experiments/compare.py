"""EXPERIMENT: redirect throughput of patched linkhub variants, interleaved, side by side.

    .venv/bin/python bench/experiments/compare.py "ceiling;base;noclick;loopwriter,ckpt,seqid" [SECONDS] [REPEATS]

Each variant is a `linkhub serve` (bench/experiments/patched_serve.py, LH_PATCH=variant) on its
own copy of a 100k-link database, or "ceiling" (bench/ceiling.py). wrk -t2 -c64 as in
bench/run.py. Prints every run, then medians: main-thread and other-thread CPU µs per
request (from /proc), req/s and its change against the FIRST variant, p50/p99, GC time.
"""
import collections
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import run as B  # noqa: E402  (bench/run.py)

variants = sys.argv[1].split(";")
duration = float(sys.argv[2]) if len(sys.argv) > 2 else 8
repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
work = Path(tempfile.mkdtemp(prefix="linkhub-exp-"))
servers = B.Servers(work)
try:
    base = work / "base.db"
    acct, secret, codes = B.seed(base, 100_000, 10_000)
    cf = work / "codes"; cf.write_text("\n".join(codes) + "\n")
    started = {}
    for i, v in enumerate(variants):
        dbp = work / f"v{i}.db"; shutil.copy(base, dbp)
        env_patch = "" if v == "base" else v
        os.environ["LH_PATCH"] = env_patch; os.environ["LH_GCSTATS"] = str(work / f"v{i}.gc.json")
        if v == "ceiling":
            started[v] = servers.start(f"v{i}", [sys.executable, str(HERE.parent / "ceiling.py"), "--codes", str(cf)])
        else:
            started[v] = servers.start(f"v{i}", [sys.executable, str(HERE / "patched_serve.py"), "serve", "--db", str(dbp), "--port", "0"])
    for v, s in started.items():
        B.wrk(s.url, cf, duration=2, connections=64, threads=2)
    res = collections.defaultdict(list)
    for rep in range(repeats):
        for v, s in started.items():
            before = B.thread_cpu(s.proc.pid)
            w = B.wrk(s.url, cf, duration=duration, connections=64, threads=2)
            after = B.thread_cpu(s.proc.pid)
            main = (after[s.proc.pid] - before.get(s.proc.pid, 0)) / w.requests * 1e6
            rest = sum(after[t] - before.get(t, 0) for t in after if t != s.proc.pid) / w.requests * 1e6
            w.main_us, w.rest_us = main, rest
            res[v].append(w); print(f"{v:20s} {w.rps:7.0f} p50 {w.p50_ms:6.1f} p99 {w.p99_ms:6.1f} main {main:5.0f}us other threads {rest:5.0f}us", flush=True)
    wal = {}
    for i, v in enumerate(variants):
        path = work / f"v{i}.db-wal"
        wal[v] = path.stat().st_size / 1e6 if path.exists() else 0.0
    servers.stop_all()
    print("\nmedians:\n| variant | main µs/req | other threads µs/req | req/s | vs first | p50 ms | p99 ms | WAL MB at end | GC |")
    b = statistics.median(x.rps for x in res[variants[0]])  # first variant is the reference
    for i, v in enumerate(variants):
        rps = statistics.median(x.rps for x in res[v]); p99 = statistics.median(x.p99_ms for x in res[v])
        gcs = json.loads((work / f"v{i}.gc.json").read_text()) if (work / f"v{i}.gc.json").exists() else {}
        total = sum(x.requests for x in res[v])
        mu = statistics.median(x.main_us for x in res[v]); ru = statistics.median(x.rest_us for x in res[v])
        print(f"| {v} | {mu:.0f} | {ru:.0f} | {rps:,.0f} | {rps / b - 1:+.0%} | {statistics.median(x.p50_ms for x in res[v]):.1f} | {p99:.1f} | {wal[v]:,.0f} | gc {gcs.get('time', 0):.2f}s {gcs.get('n')} |")
        trace = work / f"v{i}.gc.json.trace"
        if trace.exists():
            print(f"  {v} commit path: {trace.read_text()}")
finally:
    servers.stop_all()
    shutil.rmtree(work, ignore_errors=True)
