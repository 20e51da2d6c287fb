"""Evaluating a user's own model (issue 14): model specs and cards outside the repository, validation before
any attack, threat model and budget from the command line, suite files, the Python API and `bench check` on a
user's run. Small data throughout: 32 digits (a linear model trained here in about a second) or 32 CIFAR-10
images with the zoo's small CNN; the `ci` suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import honestbench
from honestbench.cli.main import main
from honestbench.core.errors import BenchError, ModelCardError
from honestbench.engine.validate import ModelCheckError, prepared, validate_model
from honestbench.pipeline.check import check
from honestbench.suites import get_suite
from honestbench.suites.user import load_suite_file, parse_number, scale_suite

MODEL_SRC = textwrap.dedent('''
    """A user's models, defined outside the repository."""
    import torch
    from torch import nn

    MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

    def build(classes=10):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, classes))

    def build5():
        return build(5)

    def build_rgb():  # wants 3 x 8 x 8 input: fails on one-channel digits
        return nn.Sequential(nn.Flatten(), nn.Linear(192, 10))

    class NaNs(nn.Module):
        def forward(self, x):
            return torch.full((len(x), 10), float("nan"))

    def build_nan():
        return NaNs()

    def build_cifar():
        return nn.Sequential(nn.Flatten(), nn.Linear(3072, 10))

    class Wrapped(nn.Module):
        """The zoo's trained small CNN behind an input convention: 'normalised' (mean/std) or '255'."""
        def __init__(self, expects):
            super().__init__()
            import honestbench
            self.inner, self.expects = honestbench.load_model("regular"), expects
            self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
        def forward(self, x):
            return self.inner(x * self.std + self.mean if self.expects == "normalised" else x / 255)

    def build_expects_normalised():
        return Wrapped("normalised")

    def build_expects_255():
        return Wrapped("255")
