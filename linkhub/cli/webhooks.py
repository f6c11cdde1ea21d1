"""`linkhub webhooks …`: the /v1/webhooks API for operators, straight on the SQLite file.

The commands parse their options into the API's request Structs and call the same use cases
(linkhub.services.webhooks) as the API, on the CLI's own connection: the same rules, the same
SSRF check, the same verify batch. What is left here is options in, text or JSON out.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from linkhub.cli.common import db_option, emit, json_option, secret_value, setting_options, store, table
from linkhub.core import formats, webhooks
from linkhub.core.errors import LinkhubError
from linkhub.core.events import EVENT_TYPES, VERDICTS
from linkhub.core.webhooks import Webhook
from linkhub.delivery.verify import VerifyResult
from linkhub.services import webhooks as use
from linkhub.services.webhooks import Receivers
from linkhub.util.wording import plural

T = TypeVar("T")
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
    "verdicts": "--verdicts", "wait_for_verdict": "--wait-for-verdict",
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
        click.option("--verdicts", default=None, metavar="LIST",
                     help=f"Click verdicts to receive, comma-separated, from {','.join(VERDICTS)} "
                          f"(e.g. human,unknown for a CRM) [create default: all four]."),
        click.option("--wait-for-verdict/--no-wait-for-verdict", default=None,
                     help="Send each click once the settle window has passed, with its settled verdict, and only "
                          "if that is in --verdicts [create default: no wait]."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _request(url: str | None, types: tuple[str, ...], fmt: str | None, auth_type: str | None,
             username: str | None, password: str | None, token: str | None, header_name: str | None,
             header_value: str | None, batch_size: int | None, retry_policy: str | None,
             retry_interval: int | None, max_age_s: int | None, timeout_s: int | None, ordered: bool | None,
             description: str | None, verdicts: str | None, wait_for_verdict: bool | None) -> dict[str, Any]:
    """The given options as an API request body: only what was given, so update changes only that."""
    body: dict[str, Any] = {
        key: value
        for key, value in (("url", url), ("format", fmt), ("batch_size", batch_size), ("max_age_s", max_age_s),
                           ("timeout_s", timeout_s), ("ordered", ordered), ("description", description),
                           ("wait_for_verdict", wait_for_verdict))
        if value is not None
    }
    if types:
        body["types"] = list(types)
    if verdicts is not None:
        # The domain checks the names (and says which one is wrong); an empty value is an empty list.
        body["verdicts"] = [name.strip() for name in verdicts.split(",")] if verdicts.strip() else []
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


def _run(use_case: Coroutine[Any, Any, T], *, as_json: bool = False) -> T:
    with _refusals(as_json):
        return asyncio.run(use_case)


@contextlib.contextmanager
def _refusals(as_json: bool = False) -> Iterator[None]:
    """A use case's refusal as the CLI words it: options instead of JSON fields, its own ways out."""
    try:
        yield
    except use.VerifyFailed as exc:
        emit(as_json, {"error": "verify_failed", "verify": exc.result.public()}, _verify_text(exc.result))
        stays = f"{exc.webhook.id} stays {exc.webhook.status}" if exc.webhook else "nothing was stored"
        raise click.ClickException(f"the receiver did not accept the verify batch: {stays}") from None
    except LinkhubError as exc:
        raise _refusal(exc) from None


def _refusal(exc: LinkhubError) -> click.ClickException:
    if isinstance(exc, webhooks.InvalidWebhook):
        return _invalid(exc)
    if isinstance(exc, use.TargetRefused):
        return click.BadParameter(f"refused target: {exc.message}", param_hint="'--url'")
    if isinstance(exc, webhooks.WebhookNotFound) and exc.account_id:
        return click.ClickException(f"{exc.message} in account {exc.account_id!r}")
    if isinstance(exc, webhooks.WebhookHasQueue):
        return click.ClickException(f"{exc.reason}; `linkhub webhooks delete {exc.webhook_id} --force` drops them")
    return click.ClickException(exc.message)


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


def _list_text(found: list[Webhook]) -> str:
    if not found:
        return "no webhooks"
    rows = [[w.id, w.account_id, w.status + (f" ({w.status_reason})" if w.status_reason else ""), w.format,
             ",".join(w.types) or "all", _verdicts_text(w.verdicts, w.wait_for_verdict), w.url] for w in found]
    return table(["id", "account", "status", "format", "types", "verdicts", "url"], rows)


def _verdicts_text(verdicts: tuple[str, ...] | list[str], wait: bool) -> str:
    """'all', or the verdicts taken; '… (settled)' when clicks wait for the settled verdict."""
    chosen = "all" if len(verdicts) == len(VERDICTS) else ",".join(verdicts)
    return f"{chosen} (settled)" if wait else chosen


