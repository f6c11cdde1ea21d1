"""Random identifiers and secrets.

Everything that grants access or could be guessed into use (codes, keys, secrets, account
ids) comes from `secrets`. Event ids are names, not capabilities: they only need to be unique.
"""

from __future__ import annotations

import base64
import hashlib
import random
import secrets
import time

# A code is a sequence number, then 54 random bits. The number is written in an alphabet
# listed in ASCII order and led by its own length, so codes sort as their numbers do: the
# codes of new links go in at one place of the code index, where random codes went in on
# random pages (at 25,000 new links a second those page writes were what filled the WAL and
# stalled the writer). The random part alone makes a code unguessable; the number grants nothing.
_ORDERED = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
RANDOM_CHARS = 9  # base64url characters of 6 random bits each


def link_codes(number: int, count: int) -> list[str]:
    """`count` codes that begin with `number` (≥ 1), from one read of the OS's random source
    (one system call, not one per code)."""
    # 3 bytes make 4 base64 characters with no padding.
    pool = base64.urlsafe_b64encode(secrets.token_bytes(3 * -(-count * RANDOM_CHARS // 4))).decode()
    digits = []
    while number:
        digits.append(_ORDERED[number & 63])
        number >>= 6
    prefix = _ORDERED[len(digits)] + "".join(reversed(digits))
    return [prefix + pool[i : i + RANDOM_CHARS] for i in range(0, count * RANDOM_CHARS, RANDOM_CHARS)]


def account_id() -> str:
    return secrets.token_hex(8)


def event_id() -> str:
    """Id for events linkhub records itself (its clicks); senders' ids are kept as given.

    Time first (milliseconds, hex), then 64 random bits: ids sort by creation, so each new
    one lands at the end of the (account_id, id) index instead of on a random page. The bits
    come from `random`, not `secrets`: an event id grants nothing, and reading the OS's
    random source is a system call that releases the GIL on every click (a hand-over to
    the writer thread on the redirect path).
    """
    return f"lh_{time.time_ns() // 1_000_000:012x}{random.getrandbits(64):016x}"


def api_key() -> str:
    return "lhk_" + secrets.token_urlsafe(32)


def api_key_digest(key: str) -> str:
    # The key has 256 bits of entropy: a fast hash is enough to make a leaked table useless.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
