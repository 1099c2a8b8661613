"""Typed keys for what ``create_app`` puts on the application, so handlers find their collaborators."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from api.database import Database
from api.http_metrics import HttpMetrics
from api.login_throttle import LoginThrottle
from api.passwords import PasswordWork
from api.ratelimit import RateLimiter
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
LOGIN_THROTTLE = web.AppKey("login_throttle", LoginThrottle)
REGISTRATION_LIMITER = web.AppKey("registration_limiter", RateLimiter)
PASSWORDS = web.AppKey("passwords", PasswordWork)
BILLING_METRICS = web.AppKey("billing_metrics", BillingMetrics)
STRIPE = web.AppKey("stripe", StripeGateway)
RELAY = web.AppKey("relay", Relay)
