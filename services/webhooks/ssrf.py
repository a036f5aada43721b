"""SSRF guard for webhook subscriber URLs (CONTRACT.md §5).

Why: subscribers are other departments' systems, reached over the public network. Whoever holds an
admin or desk token chooses the URL, and FundWatch then posts to it from inside the operator's
network. Without this guard such a token could make FundWatch post alerts to, or probe, the
operator's own services: the cloud metadata endpoint at 169.254.169.254, ClickHouse or Kafka on a
private address, an admin port on loopback. So a subscriber URL must name a public address.

Where the rules come from:

* CONTRACT.md §5: "Subscriber URLs that resolve to loopback, link-local or private addresses are
  refused unless the operator allows them (``FUNDWATCH_WEBHOOK_ALLOW_PRIVATE=1``, which
  ``fundwatch run`` sets for local use)." ``allow_private`` lifts every address rule; the syntax
  rules always hold.
* The same reasoning extends "private" to every range that is not a public unicast address:
  shared address space (CGNAT, 100.64.0.0/10, RFC 6598), multicast, reserved and unspecified
  addresses, IPv6 unique-local (fc00::/7) and site-local (fec0::/10), the documentation ranges
  (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32, 3fff::/20) and benchmarking
  (198.18.0.0/15, 2001:2::/48). IPv6 forms that carry an IPv4 address (IPv4-mapped ::ffff:0:0/96,
  IPv4-compatible ::/96, IPv4-translated ::ffff:0:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16,
  Teredo 2001::/32) are judged by the IPv4 address inside, since that is where the packets end up.
* A name is refused if ANY of its addresses is refused: the name's owner controls the records,
  and which one a client picks is not ours to know.
* Syntax (``check_url_syntax``): http or https only, a host is required, no user info, port
  1..65535, at most 2048 characters, no fragment, no spaces or control characters. The last rules
  and the refusal of ``\\`` and ``%`` in the host keep parsers from disagreeing on which host a
  URL names.

DNS can change between subscription and delivery, so the dispatcher calls ``resolve_and_check``
again before every delivery, connects to the addresses it returns rather than resolving once more,
and follows no redirects (a redirect is a new URL that this guard never saw).

``refused_reason`` and ``check_url_syntax`` are pure; only ``resolve_and_check`` does I/O.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Awaitable, Callable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_S = 5.0
ALLOW_HINT = "set FUNDWATCH_WEBHOOK_ALLOW_PRIVATE=1 to allow it"

_DEFAULT_PORTS = {"http": 80, "https": 443}
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
# Outside IPv6 brackets a host is a name or a dotted IPv4 address; these characters are neither and
# are where URL parsers part ways (WHATWG reads "\" as "/", some clients percent-decode hosts).
_BAD_HOST_CHARS = re.compile(r"[\\%<>\"{}|^`\[\]]")


class UrlRefused(ValueError):
    """A subscriber URL that must not be posted to; the message names the rule, prefixed "`url`: "."""


def _net4(*cidrs: str) -> tuple[ipaddress.IPv4Network, ...]:
    return tuple(ipaddress.IPv4Network(c) for c in cidrs)


def _net6(*cidrs: str) -> tuple[ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.IPv6Network(c) for c in cidrs)


# Checked in order; the first match names the reason. Sources: IANA special-purpose registries.
_IPV4_RULES: tuple[tuple[tuple[ipaddress.IPv4Network, ...], str], ...] = (
    (_net4("0.0.0.0/32"), "unspecified"),
    (_net4("127.0.0.0/8"), "loopback"),
    (_net4("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"), "private"),
    (_net4("169.254.0.0/16"), "link-local"),
    (_net4("100.64.0.0/10"), "shared address space (CGNAT)"),
    (_net4("224.0.0.0/4"), "multicast"),
    (
        _net4(
            "0.0.0.0/8",  # "this network"
            "192.0.0.0/24",  # IETF protocol assignments
            "192.0.2.0/24",  # documentation (TEST-NET-1)
            "198.51.100.0/24",  # documentation (TEST-NET-2)
            "203.0.113.0/24",  # documentation (TEST-NET-3)
            "198.18.0.0/15",  # benchmarking
            "192.88.99.0/24",  # former 6to4 relay anycast
            "240.0.0.0/4",  # reserved, including 255.255.255.255 (limited broadcast)
        ),
        "reserved",
    ),
)

_IPV6_RULES: tuple[tuple[tuple[ipaddress.IPv6Network, ...], str], ...] = (
    (_net6("::/128"), "unspecified"),
    (_net6("::1/128"), "loopback"),
    (_net6("fe80::/10"), "link-local"),
    (_net6("fec0::/10"), "site-local"),
    (_net6("fc00::/7"), "unique-local"),
    (_net6("ff00::/8"), "multicast"),
    (
        _net6(
            "2001:db8::/32",  # documentation
            "3fff::/20",  # documentation
            "2001:2::/48",  # benchmarking
            "2001:10::/28",  # ORCHID (deprecated)
            "64:ff9b:1::/48",  # local-use NAT64
            "100::/64",  # discard-only
        ),
        "reserved",
    ),
)

_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")


def _low32(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, list[ipaddress.IPv4Address]] | None:
    """The IPv4 addresses an IPv6 address carries, with the form's name, or None."""
    if address in _IPV4_MAPPED:
        return "IPv4-mapped", [_low32(address)]
    if address in _IPV4_TRANSLATED:
        return "IPv4-translated", [_low32(address)]
    if address in _IPV4_COMPATIBLE:  # :: and ::1 are judged before this is asked
        return "IPv4-compatible", [_low32(address)]
    if address in _NAT64:
        return "NAT64", [_low32(address)]
    if address in _SIX_TO_FOUR:
        return "6to4", [ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)]
    if address in _TEREDO:
        teredo = address.teredo
        assert teredo is not None  # every address in 2001::/32 has one
        return "Teredo", list(teredo)  # the server and the client
    return None


