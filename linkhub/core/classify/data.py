"""The network lists shipped inside the package, and their manifest.

Each list is a text file in `data/` (one CIDR a line, `#` comments naming its source) described by one
entry of `data/manifest.json`: what it is (label, kind, certainty, scope), where it comes from (source
URLs, retrieval date, licence or terms) and what the file must be (entry count, sha256), so a list edited
without its manifest is caught by the tests, and `linkhub classify data` can say how old each list is.
Files are read once, when a `Networks` is built; nothing here runs on the redirect's path.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any, Literal

# A shipped list older than this is worth a warning at start: vendors renumber (Mimecast moved to owned
# ranges in 2022-2023; Google's crawler files change every few weeks), so half a year is already old.
STALE_AFTER_DAYS = 180

# `mail_prefetch`: a mail app's privacy service that fetches every image of an email ahead of any reading,
# whether or not anyone reads it (Apple Mail Privacy Protection): an open from it is nobody's open.
Kind = Literal["scanner", "crawler", "cloud", "mail_prefetch"]
Certainty = Literal["high", "medium", "low"]
# What a match is evidence of: a click's fetch, an open's image fetch, or both. Microsoft's network also
# carries the image proxy of Outlook on the web, which loads a real reader's images: an EOP address on an
# open is not a scanner's, so that list says `clicks`.
Scope = Literal["clicks", "opens", "both"]

KINDS: tuple[str, ...] = ("scanner", "crawler", "cloud", "mail_prefetch")
CERTAINTIES: tuple[str, ...] = ("high", "medium", "low")
SCOPES: tuple[str, ...] = ("clicks", "opens", "both")

_DATA = "data"
_MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class ListInfo:
    """One shipped list as its manifest describes it."""

    label: str
    file: str
    kind: Kind
    certainty: Certainty
    scope: Scope
    description: str
    sources: tuple[str, ...]
    retrieved: date
    source_date: str  # the date the source itself carries (a file's creationTime, a page's version), if any
    licence: str
    entries: int
    sha256: str
    notes: str

    def age_days(self, today: date) -> int:
        """Days since the list was retrieved from its source."""
        return (today - self.retrieved).days

    def as_dict(self, today: date | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "label": self.label, "file": self.file, "kind": self.kind, "certainty": self.certainty,
            "scope": self.scope, "description": self.description, "sources": list(self.sources),
            "retrieved": self.retrieved.isoformat(), "source_date": self.source_date, "licence": self.licence,
            "entries": self.entries, "sha256": self.sha256, "notes": self.notes,
        }
        if today is not None:
            doc["age_days"] = self.age_days(today)
        return doc


@dataclass(frozen=True, slots=True)
class Manifest:
    lists: tuple[ListInfo, ...]
    # Vendors the issue names whose networks are not shipped, and why (no range could be cited).
    not_shipped: tuple[dict[str, str], ...]


def _data_file(name: str) -> bytes:
    return (resources.files("linkhub.core.classify") / _DATA / name).read_bytes()


def _choice(entry: dict[str, Any], field: str, allowed: tuple[str, ...]) -> Any:
    value = entry.get(field)
    if value not in allowed:
        raise ValueError(f"{_MANIFEST}: list {entry.get('label')!r}: {field} {value!r} is not one of {allowed}")
    return value


def manifest() -> Manifest:
    """The manifest shipped with the package (read each call: the CLI and the tests call it once)."""
    doc = json.loads(_data_file(_MANIFEST))
    lists = tuple(
        ListInfo(
            label=entry["label"], file=entry["file"],
            kind=_choice(entry, "kind", KINDS), certainty=_choice(entry, "certainty", CERTAINTIES),
            scope=_choice(entry, "scope", SCOPES), description=entry["description"],
            sources=tuple(entry["sources"]), retrieved=date.fromisoformat(entry["retrieved"]),
            source_date=entry.get("source_date", ""), licence=entry["licence"], entries=int(entry["entries"]),
            sha256=entry["sha256"], notes=entry.get("notes", ""),
        )
        for entry in doc["lists"]
    )
    return Manifest(lists, tuple(doc.get("not_shipped", ())))


def list_text(info: ListInfo) -> bytes:
    """The list's file as shipped."""
    return _data_file(info.file)


def cidr_lines(text: str) -> list[tuple[int, str]]:
    """(line number, first field) of every line that is not blank or a `#` comment; a `#` ends any line."""
    found: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            found.append((number, line))
    return found


def describe(content: bytes) -> tuple[int, str]:
    """(entry count, sha256) of a list file's bytes: what its manifest entry must say."""
    return len(cidr_lines(content.decode("utf-8"))), hashlib.sha256(content).hexdigest()


def read_list(info: ListInfo) -> list[str]:
    """The list's CIDRs, each checked (a shipped file with a bad line is a packaging bug: it raises)."""
    cidrs: list[str] = []
    for number, line in cidr_lines(list_text(info).decode("utf-8")):
        try:
            cidrs.append(str(ipaddress.ip_network(line, strict=True)))
        except ValueError as exc:
            raise ValueError(f"{info.file}:{number}: {exc}") from None
    return cidrs


def problems(info: ListInfo) -> list[str]:
    """How the list's file disagrees with its manifest entry (nothing when they agree)."""
    entries, digest = describe(list_text(info))
    found = []
    if entries != info.entries:
        found.append(f"{info.file}: {entries} entries, the manifest says {info.entries}")
    if digest != info.sha256:
        found.append(f"{info.file}: sha256 {digest}, the manifest says {info.sha256}")
    return found


def stale_lists(today: date, max_age_days: int = STALE_AFTER_DAYS) -> list[ListInfo]:
    """The shipped lists retrieved more than `max_age_days` before `today`: for the server's start-up warning."""
    return [info for info in manifest().lists if info.age_days(today) > max_age_days]
