"""Sharded evaluation: each rank of the :class:`~honestbench.engine.world.World` evaluates a contiguous part of
the images, rank 0 merges the parts. A world of size 1 has one shard, all the images, and nothing to merge:
the same code path as a torchrun world, with its collectives the identity.

Sharding (:func:`shard_bounds`): the ``n`` images are cut into blocks of ``batch_size`` consecutive
positions (the unit of seeding, :mod:`honestbench.engine.cells`) and each rank gets a contiguous run of
whole blocks, the first ranks one block more when they do not divide evenly. Every batch and every seed is
therefore the one a single process uses, so results do not depend on the number of ranks (stochastic
models included). With fewer blocks than ranks some ranks are idle: a smaller ``--batch-size`` splits the
work further (and then equals a one-process run with the same ``--batch-size``).

Per model (:meth:`Shard.evaluate`): a plain process evaluates every image into ``DIR/cells/<model>/``. In a
torchrun world (several ranks, or one with ``$BENCH_DIST_FORCE=1``) each rank evaluates its shard into its own
cells, ``DIR/cells/<model>/shards/<start>-<end>/<attack>.npz`` (resumable, like single-process cells); the
ranks exchange a status; when every rank succeeded, rank 0 gathers the shard matrices and cells (no shared
file system needed), merges them (:func:`honestbench.results.merge_matrices`, :meth:`AttackCell.concat`), and
writes the merged cells ``DIR/cells/<model>/<attack>.npz`` (the very cells, key included, that a single
process writes, so a later single-process run into DIR reuses them); only rank 0 writes outside its shard
directories, each file atomically.

Failures: a rank whose shard raises reports its error in the status exchange; every rank then stops, rank 0
prints one line naming the rank (``rank 1 (host) failed on model slwta (images 64-128): ...``) and every
rank leaves that line in torchrun's error file, so torchrun's failure report shows it too. A rank that dies
(killed, out of memory) is reported by torchrun itself, which stops the others. Finished shard cells are
kept: rerunning the same command recomputes only the missing ones (with the same number of ranks; another
number of ranks makes other shards). In a plain process an error propagates as it is.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from honestbench.core.errors import BenchError
from honestbench.engine.cells import Cell, CellCache, samples_id
from honestbench.engine.world import HOST, World
from honestbench.results import Matrix, cell_path, merge_matrices, save_cell, shard_cell_path


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
    the cells it read or wrote (with their full key) for the merge on rank 0."""

    def __init__(self, out: Path, model: str, key: dict, shard: str):
        super().__init__(Path(out), model, key)
        self.shard = shard
        self.cells: dict[str, tuple[Cell, dict]] = {}

    def path(self, label: str) -> Path:
        return shard_cell_path(self.out, self.model, self.shard, label)

    def get(self, label, key, kind):
        cell = super().get(label, key, kind)
        if cell is not None:
            self.cells[label] = (cell, self.full_key(key))
        return cell

    def put(self, label: str, key: dict, cell: Cell) -> None:
        super().put(label, key, cell)
        self.cells[label] = (cell, self.full_key(key))


@dataclass
class ShardPart:
    """What a rank hands rank 0 for the merge: its positions ``[start, end)``, matrix and cells."""

    start: int
    end: int
    matrix: Matrix
    cells: dict[str, tuple[Cell, dict]] = field(default_factory=dict)


