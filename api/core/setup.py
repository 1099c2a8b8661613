"""A feature package's ``setup(app)``: the ``setup`` of each of its modules, in the order given."""

from __future__ import annotations

from types import ModuleType

from aiohttp import web


class Setup:
    """Calls ``module.setup(app)`` for each module, in order (routes are matched in the order they were added)."""

    def __init__(self, *modules: ModuleType) -> None:
        self.modules = modules

    def __call__(self, app: web.Application) -> None:
        for module in self.modules:
            module.setup(app)
