"""Money chaos: a real ``soulseer serve`` subprocess, killed with SIGKILL at random points and restarted, several
rounds, while clients deposit (Checkout + signed webhooks), take per-minute chat readings, send gifts and paid
messages, book readings and withdraw to their cards, and readers are paid out (on demand, and by the schedule
the server runs itself).

Every operation whose outcome a kill made unknown is resolved by retrying it as it was (the same webhook event,
the same ``requestId``, the same slot), so the test's own model of what completed is exact. At the end
``soulseer ledger verify`` must exit 0 and every account must hold exactly what the model predicts: each
wallet, each reader's earnings + payouts in transit + paid out, the platform's revenue, the card refunds and the
Transfers the fake Stripe saw. The schedule of operations and kills comes from one seed
(``SOULSEER_CHAOS_SEED``), printed on failure, so a failure replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from api.accounts.auth import start_login
from api.accounts.login import insert_account
from billing import payouts
from billing.split import split
from billing.stripe_gateway import StripeGateway
from tests.stripe_fake import SECRET_KEY, WEBHOOK_SECRET, FakeStripe, checkout_completed, signed

log = logging.getLogger(__name__)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
ROOT = Path(__file__).resolve().parents[3]
SEED = int(os.environ.get("SOULSEER_CHAOS_SEED", "20261201"))
ROUNDS = 8
CLIENTS = 8
READERS = 3
OPS_PER_CLIENT = 20
MESSAGE_CENTS = 150
READING_RATE = 100  # a chat reading's per-minute rate (the reader earns 70 of each minute)
READING_PAIRS = 2
READINGS_PER_PAIR = 3
FLAT_15_CENTS = 1_200
# Every request is retried until it gets an answer; one that gets none for this long is a failure.
ANSWER_DEADLINE = 90.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """One ``soulseer serve`` at a time on a fixed port, started, killed with SIGKILL, started again."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "api.cli", "serve"], cwd=ROOT, env=self.env,
                                            stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    attempts: int  # > 1: an earlier attempt got no answer, so it may have done its work


@dataclass
class Model:
    """What the test knows completed, in cents."""

    wallet: Counter[str] = field(default_factory=Counter)
    reader: Counter[str] = field(default_factory=Counter)  # earnings + in transit + paid out
    revenue: int = 0
    deposited: int = 0
    withdrawn: Counter[str] = field(default_factory=Counter)
    done: Counter[str] = field(default_factory=Counter)  # operations completed, by kind
    cut: Counter[str] = field(default_factory=Counter)  # operations a kill left unknown, resolved by retry

    def charged(self, client: str, reader: str, cents: int, kind: str) -> None:
        reader_cents, platform_cents = split(cents)
        self.wallet[client] -= cents
        self.reader[reader] += reader_cents
        self.revenue += platform_cents
        self.done[kind] += 1


