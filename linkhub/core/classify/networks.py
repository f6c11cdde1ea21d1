"""Which published networks a client IP belongs to: the shipped lists plus the operator's own.

A `Networks` is built once (at start, or once per `classify trace` run) and then answers `match(ip)` with
no I/O: each IP version's CIDRs are cut into disjoint integer segments, sorted, and every segment carries
the matches of all lists covering it, so a look-up is one `bisect` and overlapping lists (an operator's
range inside Microsoft's) both answer. The standard library's `ipaddress` and `bisect` are enough; no
dependency is needed for a few hundred ranges.

The operator file (`--scanner-networks FILE`, `LINKHUB_SCANNER_NETWORKS`) has one entry a line,
`CIDR label certainty`, `#` comments and blank lines ignored: a security team knows its own gateway's
egress addresses better than any public list.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from linkhub.core.classify.data import CERTAINTIES, Certainty, Kind, Scope, cidr_lines, manifest, read_list

# An operator's list says what the gateway is (a label of its choosing) and how sure the team is; it is a
# scanner's network and counts for clicks and opens alike (a gateway that rewrites links also fetches images).
OPERATOR_KIND: Kind = "scanner"
OPERATOR_SCOPE: Scope = "both"
_LABEL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class NetworkMatch:
    """One list that contains the IP: which list, what it is, how sure, and the CIDR that matched."""

    label: str
    kind: Kind
    certainty: Certainty
    scope: Scope
    cidr: str
    origin: str  # "shipped", or the operator file's path


@dataclass(frozen=True, slots=True)
class NetworkList:
    label: str
    kind: Kind
    certainty: Certainty
    scope: Scope
    cidrs: tuple[str, ...]
    origin: str = "shipped"


class _Table:
    """One IP version: segment starts (sorted integers) and the matches of each segment."""

    __slots__ = ("matches", "starts")

    def __init__(self, ranges: list[tuple[int, int, NetworkMatch]]) -> None:
        # Sweep the boundaries: a range [first, last] opens at `first` and closes at `last + 1`.
        events: dict[int, tuple[list[NetworkMatch], list[NetworkMatch]]] = {}
        for first, last, match in ranges:
            events.setdefault(first, ([], []))[0].append(match)
            events.setdefault(last + 1, ([], []))[1].append(match)
        active: dict[NetworkMatch, int] = {}
        self.starts: list[int] = []
        self.matches: list[tuple[NetworkMatch, ...]] = []
        for point in sorted(events):
            opened, closed = events[point]
            for match in closed:
                active[match] -= 1
                if not active[match]:
                    del active[match]
            for match in opened:
                active[match] = active.get(match, 0) + 1
            self.starts.append(point)
            self.matches.append(tuple(active))

    def find(self, number: int) -> tuple[NetworkMatch, ...]:
        at = bisect.bisect_right(self.starts, number) - 1
        return self.matches[at] if at >= 0 else ()


class Networks:
    """The look-up: `match(ip)` lists every loaded list that contains `ip` (empty when none, or not an IP)."""

    def __init__(self, lists: Iterable[NetworkList]) -> None:
        self.lists: tuple[NetworkList, ...] = tuple(lists)
        by_version: dict[int, list[tuple[int, int, NetworkMatch]]] = {4: [], 6: []}
        for network_list in self.lists:
            for version, first, last, cidr in _ranges(network_list.cidrs):
                match = NetworkMatch(network_list.label, network_list.kind, network_list.certainty,
                                     network_list.scope, cidr, network_list.origin)
                by_version[version].append((first, last, match))
        self._v4 = _Table(by_version[4])
        self._v6 = _Table(by_version[6])

    @classmethod
    def load(cls, operator_file: Path | None = None) -> Networks:
        """The shipped lists, plus the operator's file if one is given (a bad line raises ValueError)."""
        lists = shipped_lists()
        if operator_file is not None:
            lists += parse_operator_file(operator_file, taken={item.label for item in lists})
        return cls(lists)

    def match(self, ip: str | None) -> list[NetworkMatch]:
        if not ip:
            return []
        number = _ipv4_number(ip)
        if number is not None:
            return list(self._v4.find(number))
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return []
        if isinstance(address, ipaddress.IPv6Address):
            # An IPv4 client seen through a dual-stack socket (::ffff:40.107.1.1) is that IPv4 client.
            mapped = address.ipv4_mapped
            if mapped is None:
                return list(self._v6.find(int(address)))
            address = mapped
        return list(self._v4.find(int(address)))


