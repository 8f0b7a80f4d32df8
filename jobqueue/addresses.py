"""The private-address policy: which IP addresses the fetcher may connect to."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_IPV4_CHARS = frozenset("0123456789abcdefxABCDEFX.")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def parse_ip(text: str) -> IPAddress | None:
    """Read an IP literal the way resolvers do, including `0x7f.1`, `2130706433` and `[::1]`."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # an IPv6 zone id names an interface, not another address
    if not text or (":" not in text and not all(c in _IPV4_CHARS for c in text)):
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
    """See through IPv6 forms that carry an IPv4 address: mapped, 6to4, NAT64, Teredo."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
        if address in _NAT64 or address in _NAT64_LOCAL:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def is_public(address: IPAddress) -> bool:
    """True for globally routable unicast addresses only; fails closed on anything else."""
    inner = unwrap(address)
    if inner is not address and not is_public(inner):
        return False
    return address.is_global and not address.is_multicast and not inner.is_multicast


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
        lowered = host.lower().rstrip(".")
        if lowered == "localhost" or lowered.endswith(".localhost"):
            return not any(ipaddress.ip_address("127.0.0.1") in net for net in self.allowed_networks)
        address = parse_ip(host)
        return address is not None and not self.allows(address)
