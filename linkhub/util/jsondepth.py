"""How deeply a JSON request body nests, checked before it is decoded.

msgspec decodes nesting up to Python's recursion limit (about 1000 levels, less the caller's
stack) and raises RecursionError past it; what it accepted near that limit could fail to
decode again later, on a deeper stack. Every JSON body linkhub reads is therefore refused
past MAX_DEPTH levels of arrays and objects, including in fields that are then ignored.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate

import msgspec

MAX_DEPTH = 64

# Tokens, to say where a body is too deep: strings (escapes included) and punctuation.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')
# Once escapes are gone and only quotes and brackets are left: a string that holds brackets.
_QUOTED = re.compile(rb'"[^"]*"')
# Keep only brackets, all of one kind (nesting is the same whichever kind they are), and quotes.
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
_NOT_MARKS = bytes(b for b in range(256) if b not in b'[]{}"')
_STEP = tuple(1 if b == ord("[") else -1 for b in range(256))  # over brackets only
_ROUNDS = 8
# Saying where costs ~1.6 us a token, in Python: past this many, a body is refused as
# too deep without its path.
_LOCATE_TOKENS = 100_000


class TooDeep(msgspec.DecodeError):
    """A body refused before decoding; a DecodeError, so every reader's `except DecodeError` holds."""

    def __init__(self, path: str, offset: int | None, limit: int) -> None:
        at = f" (at byte {offset})" if offset is not None else ""
        super().__init__(f"JSON nests deeper than {limit} levels of arrays and objects{at}")
        self.path, self.offset, self.limit = path, offset, limit


def check(body: bytes, limit: int = MAX_DEPTH) -> None:
    """Raise TooDeep if `body` nests arrays and objects more than `limit` deep.

    Cheap for what is usual: a body with no more than `limit` opening brackets in all (an
    Outreach call has about 7) costs a `bytes.find` per bracket. Otherwise strings are cut
    out and pairs of brackets removed a level a round, in C; only a body that is really too
    deep, or not JSON, is walked token by token, to say where.
    """
    if _few_openers(body, limit):
        return
    # Escapes first, so that no quote inside a string is taken for its end; then only
    # quotes and brackets, every string holding no bracket removed ('""'; removing the
    # '""' between two strings merely joins them), and then what strings are left.
    marks = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(_ONE_KIND, _NOT_MARKS)
    marks = marks.replace(b'""', b"").replace(b'""', b"")
    if b'"' in marks:
        marks = _QUOTED.sub(b"", marks)
    too_deep = b"[" * (limit + 1)
    for _ in range(_ROUNDS):  # a round takes away the innermost pairs: one level
        if not marks:
            return
        if too_deep in marks:
            break
        shorter = marks.replace(b"[]", b"")
        if len(shorter) == len(marks):
            return  # brackets that do not pair: not JSON, as the decoder will say
        marks = shorter
    else:
        # Still nested after those rounds (nothing usual is): measure the rest in one pass,
        # rather than one more pass a level.
        if not marks or max(accumulate(map(_STEP.__getitem__, marks))) <= limit - _ROUNDS:
            return
    _locate(body, limit)


def _few_openers(body: bytes, limit: int) -> bool:
    """At most `limit` of '[' and '{' in all? find() runs memchr; count() walks byte by byte, 4x slower."""
    seen = 0
    for opener in (b"[", b"{"):
        at = body.find(opener)
        while at != -1:
            seen += 1
            if seen > limit:
                return False
            at = body.find(opener, at + 1)
    return True


def _locate(body: bytes, limit: int) -> None:
    """Raise TooDeep naming the JSON path of the first value nested past `limit`, if any.

    Called once the body is known to be too deep: past _LOCATE_TOKENS it is refused with
    the path `$`.
    """
    # Each open container: [is_object, current key or index, a key comes next].
    stack: list[list[object]] = []
    for count, token in enumerate(_TOKEN.finditer(body)):
        if count == _LOCATE_TOKENS:
            raise TooDeep("$", None, limit)
        first = token[0][:1]
        if first in b"[{":
            if len(stack) == limit:
                raise TooDeep(_path(stack), token.start(), limit)
            stack.append([first == b"{", 0 if first == b"[" else "", first == b"{"])
        elif first in b"]}":
            if not stack:
                return
            stack.pop()
        elif not stack:
            continue
        elif first == b",":
            top = stack[-1]
            if top[0]:
                top[2] = True
            else:
                top[1] = int(top[1]) + 1  # type: ignore[call-overload]
        elif first == b":":
            stack[-1][2] = False
        elif stack[-1][0] and stack[-1][2]:
            stack[-1][1] = _key(token[0])


def _key(raw: bytes) -> str:
    try:
        return str(json.loads(raw))
    except ValueError:
        return raw.decode("utf-8", "replace").strip('"')


def _path(stack: list[list[object]]) -> str:
    return "$" + "".join(f".{key}" if is_object else f"[{key}]" for is_object, key, _ in stack)
