"""Fan-out benchmark: one publisher, N viewers, the relay's CPU measured alone in its own process.

One synthetic publisher (640x480 30 fps VP8 ~1 Mbps + Opus, pre-encoded and replayed) and viewers
in separate processes (bench/fanout_peers.py), the relay in its own (bench/fanout_relay.py). For
each N in a rising series it prints the relay's CPU seconds per second, CPU per viewer, frames
delivered per frame sent, viewers' time to first frame and glass-to-glass latency (publisher send
-> viewer frame complete, on one machine-wide monotonic clock). It stops where delivery falls
below 99% or at ``--max``. In the same run, aiortc's MediaRelay (decode once, re-encode per viewer)
carries a small N as the baseline, and the CPU-per-viewer ratio is printed.

    python bench/relay_fanout.py --quick      # < 2 minutes
    python bench/relay_fanout.py --max 400    # the full series
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
VIEWERS_PER_PROCESS = 25


class Child:
    """A benchmark role in its own process, driven by JSON lines on its stdio."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name

    @classmethod
    async def start(cls, name: str, *args: str) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), *args, cwd=ROOT,
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
    delivered: float  # frames received per frame sent, over all viewers
    worst: float  # the worst viewer's delivery
    relay_sent: float  # frames the relay's senders packed, per frame sent, per viewer
    ttff_median: float
    ttff_p95: float
    latency_median: float | None
    latency_p95: float | None
    viewer_cpu: float
    keyframes: int
    load: float  # the machine's 1-minute load average at the end of the window
    shed: int  # frames the relay dropped in the window: stale (backlog) + subscriber queue overflows
    lag_p99: float  # the relay's event-loop wake-up delay, 99th percentile over the window

    pub_rate: float  # video frames per second the publisher sent

    @property
    def cpu_per_viewer(self) -> float:
        return self.relay_cpu / self.viewers

    @property
    def cpu_per_viewer_frame(self) -> float:
        """Relay CPU seconds per video frame delivered to one viewer: fair to a relay that drops."""
        return self.relay_cpu / (self.viewers * self.pub_rate * max(self.delivered, 1e-9))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_mode(mode: str, series: list[int], window: float, stop_below: float) -> list[Row]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    relay = await Child.start("relay", "--role", "relay", "--mode", mode, "--port", str(port))
    children = [relay]
    rows: list[Row] = []
    try:
        await relay.read()
        publisher = await Child.start("publisher", "--role", "publisher", "--relay", url)
        children.append(publisher)
        hello = await publisher.read()
        print(f"# {mode}: publisher sends {hello['video_bitrate'] / 1e6:.2f} Mbps VP8 + Opus", flush=True)
        viewer_procs: list[tuple[Child, int]] = []
        total = 0
        async with aiohttp.ClientSession() as http:
            for n in series:
                ttff: list[float] = []
                while total < n:
                    if not viewer_procs or viewer_procs[-1][1] >= VIEWERS_PER_PROCESS:
                        child = await Child.start("viewers", "--role", "viewers", "--relay", url,
                                                  "--prefix", f"v{len(viewer_procs)}")
                        await child.read()
                        children.append(child)
                        viewer_procs.append((child, 0))
                    child, held = viewer_procs[-1]
                    count = min(n - total, VIEWERS_PER_PROCESS - held)
                    ttff += (await child.call("add", count=count))["ttff"]
                    viewer_procs[-1] = (child, held + count)
                    total += count
                await asyncio.sleep(2.0)  # let joins' keyframes settle
                before = await snapshot(http, url, publisher, viewer_procs)
                await asyncio.sleep(window)
                after = await snapshot(http, url, publisher, viewer_procs)
                row = measure(mode, n, before, after, ttff)
                rows.append(row)
                print_row(row)
                if row.delivered < stop_below:
                    break
        for child, _ in viewer_procs:
            await child.call("quit")
    finally:
        for child in reversed(children):
            await child.stop()
    return rows


async def snapshot(http: aiohttp.ClientSession, url: str, publisher: Child,
                   viewer_procs: list[tuple[Child, int]]) -> dict[str, Any]:
    async with http.get(f"{url}/stats") as response:
        relay = await response.json()
    viewers = [await child.call("stats") for child, _ in viewer_procs]
    return {"relay": relay, "publisher": await publisher.call("stats"), "viewers": viewers}


