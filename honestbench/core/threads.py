"""CPU threads and devices: how many intra-op threads bench uses (and why), and device-name resolution."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

THREADS_ENV = "BENCH_THREADS"


def usable_cpus() -> set[int]:
    """The CPUs this process may run on (``os.sched_getaffinity``; every CPU where that is unavailable)."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def physical_cores(cpus: set[int] | None = None) -> int:
    """Distinct physical cores among ``cpus`` (default: the usable ones): SMT siblings count once (Linux
    sysfs topology); ``len(cpus)`` where the topology cannot be read."""
    cpus = usable_cpus() if cpus is None else cpus
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topo.joinpath("physical_package_id").read_text().strip(),
                       topo.joinpath("core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return max(1, len(cores))


def cgroup_cpu_limit() -> int | None:
    """The container's CPU quota rounded up (cgroup v2 ``cpu.max``, v1 ``cfs_quota_us``); None: no quota."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return max(1, math.ceil(quota / period)) if quota > 0 else None
    except (OSError, ValueError):
        return None


def default_threads() -> tuple[int, str]:
    """The intra-op thread count bench uses and why: ``(threads, reason)``.

    1. ``$BENCH_THREADS`` (bench's own knob), else ``$OMP_NUM_THREADS`` (the OpenMP convention; torchrun sets
       it to 1 when it starts several processes), when set to a positive integer;
    2. otherwise the physical cores this process may use: ``min(physical cores, usable CPUs, cgroup CPU
       quota)``, divided by ``$LOCAL_WORLD_SIZE`` under torchrun (the processes on one machine share its
       cores), at least 1.

    Why physical cores: convolutions and GEMMs saturate a core's vector units, so an SMT sibling adds
    contention, not throughput, and more OpenMP threads than cores makes every parallel region wait for a
    descheduled thread.

    OpenMP wait policy (:func:`honestbench.cli.main.set_omp_wait_policy`, before torch loads; a value the user set
    wins): ``PASSIVE`` (idle threads sleep at once) when the machine is busy at start (1-minute load average
    >= 0.5), else libgomp's default (spin a while, then sleep). Spinning threads on a busy machine wait for
    descheduled ones: on the shared 2-core box at load ~6, 8 batch-1 WRN-34-1 forwards took 0.82-1.0 s
    spinning, 0.14 s passive, 0.11 s on 1 thread; batch 256 and PGD steps 2.2x and 3x longer spinning, and
    ``bench run --models all`` (before the LWTA fast path) 1,012 s spinning at load ~6, 94 s passive at
    load ~4.5. On a quiet machine (load 1.3) passive costs
    ~10 % on a batch-128 forward+gradient and 2.3x at batch 1 (WRN-34-1: 4.6 ms spinning, 10.7 ms passive,
    5.8 ms on 1 thread). On a busy machine ``BENCH_THREADS=1`` is the most reproducible choice (the tests
    use 1)."""
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value), f"${name}"
    cpus = usable_cpus()
    n = min(physical_cores(cpus), len(cpus))
    quota = cgroup_cpu_limit()
    if quota is not None:
        n = min(n, quota)
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    why = "physical cores usable" + (f" / {local} local ranks" if local > 1 else "")
    return max(1, n // local), why


def configure_threads() -> int:
    """Set torch's intra-op threads to :func:`default_threads` (called once by the CLI for every command);
    returns the count."""
    n, _ = default_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
