"""``soulseer serve --nodes N`` as a user runs it: N real node processes sharing one port (the kernel spreads new
connections over them) and an embedded Redis; a node killed is started again; SIGTERM stops everything."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import asyncpg
import pytest

from api.cli.supervisor import node_count
from tests.api.cluster.processes import alive, cluster_view, free_port, node_env, ready, serve
from tests.reading_steps import quick_user, wait_for

pytestmark = pytest.mark.slow


async def test_two_nodes_share_the_port_and_an_embedded_redis_restart_when_killed_and_stop_on_sigterm(
        database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    admin = await quick_user(pool, "admin")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = node_env(database_url, port, SOULSEER_DATA_DIR=str(tmp_path / "data"))
    with serve(env, tmp_path / "serve.log", "--nodes", "2") as supervisor:
        await ready(base)

        async def two_serving() -> bool:
            view = await cluster_view(base, admin)
            return sorted((n["name"], n["state"]) for n in view["nodes"]) == [("node-1", "serving"),
                                                                               ("node-2", "serving")]

        await wait_for(two_serving, timeout=20, interval=0.2)
        nodes = {n["name"]: n for n in (await cluster_view(base, admin))["nodes"]}
        assert nodes["node-1"]["pid"] != nodes["node-2"]["pid"] != supervisor.pid

        # New connections land on both nodes (SO_REUSEPORT), each answering as itself.
        answered = set()
        for _ in range(200):
            view = await cluster_view(base, admin)
            answered.add(next(n["name"] for n in view["nodes"] if n["self"]))
            if len(answered) == 2:
                break
        assert answered == {"node-1", "node-2"}

        # kill -9 of one node: the supervisor starts it again, under a new id; the old entry expires.
        killed = nodes["node-2"]
        signal_sent = time.monotonic()
        os.kill(killed["pid"], signal.SIGKILL)

        async def restarted() -> bool:
            view = await cluster_view(base, admin)
            by_name = {n["name"]: n for n in view["nodes"]}
            ids = {n["id"] for n in view["nodes"]}
            return "node-2" in by_name and by_name["node-2"]["id"] != killed["id"] and killed["id"] not in ids

        await wait_for(restarted, timeout=30, interval=0.2)
        assert time.monotonic() - signal_sent < 30
        assert (tmp_path / "data" / "redis" / "redis.log").exists()  # the embedded Redis lives in the data folder
        redis_port = int(next(line for line in (tmp_path / "serve.log").read_text().splitlines()
                              if "embedded redis ready" in line).split("port=")[1].split()[0])

        pids = [n["pid"] for n in (await cluster_view(base, admin))["nodes"]]
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(45) == 0
    assert not any(alive(pid) for pid in pids)
    for stopped in (port, redis_port):  # nobody listens any more: the nodes and the embedded Redis are gone
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", stopped))


def test_auto_is_one_node_per_core_and_bad_counts_are_refused() -> None:
    assert node_count("auto") >= 1 and node_count("3") == 3
    for bad in ("0", "-1", "many", "1000"):
        with pytest.raises(ValueError, match="--nodes"):
            node_count(bad)
