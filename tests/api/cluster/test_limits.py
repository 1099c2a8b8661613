"""Rate limits counted across the cluster on a real Redis: the same rule as one node's, event for event; a
client spreading its login guesses or its gifts over two nodes gets the limit once; without Redis each node
counts alone."""

from __future__ import annotations

import socket
from dataclasses import replace

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from api.cluster.limits import SharedRateLimiter
from api.cluster.node import ClusterNode
from api.cluster.node_info import Load
from api.core.ratelimit import RateLimiter
from config import Settings
from tests.reading_steps import deposit, quick_user, running_app, wait_for

Step = tuple[str, str, str | None]  # (hit | wait | refund, key, token)
SEQUENCE: list[Step] = [
    ("hit", "a", None), ("hit", "a", "r1"), ("hit", "a", "r1"), ("wait", "a", None), ("hit", "a", None),
    ("hit", "a", "r2"), ("hit", "a", "r1"), ("refund", "a", None), ("hit", "a", "r3"), ("hit", "b", None),
    ("wait", "b", "r9"), ("refund", "b", None), ("refund", "b", None), ("hit", "b", None), ("hit", "a", "r4"),
]


def _node(url: str, prefix: str) -> ClusterNode:
    return ClusterNode(redis_url=url, prefix=prefix, node_id="n", name="n", registry=CollectorRegistry(),
                       load=lambda cpu: Load(cpu=cpu))


def _run_local(limiter: RateLimiter, steps: list[Step]) -> list[bool]:
    """Whether each step was allowed (a refund: True), on one node's limiter."""
    outcome = []
    for action, key, token in steps:
        if action == "refund":
            limiter.refund(key)
        outcome.append(action == "refund" or getattr(limiter, action)(key, token=token) == 0)
    return outcome


async def _run_shared(limiter: SharedRateLimiter, steps: list[Step]) -> list[bool]:
    outcome = []
    for action, key, token in steps:
        if action == "refund":
            await limiter.refund(key)
        outcome.append(action == "refund" or await getattr(limiter, action)(key, token=token) == 0)
    return outcome


async def test_the_shared_limit_is_the_same_rule_as_one_nodes(redis_server_url: str, redis_prefix: str) -> None:
    node = _node(redis_server_url, redis_prefix)
    try:
        shared = SharedRateLimiter("rule", 3, 60.0, node=node)
        assert await _run_shared(shared, SEQUENCE) == _run_local(RateLimiter(3, 60.0), SEQUENCE)
        assert shared.local.hit("a") == 0 and shared.local.hit("b") == 0, "counted in Redis, not in memory"
    finally:
        await node.link.close()


async def test_two_nodes_share_one_count_and_a_place_comes_back_when_the_window_passes(
        redis_server_url: str, redis_prefix: str) -> None:
    nodes = [_node(redis_server_url, redis_prefix), _node(redis_server_url, redis_prefix)]
    try:
        limiters = [SharedRateLimiter("gifts", 4, 0.5, node=n) for n in nodes]
        allowed = [await limiters[i % 2].hit("ann") == 0 for i in range(6)]
        assert allowed == [True, True, True, True, False, False]
        wait = await limiters[1].wait("ann")
        assert 0 < wait <= 0.5

        async def free_again() -> bool:
            return await limiters[0].wait("ann") == 0

        await wait_for(free_again, timeout=2, interval=0.05)
    finally:
        for node in nodes:
            await node.link.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_without_redis_each_node_counts_alone(redis_prefix: str) -> None:
    node = _node(f"redis://127.0.0.1:{_closed_port()}/0", redis_prefix)
    try:
        limiter = SharedRateLimiter("gifts", 2, 60.0, node=node)
        assert [await limiter.hit("ann") == 0 for _ in range(3)] == [True, True, False]
        assert limiter.local.wait("ann") > 0, "counted in memory meanwhile"
    finally:
        await node.link.close()


@pytest.mark.slow
async def test_failed_logins_spread_over_two_nodes_hit_one_limit(cluster_settings: Settings) -> None:
    settings = replace(cluster_settings, login_attempts_per_minute=3, login_backoff_after=100)
    async with running_app(settings, node_name="a") as a, running_app(settings, node_name="b") as b:
        statuses = []
        for attempt in range(5):
            node = (a, b)[attempt % 2]
            resp = await node.post("/api/auth/login", json={"email": "nobody@example.test", "password": "guess"})
            statuses.append(resp.status)
        assert statuses == [401, 401, 401, 429, 429]
        resp = await b.post("/api/auth/login", json={"email": "nobody@example.test", "password": "guess"})
        assert (await resp.json())["error"]["code"] == "rate_limited"


async def test_gifts_spread_over_two_nodes_hit_one_limit(cluster_settings: Settings, pool: asyncpg.Pool) -> None:
    settings = replace(cluster_settings, gift_rate_limit=2)
    async with running_app(settings, node_name="a") as a, running_app(settings, node_name="b") as b:
        reader = await quick_user(pool, "reader")
        ann = await quick_user(pool, "client")
        await deposit(pool, ann.id, 5_000)
        stream = (await (await a.post("/api/streams", json={"title": "t"}, headers=reader.headers)).json())["stream"]
        gift = (await (await a.get("/api/gifts", headers=ann.headers)).json())["gifts"][0]
        statuses = []
        for attempt in range(3):
            resp = await (a, b)[attempt % 2].post(f"/api/streams/{stream['id']}/gifts", headers=ann.headers,
                                                  json={"giftId": gift["id"], "requestId": f"g{attempt}",
                                                        "expectedCents": gift["priceCents"]})
            statuses.append(resp.status)
        assert statuses == [201, 201, 429]