class Api:
    """Requests to whichever server process is up: retried, unchanged, until one of them answers."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.unknown = 0  # requests an unanswered attempt (a kill) left unknown, resolved by their retry

    async def call(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                   json: dict[str, Any] | None = None, data: Callable[[], tuple[bytes, dict[str, str]]] | None = None
                   ) -> Answer:
        deadline = time.monotonic() + ANSWER_DEADLINE
        attempts = 0
        while True:
            attempts += 1
            kwargs: dict[str, Any] = {"headers": dict(headers or {}), "json": json}
            if data is not None:
                body, extra = data()  # a webhook is signed anew each time, as Stripe's retries are
                kwargs = {"data": body, "headers": {**kwargs["headers"], **extra}}
            try:
                async with self.http.request(method, f"{self.base}{path}", timeout=aiohttp.ClientTimeout(total=15),
                                             **kwargs) as resp:
                    if resp.status < 500:
                        payload = await resp.json() if resp.content_type == "application/json" else {}
                        self.unknown += attempts > 1
                        return Answer(resp.status, payload, attempts)
            except (TimeoutError, aiohttp.ClientError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"seed {SEED}: no answer to {method} {path} in {ANSWER_DEADLINE} s")
            await asyncio.sleep(0.15)


async def _user(pool: asyncpg.Pool, role: str) -> tuple[str, dict[str, str]]:
    async with pool.acquire() as conn, conn.transaction():
        row = await insert_account(conn, f"{role}-{uuid.uuid4().hex[:10]}@chaos.test", "x", role.title(), role)
        token, _ = await start_login(conn, str(row["id"]), user_agent="chaos", address=None)
    return str(row["id"]), {"Authorization": f"Bearer {token}"}


async def _ready(api: Api) -> None:
    answer = await api.call("GET", "/readyz")
    assert answer.status == 200


def _ok(answer: Answer, *statuses: int) -> None:
    assert answer.status in statuses, f"seed {SEED}: {answer.status} {answer.body}"


async def test_money_survives_kills_and_every_account_is_exact(pool: asyncpg.Pool, database_url: str,
                                                               tmp_path: Path) -> None:
    rng = random.Random(SEED)
    fake = FakeStripe()
    fake.connect.latency = 0.25  # Stripe takes its time: kills land between our commit and its answer
    model = Model()
    async with fake.running() as stripe_url, aiohttp.ClientSession() as http:
        port = _free_port()
        env = {**os.environ, "DATABASE_URL": database_url, "SOULSEER_PORT": str(port), "SOULSEER_LOG_JSON": "false",
               "SOULSEER_SECRET_KEY": "chaos-test-secret-key", "STRIPE_SECRET_KEY": SECRET_KEY,
               "STRIPE_WEBHOOK_SIGNING_SECRET": WEBHOOK_SECRET, "STRIPE_API_BASE": stripe_url,
               "SOULSEER_INTRO_FREE_MINUTES": "0",  # its model bills every reading from the first minute
               "SOULSEER_PAYOUT_HOLD_DAYS": "0", "SOULSEER_PAYOUT_MINIMUM_CENTS": "100",
               "SOULSEER_PAYOUT_INTERVAL_DAYS": "7", "SOULSEER_WITHDRAWAL_MIN_CENTS": "100",
               "SOULSEER_WITHDRAWAL_MAX_CENTS_PER_DAY": "10000000", "SOULSEER_WITHDRAWAL_RATE_LIMIT": "1000",
               "SOULSEER_ADD_FUNDS_RATE_LIMIT": "1000", "SOULSEER_GIFT_RATE_LIMIT": "1000",
               "SOULSEER_GRACE_SECONDS": "3", "SOULSEER_READING_LEASE_SECONDS": "3",
               "SOULSEER_DATA_DIR": str(tmp_path / "data")}
        env.pop("REDIS_URL", None)
        server = Server(env, tmp_path / "serve.log")
        api = Api(http, f"http://127.0.0.1:{port}")
        server.start()
        try:
            await _ready(api)
            world = await _set_up(api, pool, fake, rng)
            plans = {client: [_plan(rng, world) for _ in range(OPS_PER_CLIENT)] for client in world.clients}
            kill_at = [rng.uniform(0.5, 2.5) for _ in range(ROUNDS)]
            work = [asyncio.create_task(_client(api, world, model, client, plan, random.Random(rng.random())))
                    for client, plan in plans.items()]
            work += [asyncio.create_task(_reader_payouts(api, headers, random.Random(rng.random())))
                     for headers in world.readers.values()]
            work += [asyncio.create_task(_readings(api, http, world, model, pair, random.Random(rng.random())))
                     for pair in world.pairs]
            for delay in kill_at:
                await asyncio.sleep(delay)
                server.kill()
                server.start()
            await asyncio.wait_for(asyncio.gather(*work), timeout=240)
        finally:
            server.stop()

        # What a node's worker does a minute later: ask Stripe again for any payout whose answer a kill lost.
        gateway = StripeGateway(secret_key=SECRET_KEY, webhook_secret=WEBHOOK_SECRET, api_base=stripe_url,
                                public_url="http://127.0.0.1")
        try:
            for payout in await payouts.in_transit(pool, older_than=datetime.now(UTC) + timedelta(seconds=1)):
                await payouts.send(pool, gateway, payout)
        finally:
            await gateway.close()

    verify = subprocess.run([sys.executable, "-m", "api.cli", "ledger", "verify"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert verify.returncode == 0, f"seed {SEED}: {verify.stderr}"
    await _check_exact(pool, fake, world, model)
    assert server.kills == ROUNDS
    assert api.unknown > 0, "no request was ever cut off by a kill: the chaos tested nothing"
    log.warning("chaos seed %s: completed %s; cut off by a kill and retried %s; %s requests unanswered at first",
                SEED, dict(model.done), dict(model.cut), api.unknown)
    # The chaos did something: every kind of operation completed at least once.
    assert all(model.done[kind] for kind in ("deposit", "reading", "reading_cents", "gift", "message", "booking",
                                             "withdrawal")), model.done


@dataclass
class World:
    clients: dict[str, dict[str, str]]  # client id -> headers
    readers: dict[str, dict[str, str]]
    accounts: dict[str, str]  # reader id -> connected account id
    streams: dict[str, str]  # reader id -> stream id
    gifts: list[tuple[str, int]]  # (gift id, price)
    slots: list[tuple[str, str]]  # (slot id, reader id), each booked by one client only
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (client, reader) who take chat readings together
    slot_owner: dict[str, str] = field(default_factory=dict)
    reading_headers: dict[str, dict[str, str]] = field(default_factory=dict)


async def _set_up(api: Api, pool: asyncpg.Pool, fake: FakeStripe, rng: random.Random) -> World:
    clients = dict([await _user(pool, "client") for _ in range(CLIENTS + READING_PAIRS)])
    readers = dict([await _user(pool, "reader") for _ in range(READERS + READING_PAIRS)])
    accounts, streams, slots = {}, {}, []
    start = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    for n, (reader, headers) in enumerate(readers.items()):
        _ok(await api.call("POST", "/api/webrtc/reader/rates", headers=headers, json={
            "chatCents": READING_RATE, "messageCents": MESSAGE_CENTS, "flatCents": {"15": FLAT_15_CENTS}}), 200)
        _ok(await api.call("POST", "/api/webrtc/reader/availability", headers=headers, json={"status": "online"}),
            200)
        _ok(await api.call("POST", "/api/payouts/account", headers=headers), 200)
        [account_id] = [a for a, acc in fake.connect.accounts.items() if acc["metadata"].get("reader_id") == reader]
        fake.connect.activate(account_id)
        thin = {"id": f"evt_v2_{n}", "object": "v2.core.event", "type": "v2.core.account[configuration.recipient]"
                ".capability_status_updated", "related_object": {"id": account_id, "type": "v2.core.account"}}
        _ok(await api.call("POST", "/api/webrtc/webhook", data=lambda e=thin: _signed(e)), 200)
        accounts[reader] = account_id
        answer = await api.call("POST", "/api/streams", headers=headers, json={"title": "chaos"})
        _ok(answer, 201)
        streams[reader] = answer.body["stream"]["id"]
        for k in range(4):
            at = start + timedelta(hours=n * 4 + k)
            answer = await api.call("POST", "/api/webrtc/reader/slots", headers=headers,
                                    json={"startsAt": at.isoformat(), "minutes": 15})
            _ok(answer, 201)
            slots.append((answer.body["slot"]["id"], reader))
    catalogue = await api.call("GET", "/api/gifts", headers=next(iter(clients.values())))
    gifts = [(g["id"], g["priceCents"]) for g in catalogue.body["gifts"]][:4]
    rng.shuffle(slots)
    # The last clients and readers take chat readings with each other (a client has one reading open at a time
    # and a reader one live reading): the others do everything else.
    pairs = list(zip(list(clients)[CLIENTS:], list(readers)[READERS:], strict=True))
    world = World({c: clients[c] for c in list(clients)[:CLIENTS]}, {r: readers[r] for r in list(readers)[:READERS]},
                  accounts, streams, gifts, slots, pairs)
    world.reading_headers = {**clients, **readers}
    return world


def _signed(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body, header = signed(event)
    return body, {"Stripe-Signature": header, "Content-Type": "application/json"}


def _plan(rng: random.Random, world: World) -> tuple[str, Any]:
    kind = rng.choices(["deposit", "gift", "message", "booking", "withdrawal"], weights=[4, 4, 3, 1, 2])[0]
    if kind == "deposit":
        return kind, rng.choice([1_000, 2_500, 5_000])
    if kind == "gift":
        return kind, (rng.choice(list(world.readers)), rng.choice(world.gifts))
    if kind == "message":
        return kind, rng.choice(list(world.readers))
    if kind == "booking":
        return kind, None
    return kind, rng.choice([300, 700, 1_500])


async def _client(api: Api, world: World, model: Model, client: str, plan: list[tuple[str, Any]],
                  rng: random.Random) -> None:
    """One client's operations, one after the other (so the model knows its wallet at every step)."""
    headers = world.clients[client]
    for n, (kind, arg) in enumerate(plan):
        await asyncio.sleep(rng.uniform(0, 0.3))
        answer: Answer | None = None
        if kind == "deposit":
            checkout = await api.call("POST", "/api/webrtc/client/add-funds", headers=headers,
                                      json={"amountCents": arg})
            _ok(checkout, 200)
            event = checkout_completed(f"evt_{client[:8]}_{n}", checkout.body["checkoutId"], client, arg,
                                       payment_intent=f"pi_{client[:8]}_{n}")
            answer = await api.call("POST", "/api/webrtc/webhook", data=lambda e=event: _signed(e))
            _ok(answer, 200)
            assert answer.body["outcome"] in ("credited", "duplicate", "already_credited"), answer.body
            model.wallet[client] += arg
            model.deposited += arg
            model.done["deposit"] += 1
        elif kind == "gift":
            reader, (gift_id, price) = arg
            if model.wallet[client] < price:
                continue
            answer = await api.call("POST", f"/api/streams/{world.streams[reader]}/gifts", headers=headers,
                                    json={"giftId": gift_id, "expectedCents": price, "requestId": f"g{n}"})
            _ok(answer, 201, 409)
            if answer.status == 201:
                model.charged(client, reader, price, "gift")
        elif kind == "message":
            if model.wallet[client] < MESSAGE_CENTS:
                continue
            answer = await api.call("POST", "/api/messages", headers=headers, json={
                "readerId": arg, "body": f"question {n}", "expectedCents": MESSAGE_CENTS, "requestId": f"m{n}"})
            _ok(answer, 201, 200)
            model.charged(client, arg, MESSAGE_CENTS, "message")
        elif kind == "booking":
            free = [s for s in world.slots if s[0] not in world.slot_owner]
            if not free or model.wallet[client] < FLAT_15_CENTS:
                continue
            slot_id, reader = free[0]
            world.slot_owner[slot_id] = client  # this slot is this client's to book: nobody else tries
            answer = await api.call("POST", f"/api/webrtc/client/slots/{slot_id}/book", headers=headers,
                                    json={"sessionType": "chat", "expectedCents": FLAT_15_CENTS})
            # slot_taken after an unanswered attempt: that attempt booked it (only this client books this slot).
            assert answer.status == 201 or (answer.status == 409 and answer.attempts > 1
                                            and answer.body["error"]["code"] == "slot_taken"), answer.body
            model.charged(client, reader, FLAT_15_CENTS, "booking")
        else:
            if model.wallet[client] < arg:
                continue
            body = {"amountCents": arg, "requestId": f"w{n}"}
            answer = await api.call("POST", "/api/wallet/withdrawals", headers=headers, json=body)
            while answer.status == 201 and answer.body["withdrawal"]["status"] == "pending":
                answer = await api.call("POST", "/api/wallet/withdrawals", headers=headers, json=body)
            _ok(answer, 201)
            assert answer.body["withdrawal"]["status"] == "done", answer.body
            model.wallet[client] -= arg
            model.withdrawn[client] += arg
            model.done["withdrawal"] += 1
        if answer is not None and answer.attempts > 1:
            model.cut[kind] += 1


