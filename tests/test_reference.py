"""``bench crosscheck`` cost knobs (``--seeds N``, ``--no-art``) and the paired evaluation of every library's
adversarial images on a stochastic model (tiny digits CNN, first 128 evaluation images)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from honestbench.cli.main import build_parser
from honestbench.devtools.crosscheck import crosscheck

PGD_01 = ("pgd-linf eps 0.1", "pgd-linf", {"eps": 0.1, "alpha": 0.025})


def test_cli_defaults_and_knobs_parse():
    args = build_parser().parse_args(["crosscheck"])  # the fast default: 2 seeds (cli.crosscheck), no ART
    assert args.seeds is None and args.art is False and args.full is False
    args = build_parser().parse_args(["crosscheck", "--seeds", "3", "--no-art"])
    assert args.seeds == 3 and args.no_art is True


def test_seeds_and_no_art(tiny_digits_model, digits_eval):
    x, y = digits_eval
    res = crosscheck(tiny_digits_model, x, y, attacks=[PGD_01, ("cw-l2 (2x10)", "cw-l2",
                                                                {"search_steps": 2, "steps": 10})],
                     random_seeds=3, references=("torchattacks",))
    pgd, cw = res["rows"]
    assert res["references"] == ["torchattacks"] and res["random_seeds"] == 3
    assert pgd["seeds"] == [0, 1, 2] and set(pgd["robust_accuracy"]) == {"ours", "torchattacks"}
    assert len(pgd["robust_accuracy_per_seed"]["torchattacks"]) == 3
    assert pgd["verdict"] == "ok" and "not run: art" in pgd["note"]
    assert cw["verdict"] == "n/a"  # only ART checks CW: skipped, not passed and not failed
    assert res["all_ok"]


def test_default_still_runs_both_references(tiny_digits_model, digits_eval):
    x, y = digits_eval
    res = crosscheck(tiny_digits_model, x[:32], y[:32], attacks=[PGD_01], random_seeds=2)
    assert set(res["rows"][0]["robust_accuracy"]) == {"ours", "torchattacks", "art"}
    assert res["references"] == ["torchattacks", "art"]


def test_bad_arguments(tiny_digits_model, digits_eval):
    from honestbench.core.errors import BenchError

    x, y = digits_eval
    with pytest.raises(BenchError):
        crosscheck(tiny_digits_model, x, y, attacks=[PGD_01], references=("foolbox",))
    with pytest.raises(BenchError):
        crosscheck(tiny_digits_model, x, y, attacks=[PGD_01], random_seeds=0)


class NoisyLogits(nn.Module):
    """A stochastic model: the tiny CNN's logits plus N(0, 3^2) noise from the global RNG at every pass."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.inner(x)
        return z + 3.0 * torch.randn(z.shape, device=z.device)


def test_stochastic_model_images_evaluated_with_the_same_draws(tiny_digits_model, digits_eval):
    """FGSM with eps 0 returns the clean images in every library, so with paired evaluation passes the per-seed
    robust accuracies of ours and torchattacks must be equal (unpaired passes would differ by the noise)."""
    x, y = digits_eval
    model = NoisyLogits(copy.deepcopy(tiny_digits_model)).eval()
    res = crosscheck(model, x, y, attacks=[("fgsm eps 0", "fgsm", {"eps": 0.0})], random_seeds=4,
                     references=("torchattacks",))
    row = res["rows"][0]
    assert res["stochastic_model"] and row["seeds"] == [0, 1, 2, 3]
    per_seed = row["robust_accuracy_per_seed"]
    assert per_seed["ours"] == per_seed["torchattacks"]
    assert len(set(per_seed["ours"])) > 1  # the draws differ between seeds: the model is really noisy
    again = crosscheck(model, x, y, attacks=[("fgsm eps 0", "fgsm", {"eps": 0.0})], random_seeds=4,
                       references=("torchattacks",))
    assert again["rows"][0]["robust_accuracy_per_seed"] == per_seed  # reproducible: the passes are seeded


