"""The documentation says what the code does: each test reads a doc and introspects the code,
and fails naming what one has and the other lacks.

- README.md's Configuration table ↔ the settings registry (flag, environment, default), and the registry ↔
  the options of `linkhub serve`;
- docs/api.md's endpoint table and its endpoint headings ↔ the app's routes (method + path);
- README.md's Commands section ↔ the `linkhub` command tree;
- docs/api.md's error-code table ↔ every error code linkhub/ can answer (and only those).

(The metrics table of docs/operations.md is checked against /metrics in test_observability.py.)
"""

from __future__ import annotations

import ast
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest

from linkhub.cli.main import cli, serve
from linkhub.settings import REGISTRY, Setting, Settings
from linkhub.web.app import LinkhubApp

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
API_MD = ROOT / "docs" / "api.md"
SOURCE = ROOT / "linkhub"

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

Endpoint = tuple[str, str]  # (method, path with its parameters unnamed)


# -- reading Markdown ------------------------------------------------------------------------


def section(path: Path, heading: str) -> str:
    """The text under `heading` (a whole heading line, e.g. `## Commands`) up to the next heading
    of the same or a higher level."""
    lines = path.read_text().splitlines()
    assert heading in lines, f"{path.name} has no heading {heading!r}"
    start = lines.index(heading) + 1
    level = len(heading) - len(heading.lstrip("#"))
    body = []
    in_code = False
    for line in lines[start:]:
        in_code ^= line.startswith("```")
        if not in_code and re.match(rf"#{{1,{level}}} ", line):
            break
        body.append(line)
    return "\n".join(body)


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the first Markdown table in `text`, as stripped cells (header and rule left out)."""
    lines = [line.strip() for line in text.splitlines()]
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    assert start is not None, "no table"
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        # `\|` inside a cell is a literal bar, not a column separator.
        cells = re.split(r"(?<!\\)\|", line.strip("|"))
        rows.append([cell.strip() for cell in cells])
    return rows


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def normalize_path(path: str) -> str:
    """Route parameters compared by position, not name: the docs say `{id}` where the code says `{webhook_id}`."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def endpoints(methods: set[str], path: str) -> set[Endpoint]:
    """One (method, path) per method; HEAD goes with GET (api.md says once, under Conventions, that
    every GET route answers HEAD too)."""
    if "GET" in methods:
        methods = methods - {"HEAD"}
    return {(method, normalize_path(path)) for method in methods}


# -- 1. settings: README's Configuration table ↔ the settings registry ↔ `linkhub serve`'s options --------


def documented_settings() -> dict[str, tuple[str, str]]:
    """README's Configuration table: flag → (environment cell, default cell), as written."""
    rows = table_rows(section(README, "## Configuration"))
    found = {}
    for row in rows:
        flags = code_spans(row[0])
        assert len(flags) == 1, f"README.md Configuration: a row's flag cell should be one `--flag`: {row[0]!r}"
        found[flags[0]] = (row[1], row[2])
    return found


def registry_row(setting: Setting) -> tuple[str, str]:
    """The (environment, default) cells README.md should have for `setting`."""
    return f"`{setting.shown_env}`", setting.shown_default


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    documented = documented_settings()
    problems = []
    for setting in REGISTRY:
        environment, default = registry_row(setting)
        if setting.flag not in documented:
            problems.append(f"{setting.flag}: missing; its row: | `{setting.flag}` | {environment} | {default} | … |")
            continue
        written_environment, written_default = documented[setting.flag]
        if written_environment != environment:
            problems.append(f"{setting.flag}: README.md says environment {written_environment!r}, "
                            f"the registry {environment!r}")
        if written_default != default:
            problems.append(f"{setting.flag}: README.md says default {written_default!r}, the registry {default!r}")
    assert not problems, ("README.md Configuration table vs the settings registry (linkhub/settings.py):\n"
                          + "\n".join(problems))


def test_every_readme_configuration_row_is_a_setting() -> None:
    unknown = sorted(set(documented_settings()) - {setting.flag for setting in REGISTRY})
    assert not unknown, (f"README.md's Configuration table lists options that are not settings "
                         f"(linkhub/settings.py REGISTRY): {unknown}")


def serve_options() -> dict[str, click.Option]:
    return {param.opts[0]: param for param in serve.params if isinstance(param, click.Option)}