@dataclass
class Shard:
    """This rank's part of the evaluation set: positions ``[start, end)`` of ``n`` (:func:`shard_bounds`)."""

    world: World
    n: int
    batch_size: int
    bounds: list[tuple[int, int]]

    @property
    def start(self) -> int:
        return self.bounds[self.world.rank][0]

    @property
    def end(self) -> int:
        return self.bounds[self.world.rank][1]

    @property
    def name(self) -> str:
        return f"{self.start}-{self.end}"

    def evaluate(self, run: Callable[..., Matrix], data, out: str | Path, model: str, key: dict) -> Matrix | None:
        """Evaluate this rank's shard with ``run(x, y, index=, cache=, progress=)`` (a partial of
        :func:`honestbench.engine.cascade.evaluate`), exchange statuses, and on rank 0 merge every shard into the
        model's matrix and write the merged cells; returns the model's matrix on rank 0, None elsewhere.
        Raises on every rank (rank 0: a one-line :class:`BenchError`) when any rank failed."""
        world, out = self.world, Path(out)
        if not world.grouped:  # a plain process: the whole set, cells in place, nothing to exchange or merge
            return run(data.x, data.y, index=data.index, cache=CellCache(out, model, key), progress=None)
        cache = ShardCache(out, model, key, shard=self.name)
        status = {"rank": world.rank, "host": HOST, "model": model, "start": self.start, "end": self.end,
                  "error": None}
        matrix = None
        if self.end > self.start:
            sl = slice(self.start, self.end)
            try:  # one set of progress bars: rank 0's
                matrix = run(data.x[sl], data.y[sl], index=data.index[sl], cache=cache,
                             progress=None if world.is_main else False)
            except Exception as e:  # reported to every rank below; the traceback stays on this rank's stderr
                if not isinstance(e, BenchError):
                    traceback.print_exc()
                text = str(e) if isinstance(e, BenchError) else f"{type(e).__name__}: {e}"
                status["error"] = " ".join(text.split())  # one line (e.g. CUDA's out-of-memory text)
        statuses = world.all_gather(status)
        models = sorted({s["model"] for s in statuses})
        if len(models) > 1:
            self._fail(f"the ranks evaluate different models ({', '.join(models)}): a checkpoint missing on "
                       "some machines?")
        failed = [s for s in statuses if s["error"]]
        if failed:
            self._fail("; ".join(f"rank {s['rank']} ({s['host']}) failed on model {model} "
                                 f"(images {s['start']}-{s['end']}): {s['error']}" for s in failed))
        part = None if matrix is None else ShardPart(self.start, self.end, matrix, cache.cells)
        gathered = world.gather(part)
        if gathered is None:
            return None
        return merge_shards([p for p in gathered if p is not None], data, out, model, self.n, world_size=world.size)

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
        if self.world.is_main and not self.world.launched:
            raise BenchError(line)
        if not self.world.is_main and not self.world.launched:
            time.sleep(1.0)  # let rank 0 print the line before torchrun stops the group
        raise SystemExit(2)


def shard_of(world: World, n: int, batch_size: int) -> Shard:
    """This rank's :class:`Shard` of ``n`` images (all of them in a world of size 1)."""
    shard = Shard(world, n, batch_size, shard_bounds(n, batch_size, world.size))
    if not world.grouped:
        return shard
    print(f"rank {world.rank}/{world.size} ({HOST}, {torch.get_num_threads()} threads): images {shard.name} of {n}",
          file=sys.stderr, flush=True)
    idle = sum(1 for s, e in shard.bounds if e <= s)
    if idle and world.is_main:
        print(f"note: {n} images make {world.size - idle} block(s) of --batch-size {batch_size}: {idle} of "
              f"{world.size} ranks are idle; a smaller --batch-size splits the work (results then equal a "
              "1-process run with that --batch-size)", file=sys.stderr, flush=True)
    return shard


def merge_shards(parts: list[ShardPart], data, out: str | Path, model: str, n: int, world_size: int) -> Matrix:
    """Rank 0's merge of the shards of one model: check they cover positions 0..n-1 exactly once, write the
    merged cells (with the key one process would give them) and return the merged matrix."""
    parts = sorted(parts, key=lambda p: p.start)
    edges = [(p.start, p.end) for p in parts]
    gaps = any(a[1] != b[0] for a, b in zip(edges, edges[1:], strict=False))
    if not edges or edges[0][0] != 0 or edges[-1][1] != n or gaps:
        raise BenchError(f"shards of {model} do not cover images 0-{n} exactly once: {edges}")
    if len({bool(p.matrix.meta.get("stochastic")) for p in parts}) > 1:
        raise BenchError(f"the shards of {model} disagree on whether it is stochastic: pass it as stochastic")
    matrix = merge_matrices([p.matrix for p in parts])
    matrix.meta["clean_seconds"] = float(sum(p.matrix.meta.get("clean_seconds", 0.0) for p in parts))
    matrix.meta["shards"] = len(parts)
    matrix.meta["world_size"] = world_size
    labels = sorted(parts[0].cells)
    if any(sorted(p.cells) != labels for p in parts):
        raise BenchError(f"the shards of {model} hold different cells: {[sorted(p.cells) for p in parts]}")
    ids = samples_id(data.index, data.y)
    for label in labels:
        cells = [p.cells[label][0] for p in parts]
        cell = type(cells[0]).concat(cells)
        key = {**parts[0].cells[label][1], "samples": ids, "n": n}
        save_cell(cell_path(out, model, label), cell.arrays(), {"key": key, "shards": edges})
    return matrix


__all__ = ["Shard", "ShardCache", "ShardPart", "merge_shards", "shard_bounds", "shard_of"]
