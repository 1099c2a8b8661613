"""What the browser tests check on every page: axe-core's serious and critical violations, and horizontal overflow.

axe-core comes from the npm registry (``tests/web/axe/package.json``; ``.ci/run`` runs ``npm ci`` there) and is
injected by Playwright's ``evaluate``, which the pages' Content-Security-Policy does not apply to, so no page
needs to allow a test script.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from playwright.async_api import Page

AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")

_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 4).map((n) => n.target.join(" ") + " :: " + (n.failureSummary || "").split("\\n")[1]) }));
}"""

_OVERFLOW = """() => {
  const root = document.documentElement;
  const wide = [...document.querySelectorAll("body *")].filter((el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.right > root.clientWidth + 1 && getComputedStyle(el).position !== "fixed";
  }).slice(0, 5).map((el) => `${el.tagName.toLowerCase()}.${[...el.classList].join(".")} right=${
    Math.round(el.getBoundingClientRect().right)}`);
  // Content that touches the screen's edges (a page without side padding) fits, and still reads badly.
  const flush = [...document.querySelectorAll("main h1, main .card, main .page-head")].filter((el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && (box.left < 8 || box.right > root.clientWidth - 8);
  }).slice(0, 5).map((el) => `${el.tagName.toLowerCase()}.${[...el.classList].join(".")} left=${
    Math.round(el.getBoundingClientRect().left)}`);
  return { scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, wide, flush };
}"""


@functools.cache
def axe_source() -> str:
    if not AXE.exists():
        raise FileNotFoundError(f"{AXE} is missing: run `npm ci --prefix tests/web/axe` (as .ci/run does)")
    return AXE.read_text()


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """The page's serious and critical accessibility violations, as axe-core reports them."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(axe_source())
    return [v for v in await page.evaluate(_RUN) if v["impact"] in BLOCKING]


async def horizontal_overflow(page: Page) -> dict[str, Any] | None:
    """None when the page fits its viewport's width with a margin at each side; else its widths, the first
    elements that stick out (``wide``) and those that touch an edge (``flush``)."""
    found: dict[str, Any] = await page.evaluate(_OVERFLOW)
    return found if found["scrollWidth"] > found["clientWidth"] or found["flush"] else None
