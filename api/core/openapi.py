"""The OpenAPI document at ``/api/openapi.json``, built from the router itself so it cannot drift.

Every ``/api`` route in ``app.router`` becomes an operation when the document is requested. A handler
may carry a small spec (:func:`operation`: summary, roles, request and response shapes); without one
its docstring's first line is the summary. Routes other modules register appear automatically.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

_SPEC_ATTRIBUTE = "__openapi__"
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
_IGNORED_METHODS = {"HEAD", "OPTIONS", "*"}
F = TypeVar("F", bound=Callable[..., Any])


def operation(*, summary: str, roles: tuple[str, ...] | None = None, request: str | None = None,
              response: str | None = None, status: int = 200, query: dict[str, str] | None = None,
              tags: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Attach an OpenAPI operation spec to a handler. ``request``/``response`` describe the JSON shapes."""

    def attach(handler: F) -> F:
        setattr(handler, _SPEC_ATTRIBUTE, {
            "summary": summary, "roles": roles, "request": request, "response": response, "status": status,
            "query": query or {}, "tags": tags,
        })
        return handler

    return attach


def _error_response() -> dict[str, Any]:
    return {"$ref": "#/components/responses/Error"}


def _operation(method: str, path: str, handler: Any) -> dict[str, Any]:
    spec = getattr(handler, _SPEC_ATTRIBUTE, None) or {}
    doc = inspect.getdoc(handler) or ""
    summary = spec.get("summary") or (doc.splitlines()[0] if doc else f"{method} {path}")
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{handler.__name__}" if hasattr(handler, "__name__") else None,
        "summary": summary,
        "tags": list(spec.get("tags") or [path.split("/")[2] if path.count("/") >= 2 else "api"]),
    }
    if op["operationId"] is None:
        del op["operationId"]
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}
               if name.endswith("Id") else {"type": "string"}} for name in _PARAM.findall(path)]
    params += [{"name": name, "in": "query", "required": False, "description": text, "schema": {"type": "string"}}
               for name, text in (spec.get("query") or {}).items()]
    if params:
        op["parameters"] = params
    roles = spec.get("roles")
    if roles is not None:
        op["x-roles"] = list(roles)
        op["description"] = ("Needs the " + " or ".join(roles) + " role.") if roles else "Any signed-in user."
    if spec.get("request") or (method in {"POST", "PUT", "PATCH"} and spec.get("request") is None and spec):
        op["requestBody"] = {"required": bool(spec.get("request")), "content": {"application/json": {
            "schema": {"type": "object", "description": spec.get("request") or "no body"}}}}
    status = str(spec.get("status", 200))
    op["responses"] = {
        status: {"description": spec.get("response") or "OK",
                 "content": {"application/json": {"schema": {"type": "object"}}}},
        "4XX": _error_response(),
    }
    return op


def document(app: web.Application, *, title: str = "SoulSeer API", version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every ``/api`` route in ``app``'s router, right now."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in _IGNORED_METHODS:
            continue
        path = _PARAM.sub(lambda m: "{" + m.group(1) + "}", resource.canonical)
        if not path.startswith("/api/"):
            continue
        paths.setdefault(path, {})[route.method.lower()] = _operation(route.method, path, route.handler)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "JSON over HTTP; money in integer cents (fields ending in Cents); times ISO-8601 "
                                "UTC; ids UUIDs. Every paid request (request-session, schedule-session, a slot's "
                                "book, a client's message, a gift) carries expectedCents, the price the client was "
                                "shown (the per-minute rate for request-session), and is refused with 409 "
                                "price_changed (error.priceCents: the price now) when that is no longer the price. "
                                "The signaling WebSocket is at /ws (see the README)."},
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "cookie": {"type": "apiKey", "in": "cookie", "name": "soulseer_session",
                           "description": "writes also need the X-CSRF-Token header"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "responses": {"Error": {"description": "{error: {code, message, field?}}", "content": {
                "application/json": {"schema": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"},
                        "field": {"type": "string"},
                        "priceCents": {"type": "integer", "description": "price_changed: the price now"},
                        "expectedCents": {"type": "integer",
                                          "description": "price_changed: the price the request confirmed"},
                    }}}}}}}},
        },
        "security": [{"cookie": []}, {"bearer": []}],
    }


async def serve(request: web.Request) -> web.Response:
    """This document."""
    return web.json_response(document(request.app))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", serve)
