"""A hit: one request for a tracked link (or an open pixel), as the classifier sees it.

The fields are those of a line of `linkhub classify trace`, so the redirect and the offline trace
feed the same classifier the same input.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Since = Literal["minted", "sent", "delivered"]


class Hit(msgspec.Struct, kw_only=True, gc=False):
    """One hit.

    `t`: milliseconds since the recipient's links were minted (Outreach asks linkhub for them just
    before it sends), or since the email's `sent` / `delivered` event (`since` says which), or None
    when unknown. `headers`: request headers, names in lower case (names
    given otherwise are lowered). `links_in_email`: how many links the email had, when known.

    Two optional fields place a hit among other recipients' hits: `at`, the hit's own time in ms
    (since the epoch, or any origin shared by the whole trace; without it a trace's hits are placed
    at `t`, as if every recipient's links were minted at once), and `email`, the recipient's address
    (its domain tells one company's recipients behind one NAT from a scanner's many customers).
    """

    t: int | None = None
    method: str = "GET"
    ip: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    recipient: str | None = None
    mailing: str | None = None
    url: str | None = None
    links_in_email: int | None = None
    event: Literal["click", "open"] = "click"
    at: int | None = None
    email: str | None = None
    # What `t` counts from: the minting of the links, or the email's `sent` / `delivered` event when the
    # event store has one (a sender that mints links long before it sends).
    since: Since = "minted"

    def __post_init__(self) -> None:
        # The redirect hands over ASGI's names, already lower case; a trace written by hand may not.
        if any(name != name.lower() for name in self.headers):
            self.headers = {name.lower(): value for name, value in self.headers.items()}

    def header(self, name: str) -> str | None:
        """The value of header `name` (lower case), or None when absent."""
        return self.headers.get(name)


_decoder = msgspec.json.Decoder(Hit)


def decode(line: bytes | str) -> Hit:
    """One trace line (a JSON object) as a Hit; raises msgspec.ValidationError / DecodeError."""
    return _decoder.decode(line)
