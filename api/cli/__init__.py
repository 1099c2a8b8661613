"""The ``soulseer`` console command (``serve``, ``migrate``, ``create-admin``, ``credit``) and the demo accounts
of ``serve --demo``. The top of the import graph: it builds the app (api/app.py) and runs it."""

from __future__ import annotations

from api.cli.main import main

__all__ = ["main"]
