"""What every `linkhub` subcommand shares: the options of the settings (--db, …) and --json, opening
the database, output, and turning expected failures (the database, the file system) into one line on stderr."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, overload

import click

from linkhub.core.errors import LinkhubError
from linkhub.settings import REGISTRY, Setting, Settings
from linkhub.store import Connection, StoreError, connect, describe_error, postgresql, shown, transaction, truncate_wal
from linkhub.store import migrate as store_migrate
from linkhub.store import needed as store_needed
from linkhub.store.db import SqliteConnection
from linkhub.util.times import parse_rfc3339, to_rfc3339

# Where open_db keeps the path it opened, in the click context's `meta` (shared by every nested
# context), so an SQLite error raised later can name the file.
_DB_KEY = "linkhub.db"
# Set to any value to see the traceback of an unexpected failure instead of one line about it.
DEBUG_ENV = "LINKHUB_DEBUG"

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _option_attrs(setting: Setting) -> dict[str, Any]:
    """click.Option's keywords for a setting of the registry: its variable, type, default and help."""
    computed = f"; default {setting.shown}" if setting.default is None and setting.shown else ""
    attrs: dict[str, Any] = {"envvar": setting.env, "help": f"{setting.help} [env {setting.shown_env}{computed}]."}
    if setting.is_flag:
        return {**attrs, "is_flag": True, "default": setting.default}
    if setting.parse is not None:
        # No text given stands for the default value itself, which is already parsed.
        attrs.update(default=None, callback=_parser(setting, setting.parse))
    else:
        attrs.update(default=setting.default, show_default=True)
        if setting.kind is Path:
            attrs["callback"] = _db_value
    return {**attrs, "type": _click_type(setting), "metavar": setting.metavar}


# The commands that work on a SQLite file itself, and what to use on PostgreSQL instead.
_FILE_ONLY = {
    "backup": "a PostgreSQL database is backed up with PostgreSQL's own tools: pg_dump --format=custom "
              "(and pg_restore)",
    "copy-to": "copy-to copies from a SQLite file: --db names it, the URL argument the PostgreSQL database",
    "check": "`linkhub check` checks a SQLite file; on PostgreSQL use its own tools (amcheck, pg_dump to "
             "/dev/null)",
    "datasette-config": "Datasette opens SQLite files only: for a PostgreSQL database, query its views with "
                        "a PostgreSQL client as a role that may read them (see docs/schema.md)",
}


def _db_value(ctx: click.Context, param: click.Parameter, value: Path) -> Path | str:
    """--db: a SQLite file (a Path) or a postgresql:// URL (the text as given)."""
    # A URL turned Path has lost one slash of its `//`: 'postgresql:/user@host/db'.
    text = str(value).replace(":/", "://", 1)
    if not postgresql.is_url(text):
        return value
    refusal = _FILE_ONLY.get(ctx.command.name or "")
    if refusal is not None:
        raise click.BadParameter(refusal, param=param)
    return text


def _click_type(setting: Setting) -> click.ParamType[Any] | type[Any]:
    if setting.choices:
        return click.Choice(setting.choices, case_sensitive=False)
    if setting.kind is Path:
        return click.Path(dir_okay=False, path_type=Path)
    if setting.limits is not None:
        low, high = setting.limits
        if setting.kind is int:
            return click.IntRange(None if low is None else int(low), None if high is None else int(high))
        return click.FloatRange(low, high)
    return setting.kind


def _parser(setting: Setting, parse: Callable[[str], Any]) -> Callable[..., Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return setting.default
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=setting.flag) from None

    return callback


def _chosen(names: tuple[str, ...]) -> list[Setting]:
    unknown = set(names) - {setting.name for setting in REGISTRY}
    assert not unknown, f"not settings: {sorted(unknown)}"
    return [setting for setting in REGISTRY if not names or setting.name in names]


def setting_options(*names: str) -> Callable[[F], F]:
    """The options of these settings (every one if none is named), listed in --help in the registry's
    order; the command receives each under its name, parsed and checked."""

    def decorate(fn: F) -> F:
        for setting in reversed(_chosen(names)):
            fn = click.option(setting.flag, setting.name, **_option_attrs(setting))(fn)
        return fn

    return decorate


db_option = setting_options("db")


def environ_settings(*names: str) -> Settings:
    """Settings with the named fields as `linkhub serve` without flags would read them from LINKHUB_*
    (the others at their defaults), for what a command says about the server: the URL Outreach calls."""
    options: list[click.Parameter] = [click.Option([s.flag, s.name], **_option_attrs(s)) for s in _chosen(names)]
    command = click.Command("environment", params=options)
    try:
        with command.make_context("environment", []) as ctx:
            return Settings(**ctx.params)
    except click.BadParameter as exc:
        # The flag is not what was given: name the variable.
        envvar = exc.param.envvar if exc.param is not None else None
        raise click.ClickException(f"{envvar}: {exc.message}") from None


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")(fn)


