"""Where rooms go: the least-loaded serving node (relay CPU first), never a draining or gone one; a room's home is
recorded once whoever races, moved only away from a node that is gone, and forgotten only by its own home."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from api.cluster.node import ClusterNode
from api.cluster.node_info import DRAINING, Load, NodeInfo
from api.cluster.placement import Placement, choose


def _node(node_id: str, *, cpu: float = 0.0, participants: int = 0, readings: int = 0,
          state: str = "serving") -> NodeInfo:
    return NodeInfo(node_id, node_id, state, Load(cpu=cpu, participants=participants, readings=readings))


def test_the_least_loaded_serving_node_is_chosen_relay_cpu_first() -> None:
    nodes = [_node("a", cpu=0.30, participants=2), _node("b", cpu=0.10, participants=90), _node("c", cpu=0.12)]
    assert choose(nodes).id == "c"  # b and c are in one 5 % CPU step: fewer participants wins
    assert choose([_node("a", cpu=0.5), _node("b", cpu=0.9)]).id == "a"
    assert choose([_node("b"), _node("a")]).id == "a", "a tie goes to the lower id, the same on every node"
    assert choose([_node("a", readings=3), _node("b", readings=1)]).id == "b"


def test_a_draining_or_excluded_node_gets_no_room() -> None:
    nodes = [_node("a", state=DRAINING), _node("b", cpu=0.8)]
    assert choose(nodes).id == "b"
    assert choose(nodes, exclude=frozenset({"b"})) is None
    assert choose([]) is None


async def test_a_room_is_placed_once_moved_away_from_a_gone_home_and_forgotten_by_its_home_only(
        redis_server_url: str, redis_prefix: str) -> None:
    nodes = [ClusterNode(redis_url=redis_server_url, prefix=redis_prefix, node_id=i, name=i,
                         registry=CollectorRegistry(), load=lambda cpu: Load(cpu=cpu)) for i in ("n1", "n2")]
    try:
        for node in nodes:
            await node.registry.beat()
        first, second = Placement(nodes[0]), Placement(nodes[1])
        home = await first.home("room:x")
        assert await second.home("room:x") == home  # already placed: the other node gets the same
        moved = await second.move("room:x", away_from=home)
        assert moved != home and await first.recorded("room:x") == moved
        other = next(p for p, n in zip((first, second), nodes, strict=True) if n.node_id != moved)
        await other.forget("room:x")
        assert await first.recorded("room:x") == moved, "only the home forgets its room"
        owner = next(p for p, n in zip((first, second), nodes, strict=True) if n.node_id == moved)
        await owner.forget("room:x")
        assert await first.recorded("room:x") is None
        await first.claim_for("room:y", "n2")
        assert await second.recorded("room:y") == "n2"
    finally:
        for node in nodes:
            await node.registry.close()
            await node.link.close()
