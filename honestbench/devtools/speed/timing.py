"""Timing primitives of ``bench speed``: interleaved repeats, wall and CPU seconds of one call, and the record of
the machine the figures were measured on. Times in seconds."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import torch

from honestbench.core.threads import default_threads


def machine_info(device: torch.device) -> dict:
    """What the figures were measured on: CPU/GPU name, cores, torch threads, load at the start."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "threads_policy": _threads_policy(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset: spin, then sleep)"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if hasattr(os, "getloadavg"):
        info["loadavg_1min_at_start"] = round(os.getloadavg()[0], 2)
    return info


def _threads_policy() -> str:
    n, why = default_threads()
    if n == torch.get_num_threads():
        return f"{n} ({why})"
    return f"set by the caller (default would be {n}: {why})"


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so a timer sees the whole call."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device,
                     warmup: int = 1, cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Wall seconds per call of each function: ``warmup`` untimed rounds, then ``repeats`` rounds in which every
    function runs once, in turn (background load then affects all of them alike); round ``r`` starts at the
    ``r``-th function (rotated), so none always runs first or right after the same neighbour. ``cpu``, when given,
    receives the CPU seconds of this process per call (less sensitive to other processes than wall time)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync(device)
    keys = list(fns)
    times: dict[str, list[float]] = {k: [] for k in keys}
    cpu_times: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(repeats):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            sync(device)
            t, c = time.perf_counter(), time.process_time()
            fns[k]()
            sync(device)
            times[k].append(time.perf_counter() - t)
            cpu_times[k].append(time.process_time() - c)
    if cpu is not None:
        cpu.update(cpu_times)
    return times


def timed(fn: Callable[[], object], device: torch.device) -> tuple[object, float, float]:
    """``(result, wall seconds, CPU seconds of this process)`` of one call."""
    sync(device)
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t, time.process_time() - c
