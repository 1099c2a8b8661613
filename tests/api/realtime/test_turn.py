"""Short-lived TURN credentials in the coturn REST scheme, only for TURN servers and only with a secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace

from api.realtime.turn import ice_servers_for, turn_credential
from config import load_settings


def test_the_credential_is_base64_hmac_sha1_of_expiry_and_user() -> None:
    username, credential = turn_credential("s3cret", "user-1", 1_700_000_000)
    assert username == "1700000000:user-1"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1700000000:user-1", hashlib.sha1).digest()).decode()
    assert credential == expected


def test_turn_servers_get_fresh_credentials_and_stun_servers_are_left_alone() -> None:
    settings = replace(load_settings({
        "WEBRTC_ICE_SERVERS": '[{"urls": "stun:stun.example.test:3478"}]',
        "WEBRTC_TURN_SERVERS": "turn:turn.example.test:3478",
        "WEBRTC_TURN_SERVERS_USERNAME": "static", "WEBRTC_TURN_SERVERS_PASSWORD": "static-password",
    }), turn_shared_secret="shared", turn_credential_ttl=600)
    servers = ice_servers_for(settings, "u-9", now=1000.0)
    assert servers[0] == {"urls": "stun:stun.example.test:3478"}
    assert servers[1]["username"] == "1600:u-9"
    assert servers[1]["credential"] == turn_credential("shared", "u-9", 1600)[1]
    assert servers[1]["credential"] != "static-password"
    assert settings.ice_servers[1]["username"] == "static"  # the settings are not modified


def test_without_a_secret_the_configured_servers_are_passed_as_they_are() -> None:
    settings = load_settings({"WEBRTC_TURN_SERVERS": "turn:t.example.test", "WEBRTC_TURN_SERVERS_USERNAME": "a",
                              "WEBRTC_TURN_SERVERS_PASSWORD": "b"})
    assert ice_servers_for(settings, "u", now=0) == [{"urls": ["turn:t.example.test"], "username": "a",
                                                      "credential": "b"}]
    assert ice_servers_for(load_settings({}), "u", now=0) == []
