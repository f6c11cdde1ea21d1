"""The package's layers import one way: cli → web → services → delivery → core → store → util.

A module may import its own layer and the layers below it, never one above: the domain never
knows about HTTP, the store never about webhooks. docs/architecture.md draws the same map.
Above core/ (delivery, services, web, cli) there is no SQL, and outside store/ nobody knows the
store is SQLite.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "linkhub"

# Lowest first. `settings` is the server's configuration, read by every layer; `util` holds
# helpers that know nothing of linkhub.
LAYERS = ["util", "settings", "store", "core", "delivery", "services", "web", "cli"]


def layer_of(module: str) -> str | None:
    """'linkhub.core.webhooks' → 'core'; the package root and __main__ belong to no layer."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every linkhub module the file imports, with its line: `from linkhub.x import y` names both x and x.y."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("linkhub")]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; linkhub imports are absolute"
            if node.module and node.module.startswith("linkhub"):
                found.append((node.lineno, node.module))
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_imports_run_down_the_layers(path: Path) -> None:
    own = layer_of(module_name(path))
    if own is None:
        return
    upward = [
        f"line {line}: {target} ({layer_of(target)})"
        for line, target in imports(path)
        if (layer := layer_of(target)) is not None and LAYERS.index(layer) > LAYERS.index(own)
    ]
    assert not upward, f"{module_name(path)} ({own}) imports a layer above its own:\n" + "\n".join(upward)


def test_every_module_is_in_a_layer() -> None:
    """A new module goes into a layer's folder, so the map stays whole."""
    loose = [module_name(p) for p in MODULES if layer_of(module_name(p)) is None]
    assert sorted(loose) == ["linkhub", "linkhub.__main__"]


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule above would pass vacuously if `imports` found nothing: prove it finds this one."""
    sample = tmp_path / "sample.py"
    sample.write_text("from linkhub.web.app import create_app\nfrom linkhub.core import outbox\nimport os\n")
    assert imports(sample) == [(1, "linkhub.web.app"), (1, "linkhub.web.app.create_app"),
                               (2, "linkhub.core"), (2, "linkhub.core.outbox")]
    assert layer_of("linkhub.web.app.create_app") == "web"


# -- SQL belongs to store/ and core/ ---------------------------------------------------------

# A string that starts like a statement: the front ends ask core/ and store/ for what they need.
_SQL = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|WITH|CREATE|DROP|ALTER|PRAGMA|BEGIN|COMMIT|ROLLBACK"
                  r"|SAVEPOINT|RELEASE|VACUUM|ATTACH)\b")
_RUNS_SQL = {"execute", "executemany", "executescript"}


def sql_in(path: Path) -> list[str]:
    """Each `.execute(…)`-like call, and each string literal (f-strings' parts too) that reads as SQL."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _RUNS_SQL:
            found.append(f"line {node.lineno}: .{node.func.attr}(…)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL.match(node.value):
            found.append(f"line {node.lineno}: {node.value[:40]!r}")
    return found


ABOVE_CORE = [p for p in MODULES if (layer := layer_of(module_name(p))) and LAYERS.index(layer) > LAYERS.index("core")]


@pytest.mark.parametrize("path", ABOVE_CORE, ids=[module_name(p) for p in ABOVE_CORE])
def test_no_sql_above_core(path: Path) -> None:
    """Delivery, the services and the front ends (web/, cli/) ask core/ and store/ for what they need."""
    found = sql_in(path)
    assert not found, f"{module_name(path)} runs or writes SQL; ask core/ or store/ instead:\n" + "\n".join(found)


def test_the_sql_checker_sees_sql(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('conn.execute(f"SELECT {cols} FROM events")\nsql = "  insert into x"\nok = "Selected"\n'
                      'db.executemany(q, rows)\n')
    # Lower case is not looked for: too many sentences start with "update" or "with".
    assert sorted(sql_in(sample)) == ["line 1: 'SELECT '", "line 1: .execute(…)", "line 4: .executemany(…)"]


def _sqlite3_uses(path: Path) -> list[str]:
    """Where the file imports sqlite3 or names it (`except sqlite3.Error`, `sqlite3.Row`), with the line."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] == "sqlite3"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlite3":
            found.append(f"line {node.lineno}: from {node.module} import …")
        elif isinstance(node, ast.Name) and node.id == "sqlite3":
            found.append(f"line {node.lineno}: sqlite3")
    return found


OUTSIDE_THE_STORE = [p for p in MODULES if layer_of(module_name(p)) != "store"]


@pytest.mark.parametrize("path", OUTSIDE_THE_STORE, ids=[module_name(p) for p in OUTSIDE_THE_STORE])
def test_only_the_store_knows_it_is_sqlite(path: Path) -> None:
    """Outside the store, connections are `store.Connection`, rows `store.Row`, failures `store.StoreError`."""
    uses = _sqlite3_uses(path)
    assert not uses, f"{module_name(path)} uses sqlite3 directly:\n" + "\n".join(uses)


def test_the_sqlite3_checker_sees_an_import_and_a_catch(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import sqlite3\ntry:\n    pass\nexcept sqlite3.Error:\n    pass\n")
    assert _sqlite3_uses(sample) == ["line 1: import sqlite3", "line 4: sqlite3"]