def _ipv4_number(ip: str) -> int | None:
    """The address as a number when `ip` is a plain dotted-quad IPv4 address, else None (then
    `ipaddress` decides). On every click: ~1 µs, against ~5 µs for ipaddress.ip_address. It accepts
    only what ipaddress accepts alike (four ASCII-decimal parts of 0-255 without leading zeros)."""
    parts = ip.split(".")
    if len(parts) != 4:
        return None
    number = 0
    for part in parts:
        if not (part.isascii() and part.isdigit()) or len(part) > 3 or (len(part) > 1 and part[0] == "0"):
            return None
        octet = int(part)
        if octet > 255:
            return None
        number = number << 8 | octet
    return number


def shipped_lists() -> list[NetworkList]:
    """Every list of the manifest, read from the package."""
    return list(_shipped())


# The shipped lists never change while the process runs, and Apple's alone has ~14,000 prefixes (half a
# second to parse twice): read and parsed once per process, however many servers or traces it builds.
@functools.cache
def _shipped() -> tuple[NetworkList, ...]:
    return tuple(NetworkList(info.label, info.kind, info.certainty, info.scope, tuple(read_list(info)))
                 for info in manifest().lists)


@functools.lru_cache(maxsize=64)
def _ranges(cidrs: tuple[str, ...]) -> tuple[tuple[int, int, int, str], ...]:
    """(IP version, first address, last address, CIDR) of each CIDR, as numbers."""
    found = []
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr)
        found.append((net.version, int(net.network_address), int(net.broadcast_address), str(net)))
    return tuple(found)


def parse_operator_file(path: Path, taken: Sequence[str] | set[str] = ()) -> list[NetworkList]:
    """The operator's lists, one per label, from `CIDR label certainty` lines.

    A line that is not of that form raises ValueError naming the file, the line number and what is
    wrong, so the CLI and the server can print it as one line. `taken` are labels already in use (the
    shipped lists'): an operator list may not reuse one, or its matches would read as Microsoft's.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"{path}: cannot read the scanner networks file: {reason}") from None
    grouped: dict[tuple[str, str], list[str]] = {}
    certainty_of: dict[str, tuple[str, int]] = {}
    for number, line in cidr_lines(text):
        where = f"{path}:{number}"
        fields = line.split()
        if len(fields) != 3:
            raise ValueError(f"{where}: expected `CIDR label certainty`, found {len(fields)} field(s): {line!r}")
        cidr, label, certainty = fields
        try:
            net = ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            hint = ""
            try:
                hint = f" (did you mean {ipaddress.ip_network(cidr, strict=False)}?)"
            except ValueError:
                pass
            raise ValueError(f"{where}: {cidr!r} is not a CIDR: {exc}{hint}") from None
        if not _LABEL.fullmatch(label):
            raise ValueError(f"{where}: label {label!r}: use lower-case letters, digits, '_', '.', '-' "
                             "(at most 64, starting with a letter or digit)")
        if label in taken:
            raise ValueError(f"{where}: label {label!r} is a shipped list's; choose another")
        if certainty not in CERTAINTIES:
            raise ValueError(f"{where}: certainty {certainty!r} is not one of {', '.join(CERTAINTIES)}")
        if label in certainty_of and certainty_of[label][0] != certainty:
            first, at = certainty_of[label]
            raise ValueError(f"{where}: label {label!r} has certainty {certainty} here but {first} on line {at}")
        certainty_of.setdefault(label, (certainty, number))
        grouped.setdefault((label, certainty), []).append(str(net))
    return [NetworkList(label, OPERATOR_KIND, cast(Certainty, certainty), OPERATOR_SCOPE, tuple(cidrs), str(path))
            for (label, certainty), cidrs in grouped.items()]
