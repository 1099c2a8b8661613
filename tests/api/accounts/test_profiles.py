"""``/api/webrtc/reader/profile``: a reader's bio, specialties and auto-accept choice."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from api.accounts.profiles import EMPTY, parse, specialties
from api.core.errors import Invalid
from tests.api.helpers import bearer_user


def test_specialties_accept_a_comma_separated_string_and_drop_blanks_and_repeats() -> None:
    assert specialties({"specialties": " Tarot,  dream   work ,,tarot, Astrology "}) == (
        "Tarot", "dream work", "Astrology")


@pytest.mark.parametrize("raw", [[1, 2], {"a": 1}, ["x" * 41], [f"s{i}" for i in range(9)]])
def test_bad_specialties_are_a_422_naming_the_field(raw: object) -> None:
    with pytest.raises(Invalid) as caught:
        specialties({"specialties": raw})
    assert caught.value.field == "specialties"


def test_fields_left_out_keep_their_value() -> None:
    current = parse({"bio": "Hello", "specialties": ["Tarot"], "languages": "English, Español"}, EMPTY)
    assert parse({"autoAccept": True}, current).public() == {
        "bio": "Hello", "specialties": ["Tarot"], "languages": ["English", "Español"], "autoAccept": True}


def test_auto_accept_must_be_a_boolean() -> None:
    with pytest.raises(Invalid) as caught:
        parse({"autoAccept": "yes"}, EMPTY)
    assert caught.value.field == "autoAccept"


async def test_a_reader_saves_and_reads_back_a_profile(client: TestClient) -> None:
    _, headers = await bearer_user(client, "reader")
    resp = await client.get("/api/webrtc/reader/profile", headers=headers)
    assert resp.status == 200
    assert (await resp.json()) == {"profile": {"bio": "", "specialties": [], "languages": [], "autoAccept": False}}
    resp = await client.post("/api/webrtc/reader/profile", headers=headers,
                             json={"bio": "Tarot since 2004.", "specialties": ["Tarot", "Love"], "autoAccept": True})
    assert resp.status == 200, await resp.text()
    resp = await client.get("/api/webrtc/reader/profile", headers=headers)
    assert (await resp.json())["profile"] == {"bio": "Tarot since 2004.", "specialties": ["Tarot", "Love"],
                                              "languages": [], "autoAccept": True}


async def test_a_too_long_bio_is_a_422_on_bio(client: TestClient) -> None:
    _, headers = await bearer_user(client, "reader")
    resp = await client.post("/api/webrtc/reader/profile", headers=headers, json={"bio": "x" * 1001})
    assert resp.status == 422
    assert (await resp.json())["error"]["field"] == "bio"


async def test_only_readers_have_a_profile(client: TestClient) -> None:
    _, headers = await bearer_user(client, "client")
    assert (await client.post("/api/webrtc/reader/profile", headers=headers, json={})).status == 403
    client.session.cookie_jar.clear()
    assert (await client.get("/api/webrtc/reader/profile")).status == 401


async def test_a_cookie_login_needs_the_csrf_token_to_save(client: TestClient) -> None:
    from tests.api.helpers import login, register

    user = await register(client, "reader")
    session = await login(client, user["email"])
    resp = await client.post("/api/webrtc/reader/profile", json={"bio": "x"})
    assert resp.status == 403
    resp = await client.post("/api/webrtc/reader/profile", json={"bio": "x"},
                             headers={"X-CSRF-Token": session["csrfToken"]})
    assert resp.status == 200
