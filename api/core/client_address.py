"""Who is on the other end of a request: the one client address every limit, log line and cap uses.

Behind a TLS proxy every request comes from the proxy, so its ``X-Forwarded-For`` names the client; but anyone
can send that header, so it is believed only from a peer listed in ``SOULSEER_TRUSTED_PROXIES``. The header is
read right to left (each proxy appends the address it saw), skipping trusted hops: the first untrusted address
is the client. Anything unparseable stops the walk at the last address that was trusted to say it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from api.core.keys import SETTINGS

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_ADDRESS: web.RequestKey[str] = web.RequestKey("client_address", str)
UNKNOWN = "unknown"


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def resolve(peer: str | None, forwarded_for: Sequence[str], proxies: Sequence[Network]) -> str:
    """The client's address, from the TCP peer and the ``X-Forwarded-For`` headers it sent (in order)."""
    current = _parse(peer) if peer else None
    if current is None:
        return peer or UNKNOWN
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    while hops and _trusted(current, proxies):
        previous = _parse(hops.pop())
        if previous is None:
            break
        current = previous
    return str(current)


def client_address(request: web.Request) -> str:
    """The request's client address (computed once per request; see the module docstring)."""
    found = request.get(_ADDRESS)
    if found is None:
        proxies = request.app[SETTINGS].trusted_proxies
        found = resolve(request.remote, request.headers.getall("X-Forwarded-For", []), proxies)
        request[_ADDRESS] = found
    return found
