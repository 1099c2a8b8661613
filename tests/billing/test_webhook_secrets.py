"""One webhook URL, two Stripe endpoints: the platform's and the Connect one each sign with their own secret."""

from __future__ import annotations

import json
import time

import pytest
import stripe

from billing.errors import WebhookRejected
from billing.stripe_gateway import StripeGateway

PLATFORM, CONNECT = "whsec_platform_test_secret", "whsec_connect_test_secret"
EVENT = {"id": "evt_1", "type": "payout.failed", "account": "acct_1", "data": {"object": {"id": "po_1"}}}


def _signed(secret: str) -> tuple[bytes, str]:
    payload = json.dumps(EVENT)
    return payload.encode(), stripe.WebhookSignature.generate_signature_header(payload, secret, int(time.time()))


def test_an_event_signed_by_either_endpoint_verifies_and_no_other() -> None:
    gateway = StripeGateway(secret_key=None, webhook_secret=PLATFORM, connect_webhook_secret=CONNECT,
                            api_base=None, public_url="http://127.0.0.1")
    for secret in (PLATFORM, CONNECT):
        assert gateway.verify(*_signed(secret))["id"] == "evt_1"
    with pytest.raises(WebhookRejected):
        gateway.verify(*_signed("whsec_someone_else"))


def test_without_a_connect_secret_only_the_platform_secret_verifies() -> None:
    gateway = StripeGateway(secret_key=None, webhook_secret=PLATFORM, api_base=None, public_url="http://127.0.0.1")
    assert gateway.verify(*_signed(PLATFORM))["id"] == "evt_1"
    with pytest.raises(WebhookRejected):
        gateway.verify(*_signed(CONNECT))
