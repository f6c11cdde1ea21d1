"""`linkhub datasette-config`: the Datasette metadata that hides linkhub's secrets."""

from __future__ import annotations

import json
from pathlib import Path

import click

from linkhub.cli.common import db_option
from linkhub.store import datasette


@click.command("datasette-config")
@db_option
def datasette_config(db: Path) -> None:
    """Print Datasette metadata for browsing the database read-only, secrets hidden.

    The tables holding credentials (accounts, webhooks) are denied and arbitrary SQL is off; the
    reports, accounts and webhooks without their secrets are canned queries. Use it as:

        linkhub datasette-config > metadata.json && datasette linkhub.db --metadata metadata.json

    (install Datasette with `pip install 'linkhub[datasette]'`). --db names the file Datasette opens:
    Datasette names the database after the file, and the metadata must use the same name.
    """
    click.echo(json.dumps(datasette.metadata(db), indent=2))
