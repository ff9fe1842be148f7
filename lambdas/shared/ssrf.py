"""SSRF policy: which addresses a notification may be delivered to.

Targets come from internal callers, but a URL is still data: without this check
one notification could make the deliver Lambda POST to the instance metadata
service or to anything inside the VPC. The policy blocks every address that is
not globally routable, unless the operator opted out for a host (an allow-list)
or for everything (``allow_private_targets``, used by the local stack and tests).

:func:`resolve_and_check` vets the names before a request; the deliver transport
also checks the peer address of every socket it connects, which closes the DNS
rebinding gap between the two lookups (see ``lambdas/deliver/transport.py``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Final

from lambdas.shared.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES: Final = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_SHARED_ADDRESS_SPACE: Final = ipaddress.ip_network("100.64.0.0/10")
_NAT64_PREFIXES: Final = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_LEGACY_IPV4_LITERAL: Final = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)


class TargetBlockedError(Exception):
    """The target resolves to an address the SSRF policy forbids; retrying cannot help."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        self.host = host
        self.address = address
        self.reason = reason
        super().__init__(f"target address {address} is {reason} (blocked by SSRF policy)")


class TargetResolutionError(Exception):
    """The target host name did not resolve; DNS failures are often transient."""

    def __init__(self, host: str, detail: str) -> None:
        self.host = host
        super().__init__(f"DNS resolution failed for {host}: {detail}")


def check_address(ip: str | IPAddress) -> str | None:
    """Why ``ip`` must not be contacted (e.g. ``"private"``), or None when it is a public address."""
    address = ip if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address) else _parse_ip(str(ip))
    if address is None:
        return "not a valid IP address"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata endpoint"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = check_address(embedded)
            return f"an IPv6 form of an address that is {inner}" if inner else None
    for reason, flagged in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("shared address space (CGNAT)", address in _SHARED_ADDRESS_SPACE),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    ):
        if flagged:
            return reason
    return None


def host_is_allowed(host: str, settings: Settings) -> bool:
    """Whether the operator exempted ``host`` (exact name or ``*.suffix``) or all targets from the policy."""
    if settings.allow_private_targets:
        return True
    name = host.strip("[]").rstrip(".").lower()
    for pattern in (p.rstrip(".").lower() for p in settings.allowed_target_hosts):
        if name.endswith(pattern[1:]) if pattern.startswith("*.") else name == pattern:
            return True
    return False


def is_ip_literal_blocked(host: str, settings: Settings | None = None) -> str | None:
    """Static check for the validate step: the block message when ``host`` is a forbidden IP literal.

    Names are not resolved here (see :func:`resolve_and_check`). Legacy IPv4 spellings
    such as ``127.1`` or ``0x7f000001`` are caught too, since resolvers accept them.
    """
    if settings is not None and host_is_allowed(host, settings):
        return None
    literal = host.strip("[]")
    address = _parse_ip(literal)
    if address is None and _LEGACY_IPV4_LITERAL.match(literal):
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(literal))
        except OSError:
            return None
    if address is None:
        return None
    reason = check_address(address)
    return None if reason is None else str(TargetBlockedError(host, str(address), reason))


def resolve_and_check(host: str, port: int, settings: Settings) -> list[str]:
    """Resolve ``host`` and return its addresses; raise if ANY of them is blocked.

    Checking every address (not only the first) matters: the HTTP client may try
    them all. Raises :class:`TargetResolutionError` when the name does not resolve
    and :class:`TargetBlockedError` when the policy forbids an address.
    """
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetResolutionError(host, str(exc)) from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not host_is_allowed(host, settings):
        for address in addresses:
            reason = check_address(address)
            if reason is not None:
                raise TargetBlockedError(host, address, reason)
    return addresses


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches through mapping, 6to4, Teredo or NAT64."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in prefix for prefix in _NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
