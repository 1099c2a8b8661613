"""Every REST operation in the OpenAPI document, as every role, with generated bodies, path and query values:
never a 5xx, never an ``internal`` error, always the documented error shape (issue 11, point 13).

One app (with payments configured against the local fake Stripe, so nothing is a 503 for being unconfigured)
serves all the examples of the test; the accounts and a few real resources (a reading, a stream, a slot) are
made once, so generated ids sometimes name something that exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import event, given
from hypothesis import strategies as st

from api.accounts.auth import start_login
from api.core.keys import DATABASE
from config import Settings
from tests.api.fuzzing import announce, fuzz, huge_int_text, json_values, nested, odd_numbers, odd_text
from tests.api.users import quick_user
from tests.reading_steps import deposit, running_app
from tests.stripe_fake import SECRET_KEY, WEBHOOK_SECRET, FakeStripe

pytestmark = pytest.mark.slow

ROLES = ("anonymous", "client", "reader", "admin")
# Fields of the two routes whose document gives no request shape (api/accounts/login.py).
AUTH_FIELDS = ("email", "password", "displayName", "role")
_FIELD = re.compile(r"[{,|]\s*([A-Za-z][A-Za-z0-9]*)\??")


@dataclass
class Operation:
    method: str
    path: str
    path_params: list[str]
    query: list[str]
    fields: list[str]
    has_body: bool
    roles: list[str]  # who may call it (x-roles; empty: anyone)


class Target:
    """The app under test, its operations, and who and what exists in it (a plain class: Hypothesis prints it
    with a failing example, and a short repr keeps that readable)."""

    def __init__(self, http: TestClient, operations: list[Operation], headers: dict[str, dict[str, str]],
                 users: dict[str, dict[str, Any]], ids: list[str], vocabulary: list[str]) -> None:
        self.http = http
        self.operations = operations
        self.headers = headers
        self.users = users
        self.ids = ids
        self.vocabulary = vocabulary

    def __repr__(self) -> str:
        return f"Target({len(self.operations)} operations)"

    async def relogin(self, role: str) -> None:
        """A new bearer token for ``role`` (a generated logout revoked the old one)."""
        async with self.http.app[DATABASE].pool.acquire() as conn:
            token, _ = await start_login(conn, self.users[role]["id"], user_agent="fuzz", address=None)
        self.headers[role] = {"Authorization": f"Bearer {token}"}


def _operations(document: dict[str, Any]) -> list[Operation]:
    operations = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            params = op.get("parameters", [])
            body = op.get("requestBody")
            description = body["content"]["application/json"]["schema"].get("description", "") if body else ""
            fields = _FIELD.findall(description) if description else []
            if path.startswith("/api/auth/") and method == "post":
                fields = list(AUTH_FIELDS)
            operations.append(Operation(
                method.upper(), path, [p["name"] for p in params if p["in"] == "path"],
                [p["name"] for p in params if p["in"] == "query"], fields,
                has_body=method in ("post", "patch", "put"), roles=list(op.get("x-roles") or [])))
    return operations


@pytest.fixture
async def target(settings: Settings) -> AsyncIterator[Target]:
    fake = FakeStripe()
    async with fake.running() as stripe_url, running_app(
            settings, stripe_secret_key=SECRET_KEY, stripe_webhook_secret=WEBHOOK_SECRET, stripe_api_base=stripe_url,
            login_attempts_per_minute=10_000) as http:
        users, headers = {}, {"anonymous": {}}
        for role in ROLES[1:]:
            users[role], headers[role] = await quick_user(http, role)
        await deposit(http.app[DATABASE].pool, users["client"]["id"], 100_000)
        document = await (await http.get("/api/openapi.json")).json()
        operations = _operations(document)
        # A few things that exist, so that generated ids sometimes hit them.
        await http.post("/api/webrtc/reader/rates", headers=headers["reader"],
                        json={"chatCents": 100, "audioCents": 150, "videoCents": 200, "messageCents": 50,
                              "flatCents": {"15": 1000, "30": 1800, "45": 2500, "60": 3200}})
        await http.post("/api/webrtc/reader/availability", headers=headers["reader"], json={"status": "online"})
        reading = await (await http.post("/api/webrtc/client/request-session", headers=headers["client"],
                                         json={"readerId": users["reader"]["id"], "sessionType": "chat",
                                                   "expectedCents": 100})).json()
        stream = await (await http.post("/api/streams", headers=headers["reader"], json={"title": "Fuzz"})).json()
        ids = [u["id"] for u in users.values()] + [reading["session"]["id"], stream["stream"]["id"]]
        vocabulary = sorted({f for op in operations for f in op.fields})
        yield Target(http, operations, headers, users, ids, vocabulary)


def _values_for(name: str, target: Target) -> st.SearchStrategy[Any]:
    """Plausible values for a field (so generated requests get past the first check) mixed with garbage."""
    soon = datetime.now(UTC) + timedelta(days=1)
    plausible: list[st.SearchStrategy[Any]] = []
    if name.endswith("Id") or name == "id":
        plausible.append(st.sampled_from(target.ids) | st.uuids().map(str))
    if name.endswith("Cents"):
        plausible.append(st.integers(-10, 10_000_000) | st.sampled_from([500, 50_000, 10**9]))
    plausible.append({
        "sessionType": st.sampled_from(["chat", "audio", "video", "phone"]),
        "status": st.sampled_from(["online", "offline", "busy", "requested,accepted"]),
        "role": st.sampled_from(["client", "reader", "admin", "root"]),
        "minutes": st.sampled_from([15, 30, 45, 60, 61, 0]),
        "startsAt": st.integers(-48, 24 * 30).map(lambda h: (soon + timedelta(hours=h)).isoformat())
        | st.sampled_from(["2024-02-30T00:00:00Z", "tomorrow", "9999-12-31T23:59:59+14:00"]),
        "email": st.from_regex(r"\A[a-z]{1,8}@example\.test\Z") | st.just("a" * 300 + "@example.test"),
        "flatCents": st.dictionaries(st.sampled_from(["15", "30", "45", "60", "90"]), odd_numbers, max_size=5),
        "specialties": st.lists(odd_text, max_size=5) | odd_text,
        "active": st.booleans(), "autoAccept": st.booleans(),
        "password": st.text(min_size=12, max_size=40), "icon": st.sampled_from(["star", "moon", "\u2728", "x" * 80]),
    }.get(name, st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), min_size=1, max_size=60)))
    likely = st.one_of(*plausible)
    return st.one_of(likely, likely, likely, json_values)  # three parts plausible to one part garbage


@st.composite
def _request(draw: st.DrawFn, target: Target) -> dict[str, Any]:
    op = draw(st.sampled_from(target.operations))
    # Mostly a role the operation admits, so requests get past the role check and into the handler.
    role = draw(st.sampled_from(op.roles or ROLES[1:])) if op.roles != [] and draw(st.integers(0, 4)) else \
        draw(st.sampled_from(ROLES))
    path = op.path
    for name in op.path_params:
        # aiohttp's HTTP parser refuses a request line over 8190 bytes with a plain-text 400 before the app.
        value = draw(st.sampled_from(target.ids) | st.uuids().map(str) | odd_text.map(lambda t: t[:300])
                     | st.integers().map(str))
        raw = value.encode("utf-8", "surrogatepass")
        path = path.replace("{" + name + "}", quote(raw, safe="") or "%20")
    query = {name: draw(odd_text.map(lambda t: t[:300]) | odd_numbers.map(str) | huge_int_text())
             for name in op.query if draw(st.booleans())}
    body: bytes | None = None
    if op.has_body or draw(st.integers(0, 9)) == 0:
        names = op.fields or target.vocabulary
        kind = draw(st.sampled_from(["fields", "fields", "fields", "json", "nested", "huge_int", "raw", "none"]))
        if kind == "fields":
            chosen = list(names) if draw(st.booleans()) else draw(
                st.lists(st.sampled_from(names), unique=True, max_size=len(names))) if names else []
            obj = {name: draw(_values_for(name, target)) for name in chosen}
            obj.update(draw(st.dictionaries(odd_text, json_values, max_size=2)))
            body = json.dumps(obj).encode()
        elif kind == "json":
            body = json.dumps(draw(json_values)).encode()
        elif kind == "nested":
            body = draw(nested()).encode()
        elif kind == "huge_int":
            body = ('{"' + draw(st.sampled_from(names or ["x"])) + '": ' + draw(huge_int_text()) + "}").encode()
        elif kind == "raw":
            body = draw(st.binary(max_size=200))
    content_type = draw(st.sampled_from(["application/json", "application/json", "text/plain", None]))
    return {"op": op, "role": role, "path": path, "query": query, "body": body, "content_type": content_type}


@fuzz(max_examples=300)
@given(data=st.data())
async def test_no_generated_request_to_any_operation_is_a_5xx_or_internal(target: Target, data: Any) -> None:
    seed_line = announce("REST fuzz")
    request = data.draw(_request(target))
    op: Operation = request["op"]
    headers = dict(target.headers[request["role"]])
    if request["content_type"] is not None:
        headers["Content-Type"] = request["content_type"]
    resp = await target.http.request(op.method, request["path"], params=request["query"], data=request["body"],
                                     headers=headers, allow_redirects=False)
    text = await resp.text()
    event(f"{resp.status} {op.method} {op.path}")
    where = f"{op.method} {request['path'][:200]} as {request['role']} ({seed_line})"
    assert resp.status < 500, f"{where}: {resp.status} {text[:300]}"
    if resp.status == 400 and text.startswith("Got more than 8190 bytes"):
        return  # aiohttp's HTTP parser refuses an over-long request line before the app sees it: still a 4xx
    if resp.status >= 400:
        assert resp.content_type == "application/json", f"{where}: {resp.status} {text[:300]}"
        error = json.loads(text)["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"], where
        assert error["code"] != "internal", where
    if op.path == "/api/auth/logout" and request["role"] != "anonymous":
        await target.relogin(request["role"])
