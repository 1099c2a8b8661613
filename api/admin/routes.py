"""The console's JSON API (``/api/admin/...``): every route needs the admin role; writes need a reason."""

from __future__ import annotations

import os
import socket
from typing import Any

from aiohttp import web

from api.accounts.auth import require
from api.admin import actions, queries
from api.cluster import CLUSTER, NODE_LOAD
from api.cluster.node_info import NodeInfo
from api.core import audit
from api.core.errors import NotFound
from api.core.keys import BILLING_METRICS, DATABASE, NODE_ID, SETTINGS
from api.core.openapi import operation
from api.core.times import now_iso
from api.core.validation import cents, path_uuid, query_text, read_json
from api.marketplace import reviews as marketplace_reviews
from billing import trial_balance


def _pool(request: web.Request):  # type: ignore[no-untyped-def]
    return request.app[DATABASE].pool


@operation(summary="Search users by email or name", roles=("admin",), query={"q": "part of an email or name"},
           response="{users}", tags=("admin",))
async def users(request: web.Request) -> web.Response:
    await require(request, "admin")
    return web.json_response({"users": await queries.users(_pool(request), query_text(request, "q"))})


@operation(summary="Suspend a user (ends their logins)", roles=("admin",), request="{reason}", response="{ok}",
           tags=("admin",))
async def suspend(request: web.Request) -> web.Response:
    return await _on_user(request, actions.suspend)


@operation(summary="Reinstate a suspended user", roles=("admin",), request="{reason}", response="{ok}",
           tags=("admin",))
async def reinstate(request: web.Request) -> web.Response:
    return await _on_user(request, actions.reinstate)


async def _on_user(request: web.Request, act: actions.UserAction) -> web.Response:
    admin = await require(request, "admin")
    body = await read_json(request)
    await act(_pool(request), admin_id=admin.id, user_id=path_uuid(request, "userId"),
              reason=actions.reason_of(body.get("reason")))
    return web.json_response({"ok": True})


@operation(summary="Search readings by participant email or id", roles=("admin",), query={"q": "email or id"},
           response="{readings}", tags=("admin",))
async def readings(request: web.Request) -> web.Response:
    await require(request, "admin")
    return web.json_response({"readings": await queries.readings(_pool(request), query_text(request, "q"))})


@operation(summary="A reading's details and its ledger movements", roles=("admin",), response="{reading}",
           tags=("admin",))
async def reading(request: web.Request) -> web.Response:
    await require(request, "admin")
    found = await queries.reading(_pool(request), path_uuid(request, "readingId"))
    if found is None:
        raise NotFound("no such reading", code="reading_not_found")
    return web.json_response({"reading": found})


@operation(summary="A goodwill refund of a reading (70/30 from the reader's earnings and platform revenue)",
           roles=("admin",), request="{amountCents, reason, requestId?}", response="{refunds}", status=201,
           tags=("admin",))
async def refund(request: web.Request) -> web.Response:
    admin = await require(request, "admin")
    body = await read_json(request)
    amount = cents(body, "amountCents", low=1)
    assert amount is not None
    request_id = body.get("requestId") if isinstance(body.get("requestId"), str) else None
    txns = await actions.goodwill_refund(_pool(request), admin_id=admin.id,
                                         reading_id=path_uuid(request, "readingId"), cents=amount,
                                         reason=actions.reason_of(body.get("reason")), request_id=request_id)
    request.app[BILLING_METRICS].recorded(*txns)
    return web.json_response({"refunds": [{"key": t.key, "amountCents": t.amount_cents,
                                           "readerCents": t.reader_cents, "platformCents": t.platform_cents}
                                          for t in txns]}, status=201)


@operation(summary="The trial balance: every account's balance, and their total (zero)", roles=("admin",),
           response="{accounts, byKind, totalCents}", tags=("admin",))
async def ledger(request: web.Request) -> web.Response:
    await require(request, "admin")
    balance = await trial_balance.trial_balance(_pool(request))
    return web.json_response({"accounts": balance.accounts, "byKind": balance.by_kind,
                              "totalCents": balance.total_cents})


@operation(summary="One ledger transaction and its entries", roles=("admin",), response="{transaction}",
           tags=("admin",))
async def transaction(request: web.Request) -> web.Response:
    await require(request, "admin")
    found = await trial_balance.transaction(_pool(request), path_uuid(request, "txnId"))
    if found is None:
        raise NotFound("no such transaction", code="transaction_not_found")
    return web.json_response({"transaction": found})


