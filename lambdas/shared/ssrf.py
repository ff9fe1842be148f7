"""SSRF policy: which hosts and addresses a notification may be delivered to (its one home).

Targets come from internal callers, but a URL is still data: without this policy one
notification could make the deliver Lambda POST to the instance metadata service or to
anything inside the VPC. The same rules run twice:

* at validation, without DNS (:func:`host_problem`): host names are normalised the way the
  HTTP client will send them (case, one trailing dot, IDNA/UTS 46 mapping, so ``LOCALHOST.``
  and its full-width spelling are ``localhost``), IP literals are read in every spelling resolvers
  accept (``127.1``, ``0x7f000001``, ``[::ffff:127.0.0.1]``), and loopback, metadata and
  internal names are refused, so such a notification ends REJECTED instead of accepted;
* at delivery (:func:`resolve_and_check`): the name is resolved once and every address is
  checked; the deliver transport then connects to those vetted addresses only (see
  ``lambdas/deliver/transport.py``), so a second, different DNS answer is never used.

Operators opt out per host (``NOTIFLOW_ALLOWED_TARGET_HOSTS``), for loopback only
(``NOTIFLOW_ALLOW_LOOPBACK_TARGETS``: local receivers, everything else still refused) or
entirely (``NOTIFLOW_ALLOW_PRIVATE_TARGETS``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Final

from lambdas.shared.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES: Final = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
METADATA_NAMES: Final = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    }
)
"""Names of cloud instance metadata services (some would pass every address check from outside the cloud)."""
LOOPBACK_NAMES: Final = frozenset(
    {"localhost", "localhost.localdomain", "localhost6", "localhost6.localdomain6", "ip6-localhost", "ip6-loopback"}
)
LOOPBACK_SUFFIX: Final = ".localhost"
INTERNAL_SUFFIXES: Final = (
    ".internal",
    ".local",
    ".localdomain",
    ".home.arpa",
    ".corp",
    ".home",
    ".lan",
    ".intranet",
)
"""Domains that never name a public endpoint: reserved for private use, mDNS, or never delegated by ICANN."""
MAX_HOST_LENGTH: Final = 253

_SHARED_ADDRESS_SPACE: Final = ipaddress.ip_network("100.64.0.0/10")
_NAT64_PREFIXES: Final = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_NUMERIC_LABEL: Final = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_HOST_NAME: Final = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*$")


class TargetBlockedError(Exception):
    """The SSRF policy forbids the target (by name or by address); retrying cannot help."""

    def __init__(self, host: str, address: str | None, reason: str) -> None:
        self.host = host
        self.address = address
        self.reason = reason
        what = f"target address {address}" if address is not None else f"target host '{host}'"
        super().__init__(f"{what} is {reason} (blocked by SSRF policy)")


class TargetResolutionError(Exception):
    """The target host name did not resolve; DNS failures are often transient."""

    def __init__(self, host: str, detail: str) -> None:
        self.host = host
        super().__init__(f"DNS resolution failed for {host}: {detail}")


class InvalidHostError(ValueError):
    """The URL's host is neither a valid DNS name nor an IP literal."""


def normalize_host(host: str) -> str:
    """The host as the HTTP client sends and resolves it: lower case, no trailing dot, IDNA (UTS 46) ASCII.

    IPv6 literals lose their brackets. Raises InvalidHostError for anything that is not a
    DNS name or an IP literal.
    """
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if ":" in name:
        address = parse_ip(name)
        if address is None:
            raise InvalidHostError(f"'{host}' is not a valid IPv6 address")
        return name.lower()
    if not name.isascii():
        import idna  # deferred: only non-ASCII names need the IDNA tables

        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidHostError(f"'{host}' is not a valid internationalized host name ({exc})") from None
    name = name.lower().removesuffix(".")
    if not name or len(name) > MAX_HOST_LENGTH or not _HOST_NAME.match(name):
        raise InvalidHostError(f"'{host}' is not a valid host name")
    return name


