"""Determinism (issue 16): the same ``bench run`` command twice gives identical records, matrices and cells,
apart from the fields that say when and from which checkout it ran (:data:`VOLATILE_RECORD`,
:data:`VOLATILE_RUN`, :data:`VOLATILE_CELL`; listed in docs/reliability.md).

Models: two small random-weight CNN cards on scikit-learn's digits in a temporary zoo (``--models CARD.toml``
would do the same; here ``honestbench.zoo.cards.MODELS_DIR`` is patched so that a plain name works in-process and in
a subprocess alike). The helpers are shared with tests/test_interrupt.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from honestbench.core.io import sha256_file

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout the tests run in

#: per-record fields that may differ between two runs of one command: wall-clock timings, the date, and the
#: git commit (a checkout that changes between the runs changes it; the test runs in a working tree)
VOLATILE_RECORD = frozenset({"seconds", "ms_per_image_b1", "ms_per_image_b256", "date", "git_commit"})
#: run-level fields of records.json that may differ: the date, the git commit, and the commands that wrote
#: into the folder (a rerun adds its own line)
VOLATILE_RUN = frozenset({"date", "git_commit", "commands", "command"})
#: fields of cells and matrices (arrays, and keys of their JSON meta at any depth) that may differ: timings
VOLATILE_CELL = frozenset({"seconds", "ms_b1", "ms_b256", "clean_seconds", "ms_per_image_b1", "ms_per_image_b256",
                           "date"})

MODELS = ("dig", "dig2")
SMALL = 'backbone = "small-cnn"\n[backbone_args]\nwidths = [8, 8, 16, 16]\n[defence]\nkind = "none"\n'
#: the run of these tests: 2 models x (clean + 7 PGD-10 columns) on 128 digits images in 4 batches each, 16
#: cells written one after another (about 2 s of work on one thread of a busy 2-core box)
COMMAND = ["run", "--models", ",".join(MODELS), "--data", "digits", "--suite", "eps-sweep", "--n", "128",
           "--batch-size", "32", "--quiet", "--no-report"]
#: ``python -c`` program: bench's CLI with the zoo at argv[1] (what `bench` would be with these cards)
PROGRAM = ("import sys; from pathlib import Path; import honestbench.zoo.cards as c; c.MODELS_DIR = Path(sys.argv[1]); "
           "from honestbench.cli.main import main; sys.exit(main(sys.argv[2:]))")


def make_zoo(root: Path) -> Path:
    """Cards ``dig`` and ``dig2`` (small-cnn, digits, seeds 0 and 1 for their random weights) with checkpoints."""
    from honestbench.zoo.cards import parse_card
    from honestbench.zoo.loading import build_model

    root.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(MODELS):
        card, ckpt = root / f"{name}.toml", root / f"{name}.pt"
        card.write_text(f'name = "{name}"\ndata = "digits"\ncheckpoint = "{ckpt}"\n{SMALL}')
        torch.manual_seed(seed)
        torch.save(build_model(parse_card(card)).state_dict(), ckpt)
        with open(card, "a") as f:
            f.write(f'[result]\nsha256 = "{sha256_file(ckpt)}"\n')
    return root


def run_process(zoo: Path, out: Path, **kw) -> subprocess.Popen:
    """``bench run`` (:data:`COMMAND`) into ``out`` as a real process, one thread."""
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "BENCH_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", PROGRAM, str(zoo), *COMMAND, "--out", str(out)], cwd=REPO_ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)


def comparable(out: Path) -> dict:
    """Everything ``bench run`` wrote into ``out`` that must not change between runs of one command."""
    data = json.loads((out / "records.json").read_text())
    state = {"run": {k: v for k, v in data["run"].items() if k not in VOLATILE_RUN},
             "records": [{k: v for k, v in r.items() if k not in VOLATILE_RECORD} for r in data["records"]]}
    for path in sorted(out.rglob("*.npz")):
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k].tolist() for k in z.files if k not in VOLATILE_CELL}
        arrays["meta"] = _strip(json.loads(arrays.get("meta", "{}")))
        state[str(path.relative_to(out))] = arrays
    for path in sorted(out.rglob("model.json")):
        state[str(path.relative_to(out))] = _strip(json.loads(path.read_text()))
    return state


def _strip(obj: object) -> object:
    """``obj`` without the volatile cell keys, at any depth."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE_CELL}
    return [_strip(v) for v in obj] if isinstance(obj, list) else obj


def assert_same_results(a: Path, b: Path) -> None:
    """Records, matrices and cells of ``a`` and ``b`` equal apart from the volatile fields (NaN equals NaN)."""
    sa, sb = comparable(a), comparable(b)
    assert sorted(sa) == sorted(sb)
    for key in sa:
        assert json.dumps(sa[key], sort_keys=True) == json.dumps(sb[key], sort_keys=True), key


def run_in_process(zoo: Path, out: Path, monkeypatch) -> None:
    """``bench run`` (:data:`COMMAND`) into ``out`` through :func:`honestbench.cli.main.main` (no import cost)."""
    import honestbench.zoo.cards as cards
    from honestbench.cli.main import main

    monkeypatch.setattr(cards, "MODELS_DIR", zoo)
    assert main([*COMMAND, "--out", str(out)]) == 0


def test_same_command_twice_gives_identical_results(tmp_path, monkeypatch):
    zoo = make_zoo(tmp_path / "zoo")
    for i in (1, 2):
        run_in_process(zoo, tmp_path / f"out{i}", monkeypatch)
    assert len(comparable(tmp_path / "out1")["records"]) == 2 * 9  # clean, 7 PGD columns, worst case; both models
    assert_same_results(tmp_path / "out1", tmp_path / "out2")
