"""Server-rendered pages (web/templates) and the static files behind them: the rendering every page shares,
the value formats of templates, and one module per area of the site."""

from __future__ import annotations

from aiohttp import web

from api.pages import dashboard, home, login, messages, notifications, readings, rendering, streams, wallet

__all__ = ["setup"]


def setup(app: web.Application) -> None:
    """Templates, security headers, static files, then every page's route."""
    rendering.setup(app)
    home.setup(app)
    login.setup(app)
    wallet.setup(app)
    dashboard.setup(app)
    readings.setup(app)
    notifications.setup(app)
    streams.setup(app)
    messages.setup(app)
