"""Behaviour across hits: what a hit means next to the other hits of the same email and client IP.

(First cut: the window and its interface; the cross-hit signals follow.)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import NamedTuple

from linkhub.core.classify import signals
from linkhub.core.classify.hits import Hit
from linkhub.core.classify.verdict import Verdict, decide

DEFAULT_SETTLE_MS = 120_000


class Change(NamedTuple):
    """An earlier hit whose verdict a later one changed: its caller's `ref`, the old and new verdict."""

    ref: Hashable
    old: Verdict
    new: Verdict


class Window:
    """The recent hits, held in memory for the settle window."""

    def __init__(self, networks: signals.Networks | None, *, settle_ms: int = DEFAULT_SETTLE_MS) -> None:
        self.networks = networks
        self.settle_ms = settle_ms

    def observe(self, ref: Hashable, hit: Hit, *, at_ms: int, scope: str = "") -> tuple[Verdict, list[Change]]:
        """The new hit's verdict, and the changes it makes to earlier hits still settling.

        `ref` is the caller's handle for the hit (returned in a later Change); `at_ms` its time;
        `scope` keeps accounts apart (one recipient id in two accounts is two people).
        """
        return decide(signals.hit_reasons(hit, networks=self.networks)), []


def settle(hits: Iterable[Hit], *, networks: signals.Networks | None,
           settle_ms: int = DEFAULT_SETTLE_MS) -> list[Verdict]:
    """Every hit's settled verdict, in input order: `linkhub classify trace` on a whole file."""
    window = Window(networks, settle_ms=settle_ms)
    final: list[Verdict] = []
    for index, hit in enumerate(hits):
        at = hit.at if hit.at is not None else (hit.t or 0)
        verdict, changes = window.observe(index, hit, at_ms=at)
        final.append(verdict)
        for change in changes:
            final[int(str(change.ref))] = change.new
    return final
