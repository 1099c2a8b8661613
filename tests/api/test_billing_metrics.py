"""The money metrics count what the ledger wrote: every kind of movement, through the real app, each once.

Each test funds its client through a Stripe checkout (webhook), so every cent in the ledger moved through
the app and the app's /metrics must say exactly what the ledger says, kind by kind.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from api.messages.refund_sweeper import REFUND_SWEEPER
from api.readings.live import LIVE_READINGS
from billing import slots
from billing.stripe_events import record_checkout
from config import Settings
from tests.reading_steps import (
    ManualClock,
    Party,
    accepted_session,
    join_and_start,
    reader_and_client,
    running_app,
)
from tests.stripe_fake import WEBHOOK_SECRET, checkout_completed, signed

RATES = {"chatCents": 120, "flatCents": {"15": 2500}, "messageCents": 300}
MONEY_SERIES = ("soulseer_billing_charged_cents_total", "soulseer_billing_revenue_cents_total",
                "soulseer_billing_revenue_refunded_cents_total", "soulseer_billing_refunds_total",
                "soulseer_billing_refunded_cents_total", "soulseer_billing_deposits_cents_total",
                "soulseer_billing_minutes_charged_total")


async def deliver(http: TestClient, event: dict[str, Any]) -> str:
    body, header = signed(event)
    resp = await http.post("/api/webrtc/webhook", data=body, headers={"Stripe-Signature": header})
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["outcome"])


async def fund(http: TestClient, pool: asyncpg.Pool, client: Party, cents: int, n: int) -> None:
    """Money in as a client adds it: a checkout we created, then Stripe's paid event (delivered twice)."""
    await record_checkout(pool, checkout_id=f"cs_{n}", client_id=client.id, amount_cents=cents)
    event = checkout_completed(f"evt_paid_{n}", f"cs_{n}", client.id, cents, payment_intent=f"pi_{n}")
    assert await deliver(http, event) == "credited"
    again = checkout_completed(f"evt_async_{n}", f"cs_{n}", client.id, cents, payment_intent=f"pi_{n}",
                               event_type="checkout.session.async_payment_succeeded")
    assert await deliver(http, again) == "already_credited"


def _sample(series: str, labels: dict[str, str]) -> str:
    if not labels:
        return series
    return series + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


async def from_ledger(pool: asyncpg.Pool) -> dict[str, float]:
    """The money series as the ledger's own rows say they must be."""
    expected: dict[str, float] = {}

    def add(series: str, value: int, **labels: str) -> None:
        name = _sample(series, labels)
        expected[name] = expected.get(name, 0) + value

    for row in await pool.fetch("SELECT kind, source, count(*) AS n, sum(amount_cents) AS cents,"
                                " sum(platform_cents) AS platform FROM ledger_transactions GROUP BY kind, source"):
        kind, n, cents, platform = row["kind"], row["n"], int(row["cents"]), int(row["platform"])
        if kind in ("reading_minute", "scheduled_reading", "gift", "message"):
            add("soulseer_billing_charged_cents_total", cents, kind=kind)
            add("soulseer_billing_revenue_cents_total", platform)
            if kind == "reading_minute":
                add("soulseer_billing_minutes_charged_total", n)
        elif kind == "deposit":
            add("soulseer_billing_deposits_cents_total", cents, source=row["source"])
        else:
            add("soulseer_billing_refunds_total", n, kind=kind)
            add("soulseer_billing_refunded_cents_total", cents, kind=kind)
            if kind == "refund":
                add("soulseer_billing_revenue_refunded_cents_total", platform)
    return expected


async def from_metrics(http: TestClient) -> dict[str, float]:
    """The money series on /metrics that are not zero."""
    text = await (await http.get("/metrics")).text()
    found = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.split("{")[0] in MONEY_SERIES and float(value):
            found[name] = float(value)
    return found


