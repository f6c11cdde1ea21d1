"""EXPERIMENT ONLY: `linkhub serve` with monkeypatches chosen by LH_PATCH (comma-separated).

Used by bench/experiments/compare.py to measure what a change to the redirect path would
buy before anyone writes it for real. The patches reach into linkhub's internals as they
were when this was written (db.Database, redirect.RedirectApp, outbox.store_events) and
will break when those change; they are sketches, not designs (no error handling to speak of).

    base         linkhub as it is
    noclick      no click recorded at all (NOT a design: the upper bound of the click's cost)
    nowait       click queued but the 302 does not wait for its commit (NOT durable)
    re           the /r/ code check with stdlib `re` (the `regex` package releases the GIL)
    gc           gc.freeze() after start-up and gc.set_threshold(50_000, 20, 100)
    cache        positive link lookups cached in a dict (links never change once minted)
    fastwait     Database.write awaits the bare future (no wait_for task, no shield)
    batchwriter  the clicks of one writer batch stored by one store_events call, no savepoints
    switch       sys.setswitchinterval(0.0005)
    ckpt         writer connection with wal_autocheckpoint=0; a thread checkpoints every 0.25 s
    seqid        time-ordered click event ids, so events_by_id inserts append
    loopwriter   clicks committed on the event-loop thread, one transaction per loop pass
                 (no writer-thread hand-off, no GIL ping-pong); other writes unchanged
    restart      a thread runs PRAGMA wal_checkpoint(RESTART) every second (bounds the WAL,
                 which otherwise grows without end under constant reads: checkpoint starvation)
    trace        writes per-click commit-path timings to $LH_GCSTATS.trace at exit
GC time and collections per generation are written to $LH_GCSTATS (JSON) at exit.
"""
import asyncio, gc, os, re, sys, time, atexit, json
patches = set(filter(None, os.environ.get("LH_PATCH", "").split(",")))
import linkhub.redirect as r
import linkhub.db as db

gc_stats = {"time": 0.0, "n": [0, 0, 0]}
_t = [0.0]
def _cb(phase, info):
    if phase == "start": _t[0] = time.perf_counter()
    else:
        gc_stats["time"] += time.perf_counter() - _t[0]; gc_stats["n"][info["generation"]] += 1
gc.callbacks.append(_cb)
def _dump():
    with open(os.environ.get("LH_GCSTATS", "/dev/null"), "w") as f: json.dump(gc_stats, f)
atexit.register(_dump)

if "re" in patches:
    r._CODE = re.compile(r"[A-Za-z0-9_-]{6,32}")
if "cache" in patches:
    orig = r.RedirectApp._lookup
    cache = {}
    def _lookup(self, code):
        row = cache.get(code)
        if row is None:
            row = orig(self, code)
            if row is not None:
                if len(cache) >= 100_000: cache.clear()
                cache[code] = row
        return row
    r.RedirectApp._lookup = _lookup
if "fastwait" in patches:
    async def write(self, fn, *, timeout=None):
        if self._closed: raise db.DatabaseClosed("closed")
        loop = asyncio.get_running_loop()
        job = db._Job(fn=fn, future=loop.create_future(), loop=loop)
        self._queue.put(job)
        if timeout is None: return await job.future
        fut = job.future
        handle = loop.call_later(timeout, lambda: None)  # a timer only, no extra task/future
        try:
            return await fut
        finally:
            handle.cancel()
    db.Database.write = write
if "nowait" in patches:  # NOT durable: what awaiting the commit costs
    async def write(self, fn, *, timeout=None):
        loop = asyncio.get_running_loop()
        job = db._Job(fn=fn, future=loop.create_future(), loop=loop)
        self._queue.put(job)
        class S: queued = 0
        return S()
    db.Database.write = write
if "noclick" in patches:  # NOT a design: no click recorded at all
    async def _record_click(self, code, link, scope): return None
    r.RedirectApp._record_click = _record_click
if "gc" in patches:
    import linkhub.server as srv
    orig_run_loop = srv._run_loop
    def _run_loop(main):
        gc.collect(); gc.freeze(); gc.set_threshold(50_000, 20, 100)
        orig_run_loop(main)
    srv._run_loop = _run_loop

if "batchwriter" in patches:  # clicks of one batch: one store_events call, no per-click savepoints
    import functools
    import linkhub.outbox as ob
    orig_commit = db.Database._commit_batch
    def _commit_batch(self, conn, batch):
        clicks = [j for j in batch if isinstance(j.fn, functools.partial) and j.fn.func is ob.store_events]
        if len(clicks) != len(batch):
            return orig_commit(self, conn, batch)
        try:
            conn.execute("BEGIN IMMEDIATE")
            stored = ob.store_events(conn, [e for j in clicks for e in j.fn.keywords["batch"]])
            conn.execute("COMMIT")
            for j in clicks: j.result = stored
            self.stats.transactions += 1; self.stats.jobs += len(batch)
        except Exception as exc:
            if conn.in_transaction: conn.execute("ROLLBACK")
            for j in clicks: j.error = exc
        db._wake(batch)
    db.Database._commit_batch = _commit_batch

