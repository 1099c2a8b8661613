"""Browser security headers on every response: a strict Content-Security-Policy and its companions.

The pages never run inline script (``script-src 'self'``, no event-handler attributes): page data travels in
``<script type="application/json">`` blocks that the ES modules read, so an injected ``<script>`` is inert
even if escaping were ever missed. Everything (CSS, JS, images) is served by SoulSeer itself.
"""

from __future__ import annotations

from aiohttp import web

POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob: mediastream:",
    "font-src 'self'",
    # 'self' covers same-origin ws:/wss: in CSP3 browsers; the signaling socket is same-origin.
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin-allow-popups",
}


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)


def setup(app: web.Application) -> None:
    """Attach the headers to every response the app prepares (pages, static files, API, errors)."""
    app.on_response_prepare.append(add_headers)
