"""Interruption (issue 16), with real processes: ``bench run`` stopped by SIGINT (Ctrl-C) or SIGKILL part-way
leaves a readable results folder (every cell and records file loads; Ctrl-C also leaves no temp file), and
rerunning the same command computes only the missing cells (the kept ones are not rewritten: same mtime) and
gives the records, matrices and cells of an uninterrupted run, timing and date fields excepted
(tests/test_determinism.py lists them). A killed torchrun worker is tested in tests/test_distributed.py
(``test_killed_rank_fails_clearly_and_rerun_resumes``: SIGKILL of rank 1, exit 2 naming it, the rerun
resumes to the one-process records).

The run: tests/test_determinism.py's :data:`COMMAND` (2 digits models, 16 cells) in a ``python -c`` process.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from test_determinism import assert_same_results, make_zoo, run_in_process, run_process

from honestbench.results import load_cell, read_records

CELLS = 16  # 2 models x (clean + 7 PGD columns)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> tuple[Path, Path]:
    """(zoo, results of the uninterrupted run)."""
    root = tmp_path_factory.mktemp("interrupt")
    zoo = make_zoo(root / "zoo")
    with pytest.MonkeyPatch.context() as mp:
        run_in_process(zoo, root / "baseline", mp)
    return zoo, root / "baseline"


def cells(out: Path) -> dict[Path, int]:
    """The finished cells of ``out`` and their modification times (ns)."""
    return {p: p.stat().st_mtime_ns for p in sorted(out.glob("cells/*/*.npz"))}


def interrupt(zoo: Path, out: Path, sig: signal.Signals, after: int) -> tuple[int, str]:
    """Start the run, send ``sig`` once ``after`` cells exist; (exit status, stderr)."""
    proc = run_process(zoo, out)
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        if out.is_dir() and len(cells(out)) >= after:
            proc.send_signal(sig)
            break
        time.sleep(0.005)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("sig, after", [(signal.SIGINT, 10), (signal.SIGKILL, 3)], ids=["SIGINT", "SIGKILL"])
def test_interrupted_run_is_readable_and_resumes(baseline, tmp_path, monkeypatch, sig, after):
    zoo, full = baseline
    out = tmp_path / "out"
    rc, err = interrupt(zoo, out, sig, after)
    assert rc != 0, f"the run finished before the signal (make COMMAND longer): {err[-500:]}"
    if sig == signal.SIGINT:
        assert rc == 130, err[-2000:]
        assert err.strip().splitlines()[-1] == ("bench run: interrupted; finished work is kept, rerun the same "
                                                "command to continue"), err[-2000:]
        assert "Traceback" not in err
        assert not list(out.rglob("*.tmp")), "Ctrl-C left a temp file"
    else:
        assert rc == -signal.SIGKILL
    kept = cells(out)
    assert after <= len(kept) < CELLS
    assert all(load_cell(p) is not None for p in kept), "a kept cell does not load"
    if (out / "records.json").exists():  # written after each finished model
        read_records(out)
    if sig == signal.SIGINT:
        assert {r["model"] for r in read_records(out)[1]} == {"dig"}  # the first model finished, the second not

    run_in_process(zoo, out, monkeypatch)  # the same command again
    after_rerun = cells(out)
    assert len(after_rerun) == CELLS
    assert {p: after_rerun[p] for p in kept} == kept, "a finished cell was computed again"
    assert_same_results(out, full)
