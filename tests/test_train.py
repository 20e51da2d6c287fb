"""Training recipes on digits: schedule draws, augmentation, one short epoch per recipe, resume, card
update, and the trainer's device flags (resident data, bf16 autocast, channels-last, LR scaling) on the CPU."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

import pytest
import torch
from pausing import signal_when_paused, start_paused

from honestbench import zoo
from honestbench.train import MixedSchedule, Recipe, Trainer, augment, parse_number, scaled_lr, train
from honestbench.zoo.writing import toml_value, write_result

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout the tests run in

SMALL_CARDS = ["regular", "pni", "smoothing", "gaussian-smoothing", "smoothing-pgd", "smoothing-pgd-fgsm",
               "smoothing-pgd-fgsm-cw", "smoothing-pgd-fgsm-cw-pni", "pgd-at", "slwta"]


def digits_card(name: str, tmp_path: Path, **recipe_overrides) -> zoo.Card:
    card = zoo.get_card(name)
    recipe = {**card.recipe, **recipe_overrides}
    if "attacks" in recipe and "pgd-linf" in recipe["attacks"]:
        recipe["attacks"] = {**recipe["attacks"], "pgd-linf": {**recipe["attacks"]["pgd-linf"], "steps": 2}}
    return dataclasses.replace(card, data="digits", recipe=recipe, checkpoint=str(tmp_path / f"{name}.pt"),
                               path=None)


@pytest.mark.parametrize("pool, clean, expect", [
    (["pgd-linf", "fgsm", "cw-l2", "noise"], 4, {"clean": 0.5, "pgd-linf": 0.125, "fgsm": 0.125,
                                                 "cw-l2": 0.125, "noise": 0.125}),
    (["pgd-linf", "fgsm"], 4, {"clean": 0.5, "pgd-linf": 0.25, "fgsm": 0.25}),
    (["pgd-linf", "fgsm", "cw-l2"], 4, {"clean": 0.5, "pgd-linf": 1 / 6, "fgsm": 1 / 6, "cw-l2": 1 / 6}),
    (["pgd-linf"], 4, {"clean": 0.5, "pgd-linf": 0.5}),
])
def test_mixed_schedule_frequencies(pool, clean, expect):
    s = MixedSchedule(pool, slots=8, clean_slots=clean, seed=1)
    n = 24_000
    counts = Counter((s.draw() or "clean") for _ in range(n))
    assert set(counts) == set(expect)
    for k, p in expect.items():
        assert counts[k] / n == pytest.approx(p, abs=0.012), k
    assert s.shares() == pytest.approx(expect)  # the stated shares are what draw() produces


def test_full_pool_slot_order_and_pgd_at():
    s = MixedSchedule(["pgd-linf", "fgsm", "cw-l2", "noise"], slots=8, clean_slots=4, seed=0)
    g = torch.Generator().manual_seed(0 + 7919)
    for _ in range(200):
        r = int(torch.randint(8, (1,), generator=g))
        assert s.draw() == (None if r < 4 else ["pgd-linf", "fgsm", "cw-l2", "noise"][r - 4])
    at = MixedSchedule(["pgd-linf"], slots=1, clean_slots=0)
    assert all(at.draw() == "pgd-linf" for _ in range(50))
    assert all(MixedSchedule([], 1, 1).draw() is None for _ in range(5))


def test_augment_crop_and_flip():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 8, 8)
    out = augment(x, pad=2, flip=True)
    assert out.shape == x.shape
    # every output is a shifted (and maybe flipped) copy: its centre 4x4 appears in the padded original
    assert not torch.equal(out, x)
    same = augment(x, pad=0, flip=False)
    assert torch.equal(same, x)
    flipped = (augment(x, pad=0, flip=True) == x.flip(3)).flatten(1).all(1)
    kept = (augment(x, pad=0, flip=True) == x).flatten(1).all(1)
    assert flipped.any() or kept.any()


def test_parse_number_and_toml_values():
    assert parse_number("8/255") == pytest.approx(8 / 255)
    assert parse_number(0.5) == 0.5
    text = "\n".join(f"k{i} = {toml_value(v)}" for i, v in enumerate([1, 0.25, True, 'a "q"', [1, 2]]))
    assert tomllib.loads(text) == {"k0": 1, "k1": 0.25, "k2": True, "k3": 'a "q"', "k4": [1, 2]}


def test_every_card_recipe_parses():
    for c in zoo.list_cards():
        if not c.external:
            Recipe.from_card(c)


@pytest.mark.parametrize("name", SMALL_CARDS)
def test_one_short_epoch_per_recipe(name, tmp_path):
    card = digits_card(name, tmp_path)
    res = train(card, epochs=1, max_batches=2, batch_size=32, device="cpu", progress=False, runs_dir=tmp_path,
                log=lambda m: None)
    assert res.finished and res.epochs_done == 1
    assert (tmp_path / f"{name}.pt").is_file()
    assert res.history[0]["loss"] > 0 and sum(res.history[0]["batches"].values()) == 2
    state = torch.load(tmp_path / f"{name}.pt", weights_only=True)
    model = zoo.build_model(card)
    model.load_state_dict(state, strict=True)
    assert (tmp_path / name / "last.pt").is_file() or (tmp_path / f"{name}-digits" / "last.pt").is_file()


def test_resume_reproduces_uninterrupted_run(tmp_path):
    card = digits_card("smoothing-pgd-fgsm-cw-pni", tmp_path)
    kw = dict(epochs=2, max_batches=3, batch_size=32, device="cpu", progress=False, log=lambda m: None)
    train(card, out=str(tmp_path / "full.pt"), runs_dir=tmp_path / "a", **kw)
    part = train(card, out=str(tmp_path / "part.pt"), runs_dir=tmp_path / "b", max_minutes=0, **kw)
    assert not part.finished and part.epochs_done == 1
    msgs: list[str] = []
    kw["log"] = msgs.append
    done = train(card, out=str(tmp_path / "part.pt"), runs_dir=tmp_path / "b", resume=True, **kw)
    assert done.finished and done.epochs_done == 2
    assert any("resumed" in m and "after epoch 1/2" in m for m in msgs)
    a = torch.load(tmp_path / "full.pt", weights_only=True)
    b = torch.load(tmp_path / "part.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_update_card_writes_result(tmp_path):
    src = zoo.get_card("regular").path.read_text()
    text = src.replace('data = "cifar10"', 'data = "digits"').replace(
        'checkpoint = "ckpt/regular.pt"', f'checkpoint = "{tmp_path / "regular.pt"}"')
    (tmp_path / "regular.toml").write_text(text)
    card = zoo.get_card("regular", models_dir=tmp_path)
    res = train(card, epochs=1, max_batches=3, batch_size=64, device="cpu", progress=False, update_card=True,
                runs_dir=tmp_path, log=lambda m: None)
    again = zoo.get_card("regular", models_dir=tmp_path)
    assert again.trained and again.sha256 == res.sha256
    assert again.clean_accuracy == pytest.approx(res.clean_accuracy, abs=1e-4)
    assert again.epochs_done == 1 and again.train_time_s is not None and "CPU" in again.machine
    assert again.description == card.description  # the human part of the card is kept
    model = zoo.load_card_model(again)
    acc, _ = zoo.clean_accuracy(model, *_digits_eval())
    assert acc == pytest.approx(again.clean_accuracy, abs=1e-4)  # deterministic model: exact figure
    write_result(again.path, {"sha256": "", "note": "x"})
    assert not zoo.get_card("regular", models_dir=tmp_path).trained


def _digits_eval():
    from honestbench.data import load_eval

    ev = load_eval("digits")
    return ev.x, ev.y


def test_cli_train_digits(tmp_path):
    """``bench train`` as a process (about 10 s on an idle 2-core box; no timing is asserted: a loaded machine
    must not fail the suite)."""
    out = tmp_path / "regular.pt"
    cmd = ["-m", "honestbench", "train", "regular", "--dataset", "digits", "--epochs", "1", "--out", str(out)]
    r = subprocess.run([sys.executable, *cmd], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800,
                       env={**os.environ, "BENCH_NO_PROGRESS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    card = dataclasses.replace(zoo.get_card("regular"), data="digits")
    model = zoo.build_model(card)
    model.load_state_dict(torch.load(out, weights_only=True), strict=True)


@pytest.mark.slow
def test_kill_then_resume_continues(tmp_path):
    runs = REPO_ROOT / "runs" / "pgd-at-digits"
    last = runs / "last.pt"
    last.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "honestbench", "train", "pgd-at", "--data", "digits", "--epochs", "6",
           "--out", str(tmp_path / "m.pt")]
    # killed right after its first epoch checkpoint (tests/pausing.py): it can never finish first
    ready = tmp_path / "paused"
    program = "import runpy, sys; sys.argv[0] = 'bench'; runpy.run_module('honestbench', run_name='__main__')"
    p = start_paused(program, cmd[3:], str(last), 1, ready, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT, text=True)
    signal_when_paused(p, ready, signal.SIGKILL)
    saved = torch.load(last, weights_only=True)["epoch"]
    assert saved == 1
    r = subprocess.run(cmd + ["--resume"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"after epoch {saved}/6" in r.stdout
    assert torch.load(last, weights_only=True)["epoch"] == 6


def test_fit_minutes_shortens_the_schedule(tmp_path, monkeypatch):
    card = digits_card("regular", tmp_path)
    # 1 s per epoch, whatever the machine: 0.1 min fits 6 epochs (the re-fits after each epoch only shorten it)
    monkeypatch.setattr(Trainer, "estimate_epoch_s", lambda self: 1.0)
    res = train(card, epochs=500, fit_minutes=0.1, max_batches=2, batch_size=32, device="cpu", progress=False,
                runs_dir=tmp_path, log=lambda m: None)
    assert res.epochs <= 6 and (res.epochs_done == res.epochs or not res.finished)


# ------------------------------------------------------------------ device flags (issue 17), exercised on CPU
def _trainer(tmp_path: Path, name: str = "pgd-at", steps: int = 3, **flags) -> Trainer:
    card = digits_card(name, tmp_path)
    tr = Trainer(card, epochs=1, max_batches=steps, batch_size=32, device="cpu", progress=False,
                 run_dir=tmp_path / "run", **flags)
    tr.augment = True  # digits normally skip crop / flip: exercise the on-device augmentation too
    return tr


def _weights_after_epoch(tr: Trainer) -> dict[str, torch.Tensor]:
    tr.run_epoch()
    return {k: v.detach().float().contiguous().clone() for k, v in tr.model.state_dict().items()}


def test_same_settings_give_bit_identical_weights(tmp_path):
    a = _weights_after_epoch(_trainer(tmp_path))
    b = _weights_after_epoch(_trainer(tmp_path))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resident_data_matches_host_data(tmp_path):
    resident = _trainer(tmp_path, resident=True)
    assert resident.x.device == resident.device and resident.x.dtype == torch.uint8  # uint8 where it lives
    a = _weights_after_epoch(resident)  # each trainer seeds the global RNG when built: build, then run
    host = _trainer(tmp_path, resident=False)
    assert host.data_device == torch.device("cpu")
    b = _weights_after_epoch(host)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_channels_last_matches_contiguous_within_float_tolerance(tmp_path):
    cl = _trainer(tmp_path, channels_last=True)
    convs = [m.weight for m in cl.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    a = _weights_after_epoch(cl)
    xb, _ = cl.batch(torch.arange(4))
    assert xb.is_contiguous(memory_format=torch.channels_last)
    b = _weights_after_epoch(_trainer(tmp_path, channels_last=False))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_bf16_autocast_on_cpu(tmp_path):
    assert not _trainer(tmp_path, "regular").amp  # on the CPU autocast is off unless asked for
    tr = _trainer(tmp_path, "regular", amp=True)
    assert tr.amp
    seen = []
    conv = next(m for m in tr.model.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    a = _weights_after_epoch(tr)
    assert seen and all(d == torch.bfloat16 for d in seen)
    assert all(v.dtype == torch.float32 for v in tr.model.state_dict().values() if v.is_floating_point())
    assert all(math.isfinite(h["loss"]) for h in tr.history)
    b = _weights_after_epoch(_trainer(tmp_path, "regular", amp=False))
    for k in a:  # bf16 rounds activations to 8 mantissa bits: close to fp32 after a few steps, not equal
        torch.testing.assert_close(a[k], b[k], rtol=0.05, atol=0.02, msg=k)


def test_step_keeps_results_on_the_device(tmp_path, monkeypatch):
    """No host synchronisation in a step: nothing reads a tensor's value back (item / bool / int / float)."""
    tr = _trainer(tmp_path, "regular")
    xb, yb = tr.batch(torch.arange(32))

    def forbidden(self, *a, **k):
        raise AssertionError("host sync in Trainer.step")

    for attr in ("item", "tolist", "__bool__", "__int__", "__float__"):
        monkeypatch.setattr(torch.Tensor, attr, forbidden)
    loss, correct = tr.step(xb, yb)
    monkeypatch.undo()
    assert loss.item() > 0 and 0 <= int(correct) <= 32


def test_large_batch_scales_the_lr_linearly(tmp_path):
    card = digits_card("regular", tmp_path)
    r = Recipe.from_card(card)
    assert scaled_lr(r, 2 * r.batch_size) == pytest.approx(2 * r.lr)
    tr = Trainer(card, epochs=1, batch_size=64, device="cpu", progress=False, run_dir=tmp_path, scale_lr=True)
    assert tr.lr == pytest.approx(r.lr * 64 / r.batch_size)
    assert tr.opt.param_groups[0]["initial_lr"] == pytest.approx(tr.lr)
    assert Trainer(card, epochs=1, batch_size=64, device="cpu", progress=False, run_dir=tmp_path).lr == r.lr
