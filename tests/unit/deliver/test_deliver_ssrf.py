"""SSRF policy: which addresses and names are blocked, in every spelling, and how operators opt out."""

from __future__ import annotations

import socket

import pytest

from lambdas.shared import ssrf
from lambdas.shared.config import Settings

PRODUCTION = Settings()
LOOPBACK_ONLY = Settings(allow_loopback_targets=True)


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


@pytest.mark.parametrize("address", ["127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1"])
def test_loopback_setting_lets_loopback_through(address):
    assert ssrf.check_address(address, allow_loopback=True) is None


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "fd00:ec2::254", "10.0.0.1", "192.168.1.1", "169.254.1.1", "0.0.0.0", "224.0.0.1"]
)
def test_loopback_setting_keeps_every_other_private_address_blocked(address):
    assert ssrf.check_address(address, allow_loopback=True) is not None


BLOCKED_SPELLINGS = [
    # loopback names, any case, trailing dot, full-width (UTS 46 maps them to ASCII as the HTTP client does)
    ("localhost", "target host 'localhost' is a loopback name"),
    ("LOCALHOST.", "target host 'localhost' is a loopback name"),
    ("LocalHost", "target host 'localhost' is a loopback name"),
    ("\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", "target host 'localhost' is a loopback name"),
    ("api.localhost", "target host 'api.localhost' is a loopback name"),
    ("API.LOCALHOST.", "target host 'api.localhost' is a loopback name"),
    ("localhost.localdomain", "target host 'localhost.localdomain' is a loopback name"),
    ("ip6-localhost", "target host 'ip6-localhost' is a loopback name"),
    # metadata names
    ("metadata.google.internal", "target host 'metadata.google.internal' is a cloud metadata name"),
    ("METADATA.GOOGLE.INTERNAL.", "target host 'metadata.google.internal' is a cloud metadata name"),
    ("metadata.goog", "target host 'metadata.goog' is a cloud metadata name"),
    ("metadata", "target host 'metadata' is a cloud metadata name"),
    ("instance-data", "target host 'instance-data' is a cloud metadata name"),
    ("instance-data.ec2.internal", "target host 'instance-data.ec2.internal' is a cloud metadata name"),
    ("metadata.tencentyun.com", "target host 'metadata.tencentyun.com' is a cloud metadata name"),
    # internal names
    ("billing.internal", "target host 'billing.internal' is an internal name"),
    ("ip-10-0-0-1.ec2.internal", "target host 'ip-10-0-0-1.ec2.internal' is an internal name"),
    ("printer.local", "target host 'printer.local' is an internal name"),
    ("nas.home.arpa", "target host 'nas.home.arpa' is an internal name"),
    ("intranet", "target host 'intranet' is a single-label name"),
    # IPv4 literals in every spelling resolvers accept
    ("127.0.0.1", "target address 127.0.0.1 is loopback"),
    ("127.0.0.1.", "target address 127.0.0.1 is loopback"),
    ("127.1", "target address 127.0.0.1 is loopback"),
    ("0x7f.1", "target address 127.0.0.1 is loopback"),
    ("0x7F.0.0.1", "target address 127.0.0.1 is loopback"),
    ("0177.0.0.1", "target address 127.0.0.1 is loopback"),
    ("2130706433", "target address 127.0.0.1 is loopback"),
    ("0x7f000001", "target address 127.0.0.1 is loopback"),
    ("127\u30020\u30020\u30021", "target address 127.0.0.1 is loopback"),
    ("\u2460\u2461\u2466.0.0.1", "target address 127.0.0.1 is loopback"),
    ("169.254.169.254", "target address 169.254.169.254 is a cloud metadata endpoint"),
    ("2852039166", "target address 169.254.169.254 is a cloud metadata endpoint"),
    ("0251.0376.0251.0376", "target address 169.254.169.254 is a cloud metadata endpoint"),
    ("0", "target address 0.0.0.0 is unspecified"),
    ("10.0.0.1", "target address 10.0.0.1 is private"),
    # IPv6 literals
    ("[::1]", "target address ::1 is loopback"),
    ("[0:0:0:0:0:0:0:1]", "target address ::1 is loopback"),
    ("[::ffff:127.0.0.1]", "target address ::ffff:7f00:1 is an IPv6 form of an address that is loopback"),
    ("[::ffff:7f00:1]", "target address ::ffff:7f00:1 is an IPv6 form of an address that is loopback"),
    ("[fd00:ec2::254]", "target address fd00:ec2::254 is a cloud metadata endpoint"),
    # hosts that are neither names nor addresses
    ("1.2.3.4.5", "is not a valid IPv4 address"),
    ("a..b", "is not a valid host name"),
    ("-bad.example", "is not a valid host name"),
    ("%31%32%37.0.0.1", "is not a valid host name"),
]


