from __future__ import annotations

from aiohttp.test_utils import TestClient


async def test_healthz_and_readyz(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ready"


async def test_metrics_count_requests_by_route_and_status(client: TestClient) -> None:
    await client.get("/api/auth/me")
    text = await (await client.get("/metrics")).text()
    assert 'soulseer_http_requests_total{method="GET",route="/api/auth/me",status="401"} 1.0' in text
    assert "soulseer_http_request_duration_seconds_bucket" in text
    assert "process_cpu_seconds_total" in text
