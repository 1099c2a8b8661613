"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.core.errors import Unauthorized
from api.core.keys import DATABASE, REGISTRY, SETTINGS


async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready to serve: the database answers."""
    if await request.app[DATABASE].ping():
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "unavailable", "reason": "database unreachable"}, status=503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; behind a bearer token when ``SOULSEER_METRICS_TOKEN`` is set."""
    token = request.app[SETTINGS].metrics_token
    if token and not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        raise Unauthorized("metrics need the metrics token")
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
