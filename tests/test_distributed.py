"""Distributed evaluation (honestbench.engine.shards): sharding, the merge, and real torchrun runs on CPU (gloo).

The torchrun tests start 2 processes with one thread each on zoo models ``regular`` (deterministic) and
``slwta`` (stochastic), 64 images in blocks of 16 (so both ranks have work), and compare with one process:
records (timings aside), matrices and the merged cells must be identical.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import NoisyNet

from honestbench.data import data_dir, load_eval
from honestbench.engine import launch
from honestbench.engine import shards as dist_mod
from honestbench.engine.cascade import evaluate
from honestbench.engine.cells import CellCache
from honestbench.engine.options import EvalOptions
from honestbench.results import Matrix, cell_path, load_cell, read_records
from honestbench.suites import Entry, Suite

N = 96
EARLY = Suite("early", "test: early exit with random starts and noise", (
    Entry("FGSM", "fgsm", {"eps": 0.15}),
    Entry("PGD", "pgd-linf", {"eps": 0.15, "alpha": 0.03, "steps": 5, "random_start": True}),
    Entry("noise", "noise", {"eps": 0.15}),
))
TIMING = {"seconds", "ms_per_image_b1", "ms_per_image_b256", "date", "git_commit"}
CELL_TIMING = {"seconds", "ms_b1", "ms_b256"}


# ----------------------------------------------------------------------------------------------- sharding
@pytest.mark.parametrize("n", [1, 15, 16, 17, 64, 100, 1017])
@pytest.mark.parametrize("bs", [1, 16, 256])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shard_bounds_cover_aligned_balanced(n, bs, world):
    bounds = dist_mod.shard_bounds(n, bs, world)
    assert len(bounds) == world and bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))  # contiguous, no overlap
    assert all(s % bs == 0 for s, e in bounds if e > s)  # every shard starts on a seeding block
    blocks = [-(-(e - s) // bs) for s, e in bounds]
    assert max(blocks) - min(blocks) <= 1 and blocks == sorted(blocks, reverse=True)  # idle ranks last


def test_strip_workers_and_failure_line():
    argv = ["run", "--workers", "2", "--n", "64", "--workers=3", "--work", "4", "--out", "A"]
    assert launch._strip_workers(argv) == ["run", "--n", "64", "--out", "A"]
    report = ("Root Cause (first observed failure):\n[0]:\n  time      : x\n  host      : h\n"
              "  rank      : 3 (local_rank: 1)\n  exitcode  : -9 (pid: 12)  (SIGKILL)\n  error_file: <N/A>\n"
              "  traceback : Signal 9 (SIGKILL) received by PID 12\n=====\n")
    line = launch.failure_line(report, 1)
    assert line.startswith("rank 3 failed (exit code -9): Signal 9 (SIGKILL)") and "\n" not in line
    ours = report.replace("Signal 9 (SIGKILL) received by PID 12", "rank 1 (h) failed on model m: boom")
    assert launch.failure_line(ours, 1) == "rank 1 (h) failed on model m: boom"
    assert "status 2" in launch.failure_line("usage: ...", 2)


# ----------------------------------------------------------------------------------------------- the merge
def assert_same_cells(a, b, model, labels):
    for label in labels:
        xa, ka = load_cell(cell_path(a, model, label))
        xb, kb = load_cell(cell_path(b, model, label))
        assert ka["key"] == kb["key"], label
        assert sorted(xa) == sorted(xb), label
        for k in set(xa) - CELL_TIMING:
            assert xa[k].dtype == xb[k].dtype, (label, k)
            np.testing.assert_array_equal(xa[k], xb[k], err_msg=f"{label} {k}")


@pytest.mark.parametrize("stochastic", [False, True])
def test_merge_of_shards_equals_one_process(tiny_digits_model, tmp_path, stochastic):
    """Early exit, random starts, a stochastic model, uneven shards: the shards evaluated separately and
    merged as rank 0 merges them give the one-process matrix and cells (examples and keys included), and a
    one-process run into the merged directory reuses the merged cells."""
    data = load_eval("digits", N)
    model = NoisyNet(tiny_digits_model) if stochastic else tiny_digits_model
    key = {"checkpoint_sha256": "t0", "dataset": "digits"}
    kw = {"attacks": EARLY, "options": EvalOptions(batch_size=16, progress=False), "name": "m",
          "stochastic": stochastic}
    one, many = tmp_path / "one", tmp_path / "many"
    whole = evaluate(model, data.x, data.y, index=data.index, cache=CellCache(one, "m", key), **kw)
    payloads = []
    for start, end in dist_mod.shard_bounds(N, 16, 4):  # 6 blocks over 4 ranks: 32, 32, 16, 16 images
        cache = dist_mod.ShardCache(many, "m", key, shard=f"{start}-{end}")
        part = evaluate(model, data.x[start:end], data.y[start:end], index=data.index[start:end],
                        cache=cache, **kw)
        payloads.append(dist_mod.ShardPart(start, end, part, cache.cells))
    merged = dist_mod.merge_shards(payloads[::-1], data, many, "m", N, world_size=4)
    for k in ("index", "y", "clean_pred", "clean_conf", "clean_probs", "robust", "norm", "raw_norm", "pred",
              "conf"):
        np.testing.assert_array_equal(getattr(merged, k), getattr(whole, k), err_msg=k)
    assert merged.meta["shards"] == 4 and (merged.robust == -1).any() == (whole.robust == -1).any()
    assert_same_cells(many, one, "m", ["clean", *EARLY.labels])
    assert (tmp_path / "many/cells/m/shards/64-80/PGD.npz").is_file()

    calls = []
    cache = CellCache(many, "m", key)
    cache.put = lambda *a: calls.append(a)  # nothing may be recomputed
    again = evaluate(model, data.x, data.y, index=data.index, cache=cache, **kw)
    assert not calls
    np.testing.assert_array_equal(again.robust, whole.robust)


def test_merge_refuses_gaps_and_overlaps(tiny_digits_model, tmp_path):
    from honestbench.core.errors import BenchError

    data = load_eval("digits", 32)
    parts = []
    for start, end in ((0, 16), (8, 32)):
        cache = dist_mod.ShardCache(tmp_path, "m", {}, shard=f"{start}-{end}")
        m = evaluate(tiny_digits_model, data.x[start:end], data.y[start:end], EARLY,
                     EvalOptions(batch_size=8, progress=False), index=data.index[start:end], cache=cache)
        parts.append(dist_mod.ShardPart(start, end, m, cache.cells))
    with pytest.raises(BenchError, match="exactly once"):
        dist_mod.merge_shards(parts, data, tmp_path, "m", 32, world_size=2)
    with pytest.raises(BenchError, match="exactly once"):
        dist_mod.merge_shards(parts[:1], data, tmp_path, "m", 32, world_size=2)


# ----------------------------------------------------------------------------------------------- torchrun
def _zoo_ready() -> bool:
    from honestbench.zoo import get_card

    try:
        cards = [get_card("regular"), get_card("slwta")]
    except Exception:
        return False
    return (data_dir() / "cifar10_exact.npz").is_file() and all(c.checkpoint_path().is_file() for c in cards)


needs_zoo = pytest.mark.skipif(not _zoo_ready(), reason="zoo checkpoints or CIFAR-10 files absent")
RUN = ["run", "--models", "regular,slwta", "--suite", "ci", "--n", "64", "--batch-size", "16", "--quiet",
       "--no-report"]


#: tests/faults/sitecustomize.py: the ranks' fault injection (BENCH_FAIL_*), kept out of the package
FAULTS = Path(__file__).parent / "faults"


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_FAIL_")}
    env.update(OMP_NUM_THREADS="1", **extra)
    if any(k.startswith("BENCH_FAIL_") for k in extra):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FAULTS), env.get("PYTHONPATH")) if p)
    return env


def torchrun(out, *, workers: bool = False, **env) -> subprocess.CompletedProcess:
    """2 CPU processes: ``bench run --workers 2`` or ``torchrun --standalone --nproc_per_node 2 -m honestbench``."""
    if workers:
        cmd = [sys.executable, "-m", "honestbench", *RUN, "--out", str(out), "--workers", "2"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "honestbench", "--", *RUN, "--out", str(out)]
    return subprocess.run(cmd, env=_env(**env), capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    from honestbench.cli.main import main

    out = tmp_path_factory.mktemp("one")
    assert main([*RUN, "--out", str(out), "--device", "cpu"]) == 0
    return out


def assert_same_results(a, b):
    (_, ra), (_, rb) = read_records(a), read_records(b)
    assert [(r["model"], r["attack"]) for r in ra] == [(r["model"], r["attack"]) for r in rb]
    for x, y in zip(ra, rb, strict=True):
        for k in set(x) - TIMING:
            assert x[k] == y[k] or (x[k] != x[k] and y[k] != y[k]), (x["model"], x["attack"], k, x[k], y[k])
    for model in ("regular", "slwta"):
        ma, mb = Matrix.load(a / "matrices" / f"{model}.npz"), Matrix.load(b / "matrices" / f"{model}.npz")
        np.testing.assert_array_equal(ma.index, np.arange(64))  # no sample lost or duplicated
        for k in ("y", "clean_pred", "clean_probs", "robust", "norm", "pred", "conf"):
            np.testing.assert_array_equal(getattr(ma, k), getattr(mb, k), err_msg=f"{model} {k}")
        assert_same_cells(a, b, model, ["clean", *ma.labels])


@needs_zoo
def test_torchrun_two_processes_same_records(one_process, tmp_path):
    proc = torchrun(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 1/2" in proc.stderr and "images 32-64 of 64" in proc.stderr
    assert_same_results(tmp_path, one_process)
    assert (tmp_path / "cells/slwta/shards/32-64/PGD.npz").is_file()
    assert Matrix.load(tmp_path / "matrices/slwta.npz").meta["shards"] == 2


@needs_zoo
def test_killed_rank_fails_clearly_and_rerun_resumes(one_process, tmp_path):
    # 1. rank 1 is killed (SIGKILL) after its 2nd cell: torchrun stops rank 0, --workers says which rank died
    proc = torchrun(tmp_path, workers=True, BENCH_FAIL_RANK="1", BENCH_FAIL_AFTER="2", BENCH_FAIL_MODE="kill")
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert last.startswith("bench run: error: rank 1 failed (exit code -9): Signal 9 (SIGKILL)"), last
    shard1 = tmp_path / "cells/regular/shards/32-64"
    kept = {p.name: p.stat().st_mtime_ns for p in shard1.glob("*.npz")}
    assert len(kept) == 2 and not (tmp_path / "records.json").exists()
    # 2. torchrun itself, rank 1 raises after its next cell: rank 0 names it in one line, so does torchrun
    proc = torchrun(tmp_path, BENCH_FAIL_RANK="1", BENCH_FAIL_AFTER="1")
    assert proc.returncode != 0
    line = [s for s in proc.stderr.splitlines() if s.startswith("bench run: error:")]
    assert len(line) == 1 and "rank 1 (" in line[0] and "RuntimeError: injected fault" in line[0], proc.stderr
    assert "rerun the same command to resume" in line[0]
    assert "rank      : 1" in proc.stderr or "traceback : rank 1 (" in proc.stderr  # torchrun's report
    assert len(list(shard1.glob("*.npz"))) == 3
    # 3. the rerun computes only what is missing and gives the one-process results
    proc = torchrun(tmp_path, workers=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in shard1.glob("*.npz") if p.name in kept} == kept
    assert_same_results(tmp_path, one_process)


# ----------------------------------------------------------------------------------------------- one path
def test_one_process_is_a_world_of_size_one(monkeypatch):
    """Outside torchrun: rank 0 of 1, the collectives the identity, one shard of every image."""
    from honestbench.engine import world

    monkeypatch.delenv("RANK", raising=False)
    w = world.join("cpu")
    assert (w.rank, w.size, w.is_main, w.grouped) == (0, 1, True, False)
    assert w.all_gather("x") == ["x"] and w.gather("x") == ["x"]
    shard = dist_mod.shard_of(w, 10, 4)
    assert (shard.start, shard.end) == (0, 10)


def test_fault_injection_lives_in_the_tests():
    """The ranks' fault injection is tests/faults/sitecustomize.py, never the package."""
    package = Path(__file__).resolve().parents[1] / "honestbench"
    assert not [p for p in package.rglob("*.py") if "BENCH_FAIL" in p.read_text()]
    assert "BENCH_FAIL_RANK" in (FAULTS / "sitecustomize.py").read_text()