def test_serve_takes_every_setting_as_the_registry_describes_it() -> None:
    # What the table shows is what `linkhub serve` reads: the flag, its variable, its default.
    options = serve_options()
    assert sorted(options) == sorted(setting.flag for setting in REGISTRY), "`linkhub serve`'s options vs REGISTRY"
    problems = []
    for setting in REGISTRY:
        option = options[setting.flag]
        if option.envvar != setting.env or option.is_flag != setting.is_flag:
            problems.append(f"{setting.flag}: reads {option.envvar!r} (flag: {option.is_flag}), "
                            f"the registry says {setting.env!r} (flag: {setting.is_flag})")
        why = default_mismatch(option, setting.shown_default)
        if why:
            problems.append(f"{setting.flag}: the registry shows default {setting.shown_default!r}, but {why}")
    assert not problems, "`linkhub serve` vs the settings registry:\n" + "\n".join(problems)


def default_mismatch(option: click.Option, documented: str) -> str | None:
    """Why the documented default is not the option's, or None when it is.

    A default written as code is read with the option's own type (so `./linkhub.db` is the path
    `linkhub.db` and `30` is 30.0 seconds); a word stands for no value (`none`) or a flag (`off`/`on`).
    """
    ctx = click.Context(serve)
    actual = option.get_default(ctx)
    spans = code_spans(documented)
    if option.is_flag:
        expected = "on" if actual else "off"
        return None if documented == expected else f"a flag defaulting to {actual}: write {expected}"
    if actual in (None, ""):
        if documented == "none":
            return None
        # A default computed at start-up (`http://HOST:PORT`): the option's help must say the same.
        if len(spans) == 1 and f"default {spans[0]}" in (option.help or ""):
            return None
        return (f"the option has no default value ({actual!r}): write none, or a computed default that its "
                f"--help names as 'default …'")
    if len(spans) != 1:
        return f"the default is {actual!r}: write it as one code span"
    try:
        value = option.type_cast_value(ctx, spans[0])
    except click.BadParameter as exc:
        return f"{spans[0]!r} is not a valid value of the option: {exc.message}"
    return None if value == option.type_cast_value(ctx, actual) else f"the code's default is {actual!r}"


def test_default_mismatch_notices_a_wrong_default() -> None:
    # The comparison itself can fail: a wrong value, a wrong flag word, a missing computed default.
    options = serve_options()
    assert default_mismatch(options["--port"], "`8081`")
    assert default_mismatch(options["--body-timeout"], "`30`") is None
    assert default_mismatch(options["--access-log"], "on")
    assert default_mismatch(options["--trusted-proxies"], "`10.0.0.0/8`")
    assert default_mismatch(options["--public-url"], "`http://example.com`")


# -- 2. routes: docs/api.md ↔ the app -----------------------------------------------------


@pytest.fixture
def app_routes(tmp_path: Path) -> set[Endpoint]:
    """Every (methods, path) the app answers: Starlette's routes, and /r/{code} and /o/{code} that `LinkhubApp`
    dispatches itself."""
    db = tmp_path / "x.db"
    threads = set(threading.enumerate())
    app = LinkhubApp(Settings(db=db))
    # Building the app opens nothing (the lifespan does): no database file, no thread to stop.
    assert not db.exists(), "LinkhubApp() created the database; only its lifespan should open it"
    started = set(threading.enumerate()) - threads
    assert not started, f"LinkhubApp() started threads {started}; only its lifespan should"
    routes = endpoints({"GET", "HEAD"}, "/r/{code}") | endpoints({"GET", "HEAD"}, "/o/{code}")
    for route in app.starlette.routes:
        methods = getattr(route, "methods", None)
        assert methods, f"a route without methods, which this test cannot compare: {route!r}"
        routes |= endpoints(set(methods), getattr(route, "path", ""))
    return routes


def api_table_endpoints() -> set[Endpoint]:
    """The endpoint table at the top of docs/api.md: `| `GET`, `HEAD` | [`/r/{code}`](…) | …`."""
    text = API_MD.read_text()
    table = text[:text.index("\n## ")]
    found = set()
    for row in table_rows(table):
        methods, paths = code_spans(row[0]), code_spans(row[1])
        assert methods and set(methods) <= set(METHODS) and len(paths) == 1, f"docs/api.md endpoint table row: {row}"
        found |= endpoints(set(methods), paths[0])
    return found


def api_heading_endpoints() -> set[Endpoint]:
    """docs/api.md's endpoint headings: "### `GET /v1/events`", "### `GET` / `HEAD /r/{code}`"."""
    method = "|".join(METHODS)
    pattern = re.compile(rf"^#+ ((?:{method})(?:\s*[/,]\s*(?:{method}))*) (/\S*)$")
    found = set()
    for line in API_MD.read_text().splitlines():
        match = pattern.match(line.replace("`", ""))
        if match:
            methods = set(re.findall(rf"\b(?:{method})\b", match[1]))
            found |= endpoints(methods, match[2])
    return found