@pytest.mark.parametrize(("host", "refusal"), BLOCKED_SPELLINGS)
def test_static_check_refuses_every_spelling_of_an_internal_target(host, refusal):
    # Given a URL host as the validate step sees it (no DNS), under the production policy
    problem = ssrf.host_problem(host, PRODUCTION)

    # Then it is refused, naming the normalized host or the address it denotes
    assert problem is not None
    assert refusal in problem


@pytest.mark.parametrize(
    "host",
    [
        "hooks.example.com",
        "HOOKS.EXAMPLE.COM.",
        "b\u00fccher.example",
        "xn--bcher-kva.example",
        "1.2.3.4.example.com",
        "localhost.example.com",
        "internal.example.com",
        "metadata.example.com",
        "_dmarc.example.com",
        "93.184.216.34",
        "[2606:4700:4700::1111]",
    ],
)
def test_static_check_lets_public_names_and_addresses_through(host):
    assert ssrf.host_problem(host, PRODUCTION) is None


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "api.localhost", "127.0.0.1", "127.1", "[::1]"])
def test_loopback_setting_allows_loopback_names_and_addresses(host):
    assert ssrf.host_problem(host, LOOPBACK_ONLY) is None


@pytest.mark.parametrize(
    "host",
    ["metadata.google.internal", "169.254.169.254", "2852039166", "10.0.0.1", "0", "[::ffff:10.0.0.1]", "intranet"],
)
def test_loopback_setting_still_refuses_everything_else(host):
    assert ssrf.host_problem(host, LOOPBACK_ONLY) is not None


def test_static_check_honours_the_operator_allow_list():
    settings = Settings(allowed_target_hosts=("127.0.0.1", "*.corp"))
    assert ssrf.host_problem("127.0.0.1", settings) is None
    assert ssrf.host_problem("hooks.corp", settings) is None
    assert ssrf.host_problem("10.0.0.1", settings) is not None


def test_names_are_refused_before_any_dns_lookup(monkeypatch):
    # Given a resolver that must not be asked
    def no_dns(*args, **kwargs):
        raise AssertionError("resolved a name the policy refuses by name")

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", no_dns)

    # When a metadata name is vetted at delivery time Then it is blocked by name
    with pytest.raises(ssrf.TargetBlockedError, match=r"metadata\.google\.internal' is a cloud metadata name"):
        ssrf.resolve_and_check("METADATA.GOOGLE.INTERNAL.", 80, PRODUCTION)


def test_resolution_to_a_loopback_address_is_blocked(monkeypatch):
    # Given the policy on and a public-looking name resolving (injected) to loopback
    monkeypatch.setattr(
        ssrf.socket, "getaddrinfo", lambda host, port, *a, **k: [(socket.AF_INET, 1, 6, "", ("127.0.0.1", port))]
    )

    # When it is vetted Then the resolved address is named in the error
    with pytest.raises(ssrf.TargetBlockedError) as raised:
        ssrf.resolve_and_check("sneaky.example.com", 443, PRODUCTION)
    assert raised.value.address == "127.0.0.1"
    assert str(raised.value) == "target address 127.0.0.1 is loopback (blocked by SSRF policy)"


def test_loopback_setting_at_delivery_time_allows_localhost_only():
    # localhost resolves from /etc/hosts (no DNS traffic)
    assert set(ssrf.resolve_and_check("localhost", 80, LOOPBACK_ONLY)) <= {"127.0.0.1", "::1"}
    with pytest.raises(ssrf.TargetBlockedError, match="cloud metadata endpoint"):
        ssrf.resolve_and_check("169.254.169.254", 80, LOOPBACK_ONLY)
    with pytest.raises(ssrf.TargetBlockedError, match="private"):
        ssrf.resolve_and_check("10.0.0.1", 80, LOOPBACK_ONLY)


def test_any_blocked_address_among_several_rejects_the_target(monkeypatch):
    # Given a name with one public and one private address
    def fake_getaddrinfo(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", fake_getaddrinfo)

    # When vetted Then the private one rejects the whole target
    with pytest.raises(ssrf.TargetBlockedError) as raised:
        ssrf.resolve_and_check("mixed.example.com", 443, PRODUCTION)
    assert raised.value.address == "10.0.0.7"


def test_dns_failure_is_reported_as_a_resolution_error(monkeypatch):
    # Given a resolver failure (injected: the suite never sends DNS queries off the machine)
    def failing_getaddrinfo(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", failing_getaddrinfo)

    with pytest.raises(ssrf.TargetResolutionError, match=r"DNS resolution failed for nowhere\.example"):
        ssrf.resolve_and_check("nowhere.example", 443, PRODUCTION)


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
    settings = Settings(allowed_target_hosts=("localhost",))
    assert "127.0.0.1" in ssrf.resolve_and_check("localhost", 80, settings)


def test_allow_private_targets_disables_the_policy():
    assert ssrf.resolve_and_check("127.0.0.1", 80, Settings(allow_private_targets=True)) == ["127.0.0.1"]
