"""How deeply a JSON request body nests, checked before it is decoded.

msgspec decodes nesting up to Python's recursion limit (about 1000 levels, less the caller's
stack) and raises RecursionError past it; what it accepted near that limit could fail to
decode again later, on a deeper stack. Every JSON body linkhub reads is therefore refused
past MAX_DEPTH levels of arrays and objects, including in fields that are then ignored.
"""

from __future__ import annotations

import json
import re

import msgspec

MAX_DEPTH = 64

# A JSON string (escapes included); a string that never ends is left for the decoder to refuse.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')
# Keep only brackets, all of one kind: nesting is the same whichever kind they are.
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class TooDeep(msgspec.DecodeError):
    """A body refused before decoding; a DecodeError, so every reader's `except DecodeError` holds."""

    def __init__(self, path: str, offset: int, limit: int) -> None:
        super().__init__(f"JSON nests deeper than {limit} levels of arrays and objects (at byte {offset})")
        self.path, self.offset, self.limit = path, offset, limit


def check(body: bytes, limit: int = MAX_DEPTH) -> None:
    """Raise TooDeep if `body` nests arrays and objects more than `limit` deep.

    Cheap for what is usual: a body with no more than `limit` brackets in all (an Outreach
    call has about 7) costs two `bytes.count`. Otherwise strings are cut out and pairs of
    brackets removed a level a round, in C; only a body that is really too deep, or not
    JSON, is walked token by token, to say where.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return
    brackets = _STRING.sub(b"", body).translate(_ONE_KIND, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return
        brackets = brackets.replace(b"[]", b"")
    if brackets:
        _locate(body, limit)  # too deep, or brackets that do not pair (the decoder says so)


def _locate(body: bytes, limit: int) -> None:
    """Raise TooDeep naming the JSON path of the first value nested past `limit`, if any."""
    # Each open container: [is_object, current key or index, a key comes next].
    stack: list[list[object]] = []
    for token in _TOKEN.finditer(body):
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
