"""The account's link filter: a PCRE-style pattern matched against a link's original URL.

Outreach documents its filter as Perl-compatible, so we use the `regex` package
(closer to PCRE than `re`). A pattern is checked when it is set (`validate`): its length,
and a compile in a child process with a time and memory limit, because compiling nested
repeats such as `(?:(?:a{1000}){1000}){1000}` takes seconds and gigabytes. Every match
has a timeout, so a pattern with catastrophic backtracking costs its own call a bounded
time; the server runs matches in a worker thread (the `regex` module releases the GIL
while it matches), never on the event loop.
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys

import regex

log = logging.getLogger("linkhub.filter")

# Per-URL budget. A link that cannot be decided in this time is left out (Outreach keeps
# the original), which is the safe answer.
MATCH_TIMEOUT_S = 0.02
# Outreach's own filters are a few dozen characters; this leaves room for long alternations.
MAX_PATTERN_LENGTH = 1000
# What one compile may take when the filter is set. The server compiles each pattern once,
# in a worker thread, so this also bounds what a pattern costs it.
COMPILE_TIMEOUT_S = 2.0
COMPILE_MEMORY_BYTES = 64 * 1024 * 1024

# Run by a child interpreter: the pattern arrives as JSON on stdin, the verdict leaves as
# JSON on stdout. The address-space limit is set after `regex` is imported, so it counts
# the compile only.
_COMPILE_CHILD = """
import json, sys
import regex
try:
    import resource
    with open("/proc/self/statm") as statm:
        used = int(statm.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + int(sys.argv[1]), resource.RLIM_INFINITY))
except (ImportError, OSError, ValueError):
    pass  # no such limit on this system: the timeout still bounds the compile
pattern = json.loads(sys.stdin.read())
try:
    regex.compile(pattern)
    verdict = {"ok": True}
except MemoryError:
    verdict = {"ok": False, "memory": True}
except (regex.error, ValueError, OverflowError, RecursionError) as exc:
    verdict = {"ok": False, "error": str(exc)}
print(json.dumps(verdict))
"""


class InvalidFilter(ValueError):
    """The pattern does not compile, or not within the bounds."""


def validate(pattern: str) -> str:
    """Refuse a pattern that does not compile, or not within MAX_PATTERN_LENGTH and the compile bounds."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidFilter(f"invalid link filter: the pattern is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        child = subprocess.run(
            [sys.executable, "-P", "-c", _COMPILE_CHILD, str(COMPILE_MEMORY_BYTES)],
            input=json.dumps(pattern), capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, check=False,
        )
    except subprocess.TimeoutExpired:
        raise InvalidFilter(f"invalid link filter: compiling the pattern takes more than {COMPILE_TIMEOUT_S:g} s"
                            " (nested repeats?)") from None
    except OSError as exc:
        raise InvalidFilter(f"cannot check the link filter: {exc}") from None
    try:
        verdict = json.loads(child.stdout)
    except ValueError:
        # No verdict: the limit stopped the child outside Python's reach, or it could not run.
        if child.returncode >= 0 and "MemoryError" not in child.stderr:
            last = (child.stderr.strip().splitlines() or ["no output"])[-1]
            raise InvalidFilter(f"cannot check the link filter: the compile check failed: {last}") from None
        verdict = {"ok": False, "memory": True}
    if verdict.get("memory"):
        raise InvalidFilter(f"invalid link filter: compiling the pattern needs more than "
                            f"{COMPILE_MEMORY_BYTES // 2**20} MiB (nested repeats?)")
    if not verdict["ok"]:
        shown = f" {pattern!r}" if len(pattern) <= 80 else ""  # an error message stays one readable line
        raise InvalidFilter(f"invalid link filter{shown}: {verdict['error']}")
    return pattern


@functools.lru_cache(maxsize=256)
def compiled(pattern: str) -> regex.Pattern[str] | None:
    """The compiled pattern, or None if it does not compile (stored without `validate`).

    Called in a worker thread, never on the event loop: a cold compile may take a moment.
    """
    try:
        return regex.compile(pattern)
    except (regex.error, ValueError, OverflowError, RecursionError, MemoryError) as exc:
        log.warning("link filter does not compile, so no link is replaced: %s: pattern=%r", exc, pattern[:200])
        return None


def matches(pattern: str, url: str, *, timeout: float = MATCH_TIMEOUT_S) -> bool | None:
    """True/False for a match; None when the match ran out of time or the pattern is unusable (treat as no match)."""
    compiled_pattern = compiled(pattern)
    if compiled_pattern is None:
        return None
    try:
        # concurrent=True: let other threads run while this one matches. For a str the
        # module already releases the GIL; saying so keeps it true whatever is passed.
        return compiled_pattern.search(url, timeout=timeout, concurrent=True) is not None
    except TimeoutError:
        log.warning("link filter timed out after %.0f ms; link left out: pattern=%r url=%r",
                    timeout * 1000, pattern[:200], url[:200])
        return None
