"""The node registry on a real Redis: nodes see each other with their state and load, a node that stops is gone
(at once when it leaves cleanly, within the timeout when it just goes silent), the console and the metrics show
them, and a Redis that does not answer is a 503 rather than a hang."""

from __future__ import annotations

import socket
import time
from dataclasses import replace

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from api.cluster.link import RedisLink
from api.cluster.metrics import ClusterMetrics
from api.cluster.node_info import Load
from api.cluster.registry import Registry
from config import Settings
from tests.reading_steps import quick_user, running_app, wait_for


async def _cluster_view(http, admin) -> dict:  # type: ignore[no-untyped-def]
    resp = await http.get("/api/admin/cluster", headers=admin.headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_two_nodes_see_each_other_serving_with_their_load_and_a_node_that_leaves_is_gone_at_once(
        cluster_settings: Settings, pool: asyncpg.Pool) -> None:
    admin = await quick_user(pool, "admin")
    async with running_app(cluster_settings, node_name="node-a") as a:
        async with running_app(cluster_settings, node_name="node-b"):

            async def both() -> bool:
                view = await _cluster_view(a, admin)
                return sorted(n["name"] for n in view["nodes"]) == ["node-a", "node-b"]

            await wait_for(both, timeout=10, interval=0.2)
            view = await _cluster_view(a, admin)
            assert view["redis"] == "up"
            by_name = {n["name"]: n for n in view["nodes"]}
            assert by_name["node-a"]["self"] and not by_name["node-b"]["self"]
            assert view["nodeId"] == by_name["node-a"]["id"]
            for node in view["nodes"]:
                assert node["state"] == "serving"
                assert set(node["load"]) == {"cpu", "participants", "readings", "streams", "viewers", "busy"}
                assert node["load"]["readings"] == 0 and node["heartbeatAt"].endswith("Z")
            page = await (await a.get("/admin/cluster", headers=admin.headers)).text()  # the console's page
            assert "node-a" in page and "node-b" in page and "this node" in page

            async def both_in_metrics() -> bool:  # as of this node's next heartbeat
                return 'soulseer_cluster_nodes{state="serving"} 2.0' in await (await a.get("/metrics")).text()

            await wait_for(both_in_metrics, timeout=5, interval=0.2)
            metrics = await (await a.get("/metrics")).text()
            assert 'soulseer_cluster_redis_up 1.0' in metrics
            assert 'soulseer_cluster_node_load{measure="readings",node="node-b"} 0.0' in metrics
        # node-b shut down cleanly: it deregistered, no waiting for its entry to expire.
        view = await _cluster_view(a, admin)
        assert [n["name"] for n in view["nodes"]] == ["node-a"]


async def test_a_node_that_goes_silent_is_gone_once_its_heartbeat_expires(
        redis_server_url: str, redis_prefix: str) -> None:
    metrics = ClusterMetrics(CollectorRegistry())
    link = RedisLink(redis_server_url, redis_prefix)
    watcher = Registry(link, "watcher", name="watcher", load=Load, metrics=metrics)
    silent = Registry(link, "silent", name="silent", load=lambda: Load(cpu=0.5, readings=3), metrics=metrics,
                      heartbeat=0.2, timeout=1.0)
    try:
        await silent.start()
        await watcher.beat()
        seen = {n.id: n for n in await watcher.nodes()}
        assert set(seen) == {"silent", "watcher"} and seen["silent"].load == Load(cpu=0.5, readings=3)
        assert silent._task is not None
        silent._task.cancel()  # it stops refreshing without leaving, as a killed process would
        stopped = time.monotonic()

        async def gone() -> bool:
            return "silent" not in {n.id for n in await watcher.nodes()}

        await wait_for(gone, timeout=3, interval=0.05)
        assert time.monotonic() - stopped <= 1.5
        assert await watcher.alive(["silent", "watcher"]) == {"silent": False, "watcher": True}
    finally:
        await watcher.close()
        await link.close()


async def test_a_draining_node_says_so_at_once(redis_server_url: str, redis_prefix: str) -> None:
    link = RedisLink(redis_server_url, redis_prefix)
    registry = Registry(link, "n1", name="n1", load=Load, metrics=ClusterMetrics(CollectorRegistry()))
    try:
        await registry.start()
        await registry.drain()
        assert [(n.id, n.state) for n in await registry.nodes()] == [("n1", "draining")]
    finally:
        await registry.close()
        await link.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_with_redis_unreachable_the_node_still_serves_and_the_console_says_503_quickly(
        settings: Settings, pool: asyncpg.Pool, redis_prefix: str) -> None:
    admin = await quick_user(pool, "admin")
    down = replace(settings, redis_url=f"redis://127.0.0.1:{_closed_port()}/0", redis_prefix=redis_prefix)
    async with running_app(down) as http:
        assert (await http.get("/healthz")).status == 200
        started = time.monotonic()
        resp = await http.get("/api/admin/cluster", headers=admin.headers)
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "cluster_unavailable"
        assert time.monotonic() - started < 2.5
        metrics = await (await http.get("/metrics")).text()
        assert "soulseer_cluster_redis_up 0.0" in metrics


async def test_one_node_without_redis_lists_itself(client, pool: asyncpg.Pool) -> None:  # type: ignore[no-untyped-def]
    admin = await quick_user(pool, "admin")
    view = await _cluster_view(client, admin)
    assert view["redis"] == "off"
    assert [(n["self"], n["state"]) for n in view["nodes"]] == [(True, "serving")]
    assert "One node, no Redis" in await (await client.get("/admin/cluster", headers=admin.headers)).text()
    reader = await quick_user(pool, "reader")
    assert (await client.get("/api/admin/cluster", headers=reader.headers)).status == 403


@pytest.mark.parametrize("prefix", ["bad prefix", "x" * 65])
def test_a_bad_key_prefix_stops_start_up(prefix: str) -> None:
    from config import SettingsError, load_settings

    with pytest.raises(SettingsError, match="SOULSEER_REDIS_PREFIX"):
        load_settings({"SOULSEER_REDIS_PREFIX": prefix})

