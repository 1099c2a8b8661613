"""How much CPU the relay may use: one core at most (it forwards on one thread), less in a container with a quota.

The overload defences (``relay/overload.py``) count the loop as overloaded only while its thread uses most of the
CPU it can have; on a bare machine that is a core, in a container limited to 0.4 of a core (``docker --cpus 0.4``,
a Kubernetes CPU limit) it is 0.4, and a loop already using all of that is past its capacity, however far from a
full core. Without this, a relay under a quota lagged seconds behind and never refused a viewer, because its thread
never reached the half core the admission looked for.

The budget is the smallest of: one core, the process's CPU affinity (cores it may run on), and the CPU quota of its
cgroup (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``) and of the cgroups above it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def cpu_budget(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> float:
    """Cores this process may use, capped at 1.0 (see the module docstring); 1.0 when nothing limits it."""
    budget = 1.0
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        budget = min(budget, float(len(affinity(0))))
    quota = cgroup_quota(proc_cgroup, root)
    if quota is not None:
        budget = min(budget, quota)
    return budget


def cgroup_quota(proc_cgroup: Path, root: Path) -> float | None:
    """The tightest CPU quota (cores) on this process's cgroup and its ancestors, v2 or v1; None if there is none."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: one hierarchy, mounted at root (or root/unified beside v1)
            for mount in (root, root / "unified"):
                quotas.extend(_along(mount, path, _v2_quota))
        elif "cpu" in controllers.split(","):
            quotas.extend(_along(root / controllers, path, _v1_quota))
            if controllers != "cpu":
                quotas.extend(_along(root / "cpu", path, _v1_quota))
    return min(quotas) if quotas else None


def _along(mount: Path, path: str, read: Callable[[Path], float | None]) -> list[float]:
    """The quotas ``read`` finds in ``mount``/``path`` and each folder above it, up to the mount."""
    found: list[float] = []
    parts = [p for p in path.split("/") if p]
    for depth in range(len(parts), -1, -1):
        quota = read(mount.joinpath(*parts[:depth]))
        if quota is not None:
            found.append(quota)
    return found


def _v2_quota(folder: Path) -> float | None:
    try:
        limit, period = (folder / "cpu.max").read_text().split()
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) / int(period)


def _v1_quota(folder: Path) -> float | None:
    try:
        limit = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if limit <= 0 or period <= 0 else limit / period