def _ipv4_reason(address: ipaddress.IPv4Address) -> str | None:
    for networks, reason in _IPV4_RULES:
        if any(address in network for network in networks):
            return reason
    # Backstop for any special-purpose range the table misses: over-refusing is the safe side.
    return None if address.is_global else "reserved"


def refused_reason(address: IPAddress) -> str | None:
    """None when ``address`` is a public unicast address, else why not, in words.

    The words fit "a/an <reason> address": "loopback", "private", "link-local", "shared address
    space (CGNAT)", "multicast", "reserved", "unspecified", "unique-local", "site-local", and for
    IPv6 forms that carry an IPv4 address the form and the inner reason, e.g. "IPv4-mapped
    private", "NAT64 loopback", "6to4 link-local".
    """
    if isinstance(address, ipaddress.IPv4Address):
        return _ipv4_reason(address)
    address = ipaddress.IPv6Address(int(address))  # drop any %scope; it does not change the range
    for networks, reason in _IPV6_RULES:
        if any(address in network for network in networks):
            return reason
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        form, inner = embedded
        for ipv4 in inner:
            reason = _ipv4_reason(ipv4)
            if reason is not None:
                return f"{form} {reason}"
        return None
    if address not in _GLOBAL_UNICAST_V6:
        return "reserved"
    return None if address.is_global else "reserved"


def _with_article(reason: str) -> str:
    return ("an " if reason[0].lower() in "aeiou" else "a ") + reason


def check_url_syntax(url: str) -> urllib.parse.SplitResult:
    """Split ``url`` if it may name a subscriber, else raise UrlRefused. No I/O."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"`url`: is {len(url)} characters long, more than the {MAX_URL_LENGTH} allowed")
    if _CONTROL_OR_SPACE.search(url):
        raise UrlRefused("`url`: must not contain spaces or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as error:
        raise UrlRefused(f"`url`: is not a valid URL ({error})") from None
    if parts.scheme not in _DEFAULT_PORTS:
        shown = f"{parts.scheme!r}" if parts.scheme else "none"
        raise UrlRefused(f"`url`: scheme must be http or https, not {shown}")
    if "#" in url:
        raise UrlRefused("`url`: must not have a fragment (#...)")
    netloc = parts.netloc
    if "@" in netloc:
        raise UrlRefused("`url`: must not carry user info (user:password@)")
    if not parts.hostname:
        raise UrlRefused("`url`: a host is required, as in https://example.org/hook")
    if netloc.startswith("["):
        close = netloc.find("]")
        if close < 0:
            raise UrlRefused("`url`: unclosed [ in the host")
        try:
            ipaddress.IPv6Address(netloc[1:close])
        except ValueError:
            raise UrlRefused(f"`url`: {netloc[1:close]!r} in brackets is not an IPv6 address") from None
        after_host = netloc[close + 1 :]
    else:
        host, colon, port_text = netloc.partition(":")
        if _BAD_HOST_CHARS.search(host):
            raise UrlRefused(f"`url`: host {host!r} has characters a host name cannot have")
        after_host = colon + port_text
    if after_host:
        port_text = after_host[1:] if after_host.startswith(":") else None
        if port_text == "":
            raise UrlRefused("`url`: port is empty after the ':'")
        if port_text is None or not (port_text.isascii() and port_text.isdigit()):
            raise UrlRefused(f"`url`: port {after_host.lstrip(':')!r} is not a number")
        if not 1 <= int(port_text) <= 65535:
            raise UrlRefused(f"`url`: port {int(port_text)} is outside 1..65535")
    return parts


def _parse_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


async def _system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_and_check(url: str, allow_private: bool, resolver: Resolver | None = None) -> list[str]:
    """Check ``url`` and every address its host resolves to; return those addresses.

    A literal IP host is judged as it is; a name is resolved with getaddrinfo (or ``resolver``,
    which tests inject) and refused if any address is refused, unless ``allow_private``. Raises
    UrlRefused with a "`url`: ..." message. Call again at delivery time: DNS can change.
    """
    parts = check_url_syntax(url)
    host = parts.hostname
    assert host is not None  # check_url_syntax requires one
    port = parts.port or _DEFAULT_PORTS[parts.scheme]

    literal = _parse_address(host)
    if literal is not None:
        reason = None if allow_private else refused_reason(literal)
        if reason is not None:
            raise UrlRefused(f"`url`: host {host} is {_with_article(reason)} address; {ALLOW_HINT}")
        return [host]

    try:
        found = await asyncio.wait_for((resolver or _system_resolve)(host, port), RESOLVE_TIMEOUT_S)
    except TimeoutError:
        raise UrlRefused(f"`url`: host {host} did not resolve within {RESOLVE_TIMEOUT_S:g} s") from None
    except (OSError, UnicodeError):  # socket.gaierror is an OSError; bad IDNA labels a UnicodeError
        found = []
    addresses = list(dict.fromkeys(found))  # keep order, drop repeats (one per socket type or family)
    if not addresses:
        raise UrlRefused(f"`url`: host {host} does not resolve")
    for text in addresses:
        address = _parse_address(text)
        if address is None:
            raise UrlRefused(f"`url`: host {host} resolves to {text!r}, which is not an IP address")
        reason = None if allow_private else refused_reason(address)
        if reason is not None:
            raise UrlRefused(
                f"`url`: host {host} resolves to {text}, {_with_article(reason)} address; {ALLOW_HINT}"
            )
    return addresses