async def _readings(api: Api, http: aiohttp.ClientSession, world: World, model: Model, pair: tuple[str, str],
                    rng: random.Random) -> None:
    """A client and a reader take chat readings one after another: request, accept, both join /ws, talk a
    moment, end. A kill drops their sockets; they end the reading then (the restarted server adopts it once its
    lease lapses). What the reading cost is what the server says it charged, checked against the ledger below."""
    client, reader = pair
    headers = world.reading_headers
    checkout = await api.call("POST", "/api/webrtc/client/add-funds", headers=headers[client],
                              json={"amountCents": 5_000})
    _ok(checkout, 200)
    event = checkout_completed(f"evt_read_{client[:8]}", checkout.body["checkoutId"], client, 5_000,
                               payment_intent=f"pi_read_{client[:8]}")
    _ok(await api.call("POST", "/api/webrtc/webhook", data=lambda: _signed(event)), 200)
    model.wallet[client] += 5_000
    model.deposited += 5_000
    model.done["deposit"] += 1
    for _ in range(READINGS_PER_PAIR):
        session_id = await _open_reading(api, headers, client, reader)
        await _talk(api, http, headers, client, reader, session_id, rng)
        charged = await _ended(api, headers[client], session_id)
        minutes = -(-charged // READING_RATE)  # each started minute was charged, the unused part given back
        unused = minutes * READING_RATE - charged
        reader_share = minutes * split(READING_RATE)[0] - split(unused)[0]
        model.wallet[client] -= charged
        model.reader[reader] += reader_share
        model.revenue += charged - reader_share
        model.done["reading"] += 1
        model.done["reading_cents"] += charged


async def _open_reading(api: Api, headers: dict[str, dict[str, str]], client: str, reader: str) -> str:
    answer = await api.call("POST", "/api/webrtc/client/request-session", headers=headers[client],
                            json={"readerId": reader, "sessionType": "chat", "expectedCents": READING_RATE})
    if answer.status == 201:
        session_id = str(answer.body["session"]["id"])
    else:  # the first attempt went through before the kill: it is the client's open reading
        assert answer.attempts > 1, answer.body
        found = await api.call("GET", "/api/webrtc/sessions?status=requested,accepted,active", headers=headers[client])
        [session_id] = [s["id"] for s in found.body["sessions"] if s["readerId"] == reader]
    answer = await api.call("POST", f"/api/webrtc/reader/accept-session/{session_id}", headers=headers[reader])
    assert answer.status == 200 or answer.attempts > 1, answer.body
    return session_id


async def _talk(api: Api, http: aiohttp.ClientSession, headers: dict[str, dict[str, str]], client: str,
                reader: str, session_id: str, rng: random.Random) -> None:
    """Both join; once the reading is active they stay a moment (a kill ends that moment early)."""
    sockets = []
    try:
        for party in (client, reader):
            ws = await http.ws_connect(f"{api.base}/ws", headers=headers[party])
            sockets.append(ws)
            await ws.send_json({"type": "join", "sessionId": session_id})

        async def until_active() -> None:
            while True:
                message = await sockets[0].receive()
                if message.type is not aiohttp.WSMsgType.TEXT:
                    return  # the server went away
                if message.json().get("type") in ("start-session", "end-session"):
                    return

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until_active(), timeout=10)
        await asyncio.sleep(rng.uniform(0.5, 2.5))
    except (aiohttp.ClientError, ConnectionError):
        pass  # a kill while joining: the reading is ended below all the same
    finally:
        for ws in sockets:
            await ws.close()


