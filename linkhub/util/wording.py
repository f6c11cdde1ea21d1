"""Counts in words, for every message linkhub writes: the CLI's output, errors, log lines."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`1 event`, `2 events`, `1,000 events`."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """`text` with the ASCII letters lower-cased and nothing else: what SQLite's lower() and COLLATE
    NOCASE do, so Python and SQL agree on an address like `Jörg@Example.com` (str.lower would also
    lower the Ö)."""
    return text.translate(_ASCII_LOWER)
