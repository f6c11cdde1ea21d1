"""Counts in words, for every message linkhub writes: the CLI's output, errors, log lines."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`1 event`, `2 events`, `1,000 events`."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"
