"""The one reader of client JSON and query integers: whatever a client sends is a 4xx naming what is wrong,
never a 500 (issue 11, point 13: deep nesting, lone surrogates, cursors beyond int64)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.core.errors import ApiError
from api.core.validation import MAX_JSON_DEPTH, parse_json
from config import Settings
from tests.api.users import quick_user
from tests.reading_steps import Signal, running_app
from tests.reading_steps import quick_user as quick_party
from tests.stripe_fake import SECRET_KEY, WEBHOOK_SECRET, FakeStripe

DEEP = "[" * 1000 + "]" * 1000


def _refusal(raw: str) -> ApiError:
    with pytest.raises(ApiError) as refused:
        parse_json(raw)
    return refused.value


def test_nesting_beyond_the_limit_is_too_deep_however_deep() -> None:
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    for raw in ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), DEEP, '{"a":' * 5000 + "1" + "}" * 5000):
        error = _refusal(raw)
        assert (error.status, error.code) == (400, "too_deep")


@pytest.mark.parametrize(("raw", "field"), [
    ('{"displayName": "\\ud800"}', "displayName"),
    ('{"flatCents": {"15": "\\udfff x"}}', "flatCents.15"),
    ('{"items": [1, "ok", "\\ud83d"]}', "items[2]"),
    ('{"\\ud800": 1}', "\\ud800"),
    ('{"title": "a\\u0000b"}', "title"),
])
def test_a_lone_surrogate_or_nul_anywhere_is_422_naming_the_field(raw: str, field: str) -> None:
    error = _refusal(raw)
    assert (error.status, error.code, error.field) == (422, "invalid", field)


def test_a_real_surrogate_pair_is_fine() -> None:
    assert parse_json('{"text": "\\ud83d\\ude00"}') == {"text": "\U0001f600"}


@pytest.mark.parametrize("raw", ["1" * 5000, '{"amountCents": ' + "9" * 4301 + "}", "{", b"\xff\xfe\x00"])
def test_what_python_cannot_decode_is_malformed_json(raw: Any) -> None:
    error = _refusal(raw)
    assert (error.status, error.code) == (400, "malformed_json")


async def _write_routes(client: TestClient) -> list[str]:
    document = await (await client.get("/api/openapi.json")).json()
    paths = [path for path, ops in document["paths"].items() if "post" in ops and "{" not in path]
    return sorted(paths, key=lambda path: path == "/api/auth/logout")  # last: it ends the login


async def test_deep_json_is_a_4xx_on_every_write_endpoint_for_every_role(settings: Settings) -> None:
    fake = FakeStripe()
    async with fake.running() as stripe_url, running_app(
            settings, stripe_secret_key=SECRET_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
            stripe_api_base=stripe_url) as client:  # payments configured: no 503 for being unconfigured
        headers = [{}] + [(await quick_user(client, role))[1] for role in ("client", "reader", "admin")]
        for path in await _write_routes(client):
            for auth in headers:
                resp = await client.post(path, data=DEEP, headers={**auth, "Content-Type": "application/json"})
                assert resp.status < 500, (path, resp.status, await resp.text())
                if resp.status >= 400:  # a route that reads no body may well succeed
                    assert (await resp.json())["error"]["code"] != "internal", path
        for path in ("/api/auth/register", "/api/auth/login"):  # they read the body of anyone
            resp = await client.post(path, data=DEEP, headers={"Content-Type": "application/json"})
            assert (resp.status, (await resp.json())["error"]["code"]) == (400, "too_deep")


@pytest.mark.parametrize(("role", "path", "body", "field"), [
    (None, "/api/auth/register", {"email": "a@example.test", "password": "long enough pass", "role": "client",
                                  "displayName": "\ud800"}, "displayName"),
    ("reader", "/api/streams", {"title": "Tarot \udc00 night"}, "title"),
    ("reader", "/api/webrtc/reader/rates", {"flatCents": {"15": "\ud800"}}, "flatCents.15"),
    ("client", "/api/webrtc/client/request-session", {"readerId": "\ud800", "sessionType": "chat"}, "readerId"),
])
async def test_a_lone_surrogate_in_a_text_field_is_422_naming_it(client: TestClient, pool: asyncpg.Pool,
                                                                 role: str | None, path: str,
                                                                 body: dict[str, Any], field: str) -> None:
    import json

    headers = (await quick_user(client, role))[1] if role else {}
    resp = await client.post(path, data=json.dumps(body), headers={**headers, "Content-Type": "application/json"})
    assert resp.status == 422, await resp.text()
    error = (await resp.json())["error"]
    assert (error["code"], error["field"]) == ("invalid", field)


@pytest.mark.parametrize("query", ["before=99999999999999999999", "before=9223372036854775808", "before=-1",
                                   "before=1_000", "before=%D9%A1", "limit=0", "limit=201", "limit=1e3",
                                   "limit=" + "9" * 5000])
async def test_history_cursors_and_limits_out_of_range_are_422(client: TestClient, query: str) -> None:
    for role, path in (("client", "/api/webrtc/client/transactions"), ("reader", "/api/webrtc/reader/earnings")):
        _, headers = await quick_user(client, role)
        resp = await client.get(f"{path}?{query}", headers=headers)
        assert resp.status == 422, (path, query, await resp.text())
        assert (await resp.json())["error"]["field"] in {"before", "limit"}


async def test_the_largest_cursor_is_a_page(client: TestClient) -> None:
    _, headers = await quick_user(client, "client")
    resp = await client.get("/api/webrtc/client/transactions?before=9223372036854775807&limit=200", headers=headers)
    assert resp.status == 200
    assert (await resp.json())["transactions"] == []


@pytest.mark.parametrize("path", ["/api/notifications?limit=99999999999999999999", "/api/webrtc/sessions?limit=x",
                                  "/api/webrtc/reader/sessions?limit=-5"])
async def test_other_page_sizes_are_checked_the_same_way(client: TestClient, path: str) -> None:
    _, headers = await quick_user(client, "reader")
    resp = await client.get(path, headers=headers)
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["error"]["field"] == "limit"


@pytest.mark.parametrize(("raw", "code"), [
    ('{"type": "ping", "x": ' + DEEP + "}", "too_deep"),
    ('{"type": "join", "sessionId": "\\ud800"}', "invalid"),
    ('{"type": "chat-message", "text": "\\udfff"}', "invalid"),
    ('{"type": "join", "sessionId": ' + "1" * 5000 + "}", "malformed_json"),
])
async def test_signaling_reads_messages_with_the_same_rules(client: TestClient, pool: asyncpg.Pool, raw: str,
                                                           code: str) -> None:
    ws = await Signal.open(client, await quick_party(pool, "client"))
    await ws.ws.send_str(raw)
    assert (await ws.expect("error"))["code"] == code
    await ws.send("ping")
    await ws.expect("pong")
