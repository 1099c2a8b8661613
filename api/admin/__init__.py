"""The operator console: users, readings (goodwill refunds), the ledger's trial balance, payouts, disputes, the
gift catalogue and the cluster. Every route needs the admin role; every write needs a reason, the CSRF token
(cookie logins) and is audited (api/core/audit.py)."""

from __future__ import annotations

from aiohttp import web

from api.admin import console, routes

__all__ = ["setup"]


def setup(app: web.Application) -> None:
    routes.setup(app)
    console.setup(app)
