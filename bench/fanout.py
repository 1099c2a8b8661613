"""Fan-out benchmark: one publisher, N viewers, the relay's CPU measured alone in its own process.

One synthetic publisher (640x480 30 fps VP8 ~1 Mbps + Opus, pre-encoded and replayed) and viewers
in separate processes (bench/fanout_peers.py), the relay in its own (bench/fanout_relay_process.py). For
each N in a rising series it prints the relay's CPU seconds per second, CPU per viewer, frames
delivered per frame sent (mean over all viewers, and the worst one), RTP packets lost on the wire,
viewers' time to first frame and glass-to-glass latency (publisher send -> viewer frame complete, on
one machine-wide monotonic clock), and the viewer processes' CPU (all, and the busiest). It stops
where delivery falls below 99% or at ``--max``.

Viewers are cheap so that hundreds fit beside the relay on a 2-core machine: most are *lite*
(a real aiortc peer up to DTLS-SRTP, then media counted from cleartext RTP headers, never decrypted);
one per viewer process is a *probe*, a full viewer that decrypts and reassembles frames and alone
measures latency. Delivery counts every viewer. Viewer processes poll their sockets every
``--viewer-poll-ms`` rather than being woken by each packet, a wake-up that on loopback the relay's
send calls pay for, and run at a lower priority (``--viewer-nice``, default 10): on a shared machine
the load generator must not take the CPU the relay needs, as it would not on a relay's own cores. A
viewer process that falls behind shows as lost packets (lite viewers send no
NACKs) or as a busy process; keep ``max proc`` well below 1.0.

In the same run, aiortc's MediaRelay (decode once, re-encode per viewer) carries a small N or two as
the baseline. After the table: (a) relay CPU per viewer at the same N, (b) marginal relay CPU per
added viewer (slope between two N; for passthrough, over the widest range at >= 99% delivery), and
(c) viewers per core of relay CPU at the largest N with >= 99% delivery. With ``--queued`` the
relay also runs with aiortc's own sender loop (``direct_send=False``) and (d) compares the two.

    python bench/fanout.py --quick            # 3..300 viewers, 2-3 minutes
    python bench/fanout.py --max 500          # the full series
    python bench/fanout.py --max 300 --queued # plus the direct/queued send path comparison
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench.* modules, as the other benchmarks do


class Child:
    """A benchmark role in its own process, driven by JSON lines on its stdio."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name

    @classmethod
    async def start(cls, name: str, *args: str, script: Path | None = None) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(script or Path(__file__).resolve()), *args, cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={"PYTHONPATH": str(ROOT)}, limit=1 << 24,
        )
        return cls(process, name)

    async def read(self, timeout: float = 120) -> Any:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.name} exited")
        return json.loads(line) if line.startswith(b"{") else line.decode().strip()

    async def call(self, op: str, **args: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        await self.process.stdin.drain()
        return await self.read()

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@dataclass
class Row:
    mode: str
    viewers: int
    relay_cpu: float  # CPU seconds per second
    delivered: float  # frames received per frame sent, over all viewers (lite and probe)
    worst: float  # the worst viewer's delivery
    lost: float  # RTP packets missing on the wire (sequence gaps) per packet expected, all viewers
    relay_sent: float  # frames the relay's senders packed, per frame sent, per viewer
    ttff_median: float
    ttff_p95: float
    latency_median: float | None  # glass-to-glass, from probes only
    latency_p95: float | None
    viewer_cpu: float  # all viewer processes, CPU seconds per second
    viewer_cpu_max: float  # the busiest viewer process
    keyframes: int
    load: float  # the machine's 1-minute load average at the end of the window
    shed: int  # frames the relay dropped in the window: stale (backlog) + subscriber queue overflows
    lag_p99: float  # the relay's event-loop wake-up delay, 99th percentile over the window
    pub_rate: float  # video frames per second the publisher sent
    probe_wire: int  # probes' video frames in the window as counted on the wire (marker bits)...
    probe_assembled: int  # ...and as assembled from decrypted packets
    refused: int = 0  # viewers the relay refused (relay_busy) on the way to this N
    video_shed: int = 0  # video subscribers sent keyframes only (relay/overload.py) at the end of the window

    @property
    def cpu_per_viewer(self) -> float:
        return self.relay_cpu / self.viewers

    @property
    def cpu_per_viewer_frame(self) -> float:
        """Relay CPU seconds per video frame delivered to one viewer: fair to a relay that drops."""
        return self.relay_cpu / (self.viewers * self.pub_rate * max(self.delivered, 1e-9))


@dataclass
class ViewerProcess:
    child: Child
    viewers: int = 0


@dataclass(frozen=True)
class ViewerSettings:
    per_process: int  # viewers in one process
    probes: int  # of those, full viewers
    poll_ms: float  # a viewer process's event loop polls its sockets at most this often (0: on every arrival)
    nice: int  # viewer processes' niceness: the load generator must not starve the relay it measures
    refused: list[int] = field(default_factory=lambda: [0])  # viewers refused so far (a counter)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def add_viewers(url: str, procs: list[ViewerProcess], count: int, settings: ViewerSettings) -> list[float]:
    """Add ``count`` viewers, filling the last process and starting new ones; the processes join
    concurrently (each in groups of 10). Returns the new viewers' times to first frame."""
    plan: list[tuple[ViewerProcess, int]] = []
    per_process = settings.per_process
    if procs and procs[-1].viewers < per_process:
        take = min(count, per_process - procs[-1].viewers)
        plan.append((procs[-1], take))
        count -= take
    takes = [min(per_process, count - start) for start in range(0, count, per_process)]
    children = await asyncio.gather(*(Child.start(
        "viewers", "--role", "viewers", "--relay", url, "--prefix", f"v{len(procs) + i}",
        "--probes", str(settings.probes), "--poll-ms", str(settings.poll_ms), "--nice", str(settings.nice))
        for i in range(len(takes))))
    started = [ViewerProcess(child) for child in children]
    procs += started  # before anything can fail, so that run_mode stops them
    for proc, take in zip(started, takes, strict=True):
        await proc.child.read()  # its hello: imports done
        plan.append((proc, take))
    replies = await asyncio.gather(*(proc.child.call("add", count=take) for proc, take in plan))
    for (proc, take), reply in zip(plan, replies, strict=True):
        proc.viewers += take - reply["refused"]
        settings.refused[0] += reply["refused"]
    no_frame = sum(reply["no_frame"] for reply in replies)
    if no_frame:
        print(f"# {no_frame} of {sum(take for _, take in plan)} joining viewers got no video frame "
              f"within {replies[0]['waited']:.0f} s", flush=True)
    return [t for reply in replies for t in reply["ttff"]]


async def run_mode(mode: str, series: list[int], window: float, stop_below: float,
                   settings: ViewerSettings, relay_args: tuple[str, ...] = ()) -> list[Row]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings.refused[0] = 0
    relay = await Child.start("relay", "--role", "relay", "--mode", mode, "--port", str(port), *relay_args)
    children = [relay]
    procs: list[ViewerProcess] = []
    rows: list[Row] = []
    try:
        await relay.read()
        publisher = await Child.start("publisher", "--role", "publisher", "--relay", url)
        children.append(publisher)
        hello = await publisher.read()
        print(f"# {mode}: publisher sends {hello['video_bitrate'] / 1e6:.2f} Mbps VP8 + Opus", flush=True)
        async with aiohttp.ClientSession() as http:
            for n in series:
                total = sum(p.viewers for p in procs)
                ttff = await add_viewers(url, procs, n - total, settings) if n > total else []
                await asyncio.sleep(2.0)  # let joins' keyframes settle
                before = await snapshot(http, url, publisher, procs)
                await asyncio.sleep(window)
                after = await snapshot(http, url, publisher, procs)
                if after["publisher"]["sent"] == before["publisher"]["sent"]:
                    print(f"# {mode} {n}: the publisher sent nothing in the window (its connection: "
                          f"{after['publisher']['state']}); series stopped", flush=True)
                    break
                admitted = sum(p.viewers for p in procs)
                row = measure(mode, admitted, before, after, ttff)
                row.refused = settings.refused[0]
                row.video_shed = after["relay"].get("video_shed", 0)
                rows.append(row)
                print_row(row)
                if row.delivered < stop_below:
                    break
        for proc in procs:
            await proc.child.call("quit")
    finally:
        for child in [*reversed([p.child for p in procs]), *reversed(children)]:
            await child.stop()
    return rows


async def snapshot(http: aiohttp.ClientSession, url: str, publisher: Child,
                   procs: list[ViewerProcess]) -> dict[str, Any]:
    """Every process's counters, asked for at once so that they describe (nearly) the same instant."""

    async def relay_stats() -> Any:
        async with http.get(f"{url}/stats") as response:
            return await response.json()

    relay, published, *viewers = await asyncio.gather(
        relay_stats(), publisher.call("stats"), *(p.child.call("stats") for p in procs))
    return {"relay": relay, "publisher": published, "viewers": viewers}


def measure(mode: str, n: int, before: dict[str, Any], after: dict[str, Any], ttff: list[float]) -> Row:
    """One row from two snapshots. Delivery compares frame counts over the same window (not rates
    over each process's own clock): the one error left is a frame in flight at either end, 1/(30 x
    window) of delivery."""
    sent = after["publisher"]["sent"] - before["publisher"]["sent"]
    pub_rate = sent / (after["publisher"]["at"] - before["publisher"]["at"])
    relay_elapsed = after["relay"]["at"] - before["relay"]["at"]
    relay_cpu = (after["relay"]["cpu"] - before["relay"]["cpu"]) / relay_elapsed
    ratios: list[float] = []
    latencies: list[float] = []
    process_cpu: list[float] = []
    expected = received = probe_wire = probe_assembled = 0
    for b, a in zip(before["viewers"], after["viewers"], strict=True):
        elapsed = a["at"] - b["at"]
        process_cpu.append((a["cpu"] - b["cpu"]) / elapsed)
        ratios += [(va - vb) / sent for vb, va in zip(b["video"], a["video"], strict=True)]
        latencies += a["latency"]
        expected += a["expected"] - b["expected"]
        received += a["received"] - b["received"]
        for probe, wb, wa, vb, va in zip(a["probe"], b["wire"], a["wire"], b["video"], a["video"], strict=True):
            if probe:
                probe_wire += wa - wb
                probe_assembled += va - vb
    relay_sent = 0.0
    if "forwarded" in after["relay"]:
        forwarded_before, forwarded_after = before["relay"]["forwarded"], after["relay"]["forwarded"]
        frames = forwarded_after["video"]["frames"] - forwarded_before["video"]["frames"]
        relay_sent = frames / sent / n
    with_latency = bool(latencies) and mode != "mediarelay"  # MediaRelay's re-encode drops the trailer
    return Row(
        mode=mode, viewers=n, relay_cpu=relay_cpu,
        delivered=statistics.fmean(ratios), worst=min(ratios),
        lost=(expected - received) / expected if expected else 0.0, relay_sent=relay_sent,
        ttff_median=statistics.median(ttff) if ttff else 0.0,
        ttff_p95=percentile(ttff, 0.95) if ttff else 0.0,
        latency_median=statistics.median(latencies) if with_latency else None,
        latency_p95=percentile(latencies, 0.95) if with_latency else None,
        viewer_cpu=sum(process_cpu), viewer_cpu_max=max(process_cpu),
        keyframes=after["relay"].get("keyframes_sent", 0) - before["relay"].get("keyframes_sent", 0),
        load=os.getloadavg()[0],
        pub_rate=pub_rate,
        lag_p99=after["relay"].get("lag_p99", 0.0),
        shed=sum(after["relay"].get(k, 0) - before["relay"].get(k, 0) for k in ("stale", "overflows")),
        probe_wire=probe_wire, probe_assembled=probe_assembled,
    )


HEADER = (f"{'relay':<11} {'viewers':>7} {'cpu s/s':>8} {'cpu/viewer':>10} {'delivered':>9} {'worst':>6} "
          f"{'lost':>6} {'relay-sent':>10} {'ttff p50/p95 (s)':>17} {'g2g p50/p95 (ms)':>17} "
          f"{'viewer cpu':>10} {'max proc':>8} {'PLIs':>4} {'shed':>5} {'lag99 ms':>8} {'load':>5} {'refused':>7} "
          f"{'kf-only':>7}")


def print_row(row: Row) -> None:
    latency = (f"{row.latency_median * 1000:.0f} / {row.latency_p95 * 1000:.0f}"
               if row.latency_median is not None and row.latency_p95 is not None else "n/a")
    relay_sent = f"{row.relay_sent:.3f}" if row.relay_sent else "n/a"
    print(f"{row.mode:<11} {row.viewers:>7} {row.relay_cpu:>8.3f} {row.cpu_per_viewer * 100:>9.2f}% "
          f"{row.delivered * 100:>8.1f}% {row.worst * 100:>5.0f}% {row.lost * 100:>5.2f}% {relay_sent:>10} "
          f"{row.ttff_median:>7.2f} / {row.ttff_p95:<7.2f} {latency:>17} {row.viewer_cpu:>10.2f} "
          f"{row.viewer_cpu_max:>8.2f} {row.keyframes:>4} {row.shed:>5} {row.lag_p99 * 1000:>8.0f} "
          f"{row.load:>5.1f} {row.refused:>7} {row.video_shed:>7}", flush=True)


def slope(low: Row, high: Row) -> float:
    """Relay CPU (s/s) added per added viewer between two rows."""
    return (high.relay_cpu - low.relay_cpu) / (high.viewers - low.viewers)


def summarize(passthrough: list[Row], baseline: list[Row]) -> None:
    """The comparisons the bench exists for, each labeled with the rows it uses."""
    if not passthrough or not baseline:
        print("\nno comparison: a series has no row")
        return
    base = baseline[-1]
    ours = next((r for r in passthrough if r.viewers == base.viewers), None)
    held = [r for r in passthrough if r.delivered >= 0.99]
    print()
    if ours is None:
        print(f"(a) same N={base.viewers}: n/a (the passthrough series stopped before it)")
    else:
        print(f"(a) same N={base.viewers}: relay CPU per video frame delivered to one viewer: "
              f"MediaRelay {base.cpu_per_viewer_frame * 1e6:.0f} us, "
              f"passthrough {ours.cpu_per_viewer_frame * 1e6:.0f} us"
              f" -> {base.cpu_per_viewer_frame / ours.cpu_per_viewer_frame:.0f}x less "
              f"(per viewer: {base.cpu_per_viewer * 100:.2f}% vs {ours.cpu_per_viewer * 100:.2f}% of a core)")
    if len(baseline) >= 2 and len(held) >= 2:
        base_slope, our_slope = slope(baseline[0], baseline[-1]), slope(held[0], held[-1])
        ratio = f"{base_slope / our_slope:.0f}x less" if our_slope > 0 else "n/a (passthrough slope <= 0)"
        print(f"(b) marginal relay CPU per added viewer: MediaRelay {base_slope * 100:.2f}% of a core "
              f"(N={baseline[0].viewers}->{baseline[-1].viewers}), passthrough {our_slope * 100:.3f}% "
              f"(N={held[0].viewers}->{held[-1].viewers}, all >= 99% delivered) -> {ratio}")
    else:
        print("(b) marginal relay CPU per added viewer: n/a (needs two MediaRelay N and two passthrough N "
              "at >= 99% delivery)")
    if not held:
        print("(c) largest N at >= 99% delivery: none")
        return
    best = held[-1]
    latency = f", g2g p50 {best.latency_median * 1000:.0f} ms" if best.latency_median is not None else ""
    print(f"(c) largest N at >= 99% delivery: {best.viewers} viewers, relay CPU {best.relay_cpu:.2f} s/s{latency} "
          f"({best.viewers / max(best.relay_cpu, 1e-9):.0f} viewers per core of relay CPU); "
          f"MediaRelay per viewer / passthrough per viewer there: "
          f"{base.cpu_per_viewer_frame / best.cpu_per_viewer_frame:.0f}x (CPU per delivered viewer-frame)")
    wire = sum(r.probe_wire for r in passthrough)
    assembled = sum(r.probe_assembled for r in passthrough)
    print(f"# check: passthrough probes counted {wire} video frames from RTP headers and assembled "
          f"{assembled} from decrypted packets ({assembled / max(wire, 1) * 100:.1f}%); "
          f"viewer processes at N={best.viewers}: {best.viewer_cpu / best.viewers * 100:.2f}% of a core "
          f"per viewer, busiest process {best.viewer_cpu_max:.2f} s/s")


async def orchestrate(args: argparse.Namespace) -> None:
    baseline_ns = args.baseline_viewers
    if args.series:
        series, window = args.series, args.window
    elif args.quick:
        series, window = [3, 10, 50, 100, 200, 300], 6.0
    else:
        series = [4, 10, 25, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 800, 1000]
        window = args.window
    series = sorted({baseline_ns[-1], *(n for n in series if n <= args.max)})
    settings = ViewerSettings(args.viewers_per_process, args.probes_per_process, args.viewer_poll_ms,
                              args.viewer_nice)
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
          f"{settings.per_process} viewers per process, {settings.probes} of them probes, "
          f"sockets polled every {settings.poll_ms:g} ms, viewer processes at nice {settings.nice}", flush=True)
    print(HEADER, flush=True)
    relay_args: tuple[str, ...] = ("--wire", args.wire, "--relay-loop", args.relay_loop,
                                   *(("--overload",) if args.overload else ()))
    stop_below = 0.0 if args.keep_going or args.overload else 0.99
    group = None
    if args.relay_cpu_quota:
        from bench.cpu_quota import make_group, remove

        group = make_group(args.relay_cpu_quota, f"soulseer-bench-{os.getpid()}")
        relay_args = (*relay_args, "--cgroup", str(group))
        print(f"# the passthrough relay is confined to {args.relay_cpu_quota:g} of a core ({group})", flush=True)
    try:
        passthrough = await run_mode("passthrough", series, window, stop_below, settings, relay_args)
    finally:
        if group is not None:
            remove(group)
    if args.overload:
        held = [r for r in passthrough if r.delivered >= 0.99]
        refusing = [r for r in passthrough if r.refused]
        print(f"\n(overload) admitted viewers kept >= 99% delivery at {len(held)} of {len(passthrough)} steps; "
              f"first refusal at N={refusing[0].viewers + refusing[0].refused if refusing else 'none'}; "
              f"publisher rate {min((r.pub_rate for r in passthrough), default=0):.1f}-"
              f"{max((r.pub_rate for r in passthrough), default=0):.1f} frames/s")
        return
    queued = await run_mode("queued", series, window, 0.99, settings) if args.queued else []
    baseline = await run_mode("mediarelay", baseline_ns, window, 0.0, settings)
    summarize(passthrough, baseline)
    if queued:
        compare_send_paths(passthrough, queued)