async def assert_metrics_match_ledger(http: TestClient, pool: asyncpg.Pool) -> dict[str, float]:
    expected = {name: value for name, value in (await from_ledger(pool)).items() if value}
    assert await from_metrics(http) == expected
    return expected


async def test_every_kind_of_money_movement_is_counted_once_as_the_ledger_wrote_it(
        settings: Settings, pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    async with running_app(settings, clock=clock, stripe_webhook_secret=WEBHOOK_SECRET,
                           message_sweep_interval_seconds=0.05) as http:
        reader, client = await reader_and_client(http, pool, rates=RATES, balance=0)
        await fund(http, pool, client, 20_000, 1)

        # A chat reading: two minutes charged, the unused part of the second refunded at the end.
        session_id = await accepted_session(http, reader, client)
        client_ws, _reader_ws = await join_and_start(http, session_id, client, reader)
        clock.advance(70)
        http.app[LIVE_READINGS].wake()
        await client_ws.expect("session-state", billableSeconds=70)
        await client_ws.send("end-session")
        await client_ws.expect("end-session")

        # A scheduled reading booked (paid), then cancelled in time (refunded in full).
        starts_at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
        slot = await slots.publish_slot(pool, reader_id=reader.id, starts_at=starts_at, minutes=15)
        booked = await http.post(f"/api/webrtc/client/slots/{slot.id}/book", headers=client.headers,
                                 json={"sessionType": "chat", "expectedCents": 2500})
        assert booked.status == 201, await booked.text()
        cancelled = await http.post(f"/api/webrtc/client/cancel-session/{(await booked.json())['session']['id']}",
                                    headers=client.headers)
        assert (await cancelled.json())["refundedCents"] == 2500

        # A gift on a live stream, and its retry (a replay: charged and counted once).
        stream = (await (await http.post("/api/streams", json={"title": "Live"}, headers=reader.headers)).json())
        gift = (await (await http.get("/api/gifts", headers=client.headers)).json())["gifts"][0]
        for _ in range(2):
            resp = await http.post(f"/api/streams/{stream['stream']['id']}/gifts", headers=client.headers,
                                   json={"giftId": gift["id"], "requestId": "gift-1",
                                         "expectedCents": gift["priceCents"]})
            assert resp.status == 201, await resp.text()

        # A paid message, its retry, and its refund when the reader never answers.
        for _ in range(2):
            resp = await http.post("/api/messages", headers=client.headers,
                                   json={"readerId": reader.id, "body": "Will I travel?", "requestId": "m-1",
                                         "expectedCents": 300})
            assert resp.status == 201, await resp.text()
        sweeper = http.app[REFUND_SWEEPER]
        sweeper.clock = lambda: datetime.now(UTC) + timedelta(days=4)
        await sweeper.wait_for_sweeps(sweeper.sweeps + 2)

        # A second card payment: disputed (reported three times), refunded in full, and the dispute won.
        await fund(http, pool, client, 5000, 2)
        for n in range(3):
            await deliver(http, {"id": f"evt_dp_{n}", "type": "charge.dispute.created", "data": {"object": {
                "id": "dp_2", "payment_intent": "pi_2", "amount": 2000}}})
        await deliver(http, {"id": "evt_rf", "type": "charge.refunded", "data": {"object": {
            "id": "ch_2", "payment_intent": "pi_2", "amount_refunded": 5000}}})
        assert await deliver(http, {"id": "evt_won", "type": "charge.dispute.closed", "data": {"object": {
            "id": "dp_2", "status": "won"}}}) == "reinstated"

        counted = await assert_metrics_match_ledger(http, pool)
    for kind in ("reading_minute", "scheduled_reading", "gift", "message"):
        assert counted[_sample("soulseer_billing_charged_cents_total", {"kind": kind})] > 0
    for kind in ("refund", "stripe_refund", "dispute", "dispute_reinstated"):
        assert counted[_sample("soulseer_billing_refunds_total", {"kind": kind})] >= 1
    assert counted["soulseer_billing_refunds_total{kind=\"refund\"}"] == 3  # last minute, booking, message
