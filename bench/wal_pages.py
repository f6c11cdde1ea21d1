"""Which tables and indexes a database's recent commits wrote: pages per commit, from its WAL.

    python bench/wal_pages.py DB [--commits 300]

Run it while `linkhub serve` is under load (or on a copy of DB and DB-wal taken then): it
reads the frames of the WAL's last COMMITS commits and names the B-tree of each page with
SQLite's `dbstat` table. Each page a commit changes is written whole (4 KiB) to the WAL,
and later once more into the database file by a checkpoint, so this is where the writer's
I/O goes: for clicks, mostly the indexes whose keys are random (docs/performance.md).
"""

from __future__ import annotations

import argparse
import collections
import sqlite3
import struct
from pathlib import Path

_WAL_HEADER = 32
_FRAME_HEADER = 24


def commits_in_wal(wal: bytes) -> tuple[int, list[list[int]]]:
    """The page size and, per commit still in the WAL, the page numbers it wrote (oldest first)."""
    page_size = struct.unpack(">I", wal[8:12])[0]
    salt = wal[16:24]
    commits: list[list[int]] = []
    pages: list[int] = []
    offset = _WAL_HEADER
    while offset + _FRAME_HEADER + page_size <= len(wal):
        page, commit_size = struct.unpack(">II", wal[offset : offset + 8])
        if wal[offset + 8 : offset + 16] != salt:  # a frame of an earlier pass over the file: the end
            break
        pages.append(page)
        if commit_size:  # the last frame of a commit records the database size
            commits.append(pages)
            pages = []
        offset += _FRAME_HEADER + page_size
    return page_size, commits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db", type=Path)
    parser.add_argument("--commits", type=int, default=300, help="how many of the latest commits to count")
    args = parser.parse_args()

    page_size, commits = commits_in_wal(Path(f"{args.db}-wal").read_bytes())
    commits = commits[-args.commits :]
    if not commits:
        raise SystemExit("no commit in the WAL (it was checkpointed and started over): run it under load")
    conn = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    owner = {page: f"{name} ({kind})" for name, page, kind in conn.execute("SELECT name, pageno, pagetype FROM dbstat")}
    written = collections.Counter(owner.get(page, "(page added since)") for pages in commits for page in pages)
    total = sum(len(pages) for pages in commits)
    print(f"{len(commits)} commits, {total / len(commits):.1f} pages of {page_size} bytes each on average")
    print("| B-tree (page kind) | pages per commit | share |")
    print("|---|---:|---:|")
    for name, count in written.most_common():
        print(f"| {name} | {count / len(commits):.1f} | {count / total:.0%} |")


if __name__ == "__main__":
    main()
