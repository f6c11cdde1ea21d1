"""Shared test fixtures, in two tiers, both on a real database: a SQLite file, or with
LINKHUB_TEST_BACKEND=postgresql a database of its own on a throwaway PostgreSQL cluster (pgserver.py).

`db_path` is what `--db` takes: a Path, or a postgresql:// URL. Tests about the SQLite file itself
(its WAL, backup, modes, `linkhub check`) are marked `sqlite_file` and are left out of a PostgreSQL run.

In-process (inprocess.py, a plugin): `app`/`make_app`/`hub_app`, the real app answering an httpx
client in this process. Subprocess (servers.py): `server`/`make_server`/`hub`/`shared_server`, a
real `linkhub serve` on a free port, for what needs a process boundary or a socket.

Commands: `linkhub()` runs one in-process with click's CliRunner and answers as a process would;
`linkhub_process()` runs a real `python -m linkhub`, where the process itself is the point.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from linkhub.cli.main import cli
from linkhub.core import accounts
from linkhub.store import Row, connect, migrate

from servers import Server, start_server

# Fixtures of plugin modules: real local HTTP receivers for webhook tests (sink: make_sink,
# make_receiver) and the in-process app (inprocess: app, make_app, hub_app).
pytest_plugins = ("sink", "inprocess", "pgserver")
# Helpers whose asserts should explain themselves when a test fails through them.
pytest.register_assert_rewrite("delivery_support")
pytest.register_assert_rewrite("pgserver")
import pgserver  # noqa: E402 - after its registration above

BACKEND = os.environ.get("LINKHUB_TEST_BACKEND", "sqlite")
assert BACKEND in ("sqlite", "postgresql"), f"LINKHUB_TEST_BACKEND={BACKEND!r}: sqlite or postgresql"
ON_POSTGRESQL = BACKEND == "postgresql"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not ON_POSTGRESQL:
        return
    kept = [item for item in items if item.get_closest_marker("sqlite_file") is None]
    left = [item for item in items if item.get_closest_marker("sqlite_file") is not None]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path | str:
    """A database with every migration applied, made once: each test's `db_path` is a copy of it."""
    if ON_POSTGRESQL:
        cluster = request.getfixturevalue("postgresql_server")
        return pgserver.template(cluster)
    path = tmp_path_factory.mktemp("migrated") / "linkhub.db"
    conn = connect(path)
    migrate(conn)
    conn.close()
    assert not Path(f"{path}-wal").exists()  # closed: all of it is in the one file
    return path


@pytest.fixture
def db_path(tmp_path: Path, migrated: Path | str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The test's own migrated database: a copy of `migrated` (a file, or a database made from the template)."""
    if isinstance(migrated, str):
        with pgserver.copy_of(request.getfixturevalue("postgresql_server"), migrated) as url:
            yield url
        return
    path = tmp_path / "linkhub.db"
    shutil.copy2(migrated, path)  # its mode (0600, as connect made it) too
    yield path


@pytest.fixture
def make_server(db_path: Path) -> Iterator[Any]:
    """Factory: `make_server(*args, env=…)` starts a server on `db_path`; all are stopped afterwards."""
    started: list[Server] = []

    def make(*args: str, env: dict[str, str] | None = None, path: Path | None = None) -> Server:
        server = start_server(path or db_path, *args, env=env)
        started.append(server)
        return server

    yield make
    for server in started:
        if server.proc.poll() is None:
            server.kill()


@pytest.fixture
def server(make_server: Any) -> Server:
    return make_server()


@pytest.fixture
def hub(make_server: Any) -> Server:
    """A server that may deliver to receivers on 127.0.0.1."""
    return make_server("--allow-private-targets")


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Server]:
    """One real server for a whole test module (a server per test would make the suite slow).

    Tests that use it give themselves an account of their own on it, so they cannot see each
    other's data; tests that need other settings start their own with `make_server`.
    """
    with contextlib.ExitStack() as stack:
        path: Path | str
        if ON_POSTGRESQL:
            path = stack.enter_context(pgserver.copy_of(request.getfixturevalue("postgresql_server"),
                                                         request.getfixturevalue("migrated")))
        else:
            path = tmp_path_factory.mktemp("shared") / "linkhub.db"
            conn = connect(path)
            migrate(conn)
            conn.close()
        server = start_server(path)
        yield server
        assert server.stop() == 0


