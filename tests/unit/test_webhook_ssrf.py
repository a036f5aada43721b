"""The SSRF guard for webhook subscriber URLs (services/webhooks/ssrf.py, CONTRACT.md §5)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from services.webhooks.ssrf import (
    MAX_URL_LENGTH,
    UrlRefused,
    check_url_syntax,
    refused_reason,
    resolve_and_check,
)

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "172.32.0.1",  # just past 172.16.0.0/12
    "172.15.255.255",  # just before it
    "100.128.0.1",  # just past 100.64.0.0/10
    "100.63.255.255",  # just before it
    "169.253.255.255",
    "11.0.0.1",
    "198.20.0.1",  # just past 198.18.0.0/15
    "223.255.255.255",  # last before multicast
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",  # IPv4-mapped public
    "64:ff9b::8.8.8.8",  # NAT64 of a public address
    "2002:0808:0808::1",  # 6to4 of 8.8.8.8
]

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.0.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "shared address space (CGNAT)"),
    ("100.127.255.255", "shared address space (CGNAT)"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "reserved"),
    ("192.0.0.8", "reserved"),
    ("198.18.0.1", "reserved"),
    ("198.19.255.255", "reserved"),
    ("192.0.2.1", "reserved"),
    ("198.51.100.7", "reserved"),
    ("203.0.113.9", "reserved"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fec0::1", "site-local"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "reserved"),
    ("2001:2::1", "reserved"),
    ("100::1", "reserved"),
    ("4000::1", "reserved"),  # outside global unicast 2000::/3
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
    ("::ffff:0:10.0.0.1", "IPv4-translated private"),
    ("::10.0.0.1", "IPv4-compatible private"),
    ("::127.0.0.1", "IPv4-compatible loopback"),
    ("64:ff9b::10.0.0.1", "NAT64 private"),
    ("64:ff9b::127.0.0.1", "NAT64 loopback"),
    ("64:ff9b:1::1", "reserved"),  # local-use NAT64
    ("2002:0a00:0001::1", "6to4 private"),
    ("2002:a9fe:a9fe::1", "6to4 link-local"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo private"),  # client 10.0.0.1
]


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_pass(text: str) -> None:
    assert refused_reason(ipaddress.ip_address(text)) is None


@pytest.mark.parametrize(("text", "reason"), REFUSED)
def test_non_public_addresses_are_refused_with_their_category(text: str, reason: str) -> None:
    assert refused_reason(ipaddress.ip_address(text)) == reason


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/hook",
        "http://example.org",
        "https://example.org:8443/a/b?c=d",
        "https://[2606:4700:4700::1111]:443/hook",
        "HTTPS://Example.ORG/hook",
        "https://example.org:1/",
        "https://example.org:65535/",
    ],
)
def test_well_formed_urls_pass_the_syntax_check(url: str) -> None:
    assert check_url_syntax(url).hostname


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.org/hook", "scheme must be http or https"),
        ("file:///etc/passwd", "scheme must be http or https"),
        ("gopher://example.org/", "scheme must be http or https"),
        ("example.org/hook", "scheme must be http or https, not none"),
        ("https:///hook", "a host is required"),
        ("https://", "a host is required"),
        ("https://user:pass@example.org/", "user info"),
        ("https://user@example.org/", "user info"),
        ("https://@example.org/", "user info"),
        ("https://example.org:0/", "outside 1..65535"),
        ("https://example.org:65536/", "outside 1..65535"),
        ("https://example.org:http/", "is not a number"),
        ("https://example.org:+443/", "is not a number"),
        ("https://example.org:/", "port is empty"),
        ("https://example.org/hook#part", "fragment"),
        ("https://example.org/hook#", "fragment"),
        ("https://example.org/" + "a" * MAX_URL_LENGTH, "more than the 2048 allowed"),
        ("https://example.org/a b", "spaces or control characters"),
        ("https://example.org/\n", "spaces or control characters"),
        ("https://example.org\\.evil.test/", "characters a host name cannot have"),
        ("https://127.0.0.1%2f.evil.test/", "characters a host name cannot have"),
        ("https://[not-v6]/", "IPv6 address"),
    ],
)
def test_malformed_urls_are_refused(url: str, words: str) -> None:
    with pytest.raises(UrlRefused, match="^`url`: ") as refused:
        check_url_syntax(url)
    assert words in str(refused.value)


def test_url_of_exactly_the_maximum_length_passes() -> None:
    url = "https://example.org/"
    url += "a" * (MAX_URL_LENGTH - len(url))
    assert len(url) == MAX_URL_LENGTH
    check_url_syntax(url)


def fake_resolver(table: dict[str, list[str]], calls: list[tuple[str, int]] | None = None):
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append((host, port))
        if host not in table:
            raise OSError(-2, "Name or service not known")
        return table[host]

    return resolve


def check(url: str, allow_private: bool = False, resolver=None) -> list[str]:
    return asyncio.run(resolve_and_check(url, allow_private, resolver))


def test_a_public_name_passes_and_its_addresses_are_returned() -> None:
    calls: list[tuple[str, int]] = []
    resolver = fake_resolver({"hooks.example.org": ["8.8.8.8", "8.8.8.8", "2606:4700:4700::1111"]}, calls)
    assert check("https://hooks.example.org/in", resolver=resolver) == ["8.8.8.8", "2606:4700:4700::1111"]
    assert calls == [("hooks.example.org", 443)]


def test_the_port_given_or_the_schemes_default_is_resolved() -> None:
    calls: list[tuple[str, int]] = []
    resolver = fake_resolver({"a.example.org": ["1.1.1.1"]}, calls)
    check("http://a.example.org/", resolver=resolver)
    check("https://a.example.org:8443/", resolver=resolver)
    assert calls == [("a.example.org", 80), ("a.example.org", 8443)]


def test_a_name_with_one_public_and_one_private_address_is_refused() -> None:
    resolver = fake_resolver({"mixed.example.org": ["8.8.8.8", "10.0.0.5"]})
    with pytest.raises(UrlRefused) as refused:
        check("https://mixed.example.org/hook", resolver=resolver)
    message = str(refused.value)
    assert message.startswith("`url`: host mixed.example.org resolves to 10.0.0.5, a private address")
    assert "FUNDWATCH_WEBHOOK_ALLOW_PRIVATE=1" in message


def test_a_name_resolving_to_the_metadata_endpoint_is_refused() -> None:
    resolver = fake_resolver({"meta.example.org": ["169.254.169.254"]})
    with pytest.raises(UrlRefused, match="169.254.169.254, a link-local address"):
        check("http://meta.example.org/latest/meta-data/", resolver=resolver)


def test_a_name_resolving_to_an_ipv4_mapped_private_address_is_refused() -> None:
    resolver = fake_resolver({"v6.example.org": ["::ffff:192.168.1.1"]})
    with pytest.raises(UrlRefused, match="an IPv4-mapped private address"):
        check("https://v6.example.org/", resolver=resolver)


def test_allow_private_accepts_private_addresses() -> None:
    resolver = fake_resolver({"mixed.example.org": ["8.8.8.8", "10.0.0.5"]})
    assert check("https://mixed.example.org/hook", True, resolver) == ["8.8.8.8", "10.0.0.5"]
    assert check("http://127.0.0.1:9000/hook", True) == ["127.0.0.1"]


def test_allow_private_does_not_lift_the_syntax_rules() -> None:
    with pytest.raises(UrlRefused, match="scheme must be http or https"):
        check("ftp://127.0.0.1/", True)


def test_a_name_that_does_not_resolve_is_refused_clearly() -> None:
    resolver = fake_resolver({})
    with pytest.raises(UrlRefused) as refused:
        check("https://nowhere.example.org/hook", resolver=resolver)
    assert str(refused.value) == "`url`: host nowhere.example.org does not resolve"


def test_a_name_resolving_to_nothing_is_refused() -> None:
    with pytest.raises(UrlRefused, match="does not resolve"):
        check("https://empty.example.org/", resolver=fake_resolver({"empty.example.org": []}))


def test_a_resolver_answer_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(UrlRefused, match="not an IP address"):
        check("https://odd.example.org/", resolver=fake_resolver({"odd.example.org": ["odd"]}))


def test_a_literal_address_is_judged_without_resolving() -> None:
    calls: list[tuple[str, int]] = []
    resolver = fake_resolver({}, calls)
    assert check("https://8.8.8.8/hook", resolver=resolver) == ["8.8.8.8"]
    with pytest.raises(UrlRefused, match=r"^`url`: host ::1 is a loopback address"):
        check("https://[::1]:8080/hook", resolver=resolver)
    with pytest.raises(UrlRefused, match="an IPv4-mapped loopback address"):
        check("https://[::ffff:127.0.0.1]/hook", resolver=resolver)
    assert calls == []


def test_real_resolver_refuses_the_loopback_literal() -> None:
    with pytest.raises(UrlRefused, match=r"^`url`: host 127\.0\.0\.1 is a loopback address"):
        check("http://127.0.0.1:8080/hook")


def test_real_resolver_refuses_localhost() -> None:
    with pytest.raises(UrlRefused, match=r"^`url`: host localhost resolves to .*a loopback address"):
        check("http://localhost:8080/hook")
    addresses = check("http://localhost:8080/hook", allow_private=True)
    assert addresses
    assert all(ipaddress.ip_address(a).is_loopback for a in addresses)


def test_real_resolver_refuses_a_numeric_loopback_the_ip_parser_does_not_read() -> None:
    # 2130706433 is 127.0.0.1 as one number; getaddrinfo reads it without DNS.
    with pytest.raises(UrlRefused, match="a loopback address"):
        check("http://2130706433/hook")