if "switch" in patches:
    sys.setswitchinterval(0.0005)
if "loopwriter" in patches:  # SKETCH: commit clicks on the event-loop thread itself, one transaction per loop pass
    import functools
    import linkhub.outbox as ob
    orig_write = db.Database.write
    pending = []
    conns = {}
    def flush(self):
        batch = pending[:]
        pending.clear()
        conn = conns.get("c")
        if conn is None:
            conn = conns["c"] = db.connect(self.path)
            if "ckpt" in patches or hasattr(db.Database, "_checkpoint_loop"):  # a thread checkpoints
                conn.execute("PRAGMA wal_autocheckpoint = 0")
        try:
            conn.execute("BEGIN IMMEDIATE")
            stored = ob.store_events(conn, [e for e, _ in batch])
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction: conn.execute("ROLLBACK")
            for _, f in batch:
                if not f.done(): f.set_exception(exc)
            return
        for _, f in batch:
            if not f.done(): f.set_result(stored)
    async def write(self, fn, *, timeout=None):
        if isinstance(fn, functools.partial) and fn.func is ob.store_events:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            if not pending:
                loop.call_soon(flush, self)
            for e in fn.keywords["batch"]:
                pending.append((e, fut))
            return await fut
        return await orig_write(self, fn, timeout=timeout)
    db.Database.write = write

if "ckpt" in patches:  # checkpoints off the writer's path: a thread of their own
    import threading
    def start(self):
        if self._thread is not None:
            return
        conn = db.connect(self.path)
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._thread = threading.Thread(target=self._run, args=(conn,), name="linkhub-writer", daemon=True)
        self._thread.start()
        def checkpointer():
            c = db.connect(self.path)
            while True:
                time.sleep(0.25)
                c.execute("PRAGMA wal_checkpoint(PASSIVE)")
        threading.Thread(target=checkpointer, name="linkhub-checkpointer", daemon=True).start()
    db.Database.start = start
if "restart" in patches:
    import threading
    orig_start = db.Database.start
    def start_with_restart(self):
        orig_start(self)
        def restarter():
            c = db.connect(self.path)
            while True:
                time.sleep(1.0)
                try:
                    c.execute("PRAGMA wal_checkpoint(RESTART)")
                except Exception as exc:  # busy: try again next second
                    print("checkpoint:", exc, file=sys.stderr)
        threading.Thread(target=restarter, name="linkhub-checkpointer", daemon=True).start()
    db.Database.start = start_with_restart
if "seqid" in patches:  # time-ordered click ids: events_by_id inserts append instead of landing on random pages
    import secrets
    import linkhub.ids as ids
    ids.event_id = lambda: f"lh_{time.time_ns() // 1000:014x}{secrets.token_hex(4)}"

if "trace" in patches:  # where a click's wait for its commit goes
    import threading
    T = {"n": 0, "queued": 0.0, "commit": 0.0, "wake": 0.0, "batches": 0, "batch_wall": 0.0, "idle_get": 0.0}
    orig_put_write = db.Database.write
    async def write(self, fn, *, timeout=None):
        fn._t_put = time.perf_counter()
        return await orig_put_write(self, fn, timeout=timeout)
    db.Database.write = write
    orig_commit2 = db.Database._commit_batch
    def _commit_batch(self, conn, batch):
        t0 = time.perf_counter()
        for j in batch:
            if hasattr(j.fn, "_t_put"): T["queued"] += t0 - j.fn._t_put; T["n"] += 1
        r = orig_commit2(self, conn, batch)  # includes _wake (call_soon_threadsafe)
        t1 = time.perf_counter()
        T["batches"] += 1; T["batch_wall"] += t1 - t0
        for j in batch:
            j._t_done = t1
        return r
    db.Database._commit_batch = _commit_batch
    orig_resolve = db._resolve
    def _resolve(jobs):
        now = time.perf_counter()
        for j in jobs:
            if hasattr(j, "_t_done"): T["wake"] += now - j._t_done
        return orig_resolve(jobs)
    db._resolve = _resolve
    def _dump2():
        n = max(T["n"], 1); b = max(T["batches"], 1)
        with open(os.environ.get("LH_GCSTATS", "/dev/null") + ".trace", "w") as f:
            json.dump({"clicks": T["n"], "batches": T["batches"], "clicks_per_batch": T["n"] / b,
                       "queue_wait_ms": T["queued"] / n * 1e3, "batch_wall_ms": T["batch_wall"] / b * 1e3,
                       "wake_ms": T["wake"] / n * 1e3}, f)
    atexit.register(_dump2)

from linkhub.cli import cli
sys.argv[0] = "linkhub"
cli()