def show(found: set[Endpoint]) -> list[str]:
    return sorted(f"{method} {path}" for method, path in found)


@pytest.mark.parametrize(("where", "documented"), [
    ("the endpoint table at the top of docs/api.md", api_table_endpoints),
    ("the endpoint headings (### `METHOD /path`) of docs/api.md", api_heading_endpoints),
])
def test_api_md_documents_every_route_and_only_those(app_routes: set[Endpoint], where: str,
                                                    documented: Callable[[], set[Endpoint]]) -> None:
    docs = documented()
    missing, extra = app_routes - docs, docs - app_routes
    problems = [f"routes the app answers, missing from {where}: {show(missing)}"] if missing else []
    problems += [f"{where} lists endpoints the app does not answer: {show(extra)}"] if extra else []
    assert not problems, "\n".join(problems) + "\n(route parameters are shown as {}: only their position counts)"


# -- 3. commands: README's Commands section ↔ the `linkhub` command tree -----------------------


def readme_commands() -> set[tuple[str, ...]]:
    """The command paths README's Commands section names, as ('accounts', 'create').

    A line `linkhub accounts list | show ID` or `linkhub webhooks create|list` names the
    alternatives it separates with `|`; the path ends at the first word that is not a
    lower-case name (an argument such as ID, or a flag), or at the description, two spaces on.
    """
    found = set()
    block = re.search(r"^```[^\n]*\n(.*?)^```", section(README, "## Commands"), re.MULTILINE | re.DOTALL)
    assert block, "README.md's Commands section has no code block of commands"
    for line in block[1].splitlines():
        command = re.split(r"\s{2,}", line.strip())[0]
        words = re.sub(r"\s*\|\s*", "|", command).split()
        if not words or words[0] != "linkhub":
            continue
        levels: list[list[str]] = []
        for word in words[1:]:
            names = word.split("|")
            if not all(re.fullmatch(r"[a-z][a-z-]*", name) for name in names):
                break
            levels.append(names)
        assert levels, f"README.md Commands: a line names no command: {line!r}"
        found |= set(paths_of(levels))
    return found


def paths_of(levels: list[list[str]]) -> Iterator[tuple[str, ...]]:
    if not levels:
        yield ()
        return
    for name in levels[0]:
        for rest in paths_of(levels[1:]):
            yield (name, *rest)


def code_commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], bool]:
    """Every visible command path of `linkhub` → whether it is a group."""
    found = {}
    for name, command in group.commands.items():
        if command.hidden:
            continue
        path = (*prefix, name)
        found[path] = isinstance(command, click.Group)
        if isinstance(command, click.Group):
            found |= code_commands(command, path)
    return found


def test_readme_commands_section_lists_every_command() -> None:
    documented = readme_commands()
    # A group counts as documented through its subcommands.
    missing = sorted(" ".join(path) for path, is_group in code_commands().items()
                     if not is_group and path not in documented)
    assert not missing, f"`linkhub` commands missing from README.md's Commands section: {missing}"


def test_readme_commands_section_lists_only_real_commands() -> None:
    code = code_commands()
    unknown = sorted(" ".join(path) for path in readme_commands() if path not in code)
    assert not unknown, f"README.md's Commands section names commands `linkhub` does not have: {unknown}"


def test_readme_commands_parser_reads_alternatives() -> None:
    assert set(paths_of([["accounts"], ["list", "show"]])) == {("accounts", "list"), ("accounts", "show")}
    documented = readme_commands()
    assert {("accounts", "list"), ("accounts", "show"), ("webhooks", "deliveries"), ("check",)} <= documented
    assert ("accounts", "ID") not in documented


# -- 4. error codes: linkhub/ ↔ docs/api.md's error table ------------------------------------


ErrorUse = tuple[int | None, str, str]  # (status, or None when computed; code; file:line)
Refusals = dict[str, tuple[int, str]]  # refusal class name → its (status, code)
ROOT_REFUSAL = "LinkhubError"


