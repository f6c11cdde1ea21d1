"""`linkhub inbound …`: the URLs the sending platforms post their webhooks to, straight on the SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from linkhub.cli.common import db_option, emit, environ_settings, json_option, secret_value, store, table
from linkhub.core.formats_in import PROVIDERS
from linkhub.services import inbound as use
from linkhub.services.inbound import Issued
from linkhub.settings import Settings


def _server() -> Settings:
    """The server's settings that make the URL, as `linkhub serve` would read them."""
    return environ_settings("host", "port", "public_url")


def _basic(value: str | None) -> tuple[str, str] | None:
    value = secret_value(value, "--basic-auth")
    if value is None:
        return None
    user, colon, password = value.partition(":")
    if not colon or not user or not password:
        raise click.BadParameter("give USER:PASSWORD (or - to read it from stdin)", param_hint="'--basic-auth'")
    return user, password


def _summary(document: dict[str, Any]) -> str:
    rows = [("id", document["id"]), ("account", document["account_id"]), ("provider", document["provider"]),
            ("Basic auth", document["basic_auth_user"] or "- (the token alone)"),
            ("created", document["created_at"]), ("token issued", document["token_rotated_at"]),
            ("last POST", document["last_received_at"] or "- (none yet)"),
            ("items", f"{document['accepted']} accepted, {document['duplicates']} duplicates, "
                      f"{document['rejected']} rejected")]
    return "\n".join(f"  {label + ':':<14}{value}" for label, value in rows)


def _issued_text(verb: str, issued: Issued) -> str:
    return (f"{verb} inbound endpoint {issued.endpoint.id}\n{_summary(issued.document())}\n"
            f"  {'URL:':<14}{issued.url}\n"
            f"  {'':<14}(shown only now: paste it into {issued.endpoint.provider}'s webhook settings; "
            f"`linkhub inbound rotate-token` issues a new one)")


@click.group("inbound")
def inbound_group() -> None:
    """URLs that Optimizely Campaign, eSputnik and Arpoone post their webhooks to (docs/inbound.md)."""


@inbound_group.command("create")
@click.option("--account", "account_id", required=True, help="The account whose events they become.")
@click.option("--provider", required=True, type=click.Choice(PROVIDERS), help="Who will post to it.")
@click.option("--basic-auth", default=None, metavar="USER:PASSWORD",
              help="Also ask for these Basic credentials; `-` reads them from stdin, which keeps them out of `ps`.")
@json_option
@db_option
def inbound_create(account_id: str, provider: str, basic_auth: str | None, as_json: bool, db: Path) -> None:
    """Create an endpoint: prints its URL, with its token (shown once)."""
    basic = _basic(basic_auth)
    with store(db) as opened:
        issued = asyncio.run(use.create(opened, account_id, provider, basic, _server))
    emit(as_json, issued.document(), _issued_text("Created", issued))


@inbound_group.command("list")
@click.option("--account", "account_id", default=None, help="Only this account's.")
@json_option
@db_option
def inbound_list(account_id: str | None, as_json: bool, db: Path) -> None:
    """List endpoints (never their tokens)."""
    with store(db, readonly=True) as opened:
        documents = use.list_documents(opened, account_id)
    rows = [[d["id"], d["account_id"], d["provider"], d["basic_auth_user"] or "-", d["last_received_at"] or "-",
             str(d["accepted"]), str(d["duplicates"]), str(d["rejected"])] for d in documents]
    text = (table(["id", "account", "provider", "Basic user", "last POST", "accepted", "duplicates", "rejected"],
                  rows, right=frozenset({5, 6, 7})) if rows else "no inbound endpoints")
    emit(as_json, documents, text)


@inbound_group.command("show")
@click.argument("endpoint_id")
@json_option
@db_option
def inbound_show(endpoint_id: str, as_json: bool, db: Path) -> None:
    """Show an endpoint and the last 100 items it rejected, with the reason (newest first)."""
    with store(db, readonly=True) as opened:
        document = use.show(opened, endpoint_id, None)
    lines = [f"Inbound endpoint {endpoint_id}", _summary(document)]
    if document["rejects"]:
        lines.append(f"  last {len(document['rejects'])} rejected items, newest first:")
        lines += [f"    {r['received_at']}  item {r['index']}: {r['reason']}\n      {r['item']}"
                  for r in document["rejects"]]
    else:
        lines.append("  no rejected items")
    emit(as_json, document, "\n".join(lines))


@inbound_group.command("rotate-token")
@click.argument("endpoint_id")
@json_option
@db_option
def inbound_rotate(endpoint_id: str, as_json: bool, db: Path) -> None:
    """Issue a new URL; the old one stops working at once."""
    with store(db) as opened:
        issued = asyncio.run(use.rotate(opened, endpoint_id, None, _server))
    emit(as_json, issued.document(), _issued_text("Rotated the token of", issued))


@inbound_group.command("delete")
@click.argument("endpoint_id")
@json_option
@db_option
def inbound_delete(endpoint_id: str, as_json: bool, db: Path) -> None:
    """Delete an endpoint (its URL stops working); the events it stored stay."""
    with store(db) as opened:
        endpoint = asyncio.run(use.delete(opened, endpoint_id, None))
    emit(as_json, {"id": endpoint.id, "deleted": True}, f"Deleted inbound endpoint {endpoint.id}")
