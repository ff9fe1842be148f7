"""SSRF policy: which addresses are blocked, how names are vetted, and how operators opt out."""

from __future__ import annotations

import socket

import pytest

from lambdas.shared import ssrf
from lambdas.shared.config import Settings


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "a cloud metadata endpoint"),
        ("fd00:ec2::254", "a cloud metadata endpoint"),
        ("169.254.10.10", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("100.127.255.254", "shared address space (CGNAT)"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("fc00::1", "private"),
        ("192.0.2.10", "private"),
        ("::ffff:10.0.0.1", "an IPv6 form of an address that is private"),
        ("::ffff:169.254.169.254", "an IPv6 form of an address that is a cloud metadata endpoint"),
        ("64:ff9b::7f00:1", "an IPv6 form of an address that is loopback"),
        ("2002:a00:1::", "an IPv6 form of an address that is private"),
        ("not-an-ip", "not a valid IP address"),
    ],
)
def test_blocked_addresses_name_their_reason(address, reason):
    assert ssrf.check_address(address) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34"])
def test_public_addresses_pass(address):
    assert ssrf.check_address(address) is None


@pytest.mark.parametrize(
    ("host", "blocked"),
    [
        ("127.0.0.1", "target address 127.0.0.1 is loopback (blocked by SSRF policy)"),
        ("[::1]", "target address ::1 is loopback (blocked by SSRF policy)"),
        ("127.1", "target address 127.0.0.1 is loopback (blocked by SSRF policy)"),
        ("0x7f000001", "target address 127.0.0.1 is loopback (blocked by SSRF policy)"),
        ("2852039166", "target address 169.254.169.254 is a cloud metadata endpoint (blocked by SSRF policy)"),
        ("93.184.216.34", None),
        ("hooks.example.com", None),
        ("1.2.3.4.example.com", None),
    ],
)
def test_static_literal_check_catches_legacy_spellings(host, blocked):
    # Given a URL host as the validate step sees it, When checked without resolving
    # Then IP literals (including forms resolvers accept, like 127.1) are judged and names pass
    assert ssrf.is_ip_literal_blocked(host) == blocked


def test_static_literal_check_honours_the_operator_override():
    settings = Settings(allow_private_targets=False, allowed_target_hosts=("127.0.0.1",))
    assert ssrf.is_ip_literal_blocked("127.0.0.1", settings) is None
    assert ssrf.is_ip_literal_blocked("10.0.0.1", settings) is not None


def test_resolution_to_a_loopback_name_is_blocked():
    # Given the policy on and a name resolving (from /etc/hosts, no DNS traffic) to loopback
    settings = Settings(allow_private_targets=False)

    # When it is vetted Then the resolved address is named in the error
    with pytest.raises(ssrf.TargetBlockedError) as raised:
        ssrf.resolve_and_check("localhost", 443, settings)
    assert raised.value.address in {"127.0.0.1", "::1"}
    assert "blocked by SSRF policy" in str(raised.value)


def test_any_blocked_address_among_several_rejects_the_target(monkeypatch):
    # Given a name with one public and one private address (a classic rebinding setup)
    def fake_getaddrinfo(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", fake_getaddrinfo)

    # When vetted Then the private one rejects the whole target
    with pytest.raises(ssrf.TargetBlockedError) as raised:
        ssrf.resolve_and_check("mixed.example.com", 443, Settings())
    assert raised.value.address == "10.0.0.7"


def test_dns_failure_is_reported_as_a_resolution_error(monkeypatch):
    # Given a resolver failure (injected: the suite never sends DNS queries off the machine)
    def failing_getaddrinfo(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", failing_getaddrinfo)

    with pytest.raises(ssrf.TargetResolutionError, match=r"DNS resolution failed for nowhere\.example"):
        ssrf.resolve_and_check("nowhere.example", 443, Settings())


@pytest.mark.parametrize(
    ("allowed", "host", "expected"),
    [
        (("localhost",), "localhost", True),
        (("localhost",), "LOCALHOST.", True),
        (("*.internal.example",), "hooks.internal.example", True),
        (("*.internal.example",), "a.b.internal.example", True),
        (("*.internal.example",), "internal.example", False),
        (("*.internal.example",), "evilinternal.example", False),
        (("hooks.example.com",), "hooks.example.com.evil.net", False),
    ],
)
def test_allow_list_matches_exact_names_and_subdomain_wildcards(allowed, host, expected):
    assert ssrf.host_is_allowed(host, Settings(allowed_target_hosts=allowed)) is expected


def test_allow_listed_host_resolving_to_loopback_is_returned_not_blocked():
    settings = Settings(allow_private_targets=False, allowed_target_hosts=("localhost",))
    assert "127.0.0.1" in ssrf.resolve_and_check("localhost", 80, settings)


def test_allow_private_targets_disables_the_policy():
    assert ssrf.resolve_and_check("127.0.0.1", 80, Settings(allow_private_targets=True)) == ["127.0.0.1"]
