"""Distributed evaluation on torchrun: the images are split across ranks, rank 0 merges the shards.

``torchrun --nproc_per_node N -m honestbench run ...`` (one machine, N processes or GPUs), ``torchrun --nnodes M
--nproc_per_node N --rdzv-backend c10d --rdzv-endpoint HOST:PORT --rdzv-id JOB -m honestbench run ...`` (M
machines) or ``bench run --workers N`` (:mod:`honestbench.engine.launch` starts the first form locally) give the
same records, matrices, leaderboard and figures as one process. torch.distributed does the distribution:
torchrun's rendezvous starts the ranks, one process group (``gloo`` on CPU; ``cpu:gloo,cuda:nccl`` on GPU,
so the small object collectives below go over gloo) exchanges the shards, torchrun reports a dead rank.

Sharding (:func:`shard_bounds`): the ``n`` images are cut into blocks of ``batch_size`` consecutive
positions (the unit of seeding, :mod:`honestbench.engine.cells`) and each rank gets a contiguous run of
whole blocks, the first ranks one block more when they do not divide evenly. Every batch and every seed is
therefore the one a single process uses, so results do not depend on the number of ranks (stochastic
models included). With fewer blocks than ranks some ranks are idle: a smaller ``--batch-size`` splits the
work further (and then equals a one-process run with the same ``--batch-size``).

Per model (:meth:`Shard.evaluate`): each rank evaluates its shard into its own cells,
``DIR/cells/<model>/shards/<start>-<end>/<attack>.npz`` (resumable, like single-process cells); the ranks
exchange a status (``all_gather_object``); when every rank succeeded, rank 0 gathers the shard matrices and
cells (``gather_object``: no shared file system needed), merges them (:func:`honestbench.results.merge_matrices`,
:func:`merge_cells`), and writes the merged cells ``DIR/cells/<model>/<attack>.npz`` (the very cells, key
included, that a single process writes, so a later single-process run into DIR reuses them), the matrix and
the records; only rank 0 writes outside its shard directories, each file atomically.

Failures: a rank whose shard raises reports its error in the status exchange; every rank then stops, rank 0
prints one line naming the rank (``rank 1 (host) failed on model slwta (images 64-128): ...``) and every
rank leaves that line in torchrun's error file, so torchrun's failure report shows it too. A rank that dies
(killed, out of memory) is reported by torchrun itself, which stops the others. Finished shard cells are
kept: rerunning the same command recomputes only the missing ones (with the same number of ranks; another
number of ranks makes other shards).

Threads: each rank uses ``$BENCH_THREADS``, else ``$OMP_NUM_THREADS`` (torchrun sets 1 when it starts
several processes and the variable is unset), else the cores it may use divided by the local world size.

Test-only fault injection: ``BENCH_FAIL_RANK=R`` makes rank R fail after writing ``BENCH_FAIL_AFTER``
(default 1) shard cells, raising an error (``BENCH_FAIL_MODE=raise``, default) or killing itself with
SIGKILL (``BENCH_FAIL_MODE=kill``).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from honestbench.core.errors import BenchError
from honestbench.core.threads import default_threads
from honestbench.engine.cells import N_EXAMPLES, CellCache, samples_id
from honestbench.results import Matrix, cell_path, merge_matrices, save_cell

HOST = socket.gethostname()
#: set by ``bench run --workers`` in its ranks: the launcher prints the one-line error, the ranks stay quiet
LAUNCHER_ENV = "BENCH_WORKERS_LAUNCHER"
TIMEOUT_ENV = "BENCH_DIST_TIMEOUT_S"  # collectives wait this long for the slowest rank (default 7 days)
#: ``=1``: a torchrun world of ONE process takes the distributed path too (process group, shard, merge), which
#: checks that path (e.g. nccl on a single GPU) against a plain run (scripts/gpu_job.sh, item speed)
FORCE_ENV = "BENCH_DIST_FORCE"


# ----------------------------------------------------------------------------------------------- the world
def is_distributed() -> bool:
    """True inside a torchrun rank of a world of more than one process (or of one, with ``$BENCH_DIST_FORCE=1``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return "RANK" in os.environ and (world > 1 or os.environ.get(FORCE_ENV) == "1")


def is_main() -> bool:
    """True outside torchrun and on rank 0: the process that writes records and the report."""
    return not is_distributed() or int(os.environ["RANK"]) == 0


def threads_per_rank() -> int:
    """``$BENCH_THREADS``, else ``$OMP_NUM_THREADS``, else usable physical cores // local world size (at
    least 1): :func:`honestbench.core.threads.default_threads`, the one place that decides."""
    return default_threads()[0]


def init(device: torch.device) -> torch.device:
    """Join torchrun's process group (once) and return this rank's device; outside torchrun return
    ``device`` unchanged. CUDA: ``cuda:LOCAL_RANK`` with backend ``cpu:gloo,cuda:nccl``; CPU: ``gloo``."""
    if not is_distributed():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
        timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, 7 * 24 * 3600)))
        dist.init_process_group(backend, timeout=timeout)
        atexit.register(_close)
    torch.set_num_threads(threads_per_rank())
    return device