def compare_send_paths(direct: list[Row], queued: list[Row]) -> None:
    """The relay's direct send path against aiortc's per-sender loop, in the same run."""
    for name, rows in (("direct (relay/outlet.py)", direct), ("queued (aiortc's sender loop)", queued)):
        held = [r for r in rows if r.delivered >= 0.99]
        if len(held) < 2:
            print(f"(d) {name}: fewer than two N at >= 99% delivery")
            continue
        best = held[-1]
        print(f"(d) {name}: marginal {slope(held[0], best) * 100:.3f}% of a core per added viewer "
              f"(N={held[0].viewers}->{best.viewers}); largest N at >= 99% delivery {best.viewers} "
              f"at {best.relay_cpu:.2f} s/s ({best.viewers / max(best.relay_cpu, 1e-9):.0f} viewers per core)")


def counts(text: str) -> list[int]:
    """A comma-separated list of viewer counts, sorted, without repeats."""
    values = sorted({int(n) for n in text.split(",")})
    if not values or values[0] < 1:
        raise ValueError(text)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short series and windows (2-3 minutes)")
    parser.add_argument("--max", type=int, default=500, help="largest number of viewers to try")
    parser.add_argument("--series", type=counts, help="comma-separated viewer counts to measure instead of the "
                        "default series (still capped by --max)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured at each N")
    parser.add_argument("--baseline-viewers", type=counts, default=[2, 4],
                        help="comma-separated viewer counts for the MediaRelay baseline (two give its slope)")
    parser.add_argument("--viewers-per-process", type=int, default=50, help="viewers in one viewer process")
    parser.add_argument("--probes-per-process", type=int, default=1,
                        help="of those, full (decrypting) viewers that measure latency")
    parser.add_argument("--viewer-poll-ms", type=float, default=1.0,
                        help="viewer processes poll their sockets at most this often; 0 wakes them on every "
                             "packet, which on loopback the relay pays for in its send calls")
    parser.add_argument("--queued", action="store_true",
                        help="also run the relay with direct_send=False (aiortc's sender loop), for comparison")
    parser.add_argument("--viewer-nice", type=int, default=10,
                        help="niceness of the viewer processes (0: compete with the relay for the CPU as equals)")
    parser.add_argument("--relay-loop", choices=["asyncio", "uvloop"], default="asyncio",
                        help="the relay process's event loop")
    parser.add_argument("--wire", choices=["compiled", "python"], default="compiled",
                        help="the relay's direct-path writer (relay/wire.py)")
    parser.add_argument("--overload", action="store_true",
                        help="run the relay with soulseer serve's overload defences (loop-lag admission, shedding) "
                             "and keep adding viewers past its capacity: refused viewers are counted, admitted ones "
                             "must keep >= 99%% delivery (implies --keep-going; no MediaRelay baseline)")
    parser.add_argument("--keep-going", action="store_true",
                        help="continue the series up to --max even below 99%% delivery (to see CPU cost)")
    parser.add_argument("--role", choices=["relay", "publisher", "viewers"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="passthrough", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--relay", help=argparse.SUPPRESS)
    parser.add_argument("--relay-cpu-quota", type=float, default=0.0,
                        help="confine the relay process to this many cores (a cgroup CPU quota, as a container's "
                             "CPU limit; needs root): its knee then comes before the load generator's")
    parser.add_argument("--cgroup", help=argparse.SUPPRESS)  # the relay role joins this cgroup first
    parser.add_argument("--pull-from", help=argparse.SUPPRESS)  # a relay that is an edge of this origin
    parser.add_argument("--prefix", default="v", help=argparse.SUPPRESS)
    parser.add_argument("--probes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--poll-ms", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--nice", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "relay":
        from bench.fanout_relay_process import serve

        if args.relay_loop == "uvloop":
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        if args.cgroup:
            from bench.cpu_quota import join

            join(Path(args.cgroup))  # before the relay exists: it reads its CPU budget when it is made
        asyncio.run(serve(args.mode, args.port, args.wire, args.overload, args.pull_from))
    elif args.role == "publisher":
        from bench.fanout_peers import run_publisher

        asyncio.run(run_publisher(args.relay))
    elif args.role == "viewers":
        from bench.fanout_peers import paced_loop, run_viewers

        os.nice(args.nice)
        with asyncio.Runner(loop_factory=lambda: paced_loop(args.poll_ms / 1000)) as runner:
            runner.run(run_viewers(args.relay, args.prefix, args.probes))
    else:
        started = time.monotonic()
        asyncio.run(orchestrate(args))
        print(f"# done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