class LinkhubGroup(click.Group):
    """The top-level group: every subcommand runs inside its `invoke`, so this is the one place
    where database and OS errors become a sentence and a non-zero exit instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            # One line, like every other failure: the usage banner would bury the sentence that matters.
            exc.ctx = None
            raise
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (`linkhub … | head`): stop quietly, and let nothing flush into the pipe.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(1) from None
        except LinkhubError as exc:  # a use case's refusal: its sentence is the one line
            raise click.ClickException(exc.message) from None
        except StoreError as exc:
            raise click.ClickException(describe_error(exc, ctx.meta.get(_DB_KEY))) from None
        except OSError as exc:
            raise click.ClickException(_os_message(exc)) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            raise click.ClickException(
                f"unexpected failure ({type(exc).__name__}: {exc}); this is a bug in linkhub: please report it, "
                f"with the traceback that {DEBUG_ENV}=1 shows") from None


def _os_message(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename is not None else reason


def _missing(path: Path | str) -> click.ClickException:
    return click.ClickException(f"no database at {path}: create one with `linkhub migrate --db {path}`")


@contextlib.contextmanager
def open_db(path: Path | str, *, create: bool = False, readonly: bool = False,
            apply_migrations: bool = True) -> Iterator[Connection]:
    """A connection to the database at `path`.

    Only `create=True` callers (migrate, accounts create) make a new file; for every other command
    a missing file is an error. A writing command applies pending migrations first (unless it
    applies them itself: `apply_migrations=False`); a `readonly` one changes nothing, so on a
    database that needs migrating it says so instead of reading.
    """
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_DB_KEY] = path
    if isinstance(path, Path):
        if path.is_dir():
            raise click.ClickException(f"{path} is a directory, not a database file")
        if not create and not path.exists():
            raise _missing(path)
    conn = connect(path, readonly=readonly)
    try:
        if readonly:
            needed = store_needed(conn)
            if needed:
                raise click.ClickException(f"{shown(path)} needs `linkhub migrate` first ({'; '.join(needed)})")
        elif apply_migrations:
            try:
                store_migrate(conn)
            except RuntimeError as exc:
                raise click.ClickException(str(exc)) from None
        yield conn
    finally:
        conn.close()


class Direct:
    """The use cases' Storage (linkhub.services) on the CLI's own connection: each write is one
    IMMEDIATE transaction, which a running server's writer waits for (busy timeout) and then sees.

    The connection is opened on first use, so what a use case refuses before it reads (an
    invalid request, a refused target) is said as before, and creates no database file.
    """

    def __init__(self, connect: Callable[[], Connection]) -> None:
        self._connect = connect
        self._conn: Connection | None = None

    def reader(self) -> Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    async def write(self, fn: Callable[[Connection], T]) -> T:
        conn = self.reader()
        with transaction(conn):
            return fn(conn)

    async def truncate_wal(self) -> bool:
        """Checkpoint and truncate the WAL from this connection (waiting up to the busy timeout for a
        running server's readers and writer); False if they held it."""
        conn = self.reader()
        return truncate_wal(conn) if isinstance(conn, SqliteConnection) else True


@contextlib.contextmanager
def store(path: Path | str, *, create: bool = False, readonly: bool = False) -> Iterator[Direct]:
    """The database at `path` as the use cases' Storage, opened as `open_db` opens it, when first used."""
    with contextlib.ExitStack() as opened:
        yield Direct(lambda: opened.enter_context(open_db(path, create=create, readonly=readonly)))


def secret_value(value: str | None, flag: str) -> str | None:
    """A secret option's value; `-` reads it from stdin (one line), which keeps it out of `ps`."""
    if value != "-":
        return value
    if sys.stdin.isatty():
        return str(click.prompt(flag.lstrip("-"), hide_input=True))
    line = sys.stdin.readline()
    if not line:
        raise click.BadParameter("'-' reads the value from stdin, but stdin was empty", param_hint=f"'{flag}'")
    return line.rstrip("\r\n")


def table(header: list[str], rows: list[list[str]], right: frozenset[int] = frozenset()) -> str:
    """Columns padded to their widest cell; the columns in `right` (numbers) are right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(padded).rstrip()

    return "\n".join(line(cells) for cells in [header, *rows])


def emit(as_json: bool, document: Any, text: str) -> None:
    click.echo(json.dumps(document, indent=2) if as_json else text)


@overload
def moment(value: str, flag: str) -> str: ...
@overload
def moment(value: None, flag: str) -> None: ...
def moment(value: str | None, flag: str) -> str | None:
    """A --since/--until value (an RFC 3339 time, or a date: its midnight UTC) as linkhub's RFC 3339
    form; a bad one is the flag's usage error."""
    if value is None:
        return None
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        value += "T00:00:00Z"
    try:
        return to_rfc3339(parse_rfc3339(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None
