"""This node's part in a cluster: its link to Redis, its registry entry and its end of the message bus.

Built by :func:`api.cluster.setup` only when ``REDIS_URL`` is set; with no Redis there is no cluster and every
feature works as one node, exactly as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from api.cluster.bus import MessageBus
from api.cluster.link import RedisLink
from api.cluster.metrics import ClusterMetrics
from api.cluster.node_info import Load
from api.cluster.registry import Registry
from relay.load import CpuLoad

log = logging.getLogger(__name__)


class ClusterNode:
    """One node of the cluster: ``link`` (Redis), ``registry`` (who is alive, how loaded), ``bus`` (messages).

    :param load: what this node holds (participants, readings, streams, viewers); the CPU is sampled here.
    """

    def __init__(self, *, redis_url: str, prefix: str, node_id: str, name: str, registry: CollectorRegistry,
                 load: Callable[[float], Load]) -> None:
        self.node_id = node_id
        self.name = name
        self.link = RedisLink(redis_url, prefix, name=f"soulseer-{name}")
        self.metrics = ClusterMetrics(registry)
        # The relay forwards on the event loop's thread: its CPU is the load that decides where rooms go.
        self.cpu = CpuLoad(limit=1.0)
        self.registry = Registry(self.link, node_id, name=name, load=lambda: load(self.cpu.rate),
                                 metrics=self.metrics)
        self.bus = MessageBus(self.link, node_id, self.metrics)

    async def start(self) -> None:
        self.cpu.start()
        await self.bus.start()
        await self.registry.start()
        log.info("joined the cluster", extra={"nodeId": self.node_id, "node": self.name,
                                              "redis": self.link.safe_url, "redisUp": self.link.up})

    async def close(self) -> None:
        await self.registry.close()
        await self.bus.close()
        self.cpu.stop()
        await self.link.close()


CLUSTER = web.AppKey("cluster", ClusterNode)