@dataclass
class Account:
    id: str
    api_key: str
    secret: str


def create_account(db_path: Path | str, *, secret: str = "outreach-secret", **options: Any) -> Account:
    """Create an account straight in the database, as `linkhub accounts create` does."""
    conn = connect(db_path)
    try:
        account, key = accounts.create(conn, "Test account", secret, **options)
    finally:
        conn.close()
    return Account(id=account.id, api_key=key, secret=secret)


@pytest.fixture
def account(db_path: Path) -> Account:
    return create_account(db_path)


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def outreach_body(
    data: list[str],
    *,
    mailing: str | int = "m-1",
    prospect: str | int = "p-1",
    email: str = "prospect@example.com",
    urls: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "data": data,
        "meta": {
            "mailing": {"id": mailing},
            "prospect": {"email": email, "id": prospect},
            "user": {"email": "sender@example.com", "id": "u-1"},
            "urls": urls if urls is not None else {},
        },
    }


def post_links(client: httpx.Client, account: Account, body: dict[str, Any] | bytes,
               *, signature: str | None = "sign") -> httpx.Response:
    """POST to the account's Outreach endpoint, signed with its secret unless told otherwise."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        headers["Outreach-Webhook-Signature"] = sign(account.secret, raw)
    elif signature is not None:
        headers["Outreach-Webhook-Signature"] = signature
    return client.post(f"/outreach/{account.id}/links", content=raw, headers=headers)


def query(db_path: Path | str, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
    conn = connect(db_path, readonly=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def hold_write_lock(conn: Any) -> None:
    """Begin a write transaction on `conn`, which blocks every other writer as another process's would (a
    long command, a migration…): SQLite's write lock, or PostgreSQL's (`PgConnection.begin`); readers go
    on. Ended by `conn.undo()`."""
    conn.begin()


# -- the CLI ------------------------------------------------------------------------------------


def _without_linkhub_env(env: dict[str, str] | None) -> dict[str, str | None]:
    """The test's LINKHUB_* variables unset (they would configure the command), then `env`."""
    return {**{name: None for name in os.environ if name.startswith("LINKHUB_")}, **(env or {})}


class _LastResort(logging.Handler):
    """What Python does with the records of a process that set up no logging (as the commands but serve
    do): WARNING and up, the message alone, on stderr. Only the command's own thread: not an app's."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._thread:
            sys.stderr.write(self.format(record) + "\n")


@dataclass
class Ran:
    """What a `linkhub` command did, named as subprocess.CompletedProcess names it, and `output`: stdout and
    stderr interleaved, as a terminal shows them."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    output: str


def linkhub(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            input: str | None = None) -> Ran:
    """`linkhub ARGS`, run in this process with click's CliRunner; the answer reads as a process's.

    stdout and stderr apart, `input` on stdin, LINKHUB_* variables only those given. An exception that
    escapes the command ends it as it would end the process: its traceback on stderr, exit code 1, so
    a test's `"Traceback" not in stderr` still means what it says.
    """
    last_resort = _LastResort()
    logging.getLogger().addHandler(last_resort)
    try:
        with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
            result = CliRunner().invoke(cli, list(args), input=input, env=_without_linkhub_env(env),
                                        prog_name="linkhub")
    finally:
        logging.getLogger().removeHandler(last_resort)
    code, stderr, output = result.exit_code, result.stderr, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit) and result.exc_info:
        escaped = "".join(traceback.format_exception(*result.exc_info))
        code, stderr, output = 1, stderr + escaped, output + escaped
    return Ran(["linkhub", *args], code, result.stdout, stderr, output)


def linkhub_started(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[str]:
    """`python -m linkhub ARGS` started as a process of its own, stdin, stdout and stderr piped."""
    environment = {name: value for name, value in {**os.environ, **_without_linkhub_env(env)}.items()
                   if value is not None}
    return subprocess.Popen([sys.executable, "-m", "linkhub", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment, cwd=cwd)


def finished(process: subprocess.Popen[str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    """What a started process wrote and its exit code, once it ends (killed if it takes more than a minute)."""
    try:
        stdout, stderr = process.communicate(input, timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def linkhub_process(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
                    input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m linkhub ARGS` as a real process: for the few tests where the process itself is the point."""
    return finished(linkhub_started(*args, env=env, cwd=cwd), input)
