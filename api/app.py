"""``create_app``: the one place that builds SoulSeer's web application and wires its parts together."""

from __future__ import annotations

import functools
import logging
import time
import uuid

from aiohttp import web
from prometheus_client import CollectorRegistry

from api import accounts, admin, cluster, marketplace, messages, money, pages, readings, realtime, streams
from api.cluster.node_info import Load
from api.core import health, middleware, openapi
from api.core.database import Database
from api.core.http_metrics import HttpMetrics
from api.core.keys import BILLING_METRICS, DATABASE, HTTP_METRICS, NODE_ID, REGISTRY, RELAY, SETTINGS, STRIPE
from api.core.migrations import migrate
from api.readings.live import LIVE_READINGS, LiveReadings
from api.realtime import transport
from api.realtime.bridge import CLOSE_MOVED, SIGNAL_BRIDGE
from api.realtime.turn import relay_ice_servers
from api.streams.signaling import STREAM_HOMES
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
    app.cleanup_ctx.append(_database)
    cluster.setup(app, functools.partial(_node_load, app))  # between the two: up before readings run, down after
    app[LIVE_READINGS] = LiveReadings(app, app[RELAY])
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
    if app.get(cluster.CLUSTER) is not None:
        app.on_shutdown.append(_drain)
    return app


def _node_load(app: web.Application, cpu: float) -> Load:
    """What this node holds, for the cluster's registry (``cpu``: its relay thread's cores, sampled there)."""
    relay = app[RELAY]
    census = relay.census()
    return Load(cpu=round(cpu, 3), participants=census.peers, readings=len(app[LIVE_READINGS]),
                streams=census.streams, viewers=census.viewers, busy=relay.busy)


async def _drain(app: web.Application) -> None:
    """SIGTERM on a node of a cluster (aiohttp has stopped listening by now): take no new rooms, hand every
    reading over (state persisted, lease released, room let go), let go of its streams' rooms, then close every
    signaling socket with 1012 (and have the edges close those bridged here), so that browsers reconnect to
    another node and join again; that node adopts the readings at once. Bounded by the hand-over's timeout."""
    node = app[cluster.CLUSTER]
    started = time.monotonic()
    await node.registry.drain()
    readings = len(app[LIVE_READINGS])
    await app[LIVE_READINGS].close()
    await app[STREAM_HOMES].let_go()
    closed = transport.close_every_socket(app, CLOSE_MOVED, "this server is restarting; join again")
    await app[SIGNAL_BRIDGE].release_remotes()
    log.info("node drained", extra={"readings": readings, "sockets": closed,
                                    "seconds": round(time.monotonic() - started, 2)})


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