def _close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------- sharding
def shard_bounds(n: int, batch_size: int, world_size: int) -> list[tuple[int, int]]:
    """``[start, end)`` positions of each rank: contiguous runs of whole ``batch_size`` blocks (the last
    block may be short), the first ``blocks % world_size`` ranks one block more; empty when idle."""
    if n < 0 or batch_size < 1 or world_size < 1:
        raise BenchError(f"cannot shard {n} images in blocks of {batch_size} over {world_size} ranks")
    blocks = -(-n // batch_size)
    bounds, b = [], 0
    for r in range(world_size):
        b1 = b + blocks // world_size + (1 if r < blocks % world_size else 0)
        bounds.append((min(n, b * batch_size), min(n, b1 * batch_size)))
        b = b1
    return bounds


class ShardCache(CellCache):
    """A :class:`honestbench.engine.cells.CellCache` in ``DIR/cells/<model>/shards/<start>-<end>/`` that also keeps
    the cells it read or wrote (arrays and full key) for the merge on rank 0."""

    def __init__(self, out: Path, model: str, key: dict, shard: str):
        super().__init__(Path(out), model, key)
        self.shard = shard
        self.cells: dict[str, tuple[dict[str, np.ndarray], dict]] = {}

    def path(self, label: str) -> Path:
        whole = cell_path(self.out, self.model, label)
        return whole.parent / "shards" / self.shard / whole.name

    def get(self, label: str, key: dict) -> dict[str, np.ndarray] | None:
        arrays = super().get(label, key)
        if arrays is not None:
            self.cells[label] = (arrays, _full_key(self.key, key))
        return arrays

    def put(self, label: str, key: dict, arrays: dict[str, np.ndarray]) -> None:
        super().put(label, key, arrays)
        self.cells[label] = (arrays, _full_key(self.key, key))
        _maybe_fail()


def _full_key(base: dict, key: dict) -> dict:
    return json.loads(json.dumps({**base, **key}, default=str))


_cells_written = 0


def _maybe_fail() -> None:
    """Test-only fault injection (module docstring): fail this rank after its N-th written shard cell."""
    global _cells_written
    _cells_written += 1
    rank = os.environ.get("BENCH_FAIL_RANK")
    after = int(os.environ.get("BENCH_FAIL_AFTER", "1"))
    if rank is None or rank != os.environ.get("RANK") or _cells_written < after:
        return
    if os.environ.get("BENCH_FAIL_MODE", "raise") == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"injected fault after {_cells_written} cell(s) (BENCH_FAIL_RANK={rank})")


