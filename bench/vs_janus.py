"""SoulSeer against Janus, side by side: the same publisher and the same viewers on both, only the signaling differs.

SoulSeer is ``soulseer serve`` reached through its stream contract (a reader publishes on a live stream, viewers
join it over ``/ws``); Janus is Debian's ``janus`` (1.1.2) with only its VideoRoom plugin and its HTTP transport on
loopback, ``event_loops`` = the machine's cores, configured by this bench in a temporary folder. The publisher is
bench/fanout_peers.py's (640x480 30 fps VP8 ~0.9 Mbps + Opus, pre-encoded and replayed) and so are the viewers (lite
viewers counting RTP on the wire, one decrypting probe per viewer process measuring glass-to-glass latency), run in
their own processes at ``--viewer-nice``. Janus never gathers candidates on loopback, so both servers' media use the
machine's own address (aioice never gathers 127.0.0.1 either).

For each N of a rising series, the two systems take turns (the order alternates at each N): a fresh publisher and N
fresh viewers join, the bench waits 2 s, then measures ``--window`` seconds: the server process's CPU (``/proc``:
user + system, all threads) and CPU per viewer, frames delivered per frame sent (mean over viewers, and the worst),
glass-to-glass p50/p95, join-to-first-frame p50/p95 (answer applied -> first complete video frame), the server's
resident memory and its growth per viewer over the idle server, and viewers refused. Then everything leaves and the
server is given time to go idle. After the table: the per-viewer CPU ratio SoulSeer / Janus at each N, and each
system's largest N at >= 99% delivery.

    python bench/vs_janus.py --series 50,100,200 --window 10      # a short run
    python bench/vs_janus.py                                       # 50..600 viewers

Needs Debian's Janus (``apt-get install janus``; the bench installs nothing and says so when it is missing) and a
PostgreSQL server for ``soulseer serve`` (``--postgres-url``, default ``$TEST_DATABASE_URL``; a database is created
and dropped). Everything runs on this machine: HTTP on 127.0.0.1, media on the machine's own address.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import (  # noqa: E402
    Child,
    Row,
    ViewerProcess,
    ViewerSettings,
    counts,
    free_port,
    measure,
)

SCRIPT = Path(__file__).resolve()
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
JANUS_ROOM = 1234


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_rss(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def host_address() -> str:
    """The machine's own (non-loopback) IPv4 address, as aioice gathers it."""
    from aioice.ice import get_host_addresses

    addresses = get_host_addresses(use_ipv4=True, use_ipv6=False)
    if not addresses:
        raise SystemExit("vs_janus: this machine has no non-loopback IPv4 address to put media on")
    return str(addresses[0])


@dataclass
class Result:
    system: str
    row: Row
    admitted: int
    refused: int
    rss: float  # MB, at the end of the window
    rss_idle: float  # MB, before the publisher joined

    @property
    def mb_per_viewer(self) -> float:
        return (self.rss - self.rss_idle) / max(self.admitted, 1)


class Server:
    """One system under test: its process, how a publisher and viewers reach it, and how they leave."""

    name = ""
    pid = 0

    def publisher_args(self) -> list[str]:
        raise NotImplementedError

    def viewer_args(self, tokens: list[str]) -> list[str]:
        raise NotImplementedError

    async def prepare(self) -> None:
        """Before a publisher joins (a new stream, a room)."""

    async def finish(self) -> None:
        """After everyone left."""

    async def stop(self) -> None:
        raise NotImplementedError

    async def restart(self) -> None:
        """A fresh process, with what the run set up (accounts, a room) kept."""
        raise NotImplementedError


