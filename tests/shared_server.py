"""Fixtures for test modules that run on the module's shared server (conftest.shared_server).

A module imports `server`, `db` and `account` from here; they stand in for conftest's
per-test fixtures of the same names. Each test still gets an account of its own, so tests
cannot see each other's data.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Account, Server, create_account


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


@pytest.fixture
def db(shared_server: Server) -> Path:
    return shared_server.db_path


@pytest.fixture
def account(db: Path) -> Account:
    return create_account(db)
