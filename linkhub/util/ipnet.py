"""An IP address reduced to its network: what is kept of a visitor's address when addresses are not."""

from __future__ import annotations

import functools
import ipaddress

# The prefixes kept: an IPv4 /24 is a street of a provider's customers, an IPv6 /48 one site (RFC 6177
# assigns a /48 or /56 to a customer): both still say which network a click came from, not who.
IPV4_PREFIX = 24
IPV6_PREFIX = 48


@functools.lru_cache(maxsize=4096)
def network_address(text: str) -> str | None:
    """'203.0.113.77' → '203.0.113.0', '2001:db8:1:2::5' → '2001:db8:1::'; None when `text` is not an address.

    An IPv4 address mapped into IPv6 (`::ffff:203.0.113.77`) keeps its IPv4 /24. Idempotent: a network
    address gives itself back.
    """
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        network = ipaddress.ip_network(f"{address.ipv4_mapped}/{IPV4_PREFIX}", strict=False)
        return f"::ffff:{network.network_address}"
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
