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

# 8 random bytes → 11 URL-safe characters, 64 bits: short in an email, and far too many to guess.
CODE_BYTES = 8


def link_codes(count: int) -> list[str]:
    """`count` codes from one read of the OS's random source (one syscall, not one per code)."""
    pool = secrets.token_bytes(CODE_BYTES * count)
    return [
        base64.urlsafe_b64encode(pool[i : i + CODE_BYTES]).rstrip(b"=").decode()
        for i in range(0, len(pool), CODE_BYTES)
    ]


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
