"""The ``certified`` training recipe: its schedule (budget ramp, kappa, beta) and a few IBP / CROWN-IBP
training steps on digits that lower the certified loss's robust part and leave a model the bounds accept."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from honestbench.certify import certify
from honestbench.data import load_eval
from honestbench.train import train
from honestbench.train.certified import CertifiedLoss, ramp
from honestbench.train.recipe import Recipe
from honestbench.zoo import build_model, get_card


def test_ramp_and_schedule():
    assert ramp(0.5, 1, 10) == 0 and ramp(6, 1, 10) == 0.5 and ramp(30, 1, 10) == 1 and ramp(2, 1, 0) == 1
    card = get_card("ibp-mlp-2")
    r = dataclasses.replace(Recipe.from_card(card), bound="crown-ibp", warmup_epochs=1, ramp_epochs=2)
    loss = CertifiedLoss(build_model(card).eval(), r, steps_per_epoch=10)
    assert loss.schedule(0) == (0.0, 1.0, 1.0)  # no budget yet: the loss is clean
    eps, kappa, beta = loss.schedule(20)
    assert eps == pytest.approx(r.eps * r.eps_train_scale / 2) and kappa == pytest.approx(0.75) and beta == 0.5
    assert loss.schedule(1000) == (pytest.approx(r.eps * r.eps_train_scale), pytest.approx(r.kappa_end), 0.0)


@pytest.mark.parametrize("bound", ["ibp", "crown-ibp"])
def test_certified_recipe_trains_on_digits(tmp_path, bound):
    card = get_card("ibp-mlp-2")
    card = dataclasses.replace(card, recipe={**card.recipe, "bound": bound, "warmup_epochs": 0, "ramp_epochs": 1,
                                             "eps": 0.05})
    res = train(card, dataset="digits", epochs=2, max_batches=8, progress=False, runs_dir=tmp_path,
                out=str(tmp_path / "m.pt"), log=lambda *a: None)
    assert res.finished and res.history[-1]["loss"] > 0
    model = build_model(dataclasses.replace(card, data="digits")).eval()
    model.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    ev = load_eval("digits", n=32)
    c = certify(model, ev.x.float(), ev.y.long(), 0.05, "crown")
    assert c.margin_lower.shape == (32, 10)
