"""Interruption (issue 16), with real processes: ``bench run`` stopped by SIGINT (Ctrl-C) or SIGKILL part-way
leaves a readable results folder (every cell and records file loads; Ctrl-C also leaves no temp file), and
rerunning the same command computes only the missing cells (the kept ones are not rewritten: same inode and mtime) and
gives the records, matrices and cells of an uninterrupted run, timing and date fields excepted
(tests/test_determinism.py lists them). A killed torchrun worker is tested in tests/test_distributed.py
(``test_killed_rank_fails_clearly_and_rerun_resumes``: SIGKILL of rank 1, exit 2 naming it, the rerun
resumes to the one-process records).

The run: tests/test_determinism.py's :data:`COMMAND` (2 digits models, 16 cells) in a ``python -c`` process that
pauses right after its 10th (SIGINT) or 3rd (SIGKILL) finished cell (tests/pausing.py); the signal is sent only
once it has paused, so the run can never finish first, however fast or slow the machine (issue 20). A kept
cell is "not rewritten" when its inode and mtime are unchanged (a rewrite renames a new file over it).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from pausing import bench_env, signal_when_paused, start_paused
from test_determinism import COMMAND, PROGRAM, assert_same_results, make_zoo, run_in_process

from honestbench.results import load_cell, read_records

REPO_ROOT = Path(__file__).resolve().parents[1]

CELLS = 16  # 2 models x (clean + 7 PGD columns)


def cells(out: Path) -> dict[Path, tuple[int, int]]:
    """The finished cells of ``out``: (inode, modification time in ns) of each."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(out.glob("cells/*/*.npz"))}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> tuple[Path, Path]:
    """(zoo, results of the uninterrupted run)."""
    root = tmp_path_factory.mktemp("interrupt")
    zoo = make_zoo(root / "zoo")
    with pytest.MonkeyPatch.context() as mp:
        run_in_process(zoo, root / "baseline", mp)
    return zoo, root / "baseline"


def interrupt(zoo: Path, out: Path, sig: signal.Signals, after: int) -> tuple[int, str]:
    """Run :data:`COMMAND` into ``out`` in a child that pauses right after its ``after``-th finished cell (its
    rename onto ``cells/MODEL/COLUMN.npz``), send ``sig`` there; (exit status, stderr)."""
    ready = out.parent / f"{out.name}.paused"
    proc = start_paused(PROGRAM, [str(zoo), *COMMAND, "--out", str(out)], f"{out}/cells/*/*.npz", after, ready,
                        cwd=REPO_ROOT, env=bench_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, err = signal_when_paused(proc, ready, sig)
    return proc.returncode, err


@pytest.mark.parametrize("sig, after", [(signal.SIGINT, 10), (signal.SIGKILL, 3)], ids=["SIGINT", "SIGKILL"])
def test_interrupted_run_is_readable_and_resumes(baseline, tmp_path, monkeypatch, sig, after):
    zoo, full = baseline
    out = tmp_path / "out"
    rc, err = interrupt(zoo, out, sig, after)
    if sig == signal.SIGINT:
        assert rc == 130, err[-2000:]
        assert err.strip().splitlines()[-1] == ("bench run: interrupted; finished work is kept, rerun the same "
                                                "command to continue"), err[-2000:]
        assert "Traceback" not in err
        assert not list(out.rglob("*.tmp")), "Ctrl-C left a temp file"
    else:
        assert rc == -signal.SIGKILL, err[-2000:]
    kept = cells(out)
    assert len(kept) == after  # the child paused right after that cell: none more, none fewer
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
