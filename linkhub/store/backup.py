"""A consistent copy of the database while the server runs: `linkhub backup`.

Copying the file is not enough (recent commits live in the WAL until a checkpoint), and the
Docker image has no `sqlite3` shell for `.backup`. SQLite's online backup copies every page
as of one read snapshot, which in WAL mode never holds up the server's writer.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from linkhub.store.db import StoreError, connect


class BackupError(Exception):
    """The backup could not be made; nothing was left at the destination."""


@dataclass(frozen=True)
class Backup:
    path: Path
    bytes: int
    seconds: float


def backup(source: Path, dest: Path) -> Backup:
    """Copy `source` into the new file `dest`: one self-contained file (no WAL), checked after copying.

    The copy is written beside `dest` and renamed into place once complete, so `dest` is
    either the whole backup or absent.
    """
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if dest.exists():
        raise BackupError(f"{dest} already exists: a backup never overwrites a file, choose a new name")
    if not dest.parent.is_dir():
        raise BackupError(f"no directory {dest.parent} to write {dest.name} in")
    partial = dest.with_name(dest.name + ".partial")
    started = time.monotonic()
    try:
        _copy(source, partial)
        os.replace(partial, dest)
        _sync_directory(dest.parent)
    except (StoreError, sqlite3.Error, OSError) as exc:  # sqlite3.Error: from the backup call itself
        raise BackupError(f"backup of {source} failed: {exc}") from None
    finally:
        for leftover in (partial, *(Path(f"{partial}{suffix}") for suffix in ("-journal", "-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
    return Backup(path=dest, bytes=dest.stat().st_size, seconds=time.monotonic() - started)


def _copy(source: Path, target: Path) -> None:
    # Owner-only before SQLite writes a page into it: the copy holds the same secrets (its
    # -journal gets the same mode). A leftover from an interrupted backup is emptied and tightened.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    os.close(fd)
    src = connect(source, readonly=True)
    dst = sqlite3.connect(target, isolation_level=None)
    try:
        src.backup(dst)  # every page in one step: one read snapshot, consistent whatever the server commits
        # The copy carries the source's WAL mode; a rollback journal makes it one file on its own.
        dst.execute("PRAGMA journal_mode = DELETE")
        problems = [row[0] for row in dst.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise BackupError(f"the copy failed its check: {'; '.join(problems[:5])}")
    finally:
        dst.close()
        src.close()
    with open(target, "rb+") as copy:  # on disk before it takes the backup's name
        os.fsync(copy.fileno())


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
