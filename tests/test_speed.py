"""``bench speed`` plumbing (sections, headline keys, the suite and inference sections on tiny inputs) and
the thread-count policy of :func:`bench.core.threads.default_threads`."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from bench.core import threads as utils
from bench.tools import speed


# ----------------------------------------------------------------------------------------------- threads
def test_threads_env_overrides(monkeypatch):
    monkeypatch.setenv("BENCH_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert utils.default_threads() == (3, "$BENCH_THREADS")
    monkeypatch.delenv("BENCH_THREADS")
    assert utils.default_threads() == (5, "$OMP_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "0")  # not a valid count: ignored
    assert utils.default_threads()[1].startswith("physical cores")


def test_threads_physical_cores_split_over_local_ranks(monkeypatch):
    monkeypatch.delenv("BENCH_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(utils, "usable_cpus", lambda: set(range(8)))
    monkeypatch.setattr(utils, "physical_cores", lambda cpus=None: 4)  # SMT: 8 logical CPUs, 4 cores
    monkeypatch.setattr(utils, "cgroup_cpu_limit", lambda: None)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert utils.default_threads()[0] == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert utils.default_threads() == (2, "physical cores usable / 2 local ranks")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert utils.default_threads()[0] == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    monkeypatch.setattr(utils, "cgroup_cpu_limit", lambda: 3)
    assert utils.default_threads()[0] == 3


def test_physical_cores_of_this_machine():
    cpus = utils.usable_cpus()
    assert 1 <= utils.physical_cores(cpus) <= len(cpus)


def test_omp_wait_policy_follows_the_load(monkeypatch):
    from bench.commands import cli

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(cli.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert cli.set_omp_wait_policy() is None and "OMP_WAIT_POLICY" not in cli.os.environ
    monkeypatch.setattr(cli.os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    assert cli.set_omp_wait_policy() == "PASSIVE" and cli.os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice wins
    assert cli.set_omp_wait_policy() is None and cli.os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_configure_threads_sets_torch(monkeypatch):
    n = torch.get_num_threads()
    monkeypatch.setenv("BENCH_THREADS", "1")
    try:
        assert utils.configure_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(n)


# ----------------------------------------------------------------------------------------------- sections
def test_headline_keys_lead_the_json(tmp_path, monkeypatch, capsys):
    from bench.commands.speed import main as speed_command
    from bench.tools.speed import run

    def fake(opts, ctx):
        return {"early_exit_speedup": 4.0, "slwta_wrn34_1_ms_per_image_b1": 3.5, "other": 1}

    monkeypatch.setattr(run, "SECTIONS", [
        speed.Section("fake", fake, headline={"early_exit_speedup": "early_exit_speedup",
                                              "slwta_wrn34_1_ms_per_image_b1": "slwta_wrn34_1_ms_per_image_b1"},
                      fmt=lambda name, res: f"table of {name}")])
    out = tmp_path / "s.json"
    args = argparse.Namespace(json_path=str(out), device="cpu", quick=False)
    assert speed_command(args) == 0
    data = json.loads(out.read_text())
    assert list(data)[:2] == ["early_exit_speedup", "slwta_wrn34_1_ms_per_image_b1"]
    assert data["sections"]["fake"]["other"] == 1 and "machine" in data
    printed = capsys.readouterr().out
    assert "table of fake" in printed and "early_exit_speedup = 4.000" in printed


def test_quick_skips_heavy_sections(monkeypatch):
    from bench.tools.speed import run

    ran = []
    monkeypatch.setattr(run, "SECTIONS", [
        speed.Section("light", lambda opts, ctx: ran.append("light") or {}),
        speed.Section("heavy", lambda opts, ctx: ran.append("heavy") or {}, heavy=True)])
    result = speed.run_speed(speed.SpeedOptions(quick=True), torch.device("cpu"))
    assert ran == ["light"] and list(result["sections"]) == ["light"] and result["quick"]


def test_suite_section_on_tiny_digits(tiny_digits_model, digits_eval):
    x, y = digits_eval
    res = speed.suite_vs_torchattacks(tiny_digits_model, x[:24], y[:24], batch_size=16)
    assert res["n"] == 24 and res["mode"] == "early-exit" and res["order"][0] == "FGSM"
    assert 0 <= res["early_exit_worst_case_acc"] <= res["clean_acc"] <= 1
    assert 0 <= res["torchattacks_worst_case_acc"] <= 1
    assert res["early_exit_speedup"] > 0 and set(res["torchattacks_columns_acc"]) == {
        "clean", "FGSM", "PGD", "PGD-L2", "CW"}
    assert "speedup" in speed.format_suite("suite", res)


def test_inference_timing_shapes(tiny_digits_model, digits_eval):
    x, _ = digits_eval
    res = speed.inference_ms({"a": tiny_digits_model}, x[:8], repeats=1)
    assert {"b1", "b256"} <= set(res["a"])
    assert all(r["ms_min"] <= r["ms_median"] for r in res["a"].values())


def test_inference_variants_of_a_zoo_architecture():
    models = speed.inference_variants("slwta", torch.device("cpu"))
    from bench.nets import lwta_ext

    fused = ["fused"] if lwta_ext.load() else []  # where the kernel builds (tests/test_lwta_ext.py tests it)
    assert list(models) == ["reference", "eager", "fast", "traced", *fused]
    lw = [m for m in models["reference"].modules() if hasattr(m, "fast_eval")]
    assert lw and not any(m.fast_eval for m in lw)
    assert all(m.fast_eval for m in models["eager"].modules() if hasattr(m, "fast_eval"))
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        assert all(m(x).shape == (2, 10) for m in models.values())


@pytest.mark.parametrize("res", [{"skipped": "no model"}])
def test_skipped_sections_format(res):
    assert "skipped" in speed.format_suite("s", res) and "skipped" in speed.format_inference("s", res)


def test_inference_table_says_why_the_fused_variant_is_missing():
    res = {"threads": 1, "repeats": 1, "models": {}, "fused_kernel": {"ok": False, "why": "no C++ compiler"}}
    assert "fused variant skipped: no C++ compiler" in speed.format_inference("inference", res)
    res["fused_kernel"] = {"ok": True, "why": "loaded"}
    assert "skipped" not in speed.format_inference("inference", res)