def literal_address(name: str) -> IPAddress | None:
    """The address a normalised host denotes when it is an IP literal, in any spelling resolvers accept.

    As browsers and the URL standard do, a name whose last label is numeric (``127.1``,
    ``0x7f.0.0.1``, ``2130706433``) is an IPv4 address; one that does not parse as such
    raises InvalidHostError (it would not resolve as a name either).
    """
    if ":" in name:
        return parse_ip(name)
    if not _NUMERIC_LABEL.match(name.rsplit(".", 1)[-1]):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        raise InvalidHostError(f"'{name}' is not a valid IPv4 address") from None


def check_address(ip: str | IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why ``ip`` must not be contacted (e.g. ``"private"``), or None when it may be.

    With ``allow_loopback`` (local receivers) only loopback addresses are let through;
    metadata, private, link-local, multicast and the rest stay blocked.
    """
    address = ip if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address) else parse_ip(str(ip))
    if address is None:
        return "not a valid IP address"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata endpoint"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = check_address(embedded, allow_loopback=allow_loopback)
            return f"an IPv6 form of an address that is {inner}" if inner else None
    if address.is_loopback:
        return None if allow_loopback else "loopback"
    for reason, flagged in (
        ("unspecified", address.is_unspecified),
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
    try:
        name = normalize_host(host)
    except InvalidHostError:
        return False
    for pattern in (p.rstrip(".").lower() for p in settings.allowed_target_hosts):
        if name.endswith(pattern[1:]) if pattern.startswith("*.") else name == pattern:
            return True
    return False


def name_problem(name: str, *, allow_loopback: bool = False) -> str | None:
    """Why a normalised, non-literal host name is refused without resolving it, or None."""
    if name in LOOPBACK_NAMES or name.endswith(LOOPBACK_SUFFIX):
        return None if allow_loopback else "a loopback name"
    if name in METADATA_NAMES:
        return "a cloud metadata name"
    if "." not in name:
        return "a single-label name (resolved only through internal search domains)"
    if name.endswith(INTERNAL_SUFFIXES):
        return "an internal name"
    return None


def host_problem(host: str, settings: Settings) -> str | None:
    """The static check of a URL host (no DNS): the refusal message, or None when the host may be tried."""
    if host_is_allowed(host, settings):
        return None
    try:
        name = normalize_host(host)
        address = literal_address(name)
    except InvalidHostError as exc:
        return str(exc)
    if address is not None:
        reason = check_address(address, allow_loopback=settings.allow_loopback_targets)
        return None if reason is None else str(TargetBlockedError(host, str(address), reason))
    reason = name_problem(name, allow_loopback=settings.allow_loopback_targets)
    return None if reason is None else str(TargetBlockedError(name, None, reason))


def resolve_and_check(host: str, port: int, settings: Settings) -> list[str]:
    """Resolve ``host`` once and return its addresses; raise if the name or ANY address is blocked.

    Checking every address (not only the first) matters: the connection may try them all.
    Raises :class:`TargetResolutionError` when the name does not resolve and
    :class:`TargetBlockedError` when the policy forbids the name or an address.
    """
    allowed = host_is_allowed(host, settings)
    try:
        name = normalize_host(host)
        literal = literal_address(name)
    except InvalidHostError as exc:
        raise TargetBlockedError(host, None, f"not a valid host ({exc})") from None
    if literal is None and not allowed:
        reason = name_problem(name, allow_loopback=settings.allow_loopback_targets)
        if reason is not None:
            raise TargetBlockedError(name, None, reason)
    try:
        infos = socket.getaddrinfo(str(literal) if literal is not None else name, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetResolutionError(host, str(exc)) from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allowed:
        for address in addresses:
            reason = check_address(address, allow_loopback=settings.allow_loopback_targets)
            if reason is not None:
                raise TargetBlockedError(host, address, reason)
    return addresses


def parse_ip(text: str) -> IPAddress | None:
    """An IPv4 or IPv6 address in canonical notation (IPv6 zone ids ignored), else None."""
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
