"""The relay's CPU budget: one core at most, less under a cgroup CPU quota (v1 or v2) or a narrow affinity."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry

from relay import Relay
from relay.cpu_budget import cgroup_quota, cpu_budget


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_v2_quota_on_the_process_cgroup_or_above_it_is_the_budget(tmp_path: Path) -> None:
    write(tmp_path / "proc", "0::/kubepods/pod1/relay\n")
    write(tmp_path / "cg/kubepods/pod1/relay/cpu.max", "max 100000\n")
    write(tmp_path / "cg/kubepods/pod1/cpu.max", "40000 100000\n")  # the pod's limit, one level up
    write(tmp_path / "cg/kubepods/cpu.max", "150000 100000\n")
    assert cgroup_quota(tmp_path / "proc", tmp_path / "cg") == 0.4
    assert cpu_budget(tmp_path / "proc", tmp_path / "cg") == 0.4


def test_a_v1_cfs_quota_is_the_budget_and_no_quota_means_one_core(tmp_path: Path) -> None:
    write(tmp_path / "proc", "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n0::/\n")
    write(tmp_path / "cg/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "25000\n")
    write(tmp_path / "cg/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n")
    assert cpu_budget(tmp_path / "proc", tmp_path / "cg") == 0.25
    write(tmp_path / "cg/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n")
    assert cgroup_quota(tmp_path / "proc", tmp_path / "cg") is None
    expected = min(1.0, float(len(os.sched_getaffinity(0))))
    assert cpu_budget(tmp_path / "proc", tmp_path / "cg") == expected
    assert cpu_budget(tmp_path / "missing", tmp_path / "cg") == expected  # no /proc/self/cgroup: no quota


async def test_the_overload_defences_count_the_loop_busy_at_its_share_of_the_budget() -> None:
    relay = Relay(ice_servers=[], registry=CollectorRegistry(), max_loop_lag=0.03, shed_lag=0.06, cpu_budget=0.4)
    try:
        assert relay.loop_monitor.min_cpu == 0.5 * 0.4
        assert relay._shedder is not None and relay._shedder.min_cpu == 0.8 * 0.4
        relay.loop_monitor.record(0.05, 0.0, 0.0)
        relay.loop_monitor.record(0.05, 1.0, 0.35)  # 0.35 of a core, nearly all a 0.4 quota lets it have
        assert relay.loop_monitor.busy
        assert relay.busy, "what the cluster's placement reads: this node takes no newcomers now"
    finally:
        await relay.close()
