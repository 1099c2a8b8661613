"""ICE configuration in the browser's shapes, turned into aiortc's.

The relay uses exactly the ICE servers it is given. aiortc falls back to Google's public STUN
server when a configuration has *no* server list (``None``); the relay always passes a list, so an
empty list means no STUN and no TURN: host candidates only.

aiortc (through aioice 0.13) uses at most one STUN and one TURN server, the first of each; further
ones are ignored with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

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


def candidate_from_browser(candidate: Mapping[str, Any] | None) -> RTCIceCandidate | None:
    """Convert a browser ``RTCIceCandidateInit`` dict; ``None`` means end-of-candidates.

    An empty ``candidate`` string (how browsers signal end-of-candidates) is also ``None``.
    """
    if candidate is None:
        return None
    text = candidate.get("candidate")
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise BadCandidateError("candidate must be a string")
    if text.startswith("candidate:"):
        text = text[len("candidate:"):]
    if len(text.split()) < 8:  # aiortc asserts this; refuse it as a value error instead
        raise BadCandidateError(f"malformed ICE candidate {text!r}")
    try:
        parsed = candidate_from_sdp(text)
    except (ValueError, IndexError) as exc:
        raise BadCandidateError(f"malformed ICE candidate {text!r}") from exc
    parsed.sdpMid = candidate.get("sdpMid")
    index = candidate.get("sdpMLineIndex")
    parsed.sdpMLineIndex = int(index) if index is not None else None
    if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
        parsed.sdpMLineIndex = 0
    return parsed
