"""What `linkhub events export` and `linkhub clicks export` share: their options, the output file, the
progress bar and the closing line that says where to resume."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import click

from linkhub.cli.common import db_option, moment, open_db
from linkhub.core import accounts, export
from linkhub.util.wording import plural

F = Callable[..., Any]


def options(fn: F) -> F:
    """The options both exports take (events add --type)."""
    decorators: list[Callable[[F], F]] = [
        click.option("--account", "account", default=None, metavar="ID",
                     help="Only this account's rows (default: all)."),
        click.option("--since", default=None, metavar="TIME",
                     help="Only rows that occurred at or after this RFC 3339 time (or date, UTC)."),
        click.option("--until", default=None, metavar="TIME",
                     help="Only rows that occurred before this RFC 3339 time (or date, UTC)."),
        click.option("--after-seq", "after_seq", type=click.IntRange(0), default=0, metavar="N",
                     help="Only rows after seq N: the `last seq` an interrupted export reported, to continue it."),
        click.option("--format", "fmt", type=click.Choice(export.FORMATS), default="jsonl", show_default=True,
                     help="jsonl: one JSON object a line; csv: a header row, then one row a line."),
        click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
                     help="Write to FILE (created whole at the end, readable by its owner only) instead of stdout."),
        click.option("--force", is_flag=True, help="Let --output replace an existing FILE."),
        click.option("--json", "as_json", is_flag=True,
                     help="Say the closing summary (rows, last seq) as one JSON object on stderr; no progress bar."),
        db_option,
    ]
    for decorate in reversed(decorators):
        fn = decorate(fn)
    return fn


def run(source: export.Source, *, db: Path, account: str | None, types: tuple[str, ...], since: str | None,
        until: str | None, after_seq: int, fmt: str, output: Path | None, force: bool, as_json: bool) -> None:
    """Export `source` as the options ask; the closing line (stderr) names the last seq written."""
    since_at, until_at = moment(since, "--since"), moment(until, "--until")
    if since_at is not None and until_at is not None and since_at >= until_at:
        raise click.BadParameter(f"must be later than --since ({since_at})", param_hint="--until")
    partial = _partial(output, force) if output is not None else None
    noun = "event" if source == "events" else "click"
    query = export.Query(account_id=account, types=types, since=since_at, until=until_at, after=after_seq)
    rows, last = 0, after_seq
    with open_db(db, readonly=True) as conn:
        if account is not None and accounts.get(conn, account) is None:
            raise click.ClickException(f"no account with id {account!r}")
        export.for_scan(conn)
        top = export.ceiling(conn)
        chunks = export.stream(conn, query, source, cast(export.Format, fmt), top=top)  # a FORMATS choice
        try:
            with _sink(output, partial) as sink, _progress(max(top - after_seq, 0), noun, not as_json) as advance:
                scanned = after_seq
                for chunk in chunks:
                    sink.write(chunk.data)
                    rows += chunk.rows
                    last = chunk.last_seq if chunk.last_seq is not None else last
                    advance(chunk.scanned_to - scanned)
                    scanned = chunk.scanned_to
        except BrokenPipeError:  # the reader stopped reading (`| head`): its choice, nothing to resume
            raise
        except BaseException:
            _interrupted(rows, last, noun, partial)
            raise
    if output is not None and partial is not None:
        if output.exists() and not force:  # it appeared while we wrote: neither file is lost
            raise click.ClickException(f"{output} appeared meanwhile and was not replaced: "
                                       f"the export ({plural(rows, noun)}, last seq {last}) is in {partial}")
        os.replace(partial, output)
    where = str(output) if output is not None else "stdout"
    if as_json:
        click.echo(json.dumps({"source": source, "format": fmt, "output": where, "rows": rows, "last_seq": last,
                               "through_seq": max(top, after_seq)}), err=True)
    else:
        click.echo(f"exported {plural(rows, noun)} to {where}; last seq {last}", err=True)


def _partial(output: Path, force: bool) -> Path:
    """Where an export to `output` is written until it is complete (then renamed to `output`)."""
    if output.exists() and not force:
        raise click.ClickException(f"{output} exists: choose another name, or add --force to replace it")
    partial = output.with_name(output.name + ".partial")
    if partial.exists() and not force:
        raise click.ClickException(f"{partial} exists (an interrupted export?): move it away, or add --force")
    return partial


@contextlib.contextmanager
def _sink(output: Path | None, partial: Path | None) -> Iterator[IO[bytes]]:
    if output is None or partial is None:
        sys.stdout.flush()  # anything written as text before goes first
        stdout = sys.stdout.buffer
        try:
            yield stdout
        finally:
            stdout.flush()
        return
    # Exports hold addresses and IPs: the file is its owner's only, as the database is.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        yield file
        file.flush()
        # On disk before it takes the final name: a power cut never leaves a short file called FILE.
        os.fsync(file.fileno())


@contextlib.contextmanager
def _progress(total: int, noun: str, wanted: bool) -> Iterator[Callable[[int], None]]:
    """click's progress bar on stderr, when stderr is a terminal (never when piped, nor with --json).

    It counts seqs read, not rows written: the export walks the table in seq order, so the share of
    the seq range behind it is the share of the work done, whatever the filters let through (a count
    of matching rows would cost a scan of its own)."""
    stderr = sys.stderr
    if not wanted or not stderr.isatty() or total <= 0:
        yield lambda n: None
        return
    with click.progressbar(length=total, label=f"exporting {noun}s", file=stderr, show_eta=True) as bar:
        yield bar.update


def _interrupted(rows: int, last: int, noun: str, partial: Path | None) -> None:
    """Say where a stopped export got to, so it can be continued."""
    if partial is not None and rows == 0:
        partial.unlink(missing_ok=True)
        return
    kept = f" are in {partial}" if partial is not None else " were written"
    click.echo(f"export interrupted: {plural(rows, noun)} up to seq {last}{kept}; "
               f"continue with --after-seq {last}", err=True)
