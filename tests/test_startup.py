"""`linkhub serve` that cannot start says why in one line on stderr and exits non-zero."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

START_FAILS_WITHIN_S = 60
SERVE = [sys.executable, "-m", "linkhub", "serve", "--port", "0"]


def serve(*args: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """`linkhub serve … --port 0` expected to fail before it serves."""
    return subprocess.run([*(prefix or []), *SERVE, *args], capture_output=True, text=True,
                          timeout=START_FAILS_WITHIN_S)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def read_only(target: Path, mode: int, *, keep_writable: tuple[Path, Path] | None = None) -> list[str]:
    """Make `target` read-only for the server; returns the prefix of its command line.

    Root writes whatever a file's mode says, so as root the server runs in a mount namespace of
    its own where `target` is bind-mounted read-only (the host's mounts are not touched), and
    `keep_writable` = (source, path) mounts the writable file `source` at `path` inside it.
    """
    if os.geteuid() != 0:
        os.chmod(target, mode)
        return []
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare(1): no way to make a file read-only for root")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0"'
    paths = [str(target)]
    if keep_writable is not None:
        script += ' && mount --bind "$1" "$2" && shift 2'
        paths += [str(keep_writable[0]), str(keep_writable[1])]
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script + ' && exec "$@"', *paths]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {probe.stderr.strip()}")
    return prefix


def test_a_missing_directory_is_named(tmp_path):
    line = one_line_error(serve("--db", str(tmp_path / "no-such-dir" / "linkhub.db")))
    assert "no directory" in line and "no-such-dir" in line
    assert not (tmp_path / "no-such-dir").exists()


def test_a_directory_given_as_the_database_is_refused(tmp_path):
    result = serve("--db", str(tmp_path))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "is a directory" in result.stderr.strip().splitlines()[-1]


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path):
    garbage = tmp_path / "linkhub.db"
    content = b"this is not a database\n" * 400
    garbage.write_bytes(content)
    line = one_line_error(serve("--db", str(garbage)))
    assert "is not a SQLite database" in line
    assert garbage.read_bytes() == content


def test_a_postgresql_server_that_does_not_answer_is_named_without_the_password():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    line = one_line_error(serve("--db", f"postgresql://someone:hunter2-secret@127.0.0.1:{port}/linkhub"))
    assert line.startswith(f"Error: cannot connect to postgresql://someone:***@127.0.0.1:{port}/linkhub")
    assert "hunter2" not in line


def test_a_port_in_use_is_named(db_path):
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "linkhub", "serve", "--db", str(db_path), "--port", str(port)],
                                capture_output=True, text=True, timeout=START_FAILS_WITHIN_S)
    finally:
        taken.close()
    line = one_line_error(result)
    assert f"127.0.0.1:{port}" in line and "in use" in line


# Host names that fail before any lookup (not valid IDNA: an empty label, a 64-character one),
# so no test asks the machine's DNS; and an IP literal that is no address of this machine.
@pytest.mark.parametrize("host", ["a..b", "x" * 64 + ".example"])
def test_a_host_that_cannot_resolve_is_named(db_path, host):
    line = one_line_error(serve("--db", str(db_path), "--host", host))
    assert "--host" in line and host in line


def test_an_address_of_another_machine_is_named(db_path):
    line = one_line_error(serve("--db", str(db_path), "--host", "192.0.2.1"))  # TEST-NET-1
    assert "192.0.2.1" in line and "not an address of this machine" in line


@pytest.mark.sqlite_file
def test_a_read_only_database_file_is_named(db_path):
    line = one_line_error(serve("--db", str(db_path), prefix=read_only(db_path, 0o400)))
    assert "read-only" in line and str(db_path) in line


@pytest.mark.sqlite_file
def test_a_read_only_directory_is_named(db_path, tmp_path):
    # The database file itself is writable; its -wal and -shm cannot be created beside it.
    directory = tmp_path / "data"
    directory.mkdir()
    path = directory / "linkhub.db"
    shutil.copy(db_path, path)
    line = one_line_error(serve("--db", str(path), prefix=read_only(directory, 0o555, keep_writable=(db_path, path))))
    assert "read-only" in line and str(directory) in line and "-wal" in line
    os.chmod(directory, 0o755)
