"""Typed keys for the shared collaborators ``create_app`` puts on the application, so handlers find them.

A key names a typed value, so it lives with (or above) that value's type: the keys of a feature's own
objects (the login throttle, the live readings, the stream hub, ...) are in that feature's package.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from api.core.database import Database
from api.core.http_metrics import HttpMetrics
from billing.metrics import BillingMetrics
from billing.stripe_gateway import StripeGateway
from config import Settings
from relay import Relay

SETTINGS = web.AppKey("settings", Settings)
# This node's id: a UUID per ``soulseer serve`` process, the owner named in the leases of its readings.
NODE_ID = web.AppKey("node_id", str)
DATABASE = web.AppKey("database", Database)
REGISTRY = web.AppKey("registry", CollectorRegistry)
HTTP_METRICS = web.AppKey("http_metrics", HttpMetrics)
BILLING_METRICS = web.AppKey("billing_metrics", BillingMetrics)
STRIPE = web.AppKey("stripe", StripeGateway)
RELAY = web.AppKey("relay", Relay)
