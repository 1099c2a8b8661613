"""The console's pages (``/admin/...``, server-rendered) and their forms. Pages need an admin's cookie login;
forms carry the login's CSRF token and a reason, and post-redirect-get back to their page."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import quote

from aiohttp import web

from api.accounts.auth import AuthContext, csrf_ok
from api.admin import actions, queries
from api.admin.routes import cluster_nodes
from api.core import audit
from api.core.errors import ApiError
from api.core.keys import BILLING_METRICS, DATABASE
from api.core.validation import path_uuid, query_text
from api.marketplace import reviews as marketplace_reviews
from api.pages.format import money
from api.pages.rendering import page_auth, render
from billing import trial_balance
from billing.errors import BillingError


def _section(name: str, title: str, columns: list[str], rows: list[dict[str, Any]], *, actions: bool = False,
             note: str = "") -> dict[str, Any]:
    return {"name": name, "title": title, "columns": columns, "rows": rows, "actions": actions, "note": note}


async def _page(request: web.Request, auth: AuthContext, title: str, sections: list[dict[str, Any]],
                search: str | None = None) -> web.Response:
    trail = await audit.recent(request.app[DATABASE].pool, limit=20)
    sections = [*sections, _section("audit", "Recent operator actions", ["When", "Who", "What", "On", "Why"], [
        {"cells": [a["at"], a["admin"], a["action"], f"{a['targetKind']} {a['targetId']}", a["reason"]]}
        for a in trail])]
    notice = request.query.get("notice", "")[:300]
    shown = notice if hmac.compare_digest(request.query.get("sig", ""), _notice_sig(auth, notice)) else ""
    return await render(request, "admin.html", auth, script="layout", title=title, sections=sections,
                        search=search, notice=shown)


async def users_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "admin")
    q = query_text(request, "q")
    rows = []
    for u in await queries.users(request.app[DATABASE].pool, q):
        act = ({"url": f"/admin/users/{u['id']}/reinstate", "label": "Reinstate"} if u["suspendedAt"]
               else {"url": f"/admin/users/{u['id']}/suspend", "label": "Suspend"})
        rows.append({"cells": [u["email"], u["displayName"], u["role"], money(u["walletCents"]),
                               money(u["earningsCents"]),
                               f"suspended: {u['suspendReason']}" if u["suspendedAt"] else "active",
                               u["flagReason"] or ""], "actions": [] if u["id"] == auth.user.id else [act]})
    return await _page(request, auth, "Users", [_section(
        "users", "Users", ["Email", "Name", "Role", "Wallet", "Earnings", "Status", "Flag"], rows, actions=True)],
        search=q)


async def readings_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "admin")
    q = query_text(request, "q")
    rows = [{"href": f"/admin/readings/{r['id']}",
             "cells": [r["id"], r["requestedAt"], r["client"], r["reader"], r["sessionType"], r["status"],
                       money(r["chargedCents"])]} for r in await queries.readings(request.app[DATABASE].pool, q)]
    return await _page(request, auth, "Readings", [_section(
        "readings", "Readings", ["Reading", "Requested", "Client", "Reader", "Type", "Status", "Charged"], rows)],
        search=q)


async def reading_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "admin")
    reading_id = path_uuid(request, "readingId")
    found = await queries.reading(request.app[DATABASE].pool, reading_id)
    if found is None:
        raise web.HTTPNotFound(text="no such reading")
    details = _section("details", "Reading", ["Reading", "Client", "Reader", "Type", "Mode", "Status", "Charged"], [
        {"cells": [found["id"], found["client"], found["reader"], found["sessionType"], found["mode"],
                   found["status"], money(found["chargedCents"])],
         "actions": [{"url": f"/admin/readings/{reading_id}/refund", "label": "Goodwill refund", "amount": True}]}],
        actions=True, note="A goodwill refund is split back 70/30 from the reader's earnings and platform revenue.")
    movements = _section("movements", "Ledger movements", ["Key", "Kind", "Amount", "Reader", "Platform", "When"], [
        {"href": f"/admin/ledger/{m['id']}", "cells": [m["key"], m["kind"], money(m["amountCents"]),
                                                       money(m["readerCents"]), money(m["platformCents"]),
                                                       m["createdAt"]]} for m in found["movements"]])
    return await _page(request, auth, f"Reading {reading_id}", [details, movements])


async def reviews_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "admin")
    q = query_text(request, "q")
    rows = []
    for rv in await marketplace_reviews.search_for_operators(request.app[DATABASE].pool, q):
        act = ({"url": f"/admin/reviews/{rv['id']}/show", "label": "Show again"} if rv["hidden"]
               else {"url": f"/admin/reviews/{rv['id']}/hide", "label": "Hide"})
        rows.append({"href": f"/admin/readings/{rv['sessionId']}",
                     "cells": [rv["sessionId"], rv["createdAt"], rv["clientName"], f"{rv['stars']}/5", rv["body"],
                               rv["reply"] or "", "hidden" if rv["hidden"] else "shown"], "actions": [act]})
    return await _page(request, auth, "Reviews", [_section(
        "reviews", "Reviews", ["Reading", "Written", "Client", "Stars", "Review", "Reply", "Status"], rows,
        actions=True, note="A hidden review is kept and audited; it counts in no rating and shows on no page.")],
        search=q)


async def ledger_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "admin")
    balance = await trial_balance.trial_balance(request.app[DATABASE].pool)
    kinds = _section("kinds", "Trial balance", ["Account", "Balance"],
                     [{"cells": [k, money(v)]} for k, v in balance.by_kind.items()]
                     + [{"cells": ["Total (zero in a sound ledger)", money(balance.total_cents)]}])
    accounts = _section("accounts", "Every account", ["Account", "Owner", "Balance", "Entries"], [
        {"cells": [a["account"], a["ownerName"] or "platform", money(a["balanceCents"]), a["entries"]]}
        for a in balance.accounts])
    return await _page(request, auth, "Ledger", [kinds, accounts])


async def transaction_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "admin")
    found = await trial_balance.transaction(request.app[DATABASE].pool, path_uuid(request, "txnId"))
    if found is None:
        raise web.HTTPNotFound(text="no such transaction")
    header = _section("transaction", "Transaction", ["Key", "Kind", "Amount", "Memo", "When"], [
        {"cells": [found["key"], found["kind"], money(found["amount_cents"]), found["memo"], found["createdAt"]]}])
    entries = _section("entries", "Entries", ["Account", "Owner", "Amount"], [
        {"cells": [e["account"], e["owner_id"] or "platform", money(e["amount_cents"])]} for e in found["entries"]])
    return await _page(request, auth, f"Transaction {found['key']}", [header, entries])


async def payouts_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "admin")
    rows = [{"cells": [p["createdAt"], p["reader"], money(p["amountCents"]), p["trigger"], p["status"],
                       money(p["reversedCents"]), p["failure"] or "", "failing" if p["bankPayoutsFailing"] else ""]}
            for p in await queries.payouts(request.app[DATABASE].pool)]
    return await _page(request, auth, "Payouts", [_section(
        "payouts", "Payouts", ["When", "Reader", "Amount", "How", "Status", "Reversed", "Failure", "Bank payouts"],
        rows)])


async def disputes_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "admin")
    rows = [{"cells": [d["id"], d["openedAt"], d["client"], money(d["amountCents"]), money(d["heldCents"]),
                       money(d["carriedCents"]), money(d["feeCents"]), d["reason"], d["status"]]}
            for d in await queries.disputes(request.app[DATABASE].pool)]
    return await _page(request, auth, "Disputes", [_section(
        "disputes", "Disputes", ["Dispute", "Opened", "Client", "Amount", "Held from wallet", "Platform carries",
                                 "Fee", "Reason", "Status"], rows,
        note="Answer disputes in Stripe's dashboard; docs/operator.md says what each outcome does here.")])


async def gifts_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "admin")
    rows = await request.app[DATABASE].pool.fetch("SELECT name, price_cents, active FROM gifts ORDER BY price_cents")
    return await _page(request, auth, "Gifts", [_section(
        "gifts", "Gift catalogue", ["Name", "Price", "Active"],
        [{"cells": [r["name"], money(r["price_cents"]), "yes" if r["active"] else "no"]} for r in rows],
        note="Add or change gifts with POST /api/admin/gifts and PATCH /api/admin/gifts/{id} (audited).")])


async def cluster_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "admin")
    found = await cluster_nodes(request.app)
    rows = [{"cells": [f"{n['name']} ({n['id'][:8]})" + (" · this node" if n["self"] else ""), n["state"],
                       f"{n['load']['cpu'] * 100:.0f}% of a core", str(n["load"]["readings"]),
                       str(n["load"]["streams"]), str(n["load"]["viewers"]), f"{n['host']} pid {n['pid']}",
                       n["heartbeatAt"]]} for n in found["nodes"]]
    note = ("One node, no Redis: set REDIS_URL (or run soulseer serve --nodes N) for a cluster."
            if found["redis"] == "off" else "Every node heartbeats every 2 s; one silent for 5 s is gone.")
    return await _page(request, auth, "Cluster", [_section(
        "nodes", "Nodes", ["Node", "State", "Relay CPU", "Readings", "Streams", "Viewers", "Where", "Heard from"],
        rows, note=note)])


async def _form(request: web.Request) -> tuple[AuthContext, dict[str, Any]]:
    auth = await page_auth(request, "admin")
    form = await request.post()
    token = form.get("csrf")
    if not csrf_ok(request, auth, token if isinstance(token, str) else None):
        raise web.HTTPForbidden(text="missing or wrong CSRF token")
    return auth, {k: v for k, v in form.items() if isinstance(v, str)}


def _notice_sig(auth: AuthContext, notice: str) -> str:
    """The notice a console action redirects with is signed with the admin's own CSRF token, so a link made
    by anyone else cannot put words on a console page."""
    return hmac.new(auth.csrf_token.encode(), notice.encode(), hashlib.sha256).hexdigest()[:32]


def _back(auth: AuthContext, path: str, notice: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{path}?notice={quote(notice)}&sig={_notice_sig(auth, notice)}")


async def suspend_form(request: web.Request) -> web.Response:
    return await _user_form(request, actions.suspend, "Suspended.")


async def reinstate_form(request: web.Request) -> web.Response:
    return await _user_form(request, actions.reinstate, "Reinstated.")


async def _user_form(request: web.Request, act: actions.UserAction, done: str) -> web.Response:
    auth, form = await _form(request)
    try:
        await act(request.app[DATABASE].pool, admin_id=auth.user.id, user_id=path_uuid(request, "userId"),
                  reason=actions.reason_of(form.get("reason")))
    except ApiError as exc:
        raise _back(auth, "/admin/users", exc.message) from None
    raise _back(auth, "/admin/users", done)


async def refund_form(request: web.Request) -> web.Response:
    auth, form = await _form(request)
    reading_id = path_uuid(request, "readingId")
    page = f"/admin/readings/{reading_id}"
    raw = form.get("amountCents", "")
    if not raw.isdigit() or not 0 < int(raw) <= 10_000_000:
        raise _back(auth, page, "The amount is a whole number of cents.")
    try:
        txns = await actions.goodwill_refund(request.app[DATABASE].pool, admin_id=auth.user.id,
                                             reading_id=reading_id, cents=int(raw),
                                             reason=actions.reason_of(form.get("reason")))
    except (ApiError, BillingError) as exc:
        raise _back(auth, page, exc.message) from None
    request.app[BILLING_METRICS].recorded(*txns)
    raise _back(auth, page, f"Refunded {money(int(raw))}.")


async def review_form(request: web.Request) -> web.Response:
    auth, form = await _form(request)
    hidden = request.match_info["action"] == "hide"
    try:
        await actions.set_review_hidden(request.app[DATABASE].pool, admin_id=auth.user.id,
                                        review_id=path_uuid(request, "reviewId"),
                                        reason=actions.reason_of(form.get("reason")), hidden=hidden)
    except ApiError as exc:
        raise _back(auth, "/admin/reviews", exc.message) from None
    raise _back(auth, "/admin/reviews", "Hidden." if hidden else "Shown again.")


async def home(request: web.Request) -> web.Response:
    await page_auth(request, "admin")
    raise web.HTTPSeeOther("/admin/users")


def setup(app: web.Application) -> None:
    app.router.add_get("/admin", home)
    app.router.add_get("/admin/users", users_page)
    app.router.add_post("/admin/users/{userId}/suspend", suspend_form)
    app.router.add_post("/admin/users/{userId}/reinstate", reinstate_form)
    app.router.add_get("/admin/readings", readings_page)
    app.router.add_get("/admin/readings/{readingId}", reading_page)
    app.router.add_post("/admin/readings/{readingId}/refund", refund_form)
    app.router.add_get("/admin/reviews", reviews_page)
    app.router.add_post("/admin/reviews/{reviewId}/{action:hide|show}", review_form)
    app.router.add_get("/admin/ledger", ledger_page)
    app.router.add_get("/admin/ledger/{txnId}", transaction_page)
    app.router.add_get("/admin/payouts", payouts_page)
    app.router.add_get("/admin/disputes", disputes_page)
    app.router.add_get("/admin/gifts", gifts_page)
    app.router.add_get("/admin/cluster", cluster_page)
