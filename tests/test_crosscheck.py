"""Cross-check tolerances on the tiny trained digits CNN (first 128 evaluation images, seed 0).

The tolerances are those of honestbench/pipeline/crosscheck/compare.py: deterministic kernels match torchattacks' images
to 1e-5 and ART's robust accuracy to 1 pp; random-start kernels match both within 1.5 pp (mean over 8 paired
seeds); CW-L2 within 2 pp of ART at L2 <= 0.5. The fast CW row uses 4 search steps x 50 iterations (ART's
CarliniL2Method is slow); the default 9 x 100 row is in the slow test.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
import torch

from honestbench.attacks.fgsm import FGSM
from honestbench.cli.crosscheck import main as crosscheck_command
from honestbench.devtools.crosscheck import DEFAULT_ROWS, crosscheck, format_table

REPO_ROOT = Path(__file__).resolve().parents[1]

FAST_ROWS = [row for row in DEFAULT_ROWS if row[1] != "cw-l2"] + [
    ("cw-l2 (4x50)", "cw-l2", {"search_steps": 4, "steps": 50}),
    # budgets where the digits model actually moves (8/255 is half a gray level of these 1/16-step images)
    ("pgd-linf eps 0.1 (no random start)", "pgd-linf",
     {"eps": 0.1, "alpha": 0.025, "random_start": False, "early_stop": False}),
    ("pgd-linf eps 0.1", "pgd-linf", {"eps": 0.1, "alpha": 0.025}),
    ("fgsm eps 0.1", "fgsm", {"eps": 0.1}),
    ("pgd-l2 eps 1 (no random start)", "pgd-l2", {"eps": 1.0, "random_start": False, "early_stop": False}),
    ("eot-pgd-linf eps 0.1 (no random start)", "eot-pgd-linf",
     {"eps": 0.1, "alpha": 0.025, "eot": 3, "random_start": False, "early_stop": False}),
]


@pytest.fixture(scope="module")
def result(tiny_digits_model, digits_eval):
    x, y = digits_eval
    return crosscheck(tiny_digits_model, x, y, attacks=FAST_ROWS, seed=0)


def test_every_verdict_ok(result):
    bad = [(r["attack"], r["note"]) for r in result["rows"] if r["verdict"] != "ok"]
    assert not bad, format_table(result)
    assert result["all_ok"] and result["n"] == 128 and result["clean_accuracy"] > 95


def test_deterministic_rows_match_torchattacks_images(result):
    exact = [r for r in result["rows"] if r["deterministic"]]
    assert len(exact) >= 8
    for r in exact:
        assert r["max_abs_diff"]["torchattacks"] <= 1e-5, r["attack"]
        assert abs(r["robust_accuracy"]["ours"] - r["robust_accuracy"]["art"]) <= 1.0, r["attack"]
        # our first-success early stop is never weaker than the exact iteration
        es = r["extra"].get("ours_early_stop_robust_accuracy")
        assert es is None or es <= r["robust_accuracy"]["ours"], r["attack"]
    # the larger budgets flip many samples, so the match is not a trivial "nothing moved"
    big = next(r for r in exact if r["attack"] == "pgd-linf eps 0.1 (no random start)")
    assert big["robust_accuracy"]["ours"] < result["clean_accuracy"] - 15


@pytest.mark.parametrize("n", [100, 128])
def test_exact_match_at_any_batch_size(n, tiny_digits_model, digits_eval):
    """Bit-identical to torchattacks also when n is not a power of two (a summed loss was not: 20 PGD-L2
    steps amplified its last-bit differences to 5e-5 at n = 397)."""
    from honestbench.attacks import create_attack
    from honestbench.devtools.crosscheck import torchattacks_equivalent

    x, y = digits_eval[0][:n], digits_eval[1][:n]
    for name, kw in (("pgd-l2", {"eps": 1.0}), ("pgd-linf", {"eps": 0.1, "alpha": 0.025})):
        ours = create_attack(name, random_start=False, early_stop=False, **kw)
        ref, _ = torchattacks_equivalent(ours, tiny_digits_model, n)
        assert torch.equal(ours(tiny_digits_model, x, y), ref(x, y)), name


def test_random_rows_use_paired_seeds(result):
    rows = [r for r in result["rows"] if r["attack"] in ("pgd-linf", "pgd-l2", "pgd-linf eps 0.1")]
    assert len(rows) == 3
    for r in rows:
        assert len(r["seeds"]) == 8 and len(r["robust_accuracy_per_seed"]["ours"]) == 8
        for ref in ("torchattacks", "art"):
            assert abs(r["robust_accuracy"]["ours"] - r["robust_accuracy"][ref]) <= 1.5


def test_cw_row_reports_torchattacks_margin_problem(result):
    cw = next(r for r in result["rows"] if r["name"] == "cw-l2")
    assert abs(cw["robust_accuracy"]["ours"] - cw["robust_accuracy"]["art"]) <= 2.0
    assert "torchattacks" in cw["robust_accuracy"] and "margin" in cw["note"]
    assert cw["max_abs_diff"] == {}  # different optimisers: no pixel comparison


def test_a_wrong_kernel_fails(tiny_digits_model, digits_eval):
    """A kernel that steps the wrong way must get a FAIL verdict (the check is computed, not asserted)."""

    @dataclasses.dataclass
    class WrongFGSM(FGSM):
        name: ClassVar[str] = "fgsm"

        def perturb(self, model, x, y, generator):
            return (x - self.eps * torch.sign(x - 0.5)).clamp(0, 1)

    x, y = digits_eval
    res = crosscheck(tiny_digits_model, x, y, attacks=[WrongFGSM(eps=0.1)])
    row = res["rows"][0]
    assert row["verdict"] == "FAIL" and not res["all_ok"]
    assert "images differ from torchattacks" in row["note"]


def test_attack_without_reference_gets_na(tiny_digits_model, digits_eval):
    """The reference table is keyed by registered name: an attack missing from it is compared with nothing and
    gets "n/a" (not FAIL), without any edit to the cross-check."""
    from honestbench.attacks import attack_names
    from honestbench.devtools.crosscheck import EQUIVALENTS

    assert set(EQUIVALENTS) <= set(attack_names())  # no entry names an attack that does not exist

    @dataclasses.dataclass
    class OtherFGSM(FGSM):
        name: ClassVar[str] = "other-fgsm"

    x, y = digits_eval
    res = crosscheck(tiny_digits_model, x[:32], y[:32], attacks=[OtherFGSM(eps=0.1), ("fgsm", "fgsm", {})])
    other, fgsm = res["rows"]
    assert other["verdict"] == "n/a" and "no reference implementation" in other["note"]
    assert set(other["robust_accuracy"]) == {"ours"} and other["tolerance"] == {}
    assert fgsm["verdict"] == "ok" and res["all_ok"]
    assert "n/a" in format_table(res)


def test_command_writes_json_and_exit_code(tmp_path, capsys):
    out = tmp_path / "cc.json"
    attacks = "fgsm,pgd-linf:eps=0.1:random_start=False:early_stop=False"
    args = SimpleNamespace(model="tiny-digits", attacks=attacks, json_path=str(out), dataset="cifar10",
                           data="npz", n=64, device="cpu", seed=0)
    assert crosscheck_command(args) == 0
    data = json.loads(out.read_text())
    assert data["dataset"] == "digits" and data["n"] == 64 and data["all_ok"]
    assert [r["verdict"] for r in data["rows"]] == ["ok", "ok"]
    assert "verdict" in capsys.readouterr().out


@pytest.mark.slow
def test_default_rows_full_cw(tiny_digits_model, digits_eval):
    """The rows of ``bench crosscheck --attacks all`` with CW's default 9 x 100 (minutes: ART's CW)."""
    x, y = digits_eval
    res = crosscheck(tiny_digits_model, x, y, attacks="all")
    assert res["all_ok"], format_table(res)


# ----------------------------------------------------------------------------------------------- defaults, ART optional
def _python(code: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_bench_run_does_not_import_art(tmp_path):
    """ART is an optional extra of the developer harnesses: a user's `bench run` (and importing the harnesses)
    never loads it."""
    net = tmp_path / "net.py"
    net.write_text("import torch\n\n\ndef build():\n"
                   "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))\n")
    argv = ["run", "--model", f"{net}:build", "--data", "digits", "--suite", "ci", "--n", "8", "--quiet",
            "--no-report", "--out", str(tmp_path / "out")]
    code = ("import sys\nfrom honestbench.cli.main import main\n"
            f"rc = main({argv!r})\n"
            "import honestbench.devtools.crosscheck, honestbench.devtools.speed\n"
            "print('RC', rc, 'ART', sorted(m for m in sys.modules if m.split('.')[0] == 'art'))")
    p = _python(code)
    assert "RC 0 ART []" in p.stdout, p.stdout + p.stderr


def test_missing_art_is_one_line_naming_the_extra():
    code = ("import sys\nsys.modules['art'] = None\nfrom honestbench.cli.main import main\n"
            "print('RC', main(['crosscheck', '--art', '--n', '8', '--attacks', 'fgsm', '--quiet']))")
    p = _python(code)
    assert "RC 2" in p.stdout, p.stdout + p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'honestbench[crosscheck]'" in lines[0], p.stderr


def test_cli_defaults_are_the_fast_check():
    """Default: torchattacks only, 2 seeds, every row but the ART-only CW, EOT rows at 2 passes; --art adds CW;
    --full is everything at the registered defaults."""
    from honestbench.cli.main import build_parser
    from honestbench.devtools.crosscheck.driver import FAST_EOT, default_rows

    args = build_parser().parse_args(["crosscheck"])
    assert args.seeds is None and not args.art and not args.full and args.attacks == "default" and args.n == 128
    fast = default_rows(("torchattacks",))
    assert [r[1] for r in fast] == [r[1] for r in DEFAULT_ROWS if r[1] != "cw-l2"]
    assert all(kw.get("eot") == FAST_EOT for _, name, kw in fast if name.startswith("eot-"))
    assert [r[1] for r in default_rows(("torchattacks", "art"))] == [r[1] for r in DEFAULT_ROWS]
    text = build_parser()._subparsers._group_actions[0].choices["crosscheck"].format_help()
    for needle in ("torchattacks only", "2 paired seeds", "EOT rows at 2 passes", "--art", "--full",
                   "FILE.py:builder"):
        assert needle in " ".join(text.split()), needle


def test_command_takes_bench_run_model_specs(tmp_path, tiny_digits_model, capsys):
    """--model FILE.py:builder@weights.pt (as bench run): the model is the one the spec names, on --data digits."""
    weights = tmp_path / "w.pt"
    torch.save(tiny_digits_model.state_dict(), weights)
    net = tmp_path / "net.py"
    net.write_text("from honestbench.train.tiny import TinyDigitsNet\n\n\ndef build():\n    return TinyDigitsNet()\n")
    out = tmp_path / "cc.json"
    args = SimpleNamespace(model=f"{net}:build@{weights}", attacks="fgsm", json_path=str(out), dataset="digits",
                           data="npz", n=32, device="cpu", seed=0, quiet=True)
    assert crosscheck_command(args) == 0
    data = json.loads(out.read_text())
    assert data["dataset"] == "digits" and data["references"] == ["torchattacks"] and data["random_seeds"] == 2
    assert data["clean_accuracy"] > 90 and data["rows"][0]["verdict"] == "ok"