def error_uses(source: Path = SOURCE) -> list[ErrorUse]:
    """Every error code linkhub/ answers with: the refusal classes (`LinkhubError` and its subclasses,
    by the `status` and `code` each declares), their calls (`LinkhubError(…, status=, code=)`, whose
    code is the class's unless given), the calls `error(status, "code", …)`, a code held in a variable
    (every string it may be assigned), and raw JSON bodies written as `{"error":"code"…}`."""
    trees = {path: ast.parse(path.read_text(), filename=str(path)) for path in sorted(source.rglob("*.py"))}
    refusals = refusal_classes(list(trees.values()))
    uses: list[ErrorUse] = []
    for path, tree in trees.items():
        where = path.relative_to(source.parent)
        # A method's `super().__init__(…, code=…)` calls its own class.
        classes = {id(method): cls.name for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef)
                   for method in cls.body}
        for scope in ast.walk(tree):
            # A subclass that declares no code of its own answers its base's, wherever that is raised.
            if (isinstance(scope, ast.ClassDef) and scope.name in refusals and scope.name != ROOT_REFUSAL
                    and "code" in class_attributes(scope)):
                uses.append((*refusals[scope.name], f"{where}:{scope.lineno}"))
            if not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
                continue
            for node in direct_nodes(scope):
                uses.extend(uses_in(node, scope, classes.get(id(scope)), refusals,
                                    f"{where}:{getattr(node, 'lineno', '?')}"))
    return uses


def class_attributes(cls: ast.ClassDef) -> dict[str, object]:
    """The literal values a class body assigns: `status = 413`, `code: str = "body_too_large"`."""
    found: dict[str, object] = {}
    for node in cls.body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        value = getattr(node, "value", None)
        if isinstance(value, ast.Constant):
            found |= {target.id: value.value for target in targets if isinstance(target, ast.Name)}
    return found


