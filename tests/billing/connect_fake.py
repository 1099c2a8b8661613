"""A local stand-in for the Stripe endpoints money out calls: Accounts v2 and account links, Transfers and
their reversals, Refunds. Idempotency keys behave as Stripe's do: the same key returns the first answer.

Knobs: ``refuse`` (the next money call answers that 4xx), ``unavailable`` (that many next money calls answer
500 without doing anything), ``lose_answer`` (the next money call is done, but answers 500: the response was lost,
so the caller must ask again with the same key to learn the outcome), ``latency`` (seconds each money call
takes after doing its work, as Stripe's do: a caller killed meanwhile never learns the answer).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


class FakeConnect:
    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.refuse: int | None = None
        self.unavailable = 0
        self.lose_answer = False
        self.latency = 0.0
        self._answers: dict[str, dict[str, Any]] = {}
        self._count = 0

    def _id(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_fake{self._count:05d}"

    def activate(self, account_id: str, status: str = "active") -> None:
        """What onboarding does at Stripe: the account's transfers capability becomes ``status``."""
        self.accounts[account_id]["configuration"]["recipient"]["capabilities"]["stripe_balance"][
            "stripe_transfers"]["status"] = status

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v2/core/accounts", self.create_account),
                web.get("/v2/core/accounts/{id}", self.get_account),
                web.post("/v2/core/account_links", self.create_link),
                web.post("/v1/transfers", self.create_transfer),
                web.post("/v1/transfers/{id}/reversals", self.reverse_transfer),
                web.post("/v1/refunds", self.create_refund)]

    async def _money(self, request: web.Request, body: dict[str, Any], make: Any) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        self.requests.append({"path": request.path, "body": body, "idempotency": key})
        if key is not None and key in self._answers:
            return web.json_response(self._answers[key])
        if self.refuse is not None:
            status, self.refuse = self.refuse, None
            return web.json_response({"error": {"type": "invalid_request_error", "message": "refused by the fake",
                                                "code": "balance_insufficient"}}, status=status)
        if self.unavailable:
            self.unavailable -= 1
            return web.json_response({"error": {"type": "api_error", "message": "down"}}, status=500)
        answer = make(body)
        if key is not None:
            self._answers[key] = answer
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.lose_answer:
            self.lose_answer = False
            return web.json_response({"error": {"type": "api_error", "message": "lost"}}, status=500)
        return web.json_response(answer)

    async def create_account(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read() or b"{}")

        def make(body: dict[str, Any]) -> dict[str, Any]:
            account = {"id": self._id("acct"), "object": "v2.core.account", "contact_email": body.get("contact_email"),
                       "display_name": body.get("display_name"), "metadata": body.get("metadata") or {},
                       "configuration": {"recipient": {"applied": True, "capabilities": {"stripe_balance": {
                           "stripe_transfers": {"status": "pending", "status_details": []}}}}}}
            self.accounts[account["id"]] = account
            return account

        return await self._money(request, body, make)

    async def get_account(self, request: web.Request) -> web.Response:
        account = self.accounts.get(request.match_info["id"])
        if account is None:
            return web.json_response({"error": {"type": "invalid_request_error", "message": "no such account"}},
                                     status=404)
        return web.json_response(account)

    async def create_link(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read() or b"{}")
        self.requests.append({"path": request.path, "body": body})
        if body.get("account") not in self.accounts:
            return web.json_response({"error": {"type": "invalid_request_error", "message": "no such account"}},
                                     status=400)
        return web.json_response({"object": "v2.core.account_link", "account": body["account"],
                                  "url": f"https://connect.stripe.test/setup/{body['account']}",
                                  "use_case": body.get("use_case")})

    async def create_transfer(self, request: web.Request) -> web.Response:
        body = dict(await request.post())

        def make(body: dict[str, Any]) -> dict[str, Any]:
            if body.get("destination") not in self.accounts:
                raise web.HTTPBadRequest(text=json.dumps({"error": {"type": "invalid_request_error",
                                                                     "message": "no such destination"}}),
                                         content_type="application/json")
            transfer = {"id": self._id("tr"), "object": "transfer", "amount": int(str(body["amount"])),
                        "currency": body.get("currency"), "destination": body["destination"],
                        "amount_reversed": 0, "reversed": False,
                        "metadata": {k[9:-1]: v for k, v in body.items() if k.startswith("metadata[")}}
            self.transfers[transfer["id"]] = transfer
            return transfer

        return await self._money(request, body, make)

    async def reverse_transfer(self, request: web.Request) -> web.Response:
        body = dict(await request.post())
        transfer = self.transfers[request.match_info["id"]]

        def make(body: dict[str, Any]) -> dict[str, Any]:
            cents = int(str(body.get("amount", transfer["amount"] - transfer["amount_reversed"])))
            transfer["amount_reversed"] += cents
            transfer["reversed"] = transfer["amount_reversed"] >= transfer["amount"]
            return {"id": self._id("trr"), "object": "transfer_reversal", "amount": cents, "transfer": transfer["id"]}

        return await self._money(request, body, make)

    async def create_refund(self, request: web.Request) -> web.Response:
        body = dict(await request.post())

        def make(body: dict[str, Any]) -> dict[str, Any]:
            refund = {"id": self._id("re"), "object": "refund", "amount": int(str(body["amount"])),
                      "payment_intent": body["payment_intent"], "status": "succeeded",
                      "metadata": {k[9:-1]: v for k, v in body.items() if k.startswith("metadata[")}}
            self.refunds[refund["id"]] = refund
            return refund

        return await self._money(request, body, make)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        app = web.Application()
        app.add_routes(self.routes())
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/")
        finally:
            await server.close()
