"""One stream on one relay against the same stream on two (an origin and an edge pulling it once), in one run.

The publisher, the lite viewers and the probes are bench/fanout.py's (each role in its own process, the relay's
CPU measured alone by ``getrusage`` in its process). For each N in a rising series: first one relay process (the
origin) serves all N viewers; then two, the origin and an edge that pulls the stream once from it
(relay/upstream.py, the server-to-server peer connection), with the viewers split between them. Printed per relay:
CPU (s/s) and CPU per viewer, delivery mean/min, glass-to-glass p50/p95 (on the origin, and through the edge:
what the extra hop costs), join-to-first-frame; and the viewer processes' CPU, the load generator's share. A
series stops where delivery falls below 99%.

Then *late joiners*: viewers joining one at a time, first on the origin alone, then on the edge alone, each at a
random moment (a pause of 0.05-1.5 s after the previous one has its first frame), so that some find a recent
keyframe to start from (the relay's cache of the latest keyframe and the frames since, up to 1 s) and some need a
new one (the keyframe throttles, once per hop, in play). Their join-to-first-frame on the origin against the edge
is what a viewer on an edge pays for the hop.

On a 2-core machine the viewers cost about as much CPU as the relay, so the machine may cap both runs before
either relay is at a core: the relay CPU per viewer on each node is the number that carries over to k nodes on k
machines (docs/cluster.md, "Streams across nodes").

    python bench/cluster_fanout.py --series 20,60,100 --window 6
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cpu_quota import make_group, remove
from bench.fanout import (
    Child,
    Row,
    ViewerProcess,
    ViewerSettings,
    add_viewers,
    counts,
    free_port,
    measure,
    percentile,
)


async def relay_stats(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(f"{url}/stats") as response:
        return await response.json()


async def snapshot(http: aiohttp.ClientSession, urls: list[str], publisher: Child,
                   procs: list[list[ViewerProcess]]) -> list[dict[str, Any]]:
    """Every process's counters at (nearly) one instant: per relay, its stats and its viewers'."""
    relays = await asyncio.gather(*(relay_stats(http, url) for url in urls))
    published = await publisher.call("stats")
    viewers = await asyncio.gather(*(asyncio.gather(*(p.child.call("stats") for p in group)) for group in procs))
    return [{"relay": relay, "publisher": published, "viewers": list(group)}
            for relay, group in zip(relays, viewers, strict=True)]


async def late_joiners(urls: list[str], procs: list[list[ViewerProcess]], count: int,
                       settings: ViewerSettings, rng: random.Random) -> list[list[float]]:
    """``count`` viewers joining one at a time on each relay in turn; their times to first frame per relay."""
    times: list[list[float]] = []
    for index, url in enumerate(urls):
        times.append([])
        for _ in range(count):
            await asyncio.sleep(rng.uniform(0.05, 1.5))
            times[index] += await add_viewers(url, procs[index], 1, settings)
    return times


def print_late(nodes: int, times: list[list[float]]) -> None:
    for index, ttff in enumerate(times):
        if ttff:
            print(f"# late joiners, {nodes} node(s), {'origin' if index == 0 else 'edge'}: {len(ttff)} joined, "
                  f"ttff p50 {statistics.median(ttff):.3f} s, p95 {percentile(ttff, 0.95):.3f} s, "
                  f"max {max(ttff):.3f} s", flush=True)


async def run(nodes: int, series: list[int], window: float, settings: ViewerSettings,
              late: int = 0, seed: int = 1, quota: float = 0.0) -> list[list[Row]]:
    """Rows per N, one per relay (origin first); then ``late`` late joiners per relay (printed). ``quota``: each
    relay confined to that many cores (bench/cpu_quota.py), as if each had a machine of its own that small."""
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(nodes)]
    groups = [make_group(quota, f"soulseer-bench-{os.getpid()}-{nodes}-{i}") for i in range(nodes)] if quota else []
    confine = [("--cgroup", str(group)) for group in groups] or [() for _ in urls]
    children: list[Child] = []
    procs: list[list[ViewerProcess]] = [[] for _ in urls]
    results: list[list[Row]] = []
    try:
        origin = await Child.start("origin", "--role", "relay", "--port", urls[0].rsplit(":", 1)[1], *confine[0])
        children.append(origin)
        await origin.read()
        for url, confined in zip(urls[1:], confine[1:], strict=True):
            edge = await Child.start("edge", "--role", "relay", "--port", url.rsplit(":", 1)[1],
                                     "--pull-from", urls[0], *confined)
            children.append(edge)
            await edge.read()
        publisher = await Child.start("publisher", "--role", "publisher", "--relay", urls[0])
        children.append(publisher)
        await publisher.read()
        async with aiohttp.ClientSession() as http:
            for n in series:
                shares = [n // nodes + (1 if i < n % nodes else 0) for i in range(nodes)]
                ttff: list[list[float]] = []
                for url, group, share in zip(urls, procs, shares, strict=True):
                    have = sum(p.viewers for p in group)
                    ttff.append(await add_viewers(url, group, share - have, settings) if share > have else [])
                await asyncio.sleep(2.0)
                before = await snapshot(http, urls, publisher, procs)
                await asyncio.sleep(window)
                after = await snapshot(http, urls, publisher, procs)
                rows = [measure("origin" if i == 0 else "edge", sum(p.viewers for p in procs[i]), b, a, ttff[i])
                        for i, (b, a) in enumerate(zip(before, after, strict=True))]
                results.append(rows)
                for row in rows:
                    print_row(nodes, n, row)
                if min(r.delivered for r in rows) < 0.99:
                    break
            if late:
                print_late(nodes, await late_joiners(urls, procs, late, settings, random.Random(seed)))
        for group in procs:
            for proc in group:
                await proc.child.call("quit")
    finally:
        for child in [*(p.child for g in procs for p in g), *reversed(children)]:
            await child.stop()
        for group in groups:
            remove(group)
    return results


HEADER = (f"{'nodes':>5} {'N':>5} {'relay':<6} {'viewers':>7} {'cpu s/s':>8} {'cpu/viewer':>10} {'delivered':>9} "
          f"{'worst':>6} {'g2g p50/p95 ms':>15} {'ttff p50/p95 s':>15} {'viewer cpu':>10} {'load':>5}")


def print_row(nodes: int, n: int, row: Row) -> None:
    latency = (f"{row.latency_median * 1000:.0f} / {row.latency_p95 * 1000:.0f}"
               if row.latency_median is not None and row.latency_p95 is not None else "n/a")
    per_viewer = f"{row.cpu_per_viewer * 100:.2f}%" if row.viewers else "n/a"
    print(f"{nodes:>5} {n:>5} {row.mode:<6} {row.viewers:>7} {row.relay_cpu:>8.3f} {per_viewer:>10} "
          f"{row.delivered * 100:>8.1f}% {row.worst * 100:>5.0f}% {latency:>15} "
          f"{row.ttff_median:>6.2f} / {row.ttff_p95:<6.2f} {row.viewer_cpu:>10.2f} {row.load:>5.1f}", flush=True)


def summarize(one: list[list[Row]], two: list[list[Row]]) -> None:
    held_one = [rows[0].viewers for rows in one if rows[0].delivered >= 0.99]
    held_two = [sum(r.viewers for r in rows) for rows in two if min(r.delivered for r in rows) >= 0.99]
    print()
    for rows in two:
        origin, edge = rows
        total = origin.relay_cpu + edge.relay_cpu
        hop = (f"{(edge.latency_median - origin.latency_median) * 1000:+.1f} ms at p50"
               if edge.latency_median is not None and origin.latency_median is not None else "n/a")
        print(f"N={origin.viewers + edge.viewers}: relay CPU split origin/edge "
              f"{origin.relay_cpu / max(total, 1e-9) * 100:.0f}/{edge.relay_cpu / max(total, 1e-9) * 100:.0f}; "
              f"the hop adds {hop}; the origin's CPU per subscriber (its viewers and the pull) "
              f"{origin.relay_cpu / (origin.viewers + 1) * 100:.2f}% of a core, the edge's per viewer "
              f"{edge.cpu_per_viewer * 100:.2f}%; load generator {origin.viewer_cpu + edge.viewer_cpu:.2f} s/s "
              f"against the relays' {total:.2f} s/s")
    if held_one and held_two:
        print(f"viewers held at >= 99% delivery: 1 node {max(held_one)}, 2 nodes {max(held_two)} "
              f"-> ratio {max(held_two) / max(held_one):.2f} (on one machine: the load generator shares its cores)")
    else:
        print("viewers held at >= 99% delivery: n/a (a series had no such step)")


async def orchestrate(args: argparse.Namespace) -> None:
    settings = ViewerSettings(args.viewers_per_process, 1, args.viewer_poll_ms, args.viewer_nice)
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    if args.relay_cpu_quota:
        print(f"# each relay confined to {args.relay_cpu_quota:g} of a core (a machine of its own that small)",
              flush=True)
    print(HEADER, flush=True)
    one = await run(1, args.series, args.window, settings, args.late_joiners, args.seed, args.relay_cpu_quota)
    two = await run(2, args.series, args.window, settings, args.late_joiners, args.seed, args.relay_cpu_quota)
    summarize(one, two)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=counts, default=[20, 60, 100, 160, 240],
                        help="comma-separated viewer counts (all viewers, split between the nodes)")
    parser.add_argument("--window", type=float, default=8.0, help="seconds measured at each N")
    parser.add_argument("--viewers-per-process", type=int, default=50)
    parser.add_argument("--viewer-poll-ms", type=float, default=1.0)
    parser.add_argument("--viewer-nice", type=int, default=10)
    parser.add_argument("--late-joiners", type=int, default=20,
                        help="viewers joining one at a time on each relay after the series (0: none)")
    parser.add_argument("--relay-cpu-quota", type=float, default=0.0,
                        help="confine each relay to this many cores (a cgroup CPU quota; needs root), so that the "
                             "relays, not the load generator sharing their machine, reach their limit first")
    parser.add_argument("--seed", type=int, default=1, help="the late joiners' random pauses")
    args = parser.parse_args()
    started = time.monotonic()
    asyncio.run(orchestrate(args))
    print(f"# done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