def refusal_classes(trees: list[ast.Module]) -> Refusals:
    """`LinkhubError` and every class deriving from it, by name → its (status, code), inherited where not declared."""
    classes = {node.name: node for tree in trees for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    assert ROOT_REFUSAL in classes, f"no class {ROOT_REFUSAL} in {sorted(classes)}: the refusals cannot be found"

    def attributes(name: str, seen: frozenset[str]) -> dict[str, object] | None:
        """The class's attributes over those of its refusal base, or None if it derives from no refusal."""
        cls = classes[name]
        if name == ROOT_REFUSAL:
            return class_attributes(cls)
        bases = [base.id if isinstance(base, ast.Name) else base.attr for base in cls.bases
                 if isinstance(base, ast.Name | ast.Attribute)]
        # `seen`: a class may share its base's name (`class Connection(sqlite3.Connection)`)
        inherited = next((found for base in bases if base in classes and base not in seen
                          and (found := attributes(base, seen | {name})) is not None), None)
        return None if inherited is None else inherited | class_attributes(cls)

    refusals: Refusals = {}
    for name in classes:
        if (found := attributes(name, frozenset())) is not None:
            status, code = found.get("status"), found.get("code")
            assert isinstance(status, int) and isinstance(code, str), f"class {name}: status {status!r}, code {code!r}"
            refusals[name] = (status, code)
    return refusals


def direct_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of `scope`, not of the functions nested in it (they are scopes of their own)."""
    for child in ast.iter_child_nodes(scope):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        yield child
        yield from direct_nodes(child)


def uses_in(node: ast.AST, scope: ast.AST, own_class: str | None, refusals: Refusals, where: str) -> list[ErrorUse]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
        text = node.value.decode() if isinstance(node.value, bytes) else node.value
        return [(None, code, where) for code in re.findall(r'\{"error": ?"(\w+)"', text)]
    if not isinstance(node, ast.Call):
        return []
    if is_error_function(node.func):
        assert len(node.args) >= 2, f"{where}: error() without a status and a code"
        status_node, code_node = node.args[0], node.args[1]
        status = status_node.value if isinstance(status_node, ast.Constant) else None
    elif (name := called_name(node.func, own_class)) in refusals:
        keywords = {keyword.arg: keyword.value for keyword in node.keywords}
        default_status, default_code = refusals[name]
        status_node = keywords.get("status")
        status = default_status if status_node is None else status_node.value if isinstance(
            status_node, ast.Constant) else None
        code_node = keywords.get("code")
        if code_node is None:
            return [(status, default_code, where)]
    else:
        return []
    assert status is None or isinstance(status, int), f"{where}: error status {status!r}"
    return [(status, code, where) for code in codes_of(code_node, scope, where)]


def codes_of(code_node: ast.expr, scope: ast.AST, where: str) -> list[str]:
    """The code a call passes: a literal, or every string its variable is assigned in the function."""
    if isinstance(code_node, ast.Constant) and isinstance(code_node.value, str):
        return [code_node.value]
    assert isinstance(code_node, ast.Name), (
        f"{where}: an error code is neither a literal nor a variable: this test cannot tell which codes it sends")
    assigned = [sub.value for sub in direct_nodes(scope)
                if isinstance(sub, ast.Assign) and any(isinstance(t, ast.Name) and t.id == code_node.id
                                                         for t in sub.targets)]
    codes = [c.value for value in assigned for c in ast.walk(value)
             if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    assert codes, f"{where}: the error code {code_node.id!r} is never assigned a literal in its function"
    return codes


def called_name(func: ast.expr, own_class: str | None) -> str | None:
    """`Refused(…)`, `errors.Refused(…)` and, in a method of Refused, `super().__init__(…)` all call `Refused`."""
    if isinstance(func, ast.Attribute) and func.attr == "__init__" and isinstance(func.value, ast.Call) and isinstance(
            func.value.func, ast.Name) and func.value.func.id == "super":
        return None if own_class == ROOT_REFUSAL else own_class  # LinkhubError's own calls Exception's
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def is_error_function(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "error") or (
        isinstance(func, ast.Attribute) and func.attr == "error"
        and isinstance(func.value, ast.Name) and func.value.id == "responses")


def documented_errors() -> dict[str, str]:
    """docs/api.md's error-code table: code → its status cell."""
    rows = table_rows(section(API_MD, "### Error codes"))
    found = {}
    for row in rows:
        codes = code_spans(row[1])
        assert len(codes) == 1, f"docs/api.md error-code table: a row's `error` cell should be one code: {row}"
        found[codes[0]] = row[0]
    return found


def test_every_error_code_is_in_the_api_md_error_table() -> None:
    documented = documented_errors()
    problems = []
    for status, code, where in error_uses():
        if code not in documented:
            problems.append(f"{code!r} ({where}) is missing from docs/api.md's error-code table")
        elif status is not None and documented[code] != str(status):
            problems.append(f"{code!r} ({where}) is answered with {status}; docs/api.md says {documented[code]}")
    assert not problems, "\n".join(problems)


def test_every_code_of_the_api_md_error_table_is_answered_somewhere() -> None:
    used = {code for _, code, _ in error_uses()}
    stale = sorted(set(documented_errors()) - used)
    assert not stale, f"docs/api.md's error-code table lists codes nothing in linkhub/ answers with: {stale}"


def test_the_error_code_collector_finds_each_kind_of_use() -> None:
    found = {(status, code) for status, code, _ in error_uses()}
    # a refusal class, a refusal's call with its code, a code chosen in a variable, a raw JSON body
    assert {(401, "unauthorized"), (400, "unknown_parameter"), (None, "method_not_allowed"),
            (None, "unavailable")} <= found


def test_the_error_code_collector_reads_refusal_classes_and_their_calls(tmp_path: Path) -> None:
    """What a refusal answers, read from its class (and its bases) or from the call that raises it."""
    source = tmp_path / "pkg"
    source.mkdir()
    (source / "errors.py").write_text(
        "class LinkhubError(Exception):\n    status = 400\n    code = 'bad_request'\n"
        "class Gone(LinkhubError):\n    status = 410\n    code = 'gone'\n"
        "class GoneForGood(Gone):\n    code = 'gone_for_good'\n"
        "class Quiet(Gone):\n    def __init__(self) -> None:\n        super().__init__('quiet', code='hushed')\n"
        "class Unrelated(Exception):\n    code = 'not_an_answer'\n"
    )
    (source / "handlers.py").write_text(
        "import errors\n"
        "def pick(kind):\n    code = 'picked' if kind else 'other'\n    raise errors.LinkhubError('x', code=code)\n"
        "def default():\n    raise LinkhubError('y')\n"
        "def moved(status):\n    raise Gone('z', status=status)\n"
        "def elsewhere():\n    raise Unrelated('w')\n"
    )
    assert Counter((status, code) for status, code, _ in error_uses(source)) == Counter([
        (410, "gone"), (410, "gone_for_good"), (410, "hushed"), (400, "picked"), (400, "other"), (400, "bad_request"),
        (None, "gone"),
    ])


@pytest.mark.sqlite_file  # docs/schema.md's examples are SQLite's SQL; postgresql.md says what differs
def test_the_example_queries_of_docs_schema_run_on_the_current_schema(db_path: Path) -> None:
    """Every SQL example in docs/schema.md runs on a freshly migrated database (named parameters bound)."""
    examples = re.findall(r"```sql\n(.*?)```", (ROOT / "docs" / "schema.md").read_text(), re.DOTALL)
    assert len(examples) >= 4
    conn = sqlite3.connect(db_path)
    try:
        for sql in examples:
            names = set(re.findall(r"(?<!:):(\w+)", sql))
            conn.execute(sql, dict.fromkeys(names, "x")).fetchall()
    finally:
        conn.close()
