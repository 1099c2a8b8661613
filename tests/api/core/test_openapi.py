"""The OpenAPI document is generated from the router: every /api route is in it, and nothing else."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from api.core.openapi import document


def _router_operations(client: TestClient) -> set[tuple[str, str]]:
    found = set()
    for route in client.app.router.routes():
        resource = route.resource
        if resource is None or route.method in {"HEAD", "OPTIONS", "*"}:
            continue
        path = re.sub(r"\{([^}:]+)(?::[^}]*)?\}", r"{\1}", resource.canonical)
        if path.startswith("/api/"):
            found.add((route.method.lower(), path))
    return found


async def test_every_api_route_is_documented_and_every_documented_route_exists(client: TestClient) -> None:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == _router_operations(client)
    # The contract's seed endpoints, and what other modules register, are all there.
    for path in ("/api/webrtc/reader/rates", "/api/webrtc/reader/availability", "/api/webrtc/reader/sessions",
                 "/api/webrtc/reader/accept-session/{sessionId}", "/api/webrtc/client/balance",
                 "/api/webrtc/client/add-funds", "/api/webrtc/client/available-readers",
                 "/api/webrtc/client/request-session", "/api/webrtc/client/schedule-session",
                 "/api/webrtc/session/{sessionId}", "/api/webrtc/webhook", "/api/auth/login"):
        assert path in doc["paths"], path


async def test_operations_carry_roles_summaries_and_path_parameters(client: TestClient) -> None:
    doc = document(client.app)
    accept = doc["paths"]["/api/webrtc/reader/accept-session/{sessionId}"]["post"]
    assert accept["x-roles"] == ["reader"] and accept["summary"]
    assert accept["parameters"][0] == {"name": "sessionId", "in": "path", "required": True,
                                       "schema": {"type": "string", "format": "uuid"}}
    request = doc["paths"]["/api/webrtc/client/request-session"]["post"]
    assert "201" in request["responses"] and "readerId" in request["requestBody"]["content"][
        "application/json"]["schema"]["description"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"], (method, path)
            assert "4XX" in op["responses"]


async def test_every_paid_request_documents_the_price_it_confirms(client: TestClient) -> None:
    doc = document(client.app)
    for path in ("/api/webrtc/client/request-session", "/api/webrtc/client/schedule-session",
                 "/api/webrtc/client/slots/{slotId}/book", "/api/messages", "/api/streams/{streamId}/gifts"):
        op = doc["paths"][path]["post"]
        assert "expectedCents" in op["requestBody"]["content"]["application/json"]["schema"]["description"], path
        assert "price_changed" in op["responses"]["201"]["description"], path


async def test_a_route_added_later_shows_up_without_touching_the_document_code(client: TestClient) -> None:
    app = client.app
    before = set(document(app)["paths"])
    # The router is frozen once the app runs; a fresh app shows that registration alone is enough.
    from aiohttp import web

    fresh = web.Application()

    async def handler(request: web.Request) -> web.Response:
        """Say hello."""
        return web.json_response({})

    fresh.router.add_get("/api/hello/{thingId}", handler)
    fresh.router.add_get("/not-api", handler)
    doc = document(fresh)
    assert set(doc["paths"]) == {"/api/hello/{thingId}"}
    assert doc["paths"]["/api/hello/{thingId}"]["get"]["summary"] == "Say hello."
    assert before