@dataclass
class Shard:
    """This rank's part of the evaluation set: positions ``[start, end)`` of ``n`` (:func:`shard_bounds`)."""

    rank: int
    world_size: int
    n: int
    batch_size: int
    bounds: list[tuple[int, int]]

    @property
    def start(self) -> int:
        return self.bounds[self.rank][0]

    @property
    def end(self) -> int:
        return self.bounds[self.rank][1]

    @property
    def name(self) -> str:
        return f"{self.start}-{self.end}"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def evaluate(self, run: Callable[..., Matrix], data, out: str | Path, model: str,
                 key: dict) -> Matrix | None:
        """Evaluate this rank's shard with ``run(x, y, index=, cache=, [progress=])`` (a partial of
        :func:`honestbench.engine.cascade.evaluate`), exchange statuses, and on rank 0 merge every shard into the
        model's matrix and write the merged cells; returns the merged matrix on rank 0, None elsewhere.
        Raises on every rank (rank 0: a one-line :class:`BenchError`) when any rank failed."""
        cache = ShardCache(Path(out), model, key, shard=self.name)
        status = {"rank": self.rank, "host": HOST, "model": model, "start": self.start, "end": self.end,
                  "error": None}
        matrix = None
        if self.end > self.start:
            sl = slice(self.start, self.end)
            extra = {} if self.is_main else {"progress": False}  # one set of progress bars: rank 0's
            try:
                matrix = run(data.x[sl], data.y[sl], index=data.index[sl], cache=cache, **extra)
            except Exception as e:  # reported to every rank below; the traceback stays on this rank's stderr
                if not isinstance(e, BenchError):
                    traceback.print_exc()
                text = str(e) if isinstance(e, BenchError) else f"{type(e).__name__}: {e}"
                status["error"] = " ".join(text.split())  # one line (e.g. CUDA's out-of-memory text)
        statuses: list[dict] = [{} for _ in range(self.world_size)]
        dist.all_gather_object(statuses, status)
        models = sorted({s["model"] for s in statuses})
        if len(models) > 1:
            self._fail(f"the ranks evaluate different models ({', '.join(models)}): a checkpoint missing on "
                       "some machines?")
        failed = [s for s in statuses if s["error"]]
        if failed:
            self._fail("; ".join(f"rank {s['rank']} ({s['host']}) failed on model {model} "
                                 f"(images {s['start']}-{s['end']}): {s['error']}" for s in failed))
        payload = None if matrix is None else {"start": self.start, "end": self.end, "matrix": matrix,
                                               "cells": cache.cells}
        gathered = [None] * self.world_size if self.is_main else None
        dist.gather_object(payload, gathered, dst=0)
        if not self.is_main:
            return None
        return merge_shards([p for p in gathered if p is not None], data, out, model, self.n,
                            world_size=self.world_size)

    def _fail(self, line: str) -> None:
        """Stop every rank with ``line``: torchrun's error file, then rank 0 raises it as one line."""
        line += "; finished shards are kept: rerun the same command to resume"
        error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
        if error_file:
            try:
                with open(error_file, "w") as f:
                    json.dump({"message": {"message": line, "extraInfo": {  # record_exception's format
                        "py_callstack": line, "timestamp": str(int(time.time()))}}}, f)
            except OSError:
                pass
        if self.is_main and not os.environ.get(LAUNCHER_ENV):
            raise BenchError(line)
        if not self.is_main and not os.environ.get(LAUNCHER_ENV):
            time.sleep(1.0)  # let rank 0 print the line before torchrun stops the group
        raise SystemExit(2)


