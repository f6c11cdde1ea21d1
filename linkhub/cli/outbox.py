"""`linkhub outbox …`: see what waits to be delivered, and queue events again."""

from __future__ import annotations

from pathlib import Path

import click

from linkhub.cli.common import db_option, emit, json_option, moment, open_db, table
from linkhub.core import outbox, webhooks
from linkhub.core.events import EVENT_TYPES
from linkhub.store import transaction, wakeups
from linkhub.util.wording import plural


@click.group("outbox")
def outbox_group() -> None:
    """Inspect and replay webhook deliveries."""


@outbox_group.command("status")
@json_option
@db_option
def status(as_json: bool, db: Path) -> None:
    """Per webhook: pending, in flight, dead, age of the oldest pending event, last success, next attempt
    and last error."""
    with open_db(db, readonly=True) as conn:
        report = outbox.status(conn)
    rows = []
    for row in report:
        age = f"{row['oldest_pending_age_s']:.0f} s" if row["oldest_pending_age_s"] is not None else "-"
        error = row["last_error"]
        rows.append([row["webhook_id"], row["status"], f"{row['pending']:,}", f"{row['in_flight']:,}",
                     f"{row['dead']:,}", age, row["last_success_at"] or "-", row["next_attempt_at"] or "-",
                     f"{error['attempted_at']} {error['error']}" if error else "-"])
    header = ["webhook", "status", "pending", "in flight", "dead", "oldest", "last success", "next attempt",
              "last error"]
    emit(as_json, report, table(header, rows, right=frozenset({2, 3, 4, 5})) if rows else "no webhooks")


@outbox_group.command("replay")
@click.option("--webhook", "webhook_id", required=True, help="Webhook to queue the events for.")
@click.option("--since", default=None, help="Only events that occurred at or after this RFC 3339 time (or date, UTC).")
@click.option("--until", default=None, help="Only events that occurred before this RFC 3339 time (or date, UTC).")
@click.option("--type", "types", multiple=True, type=click.Choice(EVENT_TYPES), help="Only this type (repeatable).")
@click.option("--dead-only", is_flag=True, help="Only events whose delivery to this webhook is dead.")
@click.option("--dry-run", is_flag=True, help="Print how many events would be queued; change nothing.")
@json_option
@db_option
def replay(webhook_id: str, since: str | None, until: str | None, types: tuple[str, ...], dead_only: bool,
           dry_run: bool, as_json: bool, db: Path) -> None:
    """Queue matching events for a webhook again (delivered and dead ones included)."""
    since_at, until_at = moment(since, "--since"), moment(until, "--until")
    with open_db(db, readonly=dry_run) as conn:  # a dry run only counts
        hook = webhooks.get(conn, webhook_id)
        if hook is None:
            raise click.ClickException(f"no webhook with id {webhook_id!r}")
        if dry_run:
            count = outbox.replay(conn, hook, since=since_at, until=until_at, types=types, dead_only=dead_only,
                                  dry_run=True)
        else:
            with transaction(conn):
                count = outbox.replay(conn, hook, since=since_at, until=until_at, types=types,
                                      dead_only=dead_only)
            if count:  # committed: servers on the same PostgreSQL database look now, not at their next poll
                wakeups.notify(conn)
    verb = "would be queued" if dry_run else "queued"
    note = "" if dry_run or hook.status == "active" else f" (webhook is {hook.status}: they wait until it is active)"
    emit(as_json, {"webhook_id": webhook_id, "events": count, "dry_run": dry_run},
         f"{plural(count, 'event')} {verb} for {webhook_id}{note}")


@outbox_group.command("prune")
@click.option("--older-than", "days", type=click.IntRange(1), required=True, metavar="DAYS",
              help="Delete delivered rows and delivery-log entries older than this many days.")
@json_option
@db_option
def prune(days: int, as_json: bool, db: Path) -> None:
    """Forget old successful deliveries (outbox rows and the attempt log); events and dead rows stay."""
    before = outbox.prune_cutoff(days)
    total = 0
    with open_db(db) as conn:
        while True:
            with transaction(conn):  # one short transaction per chunk: a running server keeps writing
                removed = outbox.prune_chunk(conn, before)
            total += removed
            if not removed:
                break
    emit(as_json, {"before": before, "rows_deleted": total}, f"deleted {plural(total, 'row')} older than {before}")
