"""Prometheus series of the cluster (``soulseer_cluster_*``): the nodes this node sees and their load, Redis's
reachability, placements, the signal bridge's traffic and adoptions of other nodes' readings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict

from prometheus_client import CollectorRegistry, Counter, Gauge

from api.cluster.node_info import NodeInfo


class ClusterMetrics:
    """The cluster's series on the app's registry (created by ``create_app``, never at import)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.redis_up = Gauge("soulseer_cluster_redis_up", "1 while this node's last Redis command succeeded",
                              registry=registry)
        self.redis_up.set(1)
        self.nodes = Gauge("soulseer_cluster_nodes", "Live nodes seen at the last heartbeat, by state", ["state"],
                           registry=registry)
        self.node_load = Gauge("soulseer_cluster_node_load", "Each live node's load at its last heartbeat "
                               "(cpu: cores of its relay thread)", ["node", "measure"], registry=registry)
        self.heartbeats = Counter("soulseer_cluster_heartbeats", "Registry heartbeats written, by result",
                                  ["result"], registry=registry)
        self.placements = Counter("soulseer_cluster_placements", "Rooms placed on a node, by outcome (placed: "
                                  "this node chose; existing: already placed; moved: its node was gone)",
                                  ["outcome"], registry=registry)
        self.bridge_messages = Counter("soulseer_cluster_bridge_messages", "Signal bridge messages, by direction "
                                       "(out: published by this node, in: received)", ["direction"],
                                       registry=registry)
        self.bridge_undelivered = Counter("soulseer_cluster_bridge_undelivered", "Bridge messages no node was "
                                          "listening for (the node holding the room or socket was gone)",
                                          registry=registry)
        self.bridged_sockets = Gauge("soulseer_cluster_bridged_sockets", "Signaling seats bridged, by side "
                                     "(edge: a socket here, its room elsewhere; home: the reverse)", ["side"],
                                     registry=registry)
        self.adoptions = Counter("soulseer_cluster_adoptions", "Readings this node took over from another node",
                                 registry=registry)

    def saw(self, nodes: Iterable[NodeInfo]) -> None:
        """Set the node gauges from one registry read."""
        nodes = list(nodes)
        self.nodes.clear()
        for state in ("serving", "draining"):
            self.nodes.labels(state).set(sum(1 for n in nodes if n.state == state))
        self.node_load.clear()
        for node in nodes:
            for measure, value in asdict(node.load).items():
                self.node_load.labels(node.name, measure).set(value)
