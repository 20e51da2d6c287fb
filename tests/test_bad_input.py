"""The bad-input catalogue (issue 16), part 1: names, numbers, devices, output locations, `bench report` /
`bench check`, own models. Every case runs a command as a user would type it (in-process through
:func:`honestbench.cli.main.main`, one case as a real process) and asserts one line on stderr that names the
problem and the fix, the documented exit status (2: bad input or a run error; docs/reliability.md), no
traceback, and no partial or corrupt file in ``--out`` (:func:`catalogue.expect`). A few cases have no
command-line spelling (an attack built from Python with a bad budget); they assert the one-line
:class:`honestbench.core.errors.BenchError`. Part 2 (data, checkpoints, cards): tests/test_bad_input_files.py.

``BENCH_RELIABILITY_TABLE=/tmp/t.md pytest tests/test_bad_input.py tests/test_bad_input_files.py`` writes the
table of cases and messages in docs/reliability.md.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from catalogue import bad_run, expect, files_in, record, run, tmp_zoo, use_zoo  # noqa: F401 (fixtures)

from honestbench.attacks import create_attack
from honestbench.cli.main import main
from honestbench.core.errors import BenchError

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout the tests run in


# ------------------------------------------------------------------------------------------------ names
@pytest.mark.parametrize("case, flags, needles", [
    ("unknown model, close to one", ["--models", "dgi"], ["unknown model 'dgi'", "did you mean 'dig'"]),
    ("unknown model, far from all", ["--models", "zzzzzz"], ["unknown model 'zzzzzz'", "bench list models"]),
    ("unknown suite", ["--suite", "cii"], ["unknown suite 'cii'", "bench list suites"]),
    ("unknown suite parameter", ["--suite", "adaptive:aa_stepz=3"],
     ["unknown parameter 'aa_stepz'", "did you mean 'aa_steps'"]),
    ("suite parameter of the wrong type", ["--suite", "adaptive:aa_steps=abc"],
     ["aa_steps=abc", "key=integer, e.g. adaptive:aa_steps=50"]),
    ("unknown --data", ["--data", "mnist"], ["--data", "invalid choice", "--help"]),
])
def test_unknown_names(capsys, tmp_path, case, flags, needles):
    line = bad_run(capsys, tmp_path, case, flags, *needles)
    if "far" in case:
        assert "did you mean" not in line  # a suggestion only when it is close


@pytest.mark.parametrize("case, attacks, needles", [
    ("unknown attack", "pgd-lnf", ["unknown attack 'pgd-lnf'", "did you mean 'pgd-linf'", "bench list attacks"]),
    ("attack parameter unknown", "pgd-linf:stepz=3", ["unknown parameter 'stepz'", "did you mean 'steps'"]),
    ("attack eps < 0", "pgd-linf:eps=-0.1", ["eps must be >= 0, got -0.1", "non-negative"]),
    ("attack L-inf eps > 1", "pgd-linf:eps=8", ["eps 8.0 is more than the whole pixel range", "[0, 1] pixel units"]),
    ("attack steps 0", "pgd-linf:steps=0", ["steps must be an integer >= 1, got 0", "whole number"]),
    ("attack parameter of the wrong type", "pgd-linf:steps=abc", ["steps must be an integer >= 1, got 'abc'"]),
])
def test_bad_attack(capsys, tmp_path, case, attacks, needles):
    """``bench crosscheck --attacks NAME:KEY=VALUE`` (checked before the model loads)."""
    out = tmp_path / "cc.json"
    rc, err = run(capsys, ["crosscheck", "--attacks", attacks, "--n", "8", "--json", str(out), "--no-art"])
    expect(f"{case} (bench crosscheck --attacks {attacks})", rc, err, 2, *needles)
    assert not out.exists()


def test_bad_attack_from_python():
    """The same checks from Python: a one-line :class:`BenchError` (a command turns it into exit 2)."""
    with pytest.raises(BenchError) as info:
        create_attack("pgd-l2", eps=-1.0)
    line = str(info.value)
    assert "\n" not in line and "eps must be >= 0, got -1.0" in line
    record("attack eps < 0 (Python API)", "raises", f"{type(info.value).__name__}: {line}")
    assert create_attack("pgd-l2", eps=2.0).eps == 2.0  # L2 budgets above 1 are valid (up to sqrt(pixels))


# ------------------------------------------------------------------------------------------------ numbers
@pytest.mark.parametrize("case, flags, needles", [
    ("--n 0", ["--n", "0"], ["argument --n: '0' is too small", "a whole number from 1 to", "--help"]),
    ("--n negative", ["--n", "-3"], ["argument --n: '-3' is too small"]),
    ("--n larger than the data", ["--n", "5000"], ["--n 5000", "397 digits", "--n 397 or fewer"]),
    ("--n not a number", ["--n", "ten"], ["argument --n", "expected a whole number", "'ten'", "--help"]),
    ("--batch-size 0", ["--batch-size", "0"], ["argument --batch-size: '0' is too small", "from 1 to"]),
    ("--passes 0", ["--passes", "0"], ["argument --passes: '0' is too small", "--help"]),
    ("--passes not a number", ["--passes", "x"], ["--passes", "whole number"]),
    ("--device unknown", ["--device", "gpu"], ["--device gpu", "use auto, cpu or cuda"]),
    ("--device another backend", ["--device", "meta"], ["--device meta", "--device cpu"]),
])
def test_bad_numbers_and_devices(capsys, tmp_path, case, flags, needles):
    bad_run(capsys, tmp_path, case, flags, *needles)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_device_unavailable(capsys, tmp_path, device):
    bad_run(capsys, tmp_path, f"--device {device} without a GPU", ["--device", device],
            f"--device {device}", "no usable CUDA GPU", "--device cpu")


def test_a_real_process_gets_the_same_line(tmp_path):
    """The console script itself: exit status and one line, no traceback (the device check as the example)."""
    proc = subprocess.run([sys.executable, "-m", "honestbench", "run", "--models", "regular", "--device", "gpu",
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=1800, cwd=REPO_ROOT)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("bench run: error: --device gpu: not a device name"), proc.stderr
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------------ output
def test_out_is_a_file(capsys, tmp_path):
    out = tmp_path / "results.txt"
    out.write_text("keep me\n")
    rc, err = run(capsys, ["run", "--models", "dig", "--data", "digits", "--n", "8", "--quiet", "--out", str(out)])
    expect("--out an existing file", rc, err, 2, f"--out {out}", "is a file, not a folder", "choose a folder")
    assert out.read_text() == "keep me\n"
    rc, err = run(capsys, ["run", "--models", "dig", "--data", "digits", "--n", "8", "--out", str(out / "sub")])
    expect("--out under a file", rc, err, 2, "is a file, not a folder")


GOOD = ["run", "--models", "dig", "--data", "digits", "--suite", "ci", "--n", "8", "--quiet", "--no-report"]


@pytest.mark.parametrize("code, needles", [(errno.ENOSPC, ["No space left on device", "free space"]),
                                           (errno.EROFS, ["Read-only file system", "permissions"])])
def test_full_or_read_only_out(capsys, tmp_path, monkeypatch, code, needles):
    """A disk that fills (or turns read-only) when the results are written: one line, no file half-written."""
    out = tmp_path / "out"

    def refuse(src, dst):
        raise OSError(code, os.strerror(code), str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    rc, err = run(capsys, [*GOOD, "--out", str(out)])
    expect(f"output location {errno.errorcode[code]} (simulated)", rc, err, 2, "cannot use", *needles)
    assert [p for p in files_in(out)] == [], files_in(out)  # atomic writes: the temp files are gone too


def test_out_of_another_configuration(capsys, tmp_path):
    out = tmp_path / "out"
    rc, err = run(capsys, [*GOOD, "--out", str(out)])
    assert rc == 0, err
    before = {p: p.read_bytes() for p in files_in(out)}
    rc, err = run(capsys, [*GOOD[:-4], "--n", "16", "--quiet", "--no-report", "--out", str(out)])
    expect("--out holding another configuration", rc, err, 2, "another configuration", "n=8", "choose another --out")
    assert {p: p.read_bytes() for p in files_in(out)} == before


def test_unexpected_error_is_one_line(capsys, tmp_path, monkeypatch):
    import honestbench.pipeline.run as tools_run

    def boom(*a, **k):
        raise RuntimeError("deep inside torch\nwith a second line")

    monkeypatch.setattr(tools_run, "run_bench", boom)
    rc, err = run(capsys, [*GOOD, "--out", str(tmp_path / "o")])
    expect("an unexpected exception (a bug)", rc, err, 2, "unexpected RuntimeError: deep inside torch with",
           "BENCH_DEBUG=1")
    monkeypatch.setenv("BENCH_DEBUG", "1")
    with pytest.raises(RuntimeError, match="deep inside torch"):
        main([*GOOD, "--out", str(tmp_path / "o")])


# ------------------------------------------------------------------------------------------------ report, check
def test_report_on_empty_missing_or_corrupt_folder(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, err = run(capsys, ["report", str(empty)])
    expect("bench report on an empty folder", rc, err, 2, "no records in", "run `bench run --out")
    assert files_in(empty) == []
    rc, err = run(capsys, ["report", str(tmp_path / "missing")])
    expect("bench report on a missing folder", rc, err, 2, "no records in")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "records.json").write_text('{"schema": 1, "run": {"suite": ')
    rc, err = run(capsys, ["report", str(bad)])
    expect("bench report on a corrupt records.json", rc, err, 2, "records.json is not valid JSON", "restore it")
    assert [p.name for p in files_in(bad)] == ["records.json"]


def test_check_without_results(capsys, tmp_path):
    rc, err = run(capsys, ["check", "--results", str(tmp_path / "none")])
    expect("bench check --results missing", rc, err, 2, "no committed results in", "bench run --models all")


# ------------------------------------------------------------------------------------------------ own models
@pytest.mark.parametrize("case, spec, needles", [
    ("--model file that does not exist", "nowhere.py:build", ["nowhere.py does not exist"]),
    ("--model builder that does not exist", "mine.py:nobuilder", ["has no function 'nobuilder'"]),
    ("--model builder whose forward pass fails", "mine.py:build", ["forward pass on a", "failed"]),
])
def test_bad_own_model(capsys, tmp_path, case, spec, needles):
    (tmp_path / "mine.py").write_text("import torch\n\n\ndef build():\n    return torch.nn.Linear(3, 3)\n")
    bad_run(capsys, tmp_path, case, ["--models", "", "--model", str(tmp_path / spec)], *needles)
