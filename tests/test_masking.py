"""Models that fight the harness (issue 21, items 3 and 5): deterministic gradient masking found by the preflight
and broken by default (BPDA straight-through, Square, transfer), and forward passes that write into their
input, run under no_grad, build lazily, call autograd or return probabilities. Digits, the tiny CNN of
conftest (its weights saved once), the default `ci` suite at L-inf 0.2 (8/255 barely moves digits)."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

from honestbench.cli.main import main
from honestbench.engine.probe import MASKING, CopyInput, preflight
from honestbench.suites.masking import MASKING_FLAGS

MODELS = textwrap.dedent('''
    import torch
    from torch import nn
    from honestbench.train.tiny import TinyDigitsNet

    class Wrap(nn.Module):
        def __init__(self, kind):
            super().__init__()
            self.net, self.kind = TinyDigitsNet(), kind
        def forward(self, x):
            if self.kind == "quantised":  # 16 input levels: zero gradient almost everywhere
                return self.net(torch.round(16 * x) / 16)
            if self.kind == "no-grad":
                with torch.no_grad():
                    return self.net(x)
            if self.kind == "in-place":
                return self.net(x.mul_(1.0))
            if self.kind == "probabilities":
                return self.net(x).softmax(1)
            if self.kind == "autograd":
                x = x.detach().requires_grad_(True)
                with torch.enable_grad():
                    torch.autograd.grad(self.net(x).sum(), x)
                return self.net(x.detach())
            return self.net(x)

    def build(kind="plain"):
        return Wrap(kind)

    def lazy():
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(10))
''')
KINDS = ("quantised", "no-grad", "in-place", "probabilities")


@pytest.fixture(scope="module")
def own(tmp_path_factory, tiny_digits_model):
    d = tmp_path_factory.mktemp("own")
    (d / "fight.py").write_text(MODELS)
    torch.save({f"net.{k}": v for k, v in tiny_digits_model.state_dict().items()}, d / "w.pt")
    return d


def _run(own, out, specs: list[str], n: int = 64) -> dict[str, dict[str, dict]]:
    argv = ["run", "--data", "digits", "--n", str(n), "--eps", "0.2", "--threat-model", "Linf", "--quiet",
            "--no-report", "--out", str(out)]
    for s in specs:
        argv += ["--model", s]
    assert main(argv) == 0
    rows = json.loads((out / "records.json").read_text())["records"]
    table: dict[str, dict[str, dict]] = {}
    for r in rows:
        table.setdefault(r["model"], {})[r["attack"]] = r
    return table


def test_masking_is_found_and_broken_by_default(own, tmp_path):
    """Acceptance: an input-quantising and a no_grad CNN whose plain PGD accuracy is high; the default run flags
    both, and its worst case falls to what BPDA / Square find."""
    (own / "masked.py").write_text(MODELS + "\ndef build_0():\n    return Wrap('quantised')\n\n"
                                            "def build_1():\n    return Wrap('no-grad')\n")
    specs = [f"{k}={own}/masked.py:build_{i}@{own}/w.pt" for i, k in enumerate(("quantised", "no-grad"))]
    t = _run(own, tmp_path, specs)
    q, ng = t["quantised"], t["no-grad"]
    assert q["PGD"]["accuracy"] > 0.8  # plain PGD sees no gradient
    assert "zero-gradients" in q["clean"]["warnings"] and "adaptive-stronger" in q["PGD"]["warnings"]
    assert q["worst-case"]["accuracy"] <= min(q["BPDA-ST"]["accuracy"], q["Square"]["accuracy"]) < 0.3
    assert "no-gradient-graph" in ng["clean"]["warnings"] and "torch.no_grad()" in ng["clean"]["warnings"]
    assert "PGD" not in ng and ng["worst-case"]["accuracy"] <= ng["Square"]["accuracy"] < 0.3


def test_models_that_fight_the_harness_are_evaluated(own, tmp_path, capsys, digits_eval):
    (own / "kinds.py").write_text(MODELS + "".join(
        f"\ndef build_{i}():\n    return Wrap({k!r})\n" for i, k in enumerate(KINDS)))
    before = digits_eval[0].clone()
    t = _run(own, tmp_path, [f"{k}={own}/kinds.py:build_{i}@{own}/w.pt" for i, k in enumerate(KINDS)]
             + [f"lazy={own}/fight.py:lazy"], n=32)
    err = capsys.readouterr().err
    assert "writes into its input tensor: evaluated on a copy" in err
    assert "probabilities" in t["probabilities"]["clean"]["warnings"]
    assert t["in-place"]["PGD"]["accuracy"] < 0.5 and t["lazy"]["clean"]["accuracy"] >= 0
    assert torch.equal(before, digits_eval[0])  # no image of the data was altered


def test_preflight_names_autograd_nonfinite_and_keeps_masking_sets_equal(own, tiny_digits_model, digits_eval):
    import importlib.util

    spec = importlib.util.spec_from_file_location("fight_mod", own / "fight.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.build("autograd")
    model.net.load_state_dict(tiny_digits_model.state_dict())
    x, y = digits_eval
    _, found = preflight(model, x, y, "ag")
    assert "forward-calls-autograd" in found.flags and found.masked

    class NaNGrad(torch.nn.Module):
        def forward(self, x):
            return tiny_digits_model(x) + 0 * x.sqrt().flatten(1)[:, :1] * float("inf")

    _, found = preflight(NaNGrad(), x, y, "nan")
    assert found.flags == ["nonfinite-gradients"]
    wrapped, found = preflight(mod.build("in-place"), x, y, "ip")
    assert isinstance(wrapped, CopyInput) and found.flags == ["writes-input"]
    assert MASKING == MASKING_FLAGS


def test_binarization_test_passes_a_working_attack_and_fails_a_masked_one(own, tiny_digits_model, digits_eval):
    """Zimmermann et al. 2022: PGD finds the guaranteed adversarial point of (nearly) every binarized image of
    the plain CNN, and of almost none behind 16-level input quantisation (zero gradient). L-inf 0.2 on digits;
    the bar is the flag's own 5 %."""
    import importlib.util

    from honestbench.diagnostics.binarization import binarization_check

    spec = importlib.util.spec_from_file_location("fight_bin", own / "fight.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    quantised = mod.build("quantised")
    quantised.net.load_state_dict(tiny_digits_model.state_dict())
    x, y = digits_eval
    (rate, tested), flag = binarization_check(tiny_digits_model, x, y, 0.2)
    assert tested >= 30 and rate <= 0.05 and flag is None
    (rate, tested), flag = binarization_check(quantised, x, y, 0.2)
    assert tested >= 30 and rate > 0.5 and flag.startswith("binarization-test-failed")


def test_diagnose_runs_the_binarization_test_on_the_pgd_row(own, tmp_path):
    (own / "q.py").write_text(MODELS + "\ndef build_q():\n    return Wrap('quantised')\n")
    argv = ["run", "--data", "digits", "--n", "48", "--eps", "0.2", "--threat-model", "Linf", "--quiet",
            "--no-report", "--suite", "platform", "--diagnose", "--out", str(tmp_path),
            "--model", f"q={own}/q.py:build_q@{own}/w.pt"]
    assert main(argv) == 0
    rows = {r["attack"]: r for r in json.loads((tmp_path / "records.json").read_text())["records"]}
    assert "binarization-test-failed" in rows["PGD"]["warnings"]