def measure(mode: str, n: int, before: dict[str, Any], after: dict[str, Any], ttff: list[float]) -> Row:
    pub_rate = (after["publisher"]["sent"] - before["publisher"]["sent"]) / (
        after["publisher"]["at"] - before["publisher"]["at"])
    relay_elapsed = after["relay"]["at"] - before["relay"]["at"]
    relay_cpu = (after["relay"]["cpu"] - before["relay"]["cpu"]) / relay_elapsed
    ratios: list[float] = []
    latencies: list[float] = []
    viewer_cpu = 0.0
    for b, a in zip(before["viewers"], after["viewers"], strict=True):
        elapsed = a["at"] - b["at"]
        viewer_cpu += (a["cpu"] - b["cpu"]) / elapsed
        ratios += [(va - vb) / elapsed / pub_rate for vb, va in zip(b["video"], a["video"], strict=False)]
        latencies += a["latency"]
    relay_sent = 0.0
    if "forwarded" in after["relay"]:
        forwarded_before, forwarded_after = before["relay"]["forwarded"], after["relay"]["forwarded"]
        frames = forwarded_after["video"]["frames"] - forwarded_before["video"]["frames"]
        relay_sent = frames / relay_elapsed / pub_rate / n
    return Row(
        mode=mode, viewers=n, relay_cpu=relay_cpu,
        delivered=statistics.fmean(ratios), worst=min(ratios), relay_sent=relay_sent,
        ttff_median=statistics.median(ttff) if ttff else 0.0,
        ttff_p95=percentile(ttff, 0.95) if ttff else 0.0,
        latency_median=statistics.median(latencies) if latencies and mode == "passthrough" else None,
        latency_p95=percentile(latencies, 0.95) if latencies and mode == "passthrough" else None,
        viewer_cpu=viewer_cpu,
        keyframes=after["relay"].get("keyframes_sent", 0) - before["relay"].get("keyframes_sent", 0),
        load=os.getloadavg()[0],
        pub_rate=pub_rate,
        lag_p99=after["relay"].get("lag_p99", 0.0),
        shed=sum(after["relay"].get(k, 0) - before["relay"].get(k, 0) for k in ("stale", "overflows")),
    )


HEADER = (f"{'relay':<11} {'viewers':>7} {'cpu s/s':>8} {'cpu/viewer':>10} {'delivered':>9} {'worst':>6} "
          f"{'relay-sent':>10} {'ttff p50/p95 (s)':>17} {'g2g p50/p95 (ms)':>17} {'viewer cpu':>10} "
          f"{'PLIs':>4} {'shed':>5} {'lag99 ms':>8} {'load':>5}")


def print_row(row: Row) -> None:
    latency = (f"{row.latency_median * 1000:.0f} / {row.latency_p95 * 1000:.0f}"
               if row.latency_median is not None and row.latency_p95 is not None else "n/a")
    relay_sent = f"{row.relay_sent:.3f}" if row.relay_sent else "n/a"
    print(f"{row.mode:<11} {row.viewers:>7} {row.relay_cpu:>8.3f} {row.cpu_per_viewer * 100:>9.2f}% "
          f"{row.delivered * 100:>8.1f}% {row.worst * 100:>5.0f}% {relay_sent:>10} "
          f"{row.ttff_median:>7.2f} / {row.ttff_p95:<7.2f} {latency:>17} {row.viewer_cpu:>10.2f} "
          f"{row.keyframes:>4} {row.shed:>5} {row.lag_p99 * 1000:>8.0f} {row.load:>5.1f}",
          flush=True)


async def orchestrate(args: argparse.Namespace) -> None:
    if args.quick:
        series, window, baseline_n = [3, 10, 50, 100], 4.0, 3
    else:
        series = [4, 10, 25, 50, 100, 150, 200, 250, 300, 400, 500, 600]
        window, baseline_n = args.window, args.baseline_viewers
    series = sorted({baseline_n, *(n for n in series if n <= args.max)})
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    print(HEADER, flush=True)
    passthrough = await run_mode("passthrough", series, window, 0.0 if args.keep_going else 0.99)
    baseline = await run_mode("mediarelay", [baseline_n], window, 0.0)
    same_n = next(r for r in passthrough if r.viewers == baseline_n)
    held = [r for r in passthrough if r.delivered >= 0.99]
    best = held[-1] if held else passthrough[0]
    print()
    base, ours = baseline[0].cpu_per_viewer_frame, same_n.cpu_per_viewer_frame
    print(f"baseline at N={baseline_n}: relay CPU per video frame delivered to one viewer: "
          f"MediaRelay {base * 1e6:.0f} us, passthrough {ours * 1e6:.0f} us -> {base / ours:.0f}x less "
          f"(per viewer: {baseline[0].cpu_per_viewer * 100:.2f}% vs "
          f"{same_n.cpu_per_viewer * 100:.2f}% of a core)")
    print(f"largest N at >= 99% delivery: {best.viewers} viewers, relay CPU {best.relay_cpu:.2f} s/s "
          f"({best.viewers / max(best.relay_cpu, 1e-9):.0f} viewers per core of relay CPU); "
          f"MediaRelay per viewer / passthrough per viewer there: "
          f"{base / best.cpu_per_viewer_frame:.0f}x (CPU per delivered viewer-frame)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short series and windows (< 2 minutes)")
    parser.add_argument("--max", type=int, default=400, help="largest number of viewers to try")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured at each N")
    parser.add_argument("--baseline-viewers", type=int, default=4, help="viewers for the MediaRelay baseline")
    parser.add_argument("--keep-going", action="store_true",
                        help="continue the series up to --max even below 99%% delivery (to see CPU cost)")
    parser.add_argument("--role", choices=["relay", "publisher", "viewers"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="passthrough", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--relay", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="v", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "relay":
        from bench.fanout_relay import serve

        asyncio.run(serve(args.mode, args.port))
    elif args.role == "publisher":
        from bench.fanout_peers import run_publisher

        asyncio.run(run_publisher(args.relay))
    elif args.role == "viewers":
        from bench.fanout_peers import run_viewers

        asyncio.run(run_viewers(args.relay, args.prefix))
    else:
        started = time.monotonic()
        asyncio.run(orchestrate(args))
        print(f"# done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
