"""The examples in examples/ run end to end (issue 14): a user's own ResNet-18 evaluated from Python in one call
(examples/own_model.py) and from the command line through a card (examples/cards/), on 16 digits so that
a ResNet-18 takes seconds on a CPU; both must give the same records (same seeded random weights)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import honestbench
from honestbench.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def test_python_example_is_short_and_matches_the_card_run(tmp_path, capsys):
    script = EXAMPLES / "own_model.py"
    assert len(script.read_text().splitlines()) < 30
    cli_out = tmp_path / "cli"
    env = {**os.environ, "BENCH_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), "--data", "digits", "--n", "16"],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = [line.split() for line in done.stdout.strip().splitlines()[1:]]  # model attack accuracy count n
    rc = main(["run", "--models", str(EXAMPLES / "cards" / "resnet18-digits.toml"), "--data", "digits", "--suite",
               "ci", "--n", "16", "--out", str(cli_out), "--quiet", "--no-report"])
    assert rc == 0, capsys.readouterr().err
    cli = honestbench.results.load(cli_out)
    expected = list(zip(cli["attack"], cli["count"], cli["n"], strict=True))
    assert [(r[1], int(r[3]), int(r[4])) for r in printed] == expected

def test_cifar_card_parses_and_builds():
    from honestbench.zoo import get_card

    card = get_card(str(EXAMPLES / "cards" / "resnet18-cifar.toml"))
    assert card.builder and card.data == "cifar10" and card.trained
    model = honestbench.load_model(card)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
