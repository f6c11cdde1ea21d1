"""The database, its -wal and -shm and every backup are readable by their owner only (0600)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conftest import create_account, linkhub, outreach_body, post_links

# The modes of the SQLite file, its -wal and -shm and its backups.
pytestmark = pytest.mark.sqlite_file


@pytest.fixture(autouse=True)
def permissive_umask():
    # The usual umask (022) would give new files 0644: the modes below must not come from it.
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_migrate_creates_the_database_0600(tmp_path):
    path = tmp_path / "new.db"
    assert linkhub("migrate", "--db", str(path)).returncode == 0
    assert mode(path) == 0o600


def test_a_serving_database_and_its_wal_and_shm_are_0600(make_server, tmp_path):
    path = tmp_path / "served.db"  # created by `serve` itself
    server = make_server(path=path)
    account = create_account(path)
    with server.client() as client:
        assert post_links(client, account, outreach_body(["https://example.com/a"])).status_code == 200
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert wal.exists() and shm.exists()
        assert (mode(path), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
    assert server.stop() == 0
    assert "mode" not in server.output  # nothing to warn about


def test_a_backup_is_0600(db_path, tmp_path):
    dest = tmp_path / "copy.db"
    made = linkhub("backup", str(dest), "--db", str(db_path))
    assert made.returncode == 0, made.stderr
    assert mode(dest) == 0o600


def test_serve_warns_about_a_database_others_can_read_and_leaves_its_mode(make_server, db_path):
    os.chmod(db_path, 0o644)
    server = make_server()
    assert server.stop() == 0
    assert f"{db_path} has mode 0644" in server.output and "chmod 600" in server.output
    assert mode(db_path) == 0o644
