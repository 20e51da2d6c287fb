"""The world an evaluation runs in: one process is a world of size 1, ``torchrun`` starts a larger one.

``torchrun --nproc_per_node N -m honestbench run ...`` (one machine, N processes or GPUs), ``torchrun --nnodes M
--nproc_per_node N --rdzv-backend c10d --rdzv-endpoint HOST:PORT --rdzv-id JOB -m honestbench run ...`` (M
machines) or ``bench run --workers N`` (:mod:`honestbench.engine.launch` starts the first form locally) give the
same records, matrices, leaderboard and figures as one process. torch.distributed does the distribution:
torchrun's rendezvous starts the ranks, one process group (``gloo`` on CPU; ``cpu:gloo,cuda:nccl`` on GPU,
so the small object collectives go over gloo) exchanges the shards, torchrun reports a dead rank.

:func:`join` returns this process's :class:`World` (joining torchrun's process group once when there is one);
the engine asks it for its rank, its device, its shard of the images (:mod:`honestbench.engine.shards`) and
whether it is the main process that writes records and the report. The collectives of a world of size 1 are
the identity, so one process runs the very code path every rank runs.

Threads: each rank uses ``$BENCH_THREADS``, else ``$OMP_NUM_THREADS`` (torchrun sets 1 when it starts
several processes and the variable is unset), else the cores it may use divided by the local world size.
"""

from __future__ import annotations

import atexit
import os
import socket
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from honestbench.core.threads import default_threads

HOST = socket.gethostname()
#: set by ``bench run --workers`` in its ranks: the launcher prints the one-line error, the ranks stay quiet
LAUNCHER_ENV = "BENCH_WORKERS_LAUNCHER"
TIMEOUT_ENV = "BENCH_DIST_TIMEOUT_S"  # collectives wait this long for the slowest rank (default 7 days)
#: ``=1``: a torchrun world of ONE process joins a process group too (its collectives then go through
#: torch.distributed), which checks that setup (e.g. nccl on a single GPU) against a plain run
FORCE_ENV = "BENCH_DIST_FORCE"


def is_distributed() -> bool:
    """True inside a torchrun rank of a world of more than one process (or of one, with ``$BENCH_DIST_FORCE=1``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return "RANK" in os.environ and (world > 1 or os.environ.get(FORCE_ENV) == "1")


def threads_per_rank() -> int:
    """``$BENCH_THREADS``, else ``$OMP_NUM_THREADS``, else usable physical cores // local world size (at
    least 1): :func:`honestbench.core.threads.default_threads`, the one place that decides."""
    return default_threads()[0]


@dataclass(frozen=True)
class World:
    """The processes of one evaluation: this one's ``rank`` of ``size``, its ``device``, and whether the
    collectives go through a torch.distributed process group (``grouped``; False for a plain process)."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")
    grouped: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0: the process that merges the shards and writes records and the report."""
        return self.rank == 0

    @property
    def launched(self) -> bool:
        """True when ``bench run --workers`` started this rank (its launcher prints the failure line)."""
        return bool(os.environ.get(LAUNCHER_ENV))

    def all_gather(self, obj: object) -> list:
        """Every rank's ``obj``, in rank order (``[obj]`` in a world of one process)."""
        if not self.grouped:
            return [obj]
        out: list = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def gather(self, obj: object) -> list | None:
        """Every rank's ``obj`` on rank 0 (in rank order), None on the others."""
        if not self.grouped:
            return [obj]
        out = [None] * self.size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out


def join(device: torch.device | str = "cpu") -> World:
    """This process's :class:`World`. Under torchrun: join its process group (once) and use ``cuda:LOCAL_RANK``
    on a GPU (backend ``cpu:gloo,cuda:nccl``; ``gloo`` on CPU); else a world of size 1 on ``device``."""
    device = torch.device(device)
    if not is_distributed():
        return World(device=device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
        timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, 7 * 24 * 3600)))
        dist.init_process_group(backend, timeout=timeout)
        atexit.register(_close)
    torch.set_num_threads(threads_per_rank())
    return World(dist.get_rank(), dist.get_world_size(), device, grouped=True)


def _close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["FORCE_ENV", "HOST", "LAUNCHER_ENV", "World", "is_distributed", "join", "threads_per_rank"]
