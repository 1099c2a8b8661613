"""The client address: X-Forwarded-For only from a trusted proxy, read right to left past trusted hops."""

from __future__ import annotations

import ipaddress

import pytest

from api.core.client_address import resolve

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize(("peer", "headers", "expected"), [
    ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # an untrusted peer's header is ignored
    ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
    ("10.0.0.2", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # the spoofed leftmost hop is not believed
    ("10.0.0.2", ["198.51.100.1, 10.0.0.7"], "198.51.100.1"),  # two trusted proxies in a row
    ("10.0.0.2", ["198.51.100.1", "10.0.0.7"], "198.51.100.1"),  # the header repeated
    ("10.0.0.2", ["10.0.0.5, 10.0.0.7"], "10.0.0.5"),  # every hop trusted: the last one named
    ("10.0.0.2", ["garbage, 198.51.100.1"], "198.51.100.1"),
    ("10.0.0.2", ["198.51.100.1, garbage"], "10.0.0.2"),  # unparseable: stop at the last trusted sayer
    ("10.0.0.2", [], "10.0.0.2"),
    ("::1", ["[2001:db8::5]:4711"], "2001:db8::5"),
    ("::ffff:10.0.0.2", ["198.51.100.1:5000"], "198.51.100.1"),
    (None, ["198.51.100.1"], "unknown"),
])
def test_the_client_address_trusts_only_configured_proxies(peer: str | None, headers: list[str],
                                                           expected: str) -> None:
    assert resolve(peer, headers, PROXIES) == expected


def test_with_no_trusted_proxies_the_header_is_never_believed() -> None:
    assert resolve("127.0.0.1", ["198.51.100.1"], ()) == "127.0.0.1"
