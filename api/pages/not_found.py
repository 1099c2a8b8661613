"""The styled 404 page for any unknown address a browser opens (an API path still gets the JSON error).

aiohttp answers an unmatched path with a bare "404: Not Found"; this middleware, innermost, turns that (and any
page's own 404) into the site's page, with the layout of whoever is signed in.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from api.accounts.auth import authenticate
from api.pages.rendering import render


def _is_page(request: web.Request) -> bool:
    return (request.method in ("GET", "HEAD") and not request.path.startswith(("/api/", "/static/"))
            and request.path != "/ws" and "application/json" not in request.headers.get("Accept", ""))


async def not_found_page(request: web.Request) -> web.Response:
    return await render(request, "not_found.html", await authenticate(request), script="layout", status=404)


@web.middleware
async def styled_not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if not _is_page(request):
            raise
        return await not_found_page(request)


def setup(app: web.Application) -> None:
    app.middlewares.append(styled_not_found)
