"""A CPU quota for one benchmark process, as a container's CPU limit would set it (cgroup v1 or v2, needs root).

On a 2-core machine the viewers cost about as much CPU as the relay, so the machine saturates before the relay
reaches a full core: its knee cannot be pushed past. Confining the relay to a fraction of a core moves its knee
within the load generator's reach, and is what a relay in a container with a CPU limit meets in production.
"""

from __future__ import annotations

import os
from pathlib import Path

V1 = Path("/sys/fs/cgroup/cpu")
V2 = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


def make_group(cores: float, name: str) -> Path:
    """A new cgroup limited to ``cores`` of CPU; a process joins it with :func:`join` and it is removed by
    :func:`remove` once empty. Says what is missing when the machine cannot (not root, no cpu controller)."""
    quota = str(int(cores * PERIOD_US))
    if (V1 / "cpu.cfs_quota_us").exists():
        group = V1 / name
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(quota)
        return group
    if "cpu" in (V2 / "cgroup.controllers").read_text().split():
        group = V2 / name
        group.mkdir(exist_ok=True)
        (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        return group
    raise SystemExit("--relay-cpu-quota needs root and the cgroup cpu controller (v1 cpu or v2 cpu.max)")


def join(group: Path) -> None:
    """Move this process (all its threads) into ``group``; call before it starts the work to be confined."""
    (group / "cgroup.procs").write_text(str(os.getpid()))


def remove(group: Path) -> None:
    """Remove ``group`` (its processes have exited); a group still in use is left for the kernel to report."""
    try:
        group.rmdir()
    except OSError:
        pass
