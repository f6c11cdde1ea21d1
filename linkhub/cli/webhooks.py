"""`linkhub webhooks …`: the /v1/webhooks API for operators, straight on the SQLite file.

The CLI is its own process with its own connection; each change runs in one IMMEDIATE
transaction, so a running server's writer simply waits for it (busy timeout) and then sees it.
The rules are the API's: the same request Structs, the same SSRF check, the same verify batch.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from linkhub.cli.common import db_option, emit, json_option, open_db, secret_value, setting_options, table
from linkhub.core import accounts, formats, webhooks
from linkhub.core.events import EVENT_TYPES
from linkhub.core.webhooks import Webhook
from linkhub.delivery import sender, verify
from linkhub.store import Connection, transaction
from linkhub.util.wording import plural

AUTH_TYPES = ("none", "basic", "bearer", "header")
# Each credential option: its request field, and the --auth type it belongs to.
CREDENTIALS = {"username": ("username", "basic"), "password": ("password", "basic"), "token": ("token", "bearer"),
               "header_name": ("name", "header"), "header_value": ("value", "header")}
SECRET_CREDENTIALS = ("password", "token", "header_value")
# InvalidWebhook.field (the API's JSON field) → the option that sets it, so errors name the flag.
OPTION_OF_FIELD = {
    "url": "--url", "types": "--type", "format": "--format", "auth": "--auth", "auth.type": "--auth",
    "auth.username": "--username", "auth.password": "--password", "auth.token": "--token",
    "auth.name": "--header-name", "auth.value": "--header-value", "batch_size": "--batch-size",
    "retry": "--retry", "retry.policy": "--retry", "retry.interval_s": "--retry-interval", "max_age_s": "--max-age",
    "timeout_s": "--timeout", "ordered": "--ordered", "description": "--description", "active": "--active",
}


# -- shared options and helpers --------------------------------------------------------------


_allow_private_option = setting_options("allow_private_targets")


def _account_option(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    help_text = "The owning account." if required else "Only if the webhook belongs to this account."
    # No explicit default: with click 8.2+ a default of None would satisfy required=True.
    return click.option("--account", "account_id", required=required, help=help_text)


def _spec_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The webhook's settings, as options of create and update (absent = default / unchanged)."""
    options = [
        click.option("--url", default=None, help="Receiver URL (http or https)."),
        click.option("--type", "types", multiple=True, type=click.Choice(EVENT_TYPES),
                     help="Event type to deliver (repeat); none given = every type."),
        click.option("--format", "fmt", default=None, type=click.Choice(formats.FORMATS),
                     help="Payload format [create default: linkhub]."),
        click.option("--auth", "auth_type", default=None, type=click.Choice(AUTH_TYPES),
                     help="How linkhub authenticates to the receiver [create default: none]."),
        click.option("--username", default=None, help="For --auth basic."),
        click.option("--password", default=None, envvar="LINKHUB_WEBHOOK_PASSWORD",
                     help="For --auth basic [env LINKHUB_WEBHOOK_PASSWORD, which keeps it out of `ps`; "
                          "`-` reads it from stdin]."),
        click.option("--token", default=None, envvar="LINKHUB_WEBHOOK_TOKEN",
                     help="For --auth bearer [env LINKHUB_WEBHOOK_TOKEN; `-` reads it from stdin]."),
        click.option("--header-name", default=None, help="For --auth header, e.g. X-Api-Key."),
        click.option("--header-value", default=None, envvar="LINKHUB_WEBHOOK_HEADER_VALUE",
                     help="For --auth header [env LINKHUB_WEBHOOK_HEADER_VALUE; `-` reads it from stdin]."),
        click.option("--batch-size", type=int, default=None, help="Events per POST, 1-1000 [create default: 100]."),
        click.option("--retry", "retry_policy", default=None, type=click.Choice(("exponential", "fixed")),
                     help="Retry policy [create default: exponential]."),
        click.option("--retry-interval", type=int, default=None,
                     help="Seconds between retries; implies --retry fixed."),
        click.option("--max-age", "max_age_s", type=int, default=None,
                     help="Seconds before an undelivered event is dead [create default: 259200]."),
        click.option("--timeout", "timeout_s", type=int, default=None,
                     help="Seconds a receiver has to answer a POST, 1-60 [create default: 10]."),
        click.option("--ordered/--unordered", default=None, help="Strict FIFO delivery [create default: ordered]."),
        click.option("--description", default=None, help="Free text; an empty string clears it."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _request(url: str | None, types: tuple[str, ...], fmt: str | None, auth_type: str | None,
             username: str | None, password: str | None, token: str | None, header_name: str | None,
             header_value: str | None, batch_size: int | None, retry_policy: str | None,
             retry_interval: int | None, max_age_s: int | None, timeout_s: int | None, ordered: bool | None,
             description: str | None) -> dict[str, Any]:
    """The given options as an API request body: only what was given, so update changes only that."""
    body: dict[str, Any] = {
        key: value
        for key, value in (("url", url), ("format", fmt), ("batch_size", batch_size), ("max_age_s", max_age_s),
                           ("timeout_s", timeout_s), ("ordered", ordered), ("description", description))
        if value is not None
    }
    if types:
        body["types"] = list(types)
    # Checked even without --auth: a credential flag given alone is an error.
    given = _credentials(auth_type, {"username": username, "password": password, "token": token,
                                     "header_name": header_name, "header_value": header_value})
    if auth_type is not None:
        body["auth"] = {"type": auth_type, **given}
    if retry_interval is not None and retry_policy == "exponential":
        raise click.UsageError("--retry-interval goes with --retry fixed")
    if retry_policy == "fixed" or retry_interval is not None:
        body["retry"] = {"policy": "fixed", **({"interval_s": retry_interval} if retry_interval is not None else {})}
    elif retry_policy == "exponential":
        body["retry"] = {"policy": "exponential"}
    return body


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _credentials(auth_type: str | None, values: dict[str, str | None]) -> dict[str, str]:
    """The credential options that go with `auth_type`, as request fields; any other one given is an error.

    A value that comes from an environment variable counts only where --auth asks for it, so an
    exported LINKHUB_WEBHOOK_TOKEN does not make every other command fail.
    """
    ctx = click.get_current_context()
    given: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        field, belongs_to = CREDENTIALS[name]
        from_env = ctx.get_parameter_source(name) == click.core.ParameterSource.ENVIRONMENT
        if belongs_to != auth_type:
            if from_env:
                continue
            instead = f", not --auth {auth_type}" if auth_type else f": add --auth {belongs_to}"
            raise click.UsageError(f"{_flag(name)} goes with --auth {belongs_to}{instead}")
        secret = secret_value(value, _flag(name)) if name in SECRET_CREDENTIALS else value
        assert secret is not None
        given[field] = secret
    return given


def _invalid(exc: webhooks.InvalidWebhook) -> click.ClickException:
    field = exc.field.split("[", 1)[0]  # types[2] → types
    option = OPTION_OF_FIELD.get(field)
    if option is None:
        return click.ClickException(f"invalid webhook ({exc.field}): {exc.message}")
    if "missing required field" in exc.message:
        return click.MissingParameter(param_hint=f"'{option}'", param_type="option")
    # The domain's messages may name the field too ("auth.name 'Host' is …"): name the flag instead.
    message = exc.message.removeprefix(f"{exc.field} ")  # "url host … is …" → "host … is …"
    return click.BadParameter(message.replace(exc.field, option), param_hint=f"'{option}'")


def _check_target(url: str, allow_private: bool) -> None:
    try:
        asyncio.run(sender.resolve_target(url, allow_private=allow_private))
    except sender.TargetRefused as exc:
        raise click.BadParameter(f"refused target: {exc}", param_hint="'--url'") from None


def _verify(webhook: Webhook, allow_private: bool) -> verify.VerifyResult:
    async def run() -> verify.VerifyResult:
        async with sender.new_client() as client:
            return await verify.send(client, webhook, allow_private=allow_private)

    return asyncio.run(run())


def _find(conn: Connection, webhook_id: str, account_id: str | None) -> Webhook:
    webhook = webhooks.get(conn, webhook_id, account_id)
    if webhook is None:
        where = f" in account {account_id!r}" if account_id else ""
        raise click.ClickException(f"no webhook {webhook_id!r}{where}")
    return webhook


def _list_text(found: list[Webhook]) -> str:
    if not found:
        return "no webhooks"
    rows = [[w.id, w.account_id, w.status + (f" ({w.status_reason})" if w.status_reason else ""), w.format,
             ",".join(w.types) or "all", w.url] for w in found]
    return table(["id", "account", "status", "format", "types", "url"], rows)


def _details(document: dict[str, Any]) -> str:
    def text(key: str, value: Any) -> str:
        if key == "types":
            return ", ".join(value) or "all"
        if isinstance(value, dict):
            return " ".join(f"{k}={v}" for k, v in value.items())
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "-" if value is None else str(value)

    width = max(map(len, document)) + 2
    return "\n".join(f"  {key + ':':<{width}}{text(key, value)}" for key, value in document.items())


def _verify_text(result: verify.VerifyResult) -> str:
    doc = result.public()
    why = doc["error"] or f"receiver answered HTTP {doc['status_code']}"
    verdict = "accepted" if result.ok else f"NOT accepted: {why}"
    lines = [f"verify batch of {plural(result.events, 'test event')}: {verdict}"]
    if doc["status_code"] is not None:
        lines.append(f"  status:  HTTP {doc['status_code']}")
        lines.append(f"  latency: {doc['latency_ms']} ms")
        lines.append(f"  body:    {doc['body'][:200]!r}" if doc["body"] else "  body:    (empty)")
    return "\n".join(lines)


# -- commands ------------------------------------------------------------------------------------


@click.group("webhooks")
def webhooks_group() -> None:
    """Create and manage webhook subscriptions (the CLI side of /v1/webhooks)."""


@webhooks_group.command("create")
@_account_option(required=True)
@_spec_options
@click.option("--active", is_flag=True, help="Start delivering at once (default: created inactive).")
@click.option("--verify", is_flag=True, help="Send the verify batch first; store nothing unless it answers 2xx.")
@_allow_private_option
@json_option
@db_option
def create(account_id: str, active: bool, verify: bool, allow_private_targets: bool, as_json: bool, db: Path,
           **options: Any) -> None:
    """Create a webhook: prints it with its signing secret (shown only now)."""
    if options["url"] is None:
        raise click.UsageError("--url is required")
    body = {**_request(**options), "active": active}
    try:
        draft = webhooks.draft(account_id, webhooks.parse(webhooks.WebhookSpec, body))
    except webhooks.InvalidWebhook as exc:
        raise _invalid(exc) from None
    _check_target(draft.url, allow_private_targets)
    with open_db(db) as conn:
        if accounts.get(conn, account_id) is None:
            raise click.ClickException(f"no account with id {account_id!r}")
        result = _verify(draft, allow_private_targets) if verify else None
        if result is not None and not result.ok:
            emit(as_json, {"error": "verify_failed", "verify": result.public()}, _verify_text(result))
            raise click.ClickException("the receiver did not accept the verify batch: nothing was stored")
        with transaction(conn):
            webhook = webhooks.insert(conn, draft)
            if result is not None:
                result.record(conn, webhook.id)
    document = {**webhook.public(), "secret": webhook.secret}
    if result is not None:
        document["verify"] = result.public()
    emit(as_json, document,
         f"Created webhook {webhook.id} ({webhook.status})\n{_details(webhook.public())}\n"
         f"  {'secret:':<23}{webhook.secret}\n"
         f"  {'':<23}(shown only now: store it; `linkhub webhooks rotate-secret` issues a new one)")


@webhooks_group.command("list")
@_account_option(required=False)
@json_option
@db_option
def list_(account_id: str | None, as_json: bool, db: Path) -> None:
    """List webhooks (secrets and credentials are never shown)."""
    with open_db(db, readonly=True) as conn:
        found = webhooks.list_for(conn, account_id)
    emit(as_json, [w.public() for w in found], _list_text(found))


@webhooks_group.command("show")
@click.argument("webhook_id")
@_account_option(required=False)
@json_option
@db_option
def show(webhook_id: str, account_id: str | None, as_json: bool, db: Path) -> None:
    """Show one webhook."""
    with open_db(db, readonly=True) as conn:
        webhook = _find(conn, webhook_id, account_id)
    emit(as_json, webhook.public(), f"Webhook {webhook.id}\n{_details(webhook.public())}")


@webhooks_group.command("update")
@click.argument("webhook_id")
@_account_option(required=False)
@_spec_options
@click.option("--all-types", is_flag=True, help="Deliver every event type (clears --type).")
@_allow_private_option
@json_option
@db_option
def update(webhook_id: str, account_id: str | None, all_types: bool, allow_private_targets: bool, as_json: bool,
           db: Path, **options: Any) -> None:
    """Change a webhook's settings; a running server delivers with them from its next batch."""
    if all_types and options["types"]:
        raise click.UsageError("--type and --all-types exclude each other")
    body = _request(**options)
    if all_types:
        body["types"] = []
    if not body:
        raise click.UsageError("nothing to change: give at least one setting (see --help)")
    if body.get("description") == "":
        body["description"] = None
    try:
        changes = webhooks.parse(webhooks.WebhookChanges, body)
    except webhooks.InvalidWebhook as exc:
        raise _invalid(exc) from None
    with open_db(db) as conn:
        try:
            # Check first (no lock held while DNS answers), then apply to the row as it is in the transaction.
            checked = webhooks.apply(_find(conn, webhook_id, account_id), changes)
            if "url" in body:
                _check_target(checked.url, allow_private_targets)
            with transaction(conn):
                webhook = webhooks.update(conn, _find(conn, webhook_id, account_id), changes)
        except webhooks.InvalidWebhook as exc:
            raise _invalid(exc) from None
    emit(as_json, webhook.public(), f"Updated webhook {webhook.id}\n{_details(webhook.public())}")


def _set_status(db: Path, webhook_id: str, account_id: str | None, status: str,
                result: verify.VerifyResult | None = None) -> Webhook:
    with open_db(db) as conn, transaction(conn):
        webhook = _find(conn, webhook_id, account_id)
        if result is not None:
            result.record(conn, webhook.id)
            if not result.ok:
                return webhook
        return webhooks.set_status(conn, webhook.id, status, None)


@webhooks_group.command("activate")
@click.argument("webhook_id")
@_account_option(required=False)
@click.option("--verify", is_flag=True, help="Send the verify batch first; activate only if it answers 2xx.")
@_allow_private_option
@json_option
@db_option
def activate(webhook_id: str, account_id: str | None, verify: bool, allow_private_targets: bool, as_json: bool,
             db: Path) -> None:
    """Start queueing and delivering events to the webhook (also re-enables a disabled one)."""
    result = None
    if verify:
        with open_db(db) as conn:
            current = _find(conn, webhook_id, account_id)
        result = _verify(current, allow_private_targets)
    webhook = _set_status(db, webhook_id, account_id, "active", result)
    if result is not None and not result.ok:
        emit(as_json, {"error": "verify_failed", "verify": result.public()}, _verify_text(result))
        raise click.ClickException(f"the receiver did not accept the verify batch: {webhook.id} stays {webhook.status}")
    document = {**webhook.public(), **({"verify": result.public()} if result is not None else {})}
    emit(as_json, document, f"Webhook {webhook.id} is {webhook.status}")


@webhooks_group.command("deactivate")
@click.argument("webhook_id")
@_account_option(required=False)
@json_option
@db_option
def deactivate(webhook_id: str, account_id: str | None, as_json: bool, db: Path) -> None:
    """Stop queueing new events for the webhook; it can be activated again later."""
    webhook = _set_status(db, webhook_id, account_id, "inactive")
    emit(as_json, webhook.public(), f"Webhook {webhook.id} is {webhook.status}")


@webhooks_group.command("verify")
@click.argument("webhook_id")
@_account_option(required=False)
@_allow_private_option
@json_option
@db_option
def verify_(webhook_id: str, account_id: str | None, allow_private_targets: bool, as_json: bool, db: Path) -> None:
    """POST a batch of test events to the receiver and show its answer; exit 1 unless it answered 2xx."""
    with open_db(db) as conn:
        webhook = _find(conn, webhook_id, account_id)
        result = _verify(webhook, allow_private_targets)
        with transaction(conn):
            if webhooks.get(conn, webhook.id) is not None:
                result.record(conn, webhook.id)
    emit(as_json, result.public(), _verify_text(result))
    if not result.ok:
        sys.exit(1)


@webhooks_group.command("rotate-secret")
@click.argument("webhook_id")
@_account_option(required=False)
@click.option("--expire-previous", is_flag=True,
              help="Stop signing with the old secret at once (it leaked) instead of in a day.")
@json_option
@db_option
def rotate_secret(webhook_id: str, account_id: str | None, expire_previous: bool, as_json: bool, db: Path) -> None:
    """Issue a new signing secret. Deliveries are signed with it from now on, and also with
    the old one for a day, so the receiver can switch to the new one without rejecting any."""
    with open_db(db) as conn, transaction(conn):
        webhook = webhooks.rotate_secret(conn, _find(conn, webhook_id, account_id).id,
                                         expire_previous=expire_previous)
    until = webhook.previous_secret_until
    emit(as_json, {"id": webhook_id, "secret": webhook.secret, "previous_secret_until": until},
         f"New signing secret for {webhook_id} (shown only now):\n  {webhook.secret}\n"
         + (f"The previous secret also signs deliveries until {until}." if until
            else "The previous secret no longer signs anything."))


@webhooks_group.command("delete")
@click.argument("webhook_id")
@_account_option(required=False)
@click.option("--force", is_flag=True, help="Delete even if events still wait for it or are dead (they are dropped).")
@json_option
@db_option
def delete(webhook_id: str, account_id: str | None, force: bool, as_json: bool, db: Path) -> None:
    """Delete an inactive webhook, with its queue and delivery log.

    Refused while events still wait for it (pending) or failed (dead), unless --force drops them.
    """
    with open_db(db) as conn:
        try:
            with transaction(conn):
                dropped = webhooks.delete(conn, _find(conn, webhook_id, account_id).id, force=force)
        except webhooks.WebhookActive as exc:
            raise click.ClickException(str(exc)) from None
        except webhooks.WebhookHasQueue as exc:
            raise click.ClickException(f"{exc}; `linkhub webhooks delete {webhook_id} --force` drops them") from None
    note = f", dropping {_dropped_text(dropped)}" if dropped.pending or dropped.dead else ""
    emit(as_json, {"id": webhook_id, "deleted": True, "dropped": dropped.public()},
         f"Deleted webhook {webhook_id}{note}")


def _dropped_text(dropped: webhooks.Dropped) -> str:
    return f"{plural(dropped.pending, 'pending event')} and {plural(dropped.dead, 'dead event')}"


@webhooks_group.command("deliveries")
@click.argument("webhook_id")
@_account_option(required=False)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
@db_option
def deliveries(webhook_id: str, account_id: str | None, limit: int, as_json: bool, db: Path) -> None:
    """The latest POSTs to the webhook, newest first."""
    with open_db(db, readonly=True) as conn:
        found = webhooks.recent_deliveries(conn, _find(conn, webhook_id, account_id).id, limit)
    rows = [[d["attempted_at"], "verify" if d["test"] else "delivery", str(d["events"]), str(d["status_code"] or "-"),
             f"{d['duration_ms']} ms", d["error"] or "-"] for d in found]
    text = table(["attempted at", "kind", "events", "status", "took", "error"], rows, right=frozenset({2, 4}))
    emit(as_json, found, text if rows else "no deliveries yet")
