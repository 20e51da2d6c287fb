"""scripts/cpu_train_time.py on digits: a couple of real training batches through the trainer's loop, and the
extrapolation's arithmetic (per epoch = per batch x batches per epoch; total = per epoch x planned epochs)."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from pathlib import Path

import pytest

from honestbench import zoo
from honestbench.train import Recipe

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout the tests run in


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("cpu_train_time", REPO_ROOT / "scripts" / "cpu_train_time.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def digits_card(name: str) -> zoo.Card:
    card = zoo.get_card(name)
    recipe = dict(card.recipe)
    if "pgd-linf" in recipe.get("attacks", {}):
        recipe["attacks"] = {**recipe["attacks"], "pgd-linf": {**recipe["attacks"]["pgd-linf"], "steps": 2}}
    return dataclasses.replace(card, data="digits", recipe=recipe, checkpoint="", path=None)


@pytest.mark.parametrize("name", ["regular", "smoothing-pgd-fgsm"])
def test_fields_positive_and_consistent(script, name, tmp_path):
    card = digits_card(name)
    m = script.measure_card(card, timed=2, warmup=1, runs_dir=tmp_path, log=lambda msg: None)
    assert m["dataset"] == "digits" and m["n_train"] == 1400 and m["epochs"] == card.epochs
    assert m["batches_per_epoch"] == m["n_train"] // m["batch_size"] > 0
    assert m["timed"] == 2 and len(m["batch_s"]) >= 2 and all(t > 0 for t in m["batch_s"])
    assert m["s_per_batch"] > 0 and m["s_per_epoch"] > 0 and m["train_h"] > 0
    assert math.isclose(m["s_per_epoch"], m["s_per_batch"] * m["batches_per_epoch"], rel_tol=1e-12)
    assert math.isclose(m["train_s"], m["s_per_epoch"] * card.epochs, rel_tol=1e-12)
    assert math.isclose(m["train_h"], m["train_s"] / 3600, rel_tol=1e-12)
    # every kind of batch of the recipe was timed, and the shares are the recipe's
    shares = script.expected_shares(Recipe.from_card(card))
    assert set(m["kinds"]) == set(shares) and math.isclose(sum(shares.values()), 1.0)
    assert all(v["count"] >= 1 and v["mean_s"] > 0 for v in m["kinds"].values())
    assert math.isclose(m["s_per_batch"], sum(v["share"] * v["mean_s"] for v in m["kinds"].values()))
    assert not list(tmp_path.rglob("*.pt"))  # timing writes no checkpoint


def test_expected_shares_follow_the_recipe(script):
    full = Recipe.from_card(zoo.get_card("smoothing-pgd-fgsm-cw-pni"))
    assert script.expected_shares(full) == {"clean": 0.5, "pgd-linf": 0.125, "fgsm": 0.125, "cw-l2": 0.125,
                                            "noise": 0.125}
    assert script.expected_shares(Recipe.from_card(zoo.get_card("pgd-at"))) == {"pgd-linf": 1.0}
    assert script.expected_shares(Recipe.from_card(zoo.get_card("regular"))) == {"clean": 1.0}


def test_card_result_keys(script):
    m = {"s_per_batch": 0.25, "s_per_epoch": 48.75, "train_h": 0.27, "timed": 10, "warmup": 2,
         "batch_size": 256, "kinds": {"clean": {"count": 10}}, "threads": 2, "omp_wait_policy": "PASSIVE",
         "load_before": 1.0, "load_after": 1.5, "date": "2026-11-27T13:00:00Z"}
    r = script.card_result(m, "cmd")
    assert r["cpu_2core_s_per_epoch"] == 48.8 and r["cpu_2core_train_h"] == 0.27 and r["cpu_2core_command"] == "cmd"
    assert "10 batches of 256 after 2 warm-up" in r["cpu_2core_measured"]
