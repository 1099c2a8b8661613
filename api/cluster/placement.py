"""Where rooms live: each room (a reading's media, a stream's origin) has one home node, recorded in Redis.

``<prefix>room:<room>`` holds the home's node id. A room is placed the first time someone needs its home: on
the least-loaded serving node (:func:`choose`), written with a compare-and-set script, so of any number of
nodes racing to place one room exactly one choice is recorded and every racer gets that one. A room whose home
is gone (no registry entry, or known to have stopped listening) is moved the same way; a draining or dead node
gets no new rooms. The home asserts its rooms on every heartbeat (:meth:`Placement.claim`), so the map comes
back by itself after Redis loses it. This is LiveKit's room-to-node map (``pkg/routing``: ``SetNodeForRoom``,
and a room whose node died is placed again on the next join).

For readings the lease in PostgreSQL stays the truth about who runs one (api/readings/leases.py); the map is
where a node looks first, and a reading whose lease is held by a live node is placed on that node.
"""

from __future__ import annotations

import logging
import math

from api.cluster.link import ClusterUnavailable
from api.cluster.node import ClusterNode
from api.cluster.node_info import SERVING, NodeInfo

log = logging.getLogger(__name__)

# A room's entry outlives a forgotten room by this much at most; the home refreshes it while the room lives.
ROOM_TTL_SECONDS = 3600
# Relay CPU is compared in steps of this size, so that idle nodes are told apart by what they hold.
CPU_STEP = 0.05

# KEYS[1] the room; ARGV: the home seen ("" for none), the new home, the TTL. Sets the new home only if the
# entry still says what the caller saw; returns the home recorded after the call.
_COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
    return ARGV[2]
end
if current == false then
    return ''
end
return current
"""

# KEYS[1] the room; ARGV[1] the node. Deletes the entry only if it names that node.
_FORGET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class NoServingNode(ClusterUnavailable):
    """Every node is draining or gone: nowhere to put a room right now."""

    code = "no_serving_node"


def choose(nodes: list[NodeInfo], *, exclude: frozenset[str] = frozenset()) -> NodeInfo | None:
    """The least-loaded serving node: relay CPU first (in ``CPU_STEP`` steps), then participants, readings,
    streams, then the id (so every node ranks a tie the same way)."""
    serving = [n for n in nodes if n.state == SERVING and n.id not in exclude]
    if not serving:
        return None
    return min(serving, key=lambda n: (math.floor(n.load.cpu / CPU_STEP), n.load.participants, n.load.readings,
                                       n.load.streams, n.id))


class Placement:
    """The room-to-node map of one cluster (see the module docstring)."""

    def __init__(self, node: ClusterNode) -> None:
        self._node = node
        self._link = node.link
        self._cas = node.link.redis.register_script(_COMPARE_AND_SET)
        self._forget = node.link.redis.register_script(_FORGET)

    def _key(self, room: str) -> str:
        return self._link.key("room", room)

    async def home(self, room: str, *, sticky: str | None = None, gone: frozenset[str] = frozenset()) -> str:
        """The room's home: the node recorded if it is alive, else a node chosen now (``sticky`` if it is alive
        and serving: the node that already runs the room). ``gone``: nodes known to have stopped even if their
        registry entry has not expired yet. Raises ClusterUnavailable (or NoServingNode)."""
        for _ in range(3):
            current = await self.recorded(room)
            nodes = {n.id: n for n in await self._node.registry.nodes() if n.id not in gone}
            if current is not None and current in nodes:
                return str(current)
            if sticky is not None and sticky in nodes and nodes[sticky].state == SERVING:
                target: NodeInfo | None = nodes[sticky]
            else:
                target = choose(list(nodes.values()))
            if target is None:
                raise NoServingNode("no node is taking new rooms right now; try again in a moment")
            winner = str(await self._link.call(self._cas(keys=[self._key(room)],
                                                         args=[current or "", target.id, ROOM_TTL_SECONDS])))
            if not winner:
                continue  # the entry went away between our read and the script: look again
            outcome = "existing" if winner != target.id else ("placed" if current is None else "moved")
            self._node.metrics.placements.labels(outcome).inc()
            if winner == target.id:
                log.info("room placed", extra={"room": room, "home": target.name, "homeId": target.id,
                                               "previous": current})
            if winner in nodes:
                return winner
            gone = gone | {current or ""}
        raise NoServingNode("the room's placement keeps changing; try again in a moment")

    async def recorded(self, room: str) -> str | None:
        """The home on record, alive or not (None: not placed)."""
        value = await self._link.call(self._link.redis.get(self._key(room)))
        return None if value is None else str(value)

    async def move(self, room: str, away_from: str) -> str:
        """Place the room anew on another node (its home is draining or stopped)."""
        return await self.home(room, gone=frozenset({away_from}))

    async def claim(self, rooms: list[str]) -> None:
        """This node is the home of these rooms (it runs them): record it, refreshing their entries."""
        if not rooms:
            return
        pipe = self._link.redis.pipeline(transaction=False)
        for room in rooms:
            pipe.set(self._key(room), self._node.node_id, ex=ROOM_TTL_SECONDS)
        await self._link.call(pipe.execute())

    async def claim_for(self, room: str, node_id: str) -> None:
        """Record ``node_id`` as the room's home (it holds the room's lease, the truth), if the map says otherwise."""
        if await self.recorded(room) != node_id:
            await self._link.call(self._link.redis.set(self._key(room), node_id, ex=ROOM_TTL_SECONDS))

    async def forget(self, room: str) -> None:
        """The room closed here: remove its entry if it still names this node."""
        await self._link.call(self._forget(keys=[self._key(room)], args=[self._node.node_id]))
