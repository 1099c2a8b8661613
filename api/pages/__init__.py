"""Server-rendered pages (web/templates) and the static files behind them: the rendering every page shares,
the value formats of templates, and one module per area of the site.

Templates, security headers, static files, then every page's route.
"""

from api.core.setup import Setup
from api.pages import (
    account,
    booking,
    dashboard,
    home,
    login,
    messages,
    not_found,
    notifications,
    reader_profile,
    readings,
    rendering,
    streams,
    wallet,
)

__all__ = ["setup"]

setup = Setup(rendering, not_found, home, login, wallet, dashboard, readings, notifications, streams, messages, booking,
              account, reader_profile)
