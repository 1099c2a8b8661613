"""Request plumbing every route shares: a request id, metrics, and errors rendered as JSON."""

from __future__ import annotations

import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from api.core import logs
from api.core.errors import HTTP_CODES, ApiError, from_billing
from api.core.keys import HTTP_METRICS
from billing.errors import BillingError

log = logging.getLogger(__name__)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _route(request: web.Request) -> str:
    """The route's pattern, never the raw path, so metric labels stay few."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path == "/ws" or "application/json" in request.headers.get(
        "Accept", ""
    )


def _json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                body: dict | None = None) -> web.Response:
    return web.json_response(body or {"error": {"code": code, "message": message}}, status=status,
                             headers=headers)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tag the request with an id (the caller's X-Request-Id when sane), time it, and count it."""
    sent = request.headers.get("X-Request-Id", "")
    rid = sent if _REQUEST_ID.match(sent) else uuid.uuid4().hex
    token = logs.request_id.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics = request.app[HTTP_METRICS]
        route = _route(request)
        metrics.requests.labels(route, request.method, str(status)).inc()
        metrics.latency.labels(route, request.method).observe(time.perf_counter() - started)
        logs.request_id.reset(token)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map every failure of an API route to the documented JSON error shape; never leak a trace."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _json_error(exc.status, exc.code, exc.message, exc.headers, exc.body())
    except BillingError as exc:
        error = from_billing(exc)
        return _json_error(error.status, error.code, error.message, body=error.body())
    except web.HTTPException as exc:
        if exc.status < 400 or not _wants_json(request):
            raise
        code = HTTP_CODES.get(exc.status, "error")
        message = exc.reason if exc.status != 404 else "no such resource"
        headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}}
        return _json_error(exc.status, code, message, headers)
    except Exception:
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        if not _wants_json(request):
            raise web.HTTPInternalServerError(text="Something went wrong on our side.") from None
        return _json_error(500, "internal", "something went wrong on our side")
