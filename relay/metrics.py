"""The relay's Prometheus metrics, all named ``soulseer_relay_*``, on an injected registry.

Counts of live things (peers, rooms, streams, viewers) and the hot forwarding counters are read at
scrape time by a collector, so forwarding a frame costs an integer addition, not a locked
Prometheus counter update per subscriber. Rare events use ordinary counters. Loss and RTT come from
RTCP receiver reports, aggregated per direction by a periodic poll (``Relay``'s stats task):
``up`` is publisher -> relay, ``down`` is relay -> subscriber.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relay.packetizer import ForwardCounters

KINDS = ("audio", "video")


@dataclass
class Census:
    """What the relay holds right now."""

    peers: int = 0
    rooms: int = 0
    streams: int = 0
    viewers: int = 0
    participants: int = 0
    video_shed: int = 0  # video subscribers sent keyframes only (relay.overload)
    loop_lag: float = 0.0  # seconds, the event loop's recent median wake-up lag


@dataclass
class LinkQuality:
    """RTCP-derived quality of one direction, aggregated over all its RTP streams."""

    fraction_lost: list[float] = field(default_factory=list)
    packets_lost: int = 0
    rtt: list[float] = field(default_factory=list)


class _LiveCollector(Collector):
    def __init__(self, census: Callable[[], Census], forwarded: dict[str, ForwardCounters]) -> None:
        self._census = census
        self._forwarded = forwarded

    def collect(self) -> Iterable[Metric]:
        census = self._census()
        for name, value, doc in (
            ("peers", census.peers, "Peer connections the relay holds."),
            ("participants", census.participants, "Participants in rooms and streams."),
            ("rooms", census.rooms, "Open reading rooms."),
            ("streams", census.streams, "Open live streams."),
            ("viewers", census.viewers, "Viewers across live streams."),
            ("video_shed", census.video_shed, "Video subscribers sent keyframes only while the relay is overloaded."),
            ("loop_lag_seconds", census.loop_lag, "How late the relay's event loop wakes a timer (recent median)."),
        ):
            yield GaugeMetricFamily(f"soulseer_relay_{name}", doc, value=value)
        for name, doc in (
            ("frames", "Encoded frames handed to subscribers' senders."),
            ("packets", "RTP packets forwarded to subscribers."),
            ("bytes", "Encoded payload bytes forwarded to subscribers."),
        ):
            family = CounterMetricFamily(f"soulseer_relay_{name}_forwarded", doc, labels=["kind"])
            for kind in KINDS:
                family.add_metric([kind], getattr(self._forwarded[kind], name))
            yield family


class RelayMetrics:
    """Registers and updates the relay's metrics on ``registry`` (never the global default).

    :param census: returns the current counts of peers, rooms, streams, viewers.
    """

    def __init__(self, registry: CollectorRegistry, census: Callable[[], Census]) -> None:
        self.forwarded: dict[str, ForwardCounters] = {kind: ForwardCounters() for kind in KINDS}
        registry.register(_LiveCollector(census, self.forwarded))
        self.keyframe_requests = Counter(
            "soulseer_relay_keyframe_requests",
            "Reasons a keyframe was needed (before throttling).",
            ["reason"],
            registry=registry,
        )
        self.keyframe_requests_sent = Counter(
            "soulseer_relay_keyframe_requests_sent",
            "Keyframe requests (PLI) sent to publishers, after throttling and coalescing.",
            registry=registry,
        )
        self.forwarding_errors = Counter(
            "soulseer_relay_forwarding_errors",
            "Frames not forwarded, or peers failed, by reason.",
            ["reason"],
            registry=registry,
        )
        self.participant_events = Counter(
            "soulseer_relay_participant_events",
            "Participant connection events emitted.",
            ["event"],
            registry=registry,
        )
        self.refused = Counter(
            "soulseer_relay_refused", "Joins refused, by error code.", ["code"], registry=registry
        )
        self.fraction_lost = Gauge(
            "soulseer_relay_rtcp_fraction_lost",
            "Mean RTCP-reported fraction of packets lost (0-1), per direction.",
            ["direction"],
            registry=registry,
        )
        self.packets_lost = Gauge(
            "soulseer_relay_rtcp_packets_lost",
            "Cumulative RTCP-reported packets lost over live streams, per direction.",
            ["direction"],
            registry=registry,
        )
        self.rtt = Gauge(
            "soulseer_relay_rtt_seconds",
            "Mean round-trip time from RTCP receiver reports, per direction.",
            ["direction"],
            registry=registry,
        )

    def record_quality(self, direction: str, quality: LinkQuality) -> None:
        fractions = quality.fraction_lost
        self.fraction_lost.labels(direction).set(sum(fractions) / len(fractions) if fractions else 0.0)
        self.packets_lost.labels(direction).set(quality.packets_lost)
        if quality.rtt:
            self.rtt.labels(direction).set(sum(quality.rtt) / len(quality.rtt))