class SoulSeer(Server):
    name = "soulseer"

    def __init__(self, postgres_url: str, cpu_limit: bool = False) -> None:
        from bench.scratch import database_url  # the app's side only: viewer processes never import it

        self._admin_url = postgres_url
        self._cpu_limit = cpu_limit
        self.db_name = f"soulseer_vs_janus_{uuid.uuid4().hex[:8]}"
        self.db_url = database_url(postgres_url, self.db_name)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.tokens: list[str] = []
        self.stream_id = ""

    async def start(self, viewers: int) -> None:
        import asyncpg
        from argon2 import PasswordHasher

        from api.accounts.auth import start_login
        from api.accounts.login import insert_account
        from bench.scratch import create_database

        await create_database(self._admin_url, self.db_name, migrated=False)
        await self._start_process()
        password_hash = PasswordHasher().hash("bench password, not a secret")
        conn = await asyncpg.connect(self.db_url)
        try:
            for i in range(viewers + 1):
                role = "reader" if i == 0 else "client"
                async with conn.transaction():
                    account = await insert_account(conn, f"{uuid.uuid4().hex}@bench.test", password_hash,
                                                   f"bench {i}", role)
                    token, _ = await start_login(conn, str(account["id"]), user_agent="bench", address=None)
                self.tokens.append(token)
        finally:
            await conn.close()

    async def _start_process(self) -> None:
        import aiohttp

        env = {**os.environ, "DATABASE_URL": self.db_url, "SOULSEER_PORT": str(self.port),
               "SOULSEER_LOG_LEVEL": "WARNING", "SOULSEER_MAX_PARTICIPANTS": "5000",
               "SOULSEER_MAX_VIEWERS_PER_STREAM": "5000", "PYTHONPATH": str(ROOT),
               # Every bench viewer comes from 127.0.0.1: the per-address limits are for the internet.
               "SOULSEER_STREAM_PARTICIPANTS_PER_ADDRESS": "100000", "SOULSEER_SOCKETS_PER_ADDRESS": "100000"}
        if not self._cpu_limit:
            # serve's process-wide CPU sampler (1 s) trips on the bench's join bursts (dozens of DTLS
            # handshakes at once) at a third of a core of steady load; admission by loop lag stays on.
            env["SOULSEER_MAX_RELAY_CPU_PERCENT"] = "0"
        self.log = open(f"/tmp/{self.db_name}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from api.cli import main; sys.exit(main(['serve']))"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log)
        self.pid = self.process.pid
        async with aiohttp.ClientSession(self.base) as http:
            for _ in range(600):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get("/readyz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"soulseer serve did not become ready (see {self.log.name})")

    async def prepare(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession(self.base) as http, http.post(
            "/api/streams", json={"title": "vs janus"}, headers={"Authorization": f"Bearer {self.tokens[0]}"}
        ) as resp:
            body = await resp.json()
            if resp.status != 201:
                raise RuntimeError(f"soulseer: could not start a stream: {body}")
            self.stream_id = body["stream"]["id"]

    async def finish(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession(self.base) as http, http.post(
            f"/api/streams/{self.stream_id}/end", headers={"Authorization": f"Bearer {self.tokens[0]}"}
        ):
            pass

    def publisher_args(self) -> list[str]:
        # --tokens=...: a token may start with "-", which argparse would take for an option.
        return ["--system", "soulseer", "--base", self.base, "--stream", self.stream_id, f"--tokens={self.tokens[0]}"]

    def viewer_args(self, tokens: list[str]) -> list[str]:
        return ["--system", "soulseer", "--base", self.base, "--stream", self.stream_id, f"--tokens={','.join(tokens)}"]

    async def stop(self) -> None:
        from bench.scratch import drop_database

        self._stop_process()
        await drop_database(self._admin_url, self.db_name)

    async def restart(self) -> None:
        self._stop_process()
        await self._start_process()

    def _stop_process(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Janus(Server):
    name = "janus"

    def __init__(self, binary: str, address: str, event_loops: int) -> None:

        self.binary = binary
        self.address = address
        self.event_loops = event_loops
        self._configure()

    def _configure(self) -> None:
        """A new folder, configuration and port (the previous process's are gone with it)."""
        from bench.stream_signals import janus_config

        self.folder = tempfile.mkdtemp(prefix="vs-janus-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/janus"
        self.config = janus_config(self.folder, port=self.port, address=self.address, event_loops=self.event_loops)
        self.feed = 0

    async def start(self) -> None:
        import aiohttp

        self.log = open(f"{self.folder}/janus.log", "wb")
        self.process = subprocess.Popen([self.binary, "-C", self.config, "-F", self.folder, "-N"],
                                        stdout=self.log, stderr=subprocess.STDOUT, cwd=self.folder)
        self.pid = self.process.pid
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.base}/info") as resp:
                        if resp.status == 200:
                            break
                if self.process.poll() is not None:
                    raise RuntimeError(f"janus exited ({self.process.returncode}); see {self.log.name}")
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"janus did not answer on {self.base} (see {self.log.name})")
        from bench.stream_signals import JanusSignal

        signal_ = JanusSignal(self.base, JANUS_ROOM)
        await signal_.create_room()
        await signal_.close()

    def publisher_args(self) -> list[str]:
        return ["--system", "janus", "--base", self.base]

    def viewer_args(self, tokens: list[str]) -> list[str]:
        return ["--system", "janus", "--base", self.base, "--feed", str(self.feed)]

    async def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    async def restart(self) -> None:
        await self.stop()
        self._configure()
        await self.start()


async def wait_idle(pid: int, limit: float = 0.05, timeout: float = 30.0) -> None:
    """Until the process uses under ``limit`` s/s of CPU over a second (everyone has left), at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = process_cpu(pid)
        await asyncio.sleep(1.0)
        if process_cpu(pid) - before < limit:
            return


async def run_one(server: Server, n: int, window: float, settings: ViewerSettings, tokens: list[str]) -> Result | None:
    """A fresh publisher and ``n`` fresh viewers on ``server``; one measured window."""
    await server.prepare()
    rss_idle = process_rss(server.pid)
    publisher = await Child.start("publisher", "--role", "publisher", *server.publisher_args(), script=SCRIPT)
    procs: list[ViewerProcess] = []
    try:
        hello = await publisher.read()
        if isinstance(hello, dict) and "feed" in hello:  # Janus's publisher id, before the ready line
            assert isinstance(server, Janus)
            server.feed = int(hello["feed"])
            await publisher.read()
        per_process = settings.per_process
        takes = [min(per_process, n - start) for start in range(0, n, per_process)]
        children = await asyncio.gather(*(Child.start(
            "viewers", "--role", "viewers", "--prefix", f"v{i}", "--probes", str(settings.probes),
            "--poll-ms", str(settings.poll_ms), "--nice", str(settings.nice),
            *server.viewer_args(tokens[sum(takes[:i]) : sum(takes[: i + 1])]), script=SCRIPT)
            for i in range(len(takes))))
        procs += [ViewerProcess(child) for child in children]
        for proc in procs:
            await proc.child.read()
        # One viewer process joins at a time (each in groups of 10): dozens of concurrent joins measure a
        # join storm, not fan-out; both systems get the same pace.
        replies = [await p.child.call("add", count=take) for p, take in zip(procs, takes, strict=True)]
        refused = sum(r["refused"] for r in replies)
        why = sorted({w for r in replies for w in r["why"]})
        ttff = [t for r in replies for t in r["ttff"]]
        no_frame = sum(r["no_frame"] for r in replies)
        if no_frame:
            print(f"# {server.name} {n}: {no_frame} viewers got no video frame within {replies[0]['waited']:.0f} s",
                  flush=True)
        if refused:
            print(f"# {server.name} {n}: {refused} viewers refused ({', '.join(why)})", flush=True)
        admitted = n - refused
        if not admitted:
            print(f"# {server.name} {n}: no viewer admitted, nothing to measure", flush=True)
            return None
        await asyncio.sleep(2.0)
        before = await snapshot(server, publisher, procs)
        await asyncio.sleep(window)
        after = await snapshot(server, publisher, procs)
        if after["publisher"]["sent"] == before["publisher"]["sent"]:
            print(f"# {server.name} {n}: the publisher sent nothing in the window", flush=True)
            return None
        row = measure(server.name, max(admitted, 1), before, after, ttff)
        return Result(server.name, row, admitted, refused, process_rss(server.pid), rss_idle)
    finally:
        for proc in procs:
            with contextlib.suppress(Exception):
                await proc.child.call("quit")
        with contextlib.suppress(Exception):
            await publisher.call("quit")
        for child in [*(p.child for p in procs), publisher]:
            await child.stop()
        await server.finish()
        await wait_idle(server.pid)


async def snapshot(server: Server, publisher: Child, procs: list[ViewerProcess]) -> dict[str, Any]:
    published, *viewers = await asyncio.gather(publisher.call("stats"), *(p.child.call("stats") for p in procs))
    return {"relay": {"cpu": process_cpu(server.pid), "at": time.monotonic()}, "publisher": published,
            "viewers": viewers}


HEADER = (f"{'system':<9} {'viewers':>7} {'refused':>7} {'cpu % core':>10} {'cpu/viewer':>10} {'delivered':>9} "
          f"{'min':>5} {'lost':>6} {'g2g p50/p95 ms':>15} {'ttff p50/p95 s':>15} {'rss MB':>7} {'MB/viewer':>9} "
          f"{'viewer cpu':>10} {'max proc':>8} {'load':>5}")


def print_result(result: Result) -> None:
    row = result.row
    latency = (f"{row.latency_median * 1000:.0f} / {row.latency_p95 * 1000:.0f}"
               if row.latency_median is not None and row.latency_p95 is not None else "n/a")
    print(f"{result.system:<9} {result.admitted:>7} {result.refused:>7} {row.relay_cpu * 100:>10.1f} "
          f"{row.cpu_per_viewer * 100:>9.3f}% {row.delivered * 100:>8.1f}% {row.worst * 100:>4.0f}% "
          f"{row.lost * 100:>5.2f}% {latency:>15} {row.ttff_median:>6.2f} / {row.ttff_p95:<6.2f} "
          f"{result.rss:>7.0f} {result.mb_per_viewer:>9.2f} {row.viewer_cpu:>10.2f} {row.viewer_cpu_max:>8.2f} "
          f"{row.load:>5.1f}", flush=True)


def summarize(results: list[tuple[int, int, Result]]) -> None:
    """Per N, the two systems' measurements of one round side by side; with several rounds, the median round (by
    the CPU ratio) and every round's ratio."""
    print()
    by_n: dict[int, dict[int, dict[str, Result]]] = {}
    for n, round_, result in results:
        by_n.setdefault(n, {}).setdefault(round_, {})[result.system] = result
    for n, by_round in sorted(by_n.items()):
        rounds = [(pair["soulseer"], pair["janus"]) for pair in by_round.values() if len(pair) == 2]
        if not rounds:
            continue
        ratios = sorted((ours.row.cpu_per_viewer / max(theirs.row.cpu_per_viewer, 1e-9), k)
                        for k, (ours, theirs) in enumerate(rounds))
        ratio, median = ratios[(len(ratios) - 1) // 2]
        ours, theirs = rounds[median]
        if len(rounds) > 1:
            print(f"N={n}: ratios of {len(rounds)} rounds " + ", ".join(f"{r:.2f}x" for r, _ in ratios) +
                  "; the median round:")
        g2g = ""
        if ours.row.latency_median is not None and theirs.row.latency_median is not None:
            g2g = f"; g2g p50 {ours.row.latency_median * 1000:.0f} vs {theirs.row.latency_median * 1000:.0f} ms"
        # Memory from the first round: a process keeps what it allocated, so later rounds start from a higher idle
        # RSS and show less per viewer than they hold.
        first_ours, first_theirs = rounds[0]
        print(f"N={n}: CPU per viewer SoulSeer {ours.row.cpu_per_viewer * 100:.3f}% / Janus "
              f"{theirs.row.cpu_per_viewer * 100:.3f}% of a core = {ratio:.2f}x; memory per viewer "
              f"{first_ours.mb_per_viewer:.2f} / {first_theirs.mb_per_viewer:.2f} MB; "
              f"ttff p50 {ours.row.ttff_median:.2f} / "
              f"{theirs.row.ttff_median:.2f} s{g2g}")
    for system in ("soulseer", "janus"):
        held = [(n, r) for n, _, r in results if r.system == system and r.row.delivered >= 0.99 and r.admitted >= n]
        if held:
            n, best = max(held, key=lambda item: item[0])
            print(f"{system}: largest N at >= 99% delivery: {n} viewers at {best.row.relay_cpu * 100:.0f}% of a core")
        else:
            print(f"{system}: no N at >= 99% delivery")


async def orchestrate(args: argparse.Namespace) -> None:
    systems = args.systems
    binary = shutil.which("janus") or ("/usr/bin/janus" if os.path.exists("/usr/bin/janus") else None)
    if "janus" in systems and binary is None:
        print("vs_janus: Janus is not installed. Install Debian's package first: apt-get install janus "
              "(1.1.2 on Debian 12), or run with --systems soulseer.", file=sys.stderr)
        raise SystemExit(2)
    if "soulseer" in systems and not args.postgres_url:
        print("vs_janus: soulseer serve needs PostgreSQL: pass --postgres-url or set TEST_DATABASE_URL",
              file=sys.stderr)
        raise SystemExit(2)
    address = host_address()
    cores = os.cpu_count() or 1
    event_loops = args.event_loops or cores
    settings = ViewerSettings(args.viewers_per_process, args.probes_per_process, args.viewer_poll_ms, args.viewer_nice)
    print(f"# {cores} CPUs, load average {os.getloadavg()[0]:.2f} at start; media on {address}; Janus event_loops = "
          f"{event_loops}; {settings.per_process} viewers per process, {settings.probes} of them probes, viewer "
          f"processes at nice {settings.nice}; series {args.series}, {args.window:g} s windows", flush=True)
    servers: dict[str, Server] = {}
    try:
        if "soulseer" in systems:
            soulseer = SoulSeer(args.postgres_url, cpu_limit=args.cpu_limit)
            servers["soulseer"] = soulseer
            await soulseer.start(max(args.series))
        if "janus" in systems:
            assert binary is not None
            janus = Janus(binary, address, event_loops)
            servers["janus"] = janus
            await janus.start()
        print(HEADER, flush=True)
        results: list[tuple[int, int, Result]] = []
        for round_ in range(args.rounds):
            if round_ and "janus" in servers and not args.fresh:
                # Janus's cost grows from round to round on one process (25, 30, 41% of a core at N = 100 over three
                # rounds, its memory 44, 56, 70 MB; SoulSeer's stayed at 13.5-14.7%): each round gets a fresh one.
                await servers["janus"].restart()
            for i, n in enumerate(args.series):
                order = systems if (i + round_) % 2 == 0 else list(reversed(systems))
                for name in order:
                    server = servers[name]
                    if args.fresh and (round_ or i):
                        await server.restart()
                    tokens = server.tokens[1 : n + 1] if isinstance(server, SoulSeer) else [""] * n
                    result = await run_one(server, n, args.window, settings, tokens)
                    if result is not None:
                        results.append((n, round_, result))
                        print_result(result)
        summarize(results)
    finally:
        for server in servers.values():
            with contextlib.suppress(Exception):
                await server.stop()


# -- the child roles ---------------------------------------------------------------------------------------------


async def run_publisher_role(args: argparse.Namespace) -> None:
    from bench.fanout_peers import run_publisher

    if args.system == "soulseer":
        from bench.stream_signals import SoulSeerSignal

        soulseer = SoulSeerSignal(args.base, args.stream, args.tokens.split(","))
        await run_publisher("", publish=soulseer.publish)
        await soulseer.close()
        return
    from bench.stream_signals import JanusSignal

    janus = JanusSignal(args.base, JANUS_ROOM)

    async def publish(offer: str) -> str:
        answer = await janus.publish(offer)
        print(json.dumps({"feed": janus.feed}), flush=True)  # read by the orchestrator before the ready line
        return answer

    await run_publisher("", publish=publish)
    await janus.close()


async def run_viewers_role(args: argparse.Namespace) -> None:
    from bench.fanout_peers import Viewer, run_viewers

    if args.system == "soulseer":
        from bench.stream_signals import SoulSeerSignal

        soulseer = SoulSeerSignal(args.base, args.stream, args.tokens.split(","))
        await run_viewers("", args.prefix, args.probes, watch=soulseer.watch)
        await soulseer.close()
        return
    from bench.stream_signals import JanusSignal

    janus = JanusSignal(args.base, JANUS_ROOM)

    async def watch(viewer: Viewer) -> None:
        await janus.watch(viewer, args.feed)

    await run_viewers("", args.prefix, args.probes, watch=watch)
    await janus.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=counts, default=[50, 100, 200, 300, 400, 500, 600],
                        help="comma-separated viewer counts, measured in rising order")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured at each N for each system")
    parser.add_argument("--fresh", action="store_true", help="measure each N of each system on a fresh process "
                        "(a process keeps the cost of what it served before: Janus's grows from run to run)")
    parser.add_argument("--rounds", type=int, default=1, help="measure the whole series this many times (the "
                        "systems' order alternating), and report each N's median ratio")
    parser.add_argument("--systems", type=lambda s: s.split(","), default=["soulseer", "janus"],
                        help="comma-separated: soulseer, janus (both by default)")
    parser.add_argument("--event-loops", type=int, default=0, help="Janus event_loops (default: the machine's cores)")
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_DATABASE_URL", ""),
                        help="PostgreSQL server for soulseer serve (a database is created and dropped)")
    parser.add_argument("--cpu-limit", action="store_true",
                        help="keep soulseer serve's SOULSEER_MAX_RELAY_CPU_PERCENT admission (off by default here: its "
                             "1 s process-wide sample trips on the bench's join bursts; loop-lag admission stays on)")
    parser.add_argument("--viewers-per-process", type=int, default=50, help="viewers in one viewer process")
    parser.add_argument("--probes-per-process", type=int, default=1, help="of those, full (decrypting) viewers")
    parser.add_argument("--viewer-poll-ms", type=float, default=1.0, help="viewer processes poll their sockets at "
                        "most this often (see bench/fanout_peers.py)")
    parser.add_argument("--viewer-nice", type=int, default=10, help="niceness of the viewer processes")
    parser.add_argument("--role", choices=["publisher", "viewers"], help=argparse.SUPPRESS)
    parser.add_argument("--system", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--stream", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", default="", help=argparse.SUPPRESS)
    parser.add_argument("--feed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="v", help=argparse.SUPPRESS)
    parser.add_argument("--probes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--poll-ms", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--nice", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "publisher":
        asyncio.run(run_publisher_role(args))
    elif args.role == "viewers":
        from bench.fanout_peers import paced_loop

        os.nice(args.nice)
        with asyncio.Runner(loop_factory=lambda: paced_loop(args.poll_ms / 1000)) as runner:
            runner.run(run_viewers_role(args))
    else:
        started = time.monotonic()
        asyncio.run(stoppable(orchestrate(args)))
        print(f"# done in {time.monotonic() - started:.0f} s")


async def stoppable(work: Any) -> None:
    """Run ``work``; SIGTERM or SIGINT cancels it, so its clean-up still stops the servers and drops the database."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


if __name__ == "__main__":
    main()
