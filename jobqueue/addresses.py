"""The private-address policy: which IP addresses the fetcher may connect to."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_IPV4_CHARS = frozenset("0123456789abcdefxABCDEFX.")
# IPv6 forms whose last 32 bits are an IPv4 address that the packet ends up going to.
_TRANSLATED = (
    ipaddress.ip_network("::ffff:0:0/96"),  # IPv4-mapped
    ipaddress.ip_network("::ffff:0:0:0/96"),  # SIIT IPv4-translated (RFC 2765)
    ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated, RFC 4291)
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64 well-known prefix (RFC 6052)
)
# The local-use NAT64 prefix (RFC 8215): where the IPv4 address sits depends on a prefix length only
# the local network knows, so it cannot be judged and is refused unless explicitly allowed.
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_UNSPECIFIED_AND_LOOPBACK = (ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1"))


def parse_ip(text: str) -> IPAddress | None:
    """Read an IP literal the way resolvers do, including `0x7f.1`, `2130706433` and `[::1]`."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # an IPv6 zone id names an interface, not another address
    if not text or (":" not in text and not _IPV4_CHARS.issuperset(text)):
        return None  # a host name, the common case: no exception to raise and catch
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if ":" in text:
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def unwrap(address: IPAddress) -> IPAddress:
    """See through IPv6 forms that carry an IPv4 address: mapped, SIIT, compatible, NAT64, 6to4, Teredo."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if any(address in net for net in _TRANSLATED) and address not in _UNSPECIFIED_AND_LOOPBACK:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return address


def is_public(address: IPAddress) -> bool:
    """True for globally routable unicast addresses only; fails closed on anything else.

    A translated form (mapped, SIIT, compatible, NAT64) is judged by the IPv4 address it carries alone,
    since what `ipaddress` says of those IPv6 ranges changes between Python versions; 6to4 and Teredo
    addresses must be public themselves as well as carry a public IPv4 address.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return address.is_global and not address.is_multicast
    if address in _NAT64_LOCAL:
        return False
    inner = unwrap(address)
    if inner is not address:
        if not is_public(inner):
            return False
        if any(address in net for net in _TRANSLATED):
            return True
    return address.is_global and not address.is_multicast and not address.is_reserved


@dataclass(frozen=True)
class AddressPolicy:
    """Decides whether a connection to an address is allowed.

    `allow_private` lifts the guard entirely; `allowed_networks` are exceptions for one's own
    services (and tests) while the guard stays on for everything else.
    """

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def build(cls, allow_private: bool, networks: Iterable[str] = ()) -> AddressPolicy:
        """Parse CIDR strings into a policy (ValueError on a bad network)."""
        return cls(allow_private, tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def allows(self, address: IPAddress | str) -> bool:
        """May the fetcher open a connection to this address?"""
        if isinstance(address, str):
            parsed = parse_ip(address)
            if parsed is None:
                return False
            address = parsed
        if self.allow_private:
            return True
        for candidate in {address, unwrap(address)}:
            if any(candidate.version == net.version and candidate in net for net in self.allowed_networks):
                return True
        return is_public(address)

    def refuses_host(self, host: str) -> bool:
        """Refuse at submission a host that is a non-public IP literal or a localhost name."""
        if self.allow_private:
            return False
        lowered = host.lower().rstrip(".")  # resolvers ignore the root's trailing dot, so must the check
        if lowered == "localhost" or lowered.endswith(".localhost"):
            return not any(ipaddress.ip_address("127.0.0.1") in net for net in self.allowed_networks)
        address = parse_ip(lowered)
        return address is not None and not self.allows(address)