@operation(summary="Payouts, newest first", roles=("admin",), query={"status": "in_transit, paid or failed"},
           response="{payouts}", tags=("admin",))
async def payouts(request: web.Request) -> web.Response:
    await require(request, "admin")
    status = request.query.get("status")
    return web.json_response({"payouts": await queries.payouts(
        _pool(request), status=status if status in ("in_transit", "paid", "failed") else None)})


@operation(summary="Card disputes, open ones first", roles=("admin",), response="{disputes}", tags=("admin",))
async def disputes(request: web.Request) -> web.Response:
    await require(request, "admin")
    return web.json_response({"disputes": await queries.disputes(_pool(request))})


@operation(summary="The audit trail of operator actions", roles=("admin",), response="{audit}", tags=("admin",))
async def audit_trail(request: web.Request) -> web.Response:
    await require(request, "admin")
    return web.json_response({"audit": await audit.recent(_pool(request), limit=200)})


@operation(summary="The cluster's nodes: each one's state (serving or draining), load and last heartbeat",
           roles=("admin",), response='{nodeId, redis: "up" | "off", nodes: [{id, name, state, load: {cpu, '
           'participants, readings, streams, viewers, busy}, startedAt, heartbeatAt, host, pid, self}]}; '
           '503 cluster_unavailable',
           tags=("admin",))
async def cluster(request: web.Request) -> web.Response:
    await require(request, "admin")
    return web.json_response(await cluster_nodes(request.app))


async def cluster_nodes(app: web.Application) -> dict[str, Any]:
    """The nodes as the registry lists them (Redis down: 503 ``cluster_unavailable``), or, with one node and no
    Redis, this node alone; for the JSON above and the console's cluster page."""
    node = app.get(CLUSTER)
    if node is None:
        settings = app[SETTINGS]
        me = NodeInfo(app[NODE_ID], settings.node_name or app[NODE_ID][:8], load=app[NODE_LOAD](0.0),
                      heartbeat_at=now_iso(), host=socket.gethostname(), pid=os.getpid())
        return {"nodeId": app[NODE_ID], "redis": "off", "nodes": [{**me.json(), "self": True}]}
    nodes = await node.registry.nodes()
    return {"nodeId": node.node_id, "redis": "up",
            "nodes": [{**n.json(), "self": n.id == node.node_id} for n in nodes]}


@operation(summary="Reviews by reader or client email or name, or by review or reading id (hidden ones too)",
           roles=("admin",), query={"q": "email, name or id"}, response="{reviews}", tags=("admin",))
async def reviews(request: web.Request) -> web.Response:
    await require(request, "admin")
    return web.json_response({"reviews": await marketplace_reviews.search_for_operators(
        _pool(request), query_text(request, "q"))})


@operation(summary="Hide a review (kept and audited; it counts nowhere)", roles=("admin",), request="{reason}",
           response="{changed}", tags=("admin",))
async def hide_review(request: web.Request) -> web.Response:
    return await _review_hidden(request, hidden=True)


@operation(summary="Show a hidden review again (audited)", roles=("admin",), request="{reason}",
           response="{changed}", tags=("admin",))
async def show_review(request: web.Request) -> web.Response:
    return await _review_hidden(request, hidden=False)


async def _review_hidden(request: web.Request, *, hidden: bool) -> web.Response:
    admin = await require(request, "admin")
    body = await read_json(request)
    changed = await actions.set_review_hidden(_pool(request), admin_id=admin.id,
                                              review_id=path_uuid(request, "reviewId"),
                                              reason=actions.reason_of(body.get("reason")), hidden=hidden)
    return web.json_response({"changed": changed})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/admin/users", users)
    app.router.add_post("/api/admin/users/{userId}/suspend", suspend)
    app.router.add_post("/api/admin/users/{userId}/reinstate", reinstate)
    app.router.add_get("/api/admin/readings", readings)
    app.router.add_get("/api/admin/readings/{readingId}", reading)
    app.router.add_post("/api/admin/readings/{readingId}/refund", refund)
    app.router.add_get("/api/admin/ledger", ledger)
    app.router.add_get("/api/admin/ledger/transactions/{txnId}", transaction)
    app.router.add_get("/api/admin/payouts", payouts)
    app.router.add_get("/api/admin/disputes", disputes)
    app.router.add_get("/api/admin/audit", audit_trail)
    app.router.add_get("/api/admin/cluster", cluster)
    app.router.add_get("/api/admin/reviews", reviews)
    app.router.add_post("/api/admin/reviews/{reviewId}/hide", hide_review)
    app.router.add_post("/api/admin/reviews/{reviewId}/show", show_review)
