"""`linkhub erase`: erase one recipient of an account, straight on the SQLite file (safe while the server runs)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from linkhub.cli.common import db_option, emit, json_option, store
from linkhub.core.erasure import InvalidIdentifier, Target
from linkhub.core.errors import LinkhubError
from linkhub.services import erasure
from linkhub.util.wording import plural

_OPTION_OF_FIELD = {"email": "--email", "recipient_id": "--recipient-id"}
_LABELS = [("events", "events (all types)"), ("clicks", "  of which clicks"), ("outbox", "outbox rows"),
           ("verdict_changes", "verdict changes"), ("links_kept", "links kept redirecting, anonymised"),
           ("links_deleted", "links deleted (their URL held the address)"),
           ("pixels", "open pixels kept answering, anonymised"),
           ("inbound_rejects", "items inbound endpoints rejected that named them")]


@click.command("erase")
@click.option("--account", "account_id", required=True, help="The account the recipient belongs to.")
@click.option("--email", default=None, help="The recipient's address (any case).")
@click.option("--recipient-id", default=None, help="The recipient's id (Outreach's prospect id).")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; change nothing.")
@db_option
@json_option
def erase_command(account_id: str, email: str | None, recipient_id: str | None, dry_run: bool, db: Path,
                  as_json: bool) -> None:
    """Erase a recipient: their events and clicks, those events' deliveries and verdict history, and the
    address on their links, which keep redirecting and record nothing more. Keeps a receipt holding a
    salted hash of the identifier, never the identifier. Then (SQLite) truncates the WAL, so no byte of it
    is left in the files."""
    try:
        target = Target.of(email, recipient_id)
    except InvalidIdentifier as exc:
        raise click.BadParameter(exc.message, param_hint=_OPTION_OF_FIELD.get(str(exc.where.get("field")))) from None
    except LinkhubError:  # neither given
        raise click.UsageError("one of --email or --recipient-id is required") from None
    with store(db, readonly=dry_run) as opened:
        erased = asyncio.run(erasure.erase(opened, account_id, target, via="cli", dry_run=dry_run))
    emit(as_json, erased.document(), _text(erased))


def _text(erased: erasure.Erased) -> str:
    receipt = erased.receipt
    removed = receipt.counts.document()
    width = max(len(label) for _, label in _LABELS)
    head = ("Dry run: nothing changed; erasing would remove" if erased.dry_run
            else f"Erased the recipient (by {receipt.identifier_kind.replace('_', ' ')}) from account "
                 f"{receipt.account_id} (receipt {receipt.id}, {receipt.erased_at})")
    lines = [head, *(f"  {label:<{width}}  {removed[key]:>8,}" for key, label in _LABELS)]
    if receipt.earlier:
        lines.append(f"  erased before: {', '.join(receipt.earlier)} ({plural(len(receipt.earlier), 'receipt')})")
    if erased.wal_truncated is False:
        lines.append("  warning: the WAL could not be truncated (the server's readers held it): the deleted rows'"
                     " bytes may remain in the -wal file until its next restart; run `linkhub erase` again, or"
                     " erase through DELETE /v1/recipients, which the server's writer checkpoints itself")
    return "\n".join(lines)
