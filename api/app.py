"""``create_app``: the one place that builds SoulSeer's web application and wires its parts together."""

from __future__ import annotations

import logging
import uuid

from aiohttp import web
from prometheus_client import CollectorRegistry

from api import accounts, admin, marketplace, messages, money, pages, readings, realtime, streams
from api.core import health, middleware, openapi
from api.core.database import Database
from api.core.http_metrics import HttpMetrics
from api.core.keys import BILLING_METRICS, DATABASE, HTTP_METRICS, NODE_ID, REGISTRY, RELAY, SETTINGS, STRIPE
from api.core.migrations import migrate
from api.readings.live import LIVE_READINGS, LiveReadings
from api.realtime.turn import relay_ice_servers
from billing.metrics import BillingMetrics
from billing.stripe_gateway import StripeGateway
from config import Settings
from relay import Relay
from relay.ice import CandidatePolicy

log = logging.getLogger(__name__)

# JSON bodies are small; anything bigger is refused before it is read into memory.
MAX_BODY_BYTES = 64 * 1024


def create_app(settings: Settings) -> web.Application:
    """Build the application; the database opens (and migrates) on start-up and closes on clean-up."""
    app = web.Application(
        middlewares=[middleware.request_context, middleware.errors], client_max_size=MAX_BODY_BYTES
    )
    registry = CollectorRegistry()
    app[SETTINGS] = settings
    app[NODE_ID] = str(uuid.uuid4())
    app[REGISTRY] = registry
    app[HTTP_METRICS] = HttpMetrics(registry)
    app[DATABASE] = Database(settings)
    app[BILLING_METRICS] = BillingMetrics(registry)
    app[STRIPE] = StripeGateway(secret_key=settings.stripe_secret_key, webhook_secret=settings.stripe_webhook_secret,
                                connect_webhook_secret=settings.stripe_connect_webhook_secret,
                                api_base=settings.stripe_api_base, public_url=settings.public_url)

    app[RELAY] = Relay(ice_servers=relay_ice_servers(settings), max_participants=settings.max_participants,
                       reserved_for_rooms=settings.reserved_reading_participants,
                       connect_timeout=settings.connect_timeout_seconds,
                       max_viewers_per_stream=settings.max_viewers_per_stream, registry=registry,
                       max_cpu=settings.max_relay_cpu_percent / 100 if settings.max_relay_cpu_percent else None,
                       max_loop_lag=settings.max_relay_loop_lag_ms / 1000 if settings.max_relay_loop_lag_ms else None,
                       shed_lag=settings.relay_shed_lag_ms / 1000 if settings.relay_shed_lag_ms else None,
                       candidates=CandidatePolicy(allow_private=settings.ice_allow_private_candidates))
    app[LIVE_READINGS] = LiveReadings(app, app[RELAY])

    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_media)
    health.setup(app)
    accounts.setup(app)
    messages.setup(app)
    realtime.setup(app)
    readings.setup(app)
    streams.setup(app)
    marketplace.setup(app)
    money.setup(app)
    admin.setup(app)
    pages.setup(app)
    openapi.setup(app)
    return app


async def _database(app: web.Application):  # type: ignore[no-untyped-def]
    database = app[DATABASE]
    await database.open()
    async with database.pool.acquire() as conn:
        applied = await migrate(conn)
    if applied:
        log.info("database migrated", extra={"applied": applied})
    yield
    await database.close()


async def _media(app: web.Application):  # type: ignore[no-untyped-def]
    """Readings run between the database and the relay: settled before the relay closes, the relay before the db."""
    await app[LIVE_READINGS].start()
    yield
    await app[LIVE_READINGS].close()
    await app[RELAY].close()
