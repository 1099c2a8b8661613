"""ICE servers for a participant, with short-lived TURN credentials when a shared secret is configured.

The coturn REST scheme (``use-auth-secret``; draft-uberti-behave-turn-rest-00): username =
``"<expiry unix time>:<user id>"``, credential = base64(HMAC-SHA1(secret, username)). The TURN server
checks the HMAC and the expiry itself, so nothing is stored and a leaked credential dies on its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from config import Settings


def turn_credential(secret: str, user_id: str, expires_at: int) -> tuple[str, str]:
    """(username, credential) valid until ``expires_at`` (unix seconds)."""
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def _is_turn(server: Mapping[str, Any]) -> bool:
    urls = server.get("urls")
    urls = urls if isinstance(urls, list) else [urls]
    return any(isinstance(u, str) and u.split(":", 1)[0] in {"turn", "turns"} for u in urls)


def ice_servers_for(settings: Settings, user_id: str, now: float) -> list[dict[str, Any]]:
    """The browser's ``iceServers`` for ``user_id`` at ``now`` (unix seconds): TURN entries get fresh
    credentials when ``settings.turn_shared_secret`` is set, otherwise the configured ones as they are."""
    servers = [dict(server) for server in settings.ice_servers]
    if settings.turn_shared_secret:
        username, credential = turn_credential(settings.turn_shared_secret, user_id,
                                               int(now) + settings.turn_credential_ttl)
        for server in servers:
            if _is_turn(server):
                server["username"] = username
                server["credential"] = credential
    return servers


def relay_ice_servers(settings: Settings) -> list[dict[str, Any]]:
    """The servers the relay's own peer connections use: STUN, and TURN only where a static credential is
    configured. Per-user TURN credentials (shared secret) are for browsers; the relay is reachable directly."""
    return [dict(s) for s in settings.ice_servers if not _is_turn(s) or (s.get("username") and s.get("credential"))]
