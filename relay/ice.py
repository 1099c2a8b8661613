"""ICE configuration in the browser's shapes, turned into aiortc's.

The relay uses exactly the ICE servers it is given. aiortc falls back to Google's public STUN
server when a configuration has *no* server list (``None``); the relay always passes a list, so an
empty list means no STUN and no TURN: host candidates only.

aiortc (through aioice 0.13) uses at most one STUN and one TURN server, the first of each; further
ones are ignored with a warning.

Remote candidates, trickled or in an offer, pass one check (:func:`parse_candidate`) and one policy
(:class:`CandidatePolicy`), and a peer may give at most :data:`MAX_CANDIDATES_PER_PEER` of them.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aioice import mdns
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceCandidate, RTCIceServer
from aiortc.sdp import candidate_from_sdp

from relay.errors import BadCandidateError, BadIceServerError

logger = logging.getLogger(__name__)

_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


def ice_servers_from_config(servers: Sequence[Mapping[str, Any]]) -> list[RTCIceServer]:
    """Validate browser-shaped ``RTCIceServer`` dicts and convert them; ``[]`` stays ``[]``."""
    result: list[RTCIceServer] = []
    stun = turn = 0
    for server in servers:
        urls = server.get("urls")
        url_list = [urls] if isinstance(urls, str) else urls
        if not isinstance(url_list, list) or not url_list or not all(isinstance(u, str) for u in url_list):
            raise BadIceServerError(f"ICE server needs 'urls' (a string or a list of strings): {server!r}")
        for url in url_list:
            if not url.startswith(_SCHEMES):
                raise BadIceServerError(f"unsupported ICE server URL {url!r}")
            if url.startswith("stun"):
                stun += 1
            else:
                turn += 1
                if not server.get("username") or not server.get("credential"):
                    raise BadIceServerError(f"TURN server {url!r} needs a username and a credential")
        result.append(
            RTCIceServer(
                urls=list(url_list),
                username=server.get("username"),
                credential=server.get("credential"),
                credentialType=server.get("credentialType", "password"),
            )
        )
    if stun > 1 or turn > 1:
        logger.warning("aiortc uses only the first STUN and the first TURN URL; %d STUN and %d TURN given",
                       stun, turn)
    return result


def configuration(ice_servers: list[RTCIceServer]) -> RTCConfiguration:
    """A peer connection configuration using exactly ``ice_servers`` (never aiortc's default)."""
    # Browsers BUNDLE everything; so does the relay, from the first transceiver on.
    return RTCConfiguration(iceServers=list(ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


# A browser with several interfaces trickles a dozen or so candidates (host, server-reflexive, relayed, per
# address family); every candidate ICE takes is paired with each local one and checked, so a peer may give
# at most this many (those in its offer included).
MAX_CANDIDATES_PER_PEER = 32
MAX_CANDIDATE_CHARS = 1024
MAX_MID_CHARS = 64
MAX_MLINE_INDEX = 63
_FOUNDATION = re.compile(r"^[A-Za-z0-9+/]{1,32}$")  # RFC 8839 section 5.1: 1*32ice-char
_TYPES = ("host", "srflx", "prflx", "relay")
# "This network" (0.0.0.0/8) may be neither a source nor a destination (RFC 1122 3.2.1.3).
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


@dataclass(frozen=True)
class CandidatePolicy:
    """Which remote ICE candidates the relay sends connectivity checks (STUN binding requests) to.

    Every address a browser names gets checks from the relay's sockets, so a caller can make the relay
    send small UDP packets to a place of its choice. Addresses no peer can have (multicast, unspecified,
    broadcast, reserved, port 0) are refused outright. Others the relay simply does not use: TCP (aioice
    checks UDP only), link-local (never routed to the relay; 169.254.169.254 is the cloud metadata service),
    and, when ``allow_private`` is off, everything that is not a global unicast address (RFC 1918, loopback,
    CGNAT, documentation ranges, and mDNS ``.local`` names, which only resolve on the relay's own link).

    :param allow_private: use private and loopback addresses (a relay on a LAN, development, tests).
    """

    allow_private: bool = True

    def unused_reason(self, candidate: RTCIceCandidate) -> str | None:
        """Why the relay will not check this well-formed candidate, or None if it will."""
        if candidate.protocol.lower() != "udp":
            return "only UDP candidates are used"
        if candidate.component != 1:
            return "only component 1 is used (RTP and RTCP are multiplexed)"
        if candidate.type == "prflx":
            return "peer-reflexive candidates are learned, not signalled"
        if mdns.is_mdns_hostname(candidate.ip):
            return None if self.allow_private else "mDNS names are on the relay's local link only"
        address = _address(candidate.ip)
        if address.is_link_local:
            return "link-local addresses are not reachable from the relay"
        if not address.is_global and not self.allow_private:
            return "private and loopback addresses are not used by this relay"
        return None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_candidate(text: str) -> RTCIceCandidate:
    """One candidate attribute (``candidate:...`` or its value), checked to be one a peer can have.

    Raises :class:`BadCandidateError` for anything malformed or never valid as a remote address: it is
    refused before aiortc (which asserts on it) or aioice sees it.
    """
    if len(text) > MAX_CANDIDATE_CHARS:
        raise BadCandidateError("ICE candidate is too long")
    if text.startswith("candidate:"):
        text = text[len("candidate:"):]
    bits = text.split()
    if len(bits) < 8 or bits[6] != "typ" or len(bits) % 2:  # extensions come as name/value pairs
        raise BadCandidateError(f"malformed ICE candidate {text[:100]!r}")
    try:
        parsed = candidate_from_sdp(text)
    except (ValueError, IndexError) as exc:
        raise BadCandidateError(f"malformed ICE candidate {text[:100]!r}") from exc
    if not _FOUNDATION.match(parsed.foundation):
        raise BadCandidateError("ICE candidate foundation must be 1 to 32 ice-chars")
    if not 1 <= parsed.component <= 256 or not 1 <= parsed.priority < 2**32:
        raise BadCandidateError("ICE candidate component or priority out of range")
    if parsed.protocol.lower() not in ("udp", "tcp") or parsed.type not in _TYPES:
        raise BadCandidateError(f"unknown ICE candidate transport {parsed.protocol[:8]!r} or type {parsed.type[:8]!r}")
    if not 1 <= parsed.port <= 65535:
        raise BadCandidateError("ICE candidate port must be 1 to 65535")
    if parsed.relatedPort is not None and not 0 <= parsed.relatedPort <= 65535:  # browsers hide it as 0
        raise BadCandidateError("ICE candidate rport must be 0 to 65535")
    if not mdns.is_mdns_hostname(parsed.ip):
        try:
            address = _address(parsed.ip)
        except ValueError:
            raise BadCandidateError("ICE candidate address must be an IP address or an mDNS .local name") from None
        if not address.is_loopback and (  # ::1 lies in IPv6's reserved ::/8, yet is a fine loopback
                address.is_multicast or address.is_unspecified or address.is_reserved
                or (isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK)):
            raise BadCandidateError(f"ICE candidate address {parsed.ip} cannot be a peer's")
    return parsed


def candidate_from_browser(candidate: object) -> RTCIceCandidate | None:
    """Convert a browser ``RTCIceCandidateInit`` dict; ``None`` means end-of-candidates.

    The one check of a trickled candidate, for readings and streams alike: an object whose ``candidate``
    is a string (:func:`parse_candidate`), ``sdpMid`` a short string, ``sdpMLineIndex`` a small integer.
    An empty ``candidate`` string (how browsers signal end-of-candidates) is also ``None``.
    """
    if candidate is None:
        return None
    if not isinstance(candidate, Mapping):
        raise BadCandidateError("candidate must be an object {candidate, sdpMid, sdpMLineIndex}")
    mid, index = candidate.get("sdpMid"), candidate.get("sdpMLineIndex")
    if mid is not None and (not isinstance(mid, str) or len(mid) > MAX_MID_CHARS):
        raise BadCandidateError(f"candidate.sdpMid must be a string of at most {MAX_MID_CHARS} characters")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool)
                              or not 0 <= index <= MAX_MLINE_INDEX):
        raise BadCandidateError(f"candidate.sdpMLineIndex must be an integer from 0 to {MAX_MLINE_INDEX}")
    text = candidate.get("candidate")
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise BadCandidateError("candidate.candidate must be a string")
    parsed = parse_candidate(text)
    parsed.sdpMid = mid
    parsed.sdpMLineIndex = index
    if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
        parsed.sdpMLineIndex = 0
    return parsed
