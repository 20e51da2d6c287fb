"""Helpers of the bad-input catalogue (tests/test_bad_input.py, tests/test_bad_input_files.py): a temporary zoo
of small random-weight CNN cards (``honestbench.zoo.cards.MODELS_DIR`` patched), running a command in-process, and
:func:`expect`, the catalogue's assertions. ``BENCH_RELIABILITY_TABLE=FILE`` collects every case's exit status
and message into the markdown table of docs/reliability.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

import honestbench.zoo.cards as cards
from honestbench.cli.main import main
from honestbench.core.io import sha256_file

_table_started = False


def record(case: str, status: str, line: str) -> None:
    """Add a row to the table of ``$BENCH_RELIABILITY_TABLE`` (when set; the first row of a session starts it)."""
    global _table_started
    path = os.environ.get("BENCH_RELIABILITY_TABLE")
    if not path:
        return
    line = re.sub(r"/tmp/pytest-of-[^/]+/pytest-\d+/[^/]+/", "TMP/", line).replace("|", "/")
    with open(path, "a" if _table_started else "w") as f:
        if not _table_started:
            f.write("| case | exit | message (stderr) |\n| --- | --- | --- |\n")
        f.write(f"| {case} | {status} | `` {line} `` |\n")  # a double-backtick span: messages hold backticks
    _table_started = True
SMALL = 'backbone = "small-cnn"\n[backbone_args]\nwidths = [8, 8, 16, 16]\n[defence]\nkind = "none"\n'


def write_card(zoo: Path, name: str, data: str = "digits", state: object | None = None) -> Path:
    """A small-cnn card ``name`` with a checkpoint holding ``state`` (default: the card's own random weights)."""
    from honestbench.zoo.loading import build_model

    card = zoo / f"{name}.toml"
    ckpt = zoo / f"{name}.pt"
    card.write_text(f'name = "{name}"\ndata = "{data}"\ncheckpoint = "{ckpt}"\n{SMALL}')
    if state is None:
        torch.manual_seed(0)
        state = build_model(cards.parse_card(card)).state_dict()
    torch.save(state, ckpt)
    with open(card, "a") as f:
        f.write(f'[result]\nsha256 = "{sha256_file(ckpt)}"\n')
    return ckpt


@pytest.fixture(scope="module")
def tmp_zoo(tmp_path_factory) -> Path:
    """A temporary zoo: ``dig`` (digits) and ``cif`` (CIFAR-10), random weights, sha256 in the cards."""
    d = tmp_path_factory.mktemp("zoo")
    write_card(d, "dig")
    write_card(d, "cif", data="cifar10")
    return d


@pytest.fixture(autouse=True)
def use_zoo(tmp_zoo, monkeypatch):
    monkeypatch.setattr(cards, "MODELS_DIR", tmp_zoo)
    monkeypatch.delenv("BENCH_DEBUG", raising=False)


def run(capsys, argv: list[str]) -> tuple[int, str]:
    """``bench ARGV`` in-process: (exit status, stderr); argparse's SystemExit becomes its status."""
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    return rc, capsys.readouterr().err


def files_in(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file()) if out.exists() else []


def expect(case: str, rc: int, err: str, status: int, *needles: str, out: Path | None = None) -> str:
    """The catalogue's assertions; returns the message line."""
    lines = [s for s in err.splitlines() if s.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"{case}: expected one line on stderr, got {lines}"
    line = lines[0]
    assert rc == status, f"{case}: exit {rc}, expected {status}: {line}"
    assert line.startswith("bench ") and ": error: " in line, line
    for needle in needles:
        assert needle.lower() in line.lower(), f"{case}: {needle!r} not in {line!r}"
    if out is not None:
        assert files_in(out) == [], f"{case}: files left in --out: {files_in(out)}"
    record(case, str(status), line)
    return line


def bad_run(capsys, tmp_path, case: str, flags: list[str], *needles: str, status: int = 2) -> str:
    """``bench run --models dig --data digits --suite ci --n 8 --quiet FLAGS --out TMP`` must fail cleanly."""
    out = tmp_path / "out"
    argv = ["run", "--models", "dig", "--data", "digits", "--suite", "ci", "--n", "8", "--quiet", "--out", str(out)]
    rc, err = run(capsys, argv + flags)
    return expect(case, rc, err, status, *needles, out=out)