def _details(document: dict[str, Any]) -> str:
    def text(key: str, value: Any) -> str:
        if key == "types":
            return ", ".join(value) or "all"
        if key == "verdicts":
            return ", ".join(value)
        if isinstance(value, dict):
            return " ".join(f"{k}={v}" for k, v in value.items())
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "-" if value is None else str(value)

    width = max(map(len, document)) + 2
    return "\n".join(f"  {key + ':':<{width}}{text(key, value)}" for key, value in document.items())


def _verify_text(result: VerifyResult) -> str:
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
    with _refusals():
        spec = webhooks.parse(webhooks.WebhookSpec, {**_request(**options), "active": active, "verify": verify})
    with store(db) as opened:
        created = _run(use.create(opened, Receivers(allow_private_targets), account_id, spec), as_json=as_json)
    webhook = created.webhook
    emit(as_json, created.public(),
         f"Created webhook {webhook.id} ({webhook.status})\n{_details(webhook.public())}\n"
         f"  {'secret:':<23}{webhook.secret}\n"
         f"  {'':<23}(shown only now: store it; `linkhub webhooks rotate-secret` issues a new one)")


@webhooks_group.command("list")
@_account_option(required=False)
@json_option
@db_option
def list_(account_id: str | None, as_json: bool, db: Path) -> None:
    """List webhooks (secrets and credentials are never shown)."""
    with store(db, readonly=True) as opened:
        found = webhooks.list_for(opened.reader(), account_id)
    emit(as_json, [w.public() for w in found], _list_text(found))


@webhooks_group.command("show")
@click.argument("webhook_id")
@_account_option(required=False)
@json_option
@db_option
def show(webhook_id: str, account_id: str | None, as_json: bool, db: Path) -> None:
    """Show one webhook."""
    with store(db, readonly=True) as opened, _refusals():
        webhook = use.find(opened, webhook_id, account_id)
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
    with _refusals():
        changes = webhooks.parse(webhooks.WebhookChanges, body)
    with store(db) as opened:
        webhook = _run(use.update(opened, Receivers(allow_private_targets), webhook_id, account_id, changes))
    emit(as_json, webhook.public(), f"Updated webhook {webhook.id}\n{_details(webhook.public())}")


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
    with store(db) as opened:
        activated = _run(use.activate(opened, Receivers(allow_private_targets), webhook_id, account_id,
                                      verify_first=verify), as_json=as_json)
    emit(as_json, activated.public(), f"Webhook {activated.webhook.id} is {activated.webhook.status}")


@webhooks_group.command("deactivate")
@click.argument("webhook_id")
@_account_option(required=False)
@json_option
@db_option
def deactivate(webhook_id: str, account_id: str | None, as_json: bool, db: Path) -> None:
    """Stop queueing new events for the webhook; it can be activated again later."""
    with store(db) as opened:
        webhook = _run(use.deactivate(opened, webhook_id, account_id))
    emit(as_json, webhook.public(), f"Webhook {webhook.id} is {webhook.status}")


@webhooks_group.command("verify")
@click.argument("webhook_id")
@_account_option(required=False)
@_allow_private_option
@json_option
@db_option
def verify_(webhook_id: str, account_id: str | None, allow_private_targets: bool, as_json: bool, db: Path) -> None:
    """POST a batch of test events to the receiver and show its answer; exit 1 unless it answered 2xx."""
    with store(db) as opened:
        result = _run(use.verify(opened, Receivers(allow_private_targets), webhook_id, account_id))
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
    with store(db) as opened:
        webhook = _run(use.rotate(opened, webhook_id, account_id, expire_previous=expire_previous))
    until = webhook.previous_secret_until
    emit(as_json, use.rotated(webhook),
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
    with store(db) as opened:
        deleted = _run(use.delete(opened, webhook_id, account_id, force=force))
    dropped = deleted.dropped
    note = f", dropping {_dropped_text(dropped)}" if dropped.pending or dropped.dead else ""
    emit(as_json, deleted.public(), f"Deleted webhook {webhook_id}{note}")


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
    with store(db, readonly=True) as opened, _refusals():
        found = use.deliveries(opened, webhook_id, account_id, limit)
    rows = [[d["attempted_at"], "verify" if d["test"] else "delivery", str(d["events"]), str(d["status_code"] or "-"),
             f"{d['duration_ms']} ms", d["error"] or "-"] for d in found]
    text = table(["attempted at", "kind", "events", "status", "took", "error"], rows, right=frozenset({2, 4}))
    emit(as_json, found, text if rows else "no deliveries yet")
