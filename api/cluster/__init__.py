"""The cluster: identical nodes sharing PostgreSQL (the truth) and Redis (the registry of nodes and their load,
where rooms live, cross-node messages, cluster-wide limits). See docs/cluster.md.

``setup(app, load)`` puts a :class:`api.cluster.node.ClusterNode` on the app when ``REDIS_URL`` is set, and
always ``app[NODE_LOAD]`` (this node's load, for the console). Features ask ``app.get(CLUSTER)``: None means one
node, which is every code path as it was before the cluster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from api.cluster.node import CLUSTER, ClusterNode
from api.cluster.node_info import Load
from api.core.keys import NODE_ID, REGISTRY, SETTINGS

__all__ = ["CLUSTER", "NODE_LOAD", "setup"]

# This node's load given its relay thread's CPU (cores): the registry's heartbeat, and the console with no Redis.
NODE_LOAD: web.AppKey[Callable[[float], Load]] = web.AppKey("node_load")


def setup(app: web.Application, load: Callable[[float], Load]) -> None:
    settings = app[SETTINGS]
    app[NODE_LOAD] = load
    if settings.redis_url is None:
        return
    app[CLUSTER] = ClusterNode(redis_url=settings.redis_url, prefix=settings.redis_prefix, node_id=app[NODE_ID],
                               name=settings.node_name or app[NODE_ID][:8], registry=app[REGISTRY], load=load)
    app.cleanup_ctx.append(_running)


async def _running(app: web.Application) -> AsyncIterator[None]:
    node = app[CLUSTER]
    await node.start()
    yield
    await node.close()