async def _ended(api: Api, client_headers: dict[str, str], session_id: str) -> int:
    """End the reading (again after a kill, until the server that owns it does) and return what it charged."""
    deadline = time.monotonic() + ANSWER_DEADLINE
    while True:
        answer = await api.call("POST", f"/api/webrtc/session/{session_id}/end", headers=client_headers)
        if answer.status == 200 and answer.body["session"]["status"] in ("ended", "cancelled", "expired"):
            break
        answer = await api.call("GET", f"/api/webrtc/session/{session_id}", headers=client_headers)
        if answer.body["session"]["status"] in ("ended", "cancelled", "expired"):
            break
        assert time.monotonic() < deadline, f"seed {SEED}: reading {session_id} never ended: {answer.body}"
        await asyncio.sleep(0.5)
    return int(answer.body["session"]["chargedCents"])


async def _reader_payouts(api: Api, headers: dict[str, str], rng: random.Random) -> None:
    """A reader asks to be paid now and then; 409 (nothing payable, one in transit) is a fine answer."""
    for _ in range(4):
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        answer = await api.call("POST", "/api/payouts", headers=headers)
        _ok(answer, 201, 409, 422)


async def _check_exact(pool: asyncpg.Pool, fake: FakeStripe, world: World, model: Model) -> None:
    wallets = {str(r["client_id"]): r["balance_cents"] for r in await pool.fetch(
        "SELECT client_id, balance_cents FROM client_balances")}
    assert {c: wallets.get(c, 0) for c in world.clients} == {c: model.wallet[c] for c in world.clients}, SEED
    held = {(str(r["owner_id"]), r["account"]): r["balance_cents"] for r in await pool.fetch(
        "SELECT owner_id, account, balance_cents FROM ledger_accounts WHERE owner_id IS NOT NULL")}
    for reader, account_id in world.accounts.items():
        earnings, transit, paid = (held.get((reader, a), 0) for a in ("earnings", "payouts_in_transit", "paid_out"))
        assert earnings + transit + paid == model.reader[reader], (SEED, reader, earnings, transit, paid)
        assert transit == 0, (SEED, reader, "a payout is still in transit after the resume")
        transferred = sum(t["amount"] for t in fake.connect.transfers.values() if t["destination"] == account_id)
        assert paid == transferred, (SEED, reader, paid, transferred)
    revenue = await pool.fetchval("SELECT coalesce(sum(balance_cents), 0) FROM ledger_accounts"
                                  " WHERE account = 'revenue'")
    assert revenue == model.revenue, SEED
    refunded = Counter[str]()
    for refund in fake.connect.refunds.values():
        refunded[refund["metadata"]["client_id"]] += refund["amount"]
    assert refunded == +model.withdrawn, SEED
    deposits = await pool.fetchval("SELECT coalesce(sum(amount_cents), 0) FROM ledger_transactions"
                                   " WHERE kind = 'deposit'")
    assert deposits == model.deposited, SEED