''')
CIFAR_MEAN_STD = "normalize = {mean = [0.4914, 0.4822, 0.4465], std = [0.2470, 0.2435, 0.2616]}"


def _train_linear(seed: int) -> dict[str, torch.Tensor]:
    """A linear digits classifier (state dict of ``build()``), trained full-batch on the 1,400 training digits."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images[:1400] / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target[:1400])
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.state_dict()


@pytest.fixture()
def user_dir(tmp_path: Path) -> Path:
    """A folder outside the repository holding the user's model file and trained weights ``w.pt``."""
    (tmp_path / "mymodels.py").write_text(MODEL_SRC)
    torch.save(_train_linear(0), tmp_path / "w.pt")
    return tmp_path


def _run(argv: list[str], capsys) -> tuple[int, str]:
    rc = main(argv)
    return rc, capsys.readouterr().err


def _one_line_error(err: str, *needles: str) -> str:
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in err
    return lines[0]


MEASURED = ["model", "attack", "accuracy", "count", "count_hi", "n", "exact", "eps", "params", "suite",
            "dataset", "seed", "batch_size", "checkpoint_sha256", "data_sha256"]


def test_cli_and_python_give_identical_records_and_check_guards_them(user_dir, capsys):
    spec = f"{user_dir / 'mymodels.py'}:build@{user_dir / 'w.pt'}"
    out = user_dir / "run"
    rc, err = _run(["run", "--model", spec, "--data", "digits", "--suite", "ci", "--n", "32", "--out", str(out),
                    "--quiet"], capsys)
    assert rc == 0, err
    cli = honestbench.results.load(out)
    assert list(cli["model"].unique()) == ["w"] and cli.loc[0, "accuracy"] > 0.8  # trained: ~95 % clean
    py = honestbench.evaluate_model(spec, suite="ci", data="digits", n=32, device="cpu")
    pd.testing.assert_frame_equal(cli[MEASURED], py[MEASURED])
    assert all(r["ok"] for r in check(out)), "the same weights must pass"
    torch.save(_train_linear(1), user_dir / "w.pt")  # retrained
    failed = [r for r in check(out) if not r["ok"]]
    assert failed and "checkpoint changed" in failed[0]["note"]
    assert main(["check", "--results", str(out)]) == 1


def test_user_row_joins_the_zoo_folder(user_dir, capsys):
    out = user_dir / "zoo"
    common = ["--suite", "ci", "--n", "16", "--out", str(out), "--quiet"]
    assert _run(["run", "--models", "regular", *common], capsys)[0] == 0
    assert _run(["run", "--model", f"mine={user_dir / 'mymodels.py'}:build_cifar", *common], capsys)[0] == 0
    frame = honestbench.results.load(out)
    assert list(frame["model"].unique()) == ["regular", "mine"]
    assert "mine" in (out / "leaderboard.md").read_text()
    assert all(r["ok"] for r in check(out, models=["mine"]))  # random weights, built under a fixed seed


def test_mixed_models_list_with_card_file_and_models_dir(user_dir, capsys, monkeypatch):
    cards = user_dir / "cards"
    cards.mkdir()
    (cards / "lin.toml").write_text('builder = "../mymodels.py:build"\ncheckpoint = "../w.pt"\ndata = "digits"\n')
    out = user_dir / "mixed"
    rc, err = _run(["run", "--models", f"{cards / 'lin.toml'}", "--data", "digits", "--suite", "ci", "--n", "32",
                    "--out", str(out), "--quiet"], capsys)
    assert rc == 0, err
    assert err.count("is unchecked (its card has no sha256)") == 1 and "sha256 = \"" in err
    monkeypatch.delenv("BENCH_MODELS_DIR", raising=False)
    rc, err = _run(["run", "--models-dir", str(cards), "--models", "lin", "--data", "digits", "--suite", "ci",
                    "--n", "32", "--out", str(out), "--quiet"], capsys)
    assert rc == 0, err
    assert list(honestbench.results.load(out)["model"].unique()) == ["lin"]
    assert all(r["ok"] for r in check(out))


def test_card_sha256_is_checked_and_bad_builder_is_one_line(user_dir, capsys):
    card = user_dir / "pinned.toml"
    card.write_text('builder = "mymodels.py:build"\ncheckpoint = "w.pt"\ndata = "digits"\nsha256 = "00ff"\n')
    rc, err = _run(["run", "--models", str(card), "--data", "digits", "--suite", "ci", "--n", "8",
                    "--out", str(user_dir / "o"), "--quiet"], capsys)
    assert rc == 2
    _one_line_error(err, "does not match the card's sha256")
    card.write_text('builder = "mymodels.py:nope"\ndata = "digits"\n')
    with pytest.raises(ModelCardError, match="has no function 'nope'"):
        honestbench.load_model(str(card))
    card.write_text('builder = "mymodels.py:build"\nwhatever = 1\n')
    with pytest.raises(ModelCardError, match="unknown key 'whatever'"):
        honestbench.load_model(str(card))


@pytest.mark.parametrize("builder,needles", [
    ("build5", ["returned (32, 5)", "expected (32, 10) logits"]),
    ("build_nan", ["NaN or inf logits"]),
    ("build_rgb", ["forward pass on a 32x1x8x8 batch", "failed"]),
])
def test_fatal_validation_is_one_line_and_exit_2(user_dir, capsys, builder, needles):
    rc, err = _run(["run", "--model", f"{user_dir / 'mymodels.py'}:{builder}", "--data", "digits", "--suite", "ci",
                    "--n", "32", "--out", str(user_dir / "o"), "--quiet"], capsys)
    assert rc == 2
    _one_line_error(err, *needles)
    assert not (user_dir / "o" / "records.json").exists()


def test_num_classes_mismatch_is_fatal(user_dir, capsys):
    (user_dir / "c5.toml").write_text('builder = "mymodels.py:build5"\nnum_classes = 5\ndata = "digits"\n')
    rc, err = _run(["run", "--models", str(user_dir / "c5.toml"), "--data", "digits", "--suite", "ci", "--n", "8",
                    "--out", str(user_dir / "o"), "--quiet"], capsys)
    assert rc == 2
    _one_line_error(err, "has 5 classes but digits has 10")


def test_normalisation_mismatch_warns_and_card_normalize_fixes_it(user_dir, capsys):
    src = f"{user_dir / 'mymodels.py'}:build_expects_normalised"
    (user_dir / "fixed.toml").write_text(f'builder = "mymodels.py:build_expects_normalised"\n{CIFAR_MEAN_STD}\n')
    out = user_dir / "norm"
    (user_dir / "fgsm.toml").write_text('name = "fgsm-only"\n[[entries]]\nlabel = "FGSM"\nattack = "fgsm"\n')
    common = ["--suite", str(user_dir / "fgsm.toml"), "--n", "32", "--out", str(out), "--quiet", "--no-report"]
    rc, err = _run(["run", "--model", f"raw={src}", *common], capsys)
    assert rc == 0
    warning = [line for line in err.splitlines() if line.startswith("warning: model 'raw'")]
    assert len(warning) == 1 and "mean/std-normalised" in warning[0] and "--normalize cifar10" in warning[0]
    assert "normalize = {mean = [0.4914, 0.4822, 0.4465]" in warning[0]
    rc, err = _run(["run", "--models", str(user_dir / "fixed.toml"), *common], capsys)
    assert rc == 0 and "warning" not in err
    rc, err = _run(["run", "--model", f"flag={src}", "--normalize", "cifar10", *common], capsys)
    assert rc == 0 and "warning" not in err
    acc = honestbench.results.load(out).query("attack == 'clean'").set_index("model")["accuracy"]
    assert acc["fixed"] == acc["flag"] > acc["raw"] + 0.2  # the fix restores the zoo model's accuracy


def test_model_expecting_0_255_is_named(user_dir):
    from honestbench.data import load_eval

    model = honestbench.load_model(f"{user_dir / 'mymodels.py'}:build_expects_255")
    warns = validate_model(model, load_eval("cifar10", 32), "m255")
    assert len(warns) == 1 and "on 0-255 ones" in warns[0] and "--normalize 255" in warns[0]


def test_near_chance_warns_and_names_the_flag(user_dir):
    from honestbench.data import load_eval

    model = honestbench.load_model(f"{user_dir / 'mymodels.py'}:build")  # untrained: chance
    warns = validate_model(model, load_eval("digits", 64), "random")
    assert len(warns) == 1 and "near chance (10 %)" in warns[0] and "--normalize digits" in warns[0]


def test_train_mode_and_grads_are_frozen_then_restored():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Dropout(0.5))
    model.train()
    found: list[str] = []
    with prepared(model, "m", found):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert any("was in train mode" in w for w in found)
    assert any("2 parameters required grad: frozen for the run and restored after" in w for w in found)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = honestbench.evaluate_model(model, suite="ci", data="digits", n=16, device="cpu", name="m")
    assert any("train mode" in str(w.message) for w in caught)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert set(frame["attack"]) == {"clean", "FGSM", "PGD", "noise", "worst-case"}


def test_python_validation_error_is_raised():
    with pytest.raises(ModelCheckError, match="NaN or inf logits"):
        honestbench.evaluate_model(nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Softplus(), _Nan()),
                             suite="ci", data="digits", n=8, device="cpu")


class _Nan(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


def test_threat_model_and_eps_scale_budgets_and_steps():
    s = scale_suite(get_suite("standard"), "L2", 1.0)
    assert [e.label for e in s.entries] == ["PGD-L2", "CW"] and s.aggregates == {}
    assert s.entries[0].params["eps"] == 1.0 and s.entries[0].params["alpha"] == pytest.approx(2.5 * 1.0 / 20)
    assert s.entries[1].params["threshold"] == 1.0
    s = scale_suite(get_suite("ci"), None, parse_number("4/255"))
    pgd = {e.label: e for e in s.entries}["PGD"]
    assert pgd.params["eps"] == pytest.approx(4 / 255) and pgd.params["alpha"] == pytest.approx(1 / 255)  # eps / 4
    for args, msg in [(("ci", "L2", None), "has no L2 attack"), (("standard", None, 0.1), "--threat-model Linf"),
                      (("adaptive", "Linf", 0.1), "builds its budgets per model"),
                      (("eps-sweep", "Linf", 0.1), "sweeps several budgets"), (("ci", "L1", None), "choose Linf")]:
        with pytest.raises(BenchError, match=msg):
            scale_suite(get_suite(args[0]), args[1], args[2])
    with pytest.raises(BenchError, match="a fraction such as 8/255"):
        parse_number("eight")


def test_eps_flag_on_the_command_line(user_dir, capsys):
    out = user_dir / "eps"
    rc, err = _run(["run", "--model", f"{user_dir / 'mymodels.py'}:build@{user_dir / 'w.pt'}", "--data", "digits",
                    "--suite", "ci", "--threat-model", "Linf", "--eps", "2/255", "--n", "16", "--out", str(out),
                    "--quiet"], capsys)
    assert rc == 0, err
    frame = honestbench.results.load(out)
    assert frame.query("attack == 'PGD'")["eps"].iloc[0] == pytest.approx(2 / 255)
    with pytest.raises(SystemExit) as info:  # a usage error at parse time (honestbench/cli/args.py)
        _run(["run", "--models", "regular", "--eps", "x", "--out", str(out)], capsys)
    assert info.value.code == 2
    _one_line_error(capsys.readouterr().err, "--eps: 'x'", "8/255")


def test_suite_file(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text(textwrap.dedent('''
        name = "my-suite"
        default_n = 16
        [[entries]]
        label = "PGD4"
        attack = "pgd-linf"
        params = {eps = "4/255", alpha = "1/255", steps = 5, random_start = true}
        [[entries]]
        label = "FGSM4"
        attack = "fgsm"
        params = {eps = "4/255"}
        [aggregates]
        "both" = ["PGD4", "FGSM4"]
    '''))
    suite = load_suite_file(path)
    assert suite.labels == ["PGD4", "FGSM4"] and suite.entries[0].params["alpha"] == pytest.approx(1 / 255)
    frame = honestbench.evaluate_model(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval().requires_grad_(False),
                                 suite=str(path), data="digits", device="cpu")
    assert list(frame["attack"]) == ["clean", "PGD4", "FGSM4", "both", "worst-case"] and frame["n"].iloc[0] == 16
    path.write_text('name = "ci"\n[[entries]]\nlabel = "A"\nattack = "fgsm"\n')
    with pytest.raises(BenchError, match="is a built-in suite's"):
        load_suite_file(path)
    path.write_text('name = "x"\n[[entries]]\nlabel = "A"\nattack = "pgd-nope"\n')
    with pytest.raises(BenchError):
        load_suite_file(path)


def test_torchscript_and_export_files(user_dir):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    x = torch.rand(4, 1, 8, 8)
    torch.jit.script(model).save(str(user_dir / "m.pt"))
    torch.export.save(torch.export.export(model, (x,)), str(user_dir / "m.pt2"))
    for name in ("m.pt", "m.pt2"):
        loaded = honestbench.load_model(str(user_dir / name))
        assert torch.allclose(loaded(x), model(x), atol=1e-6)
    torch.save(model.state_dict(), user_dir / "sd.pt")
    with pytest.raises(ModelCardError, match="FILE.py:builder@sd.pt"):
        honestbench.load_model(str(user_dir / "sd.pt"))


def test_attack_api_and_matrix_frame(tiny_digits_model, digits_eval):
    x, y = digits_eval
    attack = honestbench.attack("pgd-linf", eps="4/255")
    assert attack.eps == pytest.approx(4 / 255) and attack.alpha == pytest.approx(1 / 255)
    x_adv = attack(tiny_digits_model, x[:16], y[:16])
    assert (x_adv - x[:16]).abs().max() <= 4 / 255 + 1e-6
    from honestbench.engine.cascade import evaluate
    from honestbench.engine.options import EvalOptions

    m = evaluate(tiny_digits_model, x[:16], y[:16], "ci", EvalOptions(progress=False))
    frame = m.to_frame()
    assert len(frame) == 16 and {"index", "label", "clean_correct", "PGD", "worst-case", "PGD:norm"} <= set(frame)
    assert frame["worst-case"].tolist() == m.worst_case().tolist()


def test_import_bench_stays_light():
    code = "import sys, honestbench; assert 'torch' not in sys.modules; print(sorted(honestbench.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "evaluate_model" in out and "attack" in out
    assert (Path(honestbench.__file__).parent / "py.typed").is_file()


def test_reported_accuracy_shown_beside_ours(user_dir, capsys):
    """A card's `reported` claims (fractions or %) appear in the leaderboard beside our measure of the column."""
    (user_dir / "lin.toml").write_text('builder = "mymodels.py:build"\ncheckpoint = "w.pt"\ndata = "digits"\n'
                                       'paper = "Doe et al."\nvenue = "ICML 2030"\n'
                                       'reported = {clean = 0.97, PGD = 61.5}\n')
    out = user_dir / "claims"
    rc, err = _run(["run", "--models", str(user_dir / "lin.toml"), "--data", "digits", "--suite", "ci", "--n", "32",
                    "--out", str(out), "--quiet"], capsys)
    assert rc == 0, err
    frame = honestbench.results.load(out).set_index("attack")
    text = (out / "leaderboard.md").read_text()
    section = text.split("## Reported by the authors", 1)[1].split("\n## ", 1)[0]
    assert "Doe et al. ICML 2030" in section
    clean = f"{100 * frame.loc['clean', 'accuracy']:.2f}"
    pgd = f"{100 * frame.loc['PGD', 'accuracy']:.2f}"
    rows = {cells[1]: cells[2:5] for line in section.splitlines() if line.startswith("| lin")
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    worst = f"{100 * frame.loc['worst-case', 'accuracy']:.2f}"
    assert rows == {"clean": ["97.00", clean, worst], "PGD": ["61.50", pgd, worst]}
