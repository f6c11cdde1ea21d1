"""A throwaway PostgreSQL server for the tests (a plugin of conftest.py): Debian's initdb and pg_ctl, no Docker.

`postgresql_server` (session) starts one cluster the first time a test asks for it: in a new temporary
directory, listening only on 127.0.0.1 at a free port, with a random password (scram-sha-256), fsync and
synchronous commit off (nothing in it outlives the run), and stops it and deletes the directory at the end
of the session. PostgreSQL refuses to run as root, so when the tests run as root (CI does) the cluster is
initialised and run as the `postgres` system user through runuser. `pg_url` is a new empty database for
one test, dropped after it.

Without a PostgreSQL server on the machine the tests that need one skip, saying why; in CI (CI=true)
they fail instead, so a runner that lost its PostgreSQL cannot pass by skipping them (.ci/run installs
Debian's postgresql package when initdb is missing).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import psycopg

HOST = "127.0.0.1"
SUPERUSER = "linkhub_test"
# When the tests run as root, the cluster runs as this user (Debian's postgresql package creates it).
SERVICE_USER = "postgres"


def find_bindir() -> Path | None:
    """The directory of initdb and pg_ctl: Debian keeps them in /usr/lib/postgresql/<major>/bin, off PATH."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "pg_ctl").exists():
        return Path(found).resolve().parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    bindir: Path
    root: Path
    port: int
    password: str
    as_user: str | None  # run the binaries as this user (we are root), or as ourselves (None)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@{HOST}:{self.port}/{database}"

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_user is not None:
            command = ["runuser", "-u", self.as_user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason} (.ci/run installs Debian's postgresql)",
                    pytrace=False)
    pytest.skip(f"no PostgreSQL server to test against: {reason}")


def start_cluster(*, durable: bool = False) -> Cluster:
    """A new cluster, started; the caller stops it (Cluster.stop) and removes `root`. Not `durable` (the
    tests'): no fsync, nothing flushed at commit; `durable` (the benchmarks'): PostgreSQL's defaults."""
    bindir = find_bindir()
    if bindir is None:
        _unavailable("initdb not found (Debian: apt-get install postgresql)")
        raise AssertionError("unreachable")
    as_user: str | None = None
    if os.geteuid() == 0:
        try:
            service = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            _unavailable(f"running as root and there is no {SERVICE_USER!r} user to run PostgreSQL as")
            raise AssertionError("unreachable") from None
        as_user = SERVICE_USER
    root = Path(tempfile.mkdtemp(prefix="linkhub-pg-"))
    password = secrets.token_urlsafe(24)
    (root / "pwfile").write_text(password + "\n")
    if as_user is not None:
        for path in (root, root / "pwfile"):
            os.chown(path, service.pw_uid, service.pw_gid)
    cluster = Cluster(bindir, root, 0, password, as_user)
    made = cluster.run("initdb", "-D", str(cluster.data), "-U", SUPERUSER, "--pwfile", str(root / "pwfile"),
                       "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync")
    if made.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed:\n{made.stdout}\n{made.stderr}")
    # A port picked free can be taken before the server binds it: try another a few times.
    for attempt in itertools.count(1):
        cluster.port = _free_port()
        options = f"-c listen_addresses={HOST} -c port={cluster.port} -c unix_socket_directories='' "
        options += ("-c max_connections=100" if durable else
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        started = cluster.run("pg_ctl", "-D", str(cluster.data), "-l", str(root / "server.log"), "-w", "-t", "60",
                              "-o", options, "start")
        if started.returncode == 0:
            return cluster
        if attempt == 3:
            log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
            cluster.stop()
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"pg_ctl start failed:\n{started.stdout}\n{started.stderr}\n{log}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[Cluster]:
    """One PostgreSQL cluster for the session (per xdist worker), stopped and deleted at its end."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[test]')")
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


_databases = itertools.count(1)


@pytest.fixture
def pg_url(postgresql_server: Cluster) -> Iterator[str]:
    """The URL of a new, empty database of the session's cluster, dropped after the test."""
    import psycopg

    name = f"test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgresql_server.url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgresql_server.url(name)
    finally:
        with psycopg.connect(postgresql_server.url(), autocommit=True) as admin, contextlib.suppress(psycopg.Error):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(cluster: Cluster) -> psycopg.Connection[tuple[object, ...]]:
    import psycopg

    return psycopg.connect(cluster.url(), autocommit=True)


def template(cluster: Cluster) -> str:
    """The URL of a database with every migration applied, made once per session (and worker): what
    `copy_of` copies for each test, as a SQLite run copies one migrated file."""
    from linkhub.store import connect, migrate

    name = f"template_{os.getpid()}"
    with _admin(cluster) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    conn = connect(cluster.url(name))
    try:
        migrate(conn)
    finally:
        conn.close()
    return cluster.url(name)


@contextlib.contextmanager
def copy_of(cluster: Cluster, template_url: str) -> Iterator[str]:
    """A new database made from the template database of `template_url`, dropped afterwards."""
    import psycopg

    source = template_url.rsplit("/", 1)[1]
    name = f"test_{os.getpid()}_{next(_databases)}"
    with _admin(cluster) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    try:
        yield cluster.url(name)
    finally:
        with _admin(cluster) as admin, contextlib.suppress(psycopg.Error):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
