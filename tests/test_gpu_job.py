"""scripts/gpu_job.sh on the CPU (DRY_RUN=1: digits training, 4-image evaluations, quick speed in fp32 and bf16 with
the precision check, the 1-process torchrun (gloo) run compared with a plain run): every step runs, is marked done,
its log and the packed job folder come back, and a second run skips what is done. No GPU."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout the tests run in


SCRIPT = REPO_ROOT / "scripts" / "gpu_job.sh"


def test_gpu_job_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def _run(tmp_path, *items: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DRY_RUN": "1", "TRAIN_CARDS": "pgd-at:1:32", "JOB_DIR": str(tmp_path / "job"),
           "OUT": str(tmp_path / "out"), "BENCH_THREADS": "1"}
    (tmp_path / "out").mkdir(exist_ok=True)
    return subprocess.run(["bash", str(SCRIPT), *items], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)


@pytest.mark.slow
def test_dry_run_runs_every_step_and_resumes(tmp_path):
    r = _run(tmp_path, "train", "eval", "speed")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    job = tmp_path / "job"
    steps = {"train-pgd-at", "eval-standard-regular", "eval-adaptive-regular", "speed", "distributed",
             "distributed-plain", "distributed-plain2", "distributed-compare"}
    assert {p.name for p in (job / "done").iterdir()} == steps
    for s in steps:
        assert (job / "logs" / f"{s}.txt").is_file(), s
    assert (job / "runs" / "pgd-at-digits" / "last.pt").is_file()  # the resumable epoch checkpoint travels
    assert (job / "results" / "standard" / "records.json").is_file()
    speed = json.loads((job / "results" / "speed_cpu.json").read_text())
    assert {"pgd-cost small-cnn", "pgd-cost small-cnn bf16", "pgd-10 precision fp32 vs bf16"} <= set(speed["sections"])
    assert "robust_diff_pp" in speed  # the precision check ran on the trained pgd-at checkpoint (4 images)
    assert "PASS: 1-process torchrun (gloo) run (world size 1) equals the plain run" in r.stdout
    parts = sorted((tmp_path / "out").glob("job.tar.part*"))
    assert parts and all(p.stat().st_size <= 16 * 2 ** 20 for p in parts)
    with open(tmp_path / "job.tar", "wb") as f:
        for p in parts:
            f.write(p.read_bytes())
    with tarfile.open(tmp_path / "job.tar") as t:
        assert "job/done/speed" in t.getnames()
    again = _run(tmp_path, "train", "eval", "speed")
    assert again.returncode == 0 and again.stdout.count("done earlier, skipped") == len(steps)