def current_shard(n: int, batch_size: int) -> Shard | None:
    """This rank's :class:`Shard` of ``n`` images under torchrun (after :func:`init`), None outside it."""
    if not is_distributed():
        return None
    if not dist.is_initialized():
        raise BenchError("honestbench.engine.shards.init(device) must run before current_shard()")
    world, rank = dist.get_world_size(), dist.get_rank()
    shard = Shard(rank, world, n, batch_size, shard_bounds(n, batch_size, world))
    print(f"rank {rank}/{world} ({HOST}, {torch.get_num_threads()} threads): images {shard.name} of {n}",
          file=sys.stderr, flush=True)
    idle = sum(1 for s, e in shard.bounds if e <= s)
    if idle and shard.is_main:
        print(f"note: {n} images make {world - idle} block(s) of --batch-size {batch_size}: {idle} of "
              f"{world} ranks are idle; a smaller --batch-size splits the work (results then equal a "
              "1-process run with that --batch-size)", file=sys.stderr, flush=True)
    return shard


# ----------------------------------------------------------------------------------------------- merge
def merge_cells(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One cell from the cells of consecutive shards: per-sample arrays concatenated, ``seconds`` summed,
    other scalars (batch timings) from the first shard, and the example images re-selected exactly as one
    process does (the first 4 robust and the first 4 fooled images by position)."""
    merged: dict[str, np.ndarray] = {}
    for k in parts[0]:
        if k.startswith("ex_"):
            continue
        values = [p[k] for p in parts]
        if values[0].ndim == 0:
            merged[k] = np.float64(sum(float(v) for v in values)) if k == "seconds" else values[0]
        else:
            merged[k] = np.concatenate(values)
    ex_keys = [k for k in parts[0] if k.startswith("ex_")]
    if ex_keys:
        with_ex = [p for p in parts if len(p["ex_robust"])] or parts[:1]
        flags = np.concatenate([p["ex_robust"] for p in with_ex])
        keep = np.zeros(len(flags), bool)
        for flag in (1, 0):
            keep[np.nonzero(flags == flag)[0][: N_EXAMPLES // 2]] = True
        for k in ex_keys:
            merged[k] = np.concatenate([p[k] for p in with_ex])[keep]
    return merged


def merge_shards(payloads: list[dict], data, out: str | Path, model: str, n: int, world_size: int) -> Matrix:
    """Rank 0's merge of the shards of one model: check they cover positions 0..n-1 exactly once, write the
    merged cells (with the key one process would give them) and return the merged matrix."""
    payloads = sorted(payloads, key=lambda p: p["start"])
    edges = [(p["start"], p["end"]) for p in payloads]
    gaps = any(a[1] != b[0] for a, b in zip(edges, edges[1:], strict=False))
    if not edges or edges[0][0] != 0 or edges[-1][1] != n or gaps:
        raise BenchError(f"shards of {model} do not cover images 0-{n} exactly once: {edges}")
    stochastic = {bool(p["matrix"].meta.get("stochastic")) for p in payloads}
    if len(stochastic) > 1:
        raise BenchError(f"the shards of {model} disagree on whether it is stochastic: pass it as stochastic")
    matrix = merge_matrices([p["matrix"] for p in payloads])
    metas = [p["matrix"].meta for p in payloads]
    matrix.meta["clean_seconds"] = float(sum(m.get("clean_seconds", 0.0) for m in metas))
    matrix.meta["shards"] = len(payloads)
    matrix.meta["world_size"] = world_size
    labels = sorted(payloads[0]["cells"])
    if any(sorted(p["cells"]) != labels for p in payloads):
        raise BenchError(f"the shards of {model} hold different cells: "
                         f"{[sorted(p['cells']) for p in payloads]}")
    ids = samples_id(data.index, data.y)
    for label in labels:
        arrays = merge_cells([p["cells"][label][0] for p in payloads])
        key = {**payloads[0]["cells"][label][1], "samples": ids, "n": n}
        save_cell(cell_path(out, model, label), arrays, {"key": key, "shards": edges})
    return matrix




__all__ = ["LAUNCHER_ENV", "Shard", "ShardCache", "current_shard", "init", "is_distributed", "is_main",
           "merge_cells", "merge_shards", "shard_bounds", "threads_per_rank"]
