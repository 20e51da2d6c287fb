"""scripts/compare_records.py: the one PASS/FAIL line of the 1-GPU nccl check (scripts/gpu_job.sh, item speed)
on hand-made result folders: timing, date and command fields are ignored, anything else that differs fails, and a
folder that did not go through the distributed merge fails whatever its records say."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout the tests run in


_spec = importlib.util.spec_from_file_location("compare_records", REPO_ROOT / "scripts" / "compare_records.py")
cr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cr)

RECORDS = {"schema": 1, "run": {"suite": "ci", "n": 8, "date": "2026-01-01", "command": "bench run --out a",
                                "device": "cuda"},
           "records": [{"model": "regular", "attack": "PGD", "accuracy": 0.5, "count": 4, "seconds": 1.0,
                        "ms_per_image_b1": 2.0, "date": "2026-01-01", "device": "cuda"}]}


def _folder(tmp_path, name, records, world_size=None):
    d = tmp_path / name
    (d / "matrices").mkdir(parents=True)
    (d / "records.json").write_text(json.dumps(records))
    meta = {"model": "regular"} if world_size is None else {"model": "regular", "world_size": world_size}
    np.savez(d / "matrices" / "regular.npz", meta=np.array(json.dumps(meta)))
    return d


def _timing_changed():
    other = copy.deepcopy(RECORDS)
    other["run"].update(date="2026-02-02", command="bench run --out b", device="cuda:0")
    other["records"][0].update(seconds=3.0, ms_per_image_b1=9.0, date="2026-02-02", device="cuda:0")
    return other


def test_timing_date_command_and_device_index_are_ignored(tmp_path, capsys):
    plain = _folder(tmp_path, "plain", RECORDS)
    dist = _folder(tmp_path, "dist", _timing_changed(), world_size=1)
    assert cr.main([str(plain), str(dist), "--label", "nccl"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PASS: nccl run (world size 1) equals the plain run: 1 records") and out.count("\n") == 1


@pytest.mark.parametrize("change, where", [
    (lambda r: r["records"][0].update(accuracy=0.625), ".records[0].accuracy: 0.5 vs 0.625"),
    (lambda r: r["records"].append(dict(r["records"][0])), ".records: 1 vs 2 entries"),
    (lambda r: r["run"].update(n=16), ".run.n: 8 vs 16"),
    (lambda r: r["records"][0].update(warnings="x"), ".records[0].warnings only in the distributed run"),
])
def test_any_other_difference_fails_and_is_named(tmp_path, change, where):
    other = _timing_changed()
    change(other)
    ok, line = cr.compare(_folder(tmp_path, "plain", RECORDS), _folder(tmp_path, "dist", other, world_size=1))
    assert not ok and line.startswith("FAIL: distributed run differs from the plain run: ") and where in line


def test_a_run_that_skipped_the_distributed_path_fails(tmp_path):
    ok, line = cr.compare(_folder(tmp_path, "plain", RECORDS), _folder(tmp_path, "dist", RECORDS))
    assert not ok and "did not take the distributed path" in line and "BENCH_DIST_FORCE=1" in line


def test_the_control_run_says_whether_plain_runs_reproduce(tmp_path):
    other = copy.deepcopy(RECORDS)
    other["records"][0]["accuracy"] = 0.625
    plain, dist = _folder(tmp_path, "plain", RECORDS), _folder(tmp_path, "dist", other, world_size=1)
    _, line = cr.compare(plain, dist, control=_folder(tmp_path, "c1", RECORDS))
    assert "(two plain runs are identical)" in line
    _, line = cr.compare(plain, dist, control=_folder(tmp_path, "c2", other))
    assert "two plain runs differ too, in 1 place(s)" in line


def test_a_missing_folder_is_one_error_line(tmp_path, capsys):
    plain = _folder(tmp_path, "plain", RECORDS)
    assert cr.main([str(plain), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read ") and err.count("\n") == 1


def test_a_one_process_torchrun_world_takes_the_distributed_path_only_when_forced(monkeypatch):
    from honestbench.engine import world as distributed

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.delenv(distributed.FORCE_ENV, raising=False)
    assert not distributed.is_distributed()
    monkeypatch.setenv(distributed.FORCE_ENV, "1")
    assert distributed.is_distributed()
    monkeypatch.delenv("RANK")  # not under torchrun: never
    assert not distributed.is_distributed()
