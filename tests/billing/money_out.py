"""Shared set-up for the money-out tests: the real Stripe gateway pointed at the local fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from billing.stripe_gateway import StripeGateway
from tests.billing.connect_fake import FakeConnect

SECRET_KEY = "sk_test_soulseer_fake"
WEBHOOK_SECRET = "whsec_test_secret_for_soulseer_tests"


@asynccontextmanager
async def gateway_on(fake: FakeConnect) -> AsyncIterator[StripeGateway]:
    async with fake.running() as base:
        gateway = StripeGateway(secret_key=SECRET_KEY, webhook_secret=WEBHOOK_SECRET, api_base=base,
                                public_url="http://127.0.0.1:8080")
        try:
            yield gateway
        finally:
            await gateway.close()
