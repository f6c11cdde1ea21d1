"""Re-scoring stored clicks with the classifier's current rules and data (`linkhub classify rescore`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from linkhub.core import clicks
from linkhub.core.classify.behaviour import judge_all
from linkhub.core.classify.signals import Networks
from linkhub.core.classify.verdict import Verdict
from linkhub.store import Connection, transaction

# Changes are written in transactions of this many clicks: a running server's writer waits for each.
CHUNK = 500


@dataclass
class Rescored:
    clicks: int = 0
    changed: int = 0  # clicks whose stored verdict, score or reasons were (or would be) rewritten
    # (old verdict or None, new verdict) -> how many clicks
    # clicks stored without their user agent (--no-user-agent): judged with the others, for what their
    # timing and address say of their neighbours, but their own stored verdict is kept
    kept: int = 0
    transitions: Counter[tuple[str | None, str]] = field(default_factory=Counter)


def rescore(conn: Connection, *, since: str, until: str | None, account: str | None, networks: Networks,
            settle_s: int, dry_run: bool) -> Rescored:
    """Judge the clicks of [since, until) again, together, in the order they happened, as the redirect
    would judge them today; store the new verdicts unless `dry_run` (each change of a verdict is
    recorded in verdict_changes with the cause `rescore`).

    A click stored without its user agent keeps its verdict (made at capture, from the whole request):
    the user agent cannot be read again, and judging the click without it would call it a machine.
    """
    stored = clicks.stored_clicks(conn, since=since, until=until, account=account)
    final = judge_all([(click.hit, click.at_ms, click.account_id) for click in stored], networks=networks,
                      settle_ms=settle_s * 1000)
    result = Rescored(clicks=len(stored))
    pending: list[tuple[str, str, Verdict]] = []
    for click, verdict in zip(stored, final, strict=True):
        if not click.user_agent_kept:
            result.kept += 1
            continue
        result.transitions[(click.verdict["verdict"] if click.verdict else None, verdict.verdict)] += 1
        if not clicks.same_verdict(click.verdict, verdict):
            result.changed += 1
            pending.append((click.account_id, click.event_id, verdict))
    if not dry_run:
        for start in range(0, len(pending), CHUNK):
            with transaction(conn):
                clicks.change_verdicts(conn, pending[start:start + CHUNK], cause="rescore")
    return result
