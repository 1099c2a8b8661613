"""Fixtures the API tests share besides the root ones (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.stripe_fake import FakeStripe


@pytest.fixture
async def fake_stripe() -> AsyncIterator[tuple[FakeStripe, str]]:
    """The local stand-in for Stripe, running, and its API base URL."""
    fake = FakeStripe()
    async with fake.running() as url:
        yield fake, url