def test_rows_differing_only_in_early_stop_reuse_reference_runs(tiny_digits_model, digits_eval):
    x, y = digits_eval
    rows = [PGD_01, ("pgd-linf eps 0.1 (no early stop)", "pgd-linf", {**PGD_01[2], "early_stop": False})]
    res = crosscheck(tiny_digits_model, x, y, attacks=rows, random_seeds=2, references=("torchattacks",))
    es, full = res["rows"]
    assert es["robust_accuracy_per_seed"]["torchattacks"] == full["robust_accuracy_per_seed"]["torchattacks"]
    assert "reused 2 identical runs" in full["note"] and "reused" not in es["note"]
    assert es["robust_accuracy"]["ours"] <= full["robust_accuracy"]["ours"]  # first success: at least as strong


def test_command_passes_seeds_and_no_art(tmp_path):
    import json
    from types import SimpleNamespace

    from honestbench.cli.crosscheck import main as crosscheck_command

    out = tmp_path / "cc.json"
    args = SimpleNamespace(model="tiny-digits", attacks="pgd-linf:eps=0.1:alpha=0.025", json_path=str(out),
                           dataset="cifar10", data="npz", n=64, device="cpu", seed=0, seeds=2, no_art=True)
    assert crosscheck_command(args) == 0
    data = json.loads(out.read_text())
    assert data["random_seeds"] == 2 and data["references"] == ["torchattacks"] and "art" not in data["versions"]
    assert len(data["rows"][0]["robust_accuracy_per_seed"]["ours"]) == 2


def test_quality_bar_verdict_is_computed():
    """scripts/quality_bar.py: the bar needs ours >= 35 % AND within 1.5 pp of torchattacks, on the pgd20 row
    (PGD-20 as bench run attacks the model); the early-stop row of a stochastic model is reported, not judged."""
    import importlib.util

    REPO_ROOT = Path(__file__).resolve().parents[1]

    spec = importlib.util.spec_from_file_location("quality_bar", REPO_ROOT / "scripts" / "quality_bar.py")
    qb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(qb)

    def row(label, ours, ta):
        return {"attack": label, "verdict": "ok", "seconds": {"ours": 1.0, "torchattacks": 2.0},
                "robust_accuracy": {"ours": sum(ours) / len(ours), "torchattacks": sum(ta) / len(ta)},
                "robust_accuracy_per_seed": {"ours": ours, "torchattacks": ta}}

    full = qb.row_summary(row("pgd20", [41.0, 42.0], [41.0, 43.0]))
    es = qb.row_summary(row(qb.EARLY_ROW, [56.0, 58.0], [41.0, 43.0]))
    assert es["diff_pp"] == 15.0 and es["ours"]["std"] == pytest.approx(2 ** 0.5, abs=1e-4)
    bar = qb.bar_verdict({"pgd20": full, qb.EARLY_ROW: es})  # judged on pgd20 (bench run's kernel) only
    assert bar["met"] and bar["robust_accuracy_ours_pct"] == 41.5 and bar["abs_diff_pp"] == 0.5
    card = qb.card_result({"bar": bar, "n": 1017}, 2, "cmd")
    assert card["pgd20_robust_accuracy"] == 0.415 and card["pgd20_early_stop_robust_accuracy"] == 0.57
    assert card["pgd20_bar"].startswith("met") and "NOT within 1.5 pp" in card["pgd20_bar"]  # shown, not judged
    far = qb.bar_verdict({"pgd20": es})
    assert not far["met"] and far["meets_35"] and not far["within_1_5pp"]
    low = qb.bar_verdict({"pgd20": qb.row_summary(row("pgd20", [30.0, 31.0], [30.0, 31.0]))})
    assert not low["met"] and not low["meets_35"] and low["within_1_5pp"]
