from __future__ import annotations

import ipaddress

import pytest

from config import SettingsError, load_settings


def test_defaults_have_no_ice_server_that_reaches_the_internet() -> None:
    settings = load_settings({})
    assert settings.ice_servers == ()
    assert settings.database_url is None
    assert settings.port == 8080


def test_ice_servers_json_and_turn_variables_are_combined() -> None:
    settings = load_settings({
        "WEBRTC_ICE_SERVERS": '[{"urls": "stun:stun.example.test:3478"}]',
        "WEBRTC_TURN_SERVERS": "turn:turn.example.test:3478,turns:turn.example.test:5349",
        "WEBRTC_TURN_SERVERS_USERNAME": "demo-user",
        "WEBRTC_TURN_SERVERS_PASSWORD": "demo-password",
    })
    assert settings.ice_servers[0] == {"urls": "stun:stun.example.test:3478"}
    assert settings.ice_servers[1] == {
        "urls": ["turn:turn.example.test:3478", "turns:turn.example.test:5349"],
        "username": "demo-user", "credential": "demo-password",
    }


@pytest.mark.parametrize(("env", "variable"), [
    ({"WEBRTC_ICE_SERVERS": "[{"}, "WEBRTC_ICE_SERVERS"),
    ({"WEBRTC_ICE_SERVERS": '[{"url": "stun:x"}]'}, "WEBRTC_ICE_SERVERS"),
    ({"WEBRTC_ICE_SERVERS": '[{"urls": "http://x"}]'}, "WEBRTC_ICE_SERVERS"),
    ({"WEBRTC_TURN_SERVERS": "stun:x"}, "WEBRTC_TURN_SERVERS"),
    ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
    ({"SOULSEER_PORT": "70000"}, "SOULSEER_PORT"),
    ({"SOULSEER_PORT": "eighty"}, "SOULSEER_PORT"),
    ({"SOULSEER_PUBLIC_URL": "ftp://x"}, "SOULSEER_PUBLIC_URL"),
    ({"REDIS_URL": "http://x"}, "REDIS_URL"),
    ({"SOULSEER_SECRET_KEY": "short"}, "SOULSEER_SECRET_KEY"),
    ({"SOULSEER_LOG_JSON": "maybe"}, "SOULSEER_LOG_JSON"),
    ({"SOULSEER_EVENT_LOOP": "trio"}, "SOULSEER_EVENT_LOOP"),
    ({"SOULSEER_MAX_RELAY_LOOP_LAG_MS": "-1"}, "SOULSEER_MAX_RELAY_LOOP_LAG_MS"),
    ({"SOULSEER_RELAY_SHED_LAG_MS": "soon"}, "SOULSEER_RELAY_SHED_LAG_MS"),
    ({"SOULSEER_TRUSTED_PROXIES": "10.0.0.1, proxy.example"}, "SOULSEER_TRUSTED_PROXIES"),
    ({"SOULSEER_MAX_PARTICIPANTS": "10", "SOULSEER_RESERVED_READING_PARTICIPANTS": "10"},
     "SOULSEER_RESERVED_READING_PARTICIPANTS"),
])
def test_a_bad_value_names_its_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(variable)


def test_settings_are_immutable() -> None:
    settings = load_settings({})
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


def test_https_public_url_makes_cookies_secure() -> None:
    assert load_settings({"SOULSEER_PUBLIC_URL": "https://soulseer.example.test"}).secure_cookies
    assert not load_settings({}).secure_cookies


def test_trusted_proxies_are_addresses_or_networks_and_the_reading_reserve_follows_the_cap() -> None:
    settings = load_settings({"SOULSEER_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1",
                              "SOULSEER_MAX_PARTICIPANTS": "12"})
    assert settings.trusted_proxies == (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"),
                                        ipaddress.ip_network("::1/128"))
    assert settings.reserved_reading_participants == 2
    assert load_settings({}).reserved_reading_participants == 50
