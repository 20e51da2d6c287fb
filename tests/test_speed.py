"""``bench speed`` plumbing (sections, headline keys, the suite and inference sections on tiny inputs) and
the thread-count policy of :func:`honestbench.core.threads.default_threads`."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from honestbench.core import threads as utils
from honestbench.devtools import speed


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
    from honestbench.cli import main as cli

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
    from honestbench.cli.speed import main as speed_command
    from honestbench.devtools.speed import run

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
    from honestbench.devtools.speed import run

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
    from honestbench.nets import lwta_ext

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


# ----------------------------------------------------------------------------------------------- archs, precision
def _names(opts) -> list[str]:
    return [s.name for s in speed.SECTIONS if speed.selected(s, opts)]


def test_archs_pick_the_pgd_cost_sections():
    base = speed.SpeedOptions()
    assert "pgd-cost wrn-34-1" in _names(base) and "pgd-cost wrn-34-10" not in _names(base)  # default: no WRN-34-10
    assert [n for n in _names(speed.SpeedOptions(quick=True)) if n.startswith("pgd-cost")] == ["pgd-cost small-cnn"]
    gpu = speed.SpeedOptions(quick=True, archs=("small", "wrn-34-1", "wrn-34-10"), precisions=("fp32", "bf16"))
    names = _names(gpu)
    assert [n for n in names if n.startswith("pgd-cost")] == [
        "pgd-cost small-cnn", "pgd-cost wrn-34-1", "pgd-cost wrn-34-10"]
    assert "pgd-10 precision fp32 vs bf16" in names and "standard suite early exit vs torchattacks" not in names
    assert "pgd-10 precision fp32 vs bf16" not in _names(base)  # fp32 only: no precision check
    assert [n for n in _names(speed.SpeedOptions(archs=("wrn-34-10",))) if n.startswith("pgd-cost")] == [
        "pgd-cost wrn-34-10"]


def test_wrn34_10_is_the_46m_parameter_wideresnet():
    # only built (~2 s): one forward+backward of WRN-34-10 on a CPU takes ~0.65 s per image and up to 10 s cold
    model = speed.ARCHS["wrn-34-10"](3, 32, "cifar10")
    assert 46.0e6 < sum(p.numel() for p in model.parameters()) < 46.5e6


def test_pgd_sections_run_once_per_precision(monkeypatch):
    from honestbench.devtools.speed import run

    seen = []

    def fake(opts, ctx):
        seen.append(opts.precisions)
        return {"pgd_over_limit": 1.0 if opts.precisions == ("fp32",) else 9.0}

    monkeypatch.setattr(run, "SECTIONS", [
        speed.Section("pgd-cost a", fake, arch="small", headline={"pgd_over_limit": "pgd_over_limit"}),
        speed.Section("pgd-cost b", fake, arch="wrn-34-10"),
        speed.Section("check", lambda opts, ctx: {"robust_diff_pp": 0.25}, needs_bf16=True,
                      headline={"robust_diff_pp": "robust_diff_pp"})])
    opts = speed.SpeedOptions(archs=("small",), precisions=("fp32", "bf16"))
    result = speed.run_speed(opts, torch.device("cpu"))
    assert seen == [("fp32",), ("bf16",)] and result["archs"] == ["small"]
    assert list(result["sections"]) == ["pgd-cost a", "pgd-cost a bf16", "check"]
    assert result["pgd_over_limit"] == 1.0 and result["robust_diff_pp"] == 0.25  # headline: the fp32 run
    assert result["precisions"] == ["fp32", "bf16"]


def test_bad_archs_and_precision_are_one_line_errors(capsys):
    from honestbench.cli.main import main

    assert main(["speed", "--archs", "small,wrn-28-10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown wrn-28-10" in err and "wrn-34-10" in err
    assert main(["speed", "--precision", "fp16"]) == 2
    assert "unknown fp16" in capsys.readouterr().err and speed.parse_words("bf16,fp32,bf16", speed.PRECISIONS,
                                                                          "--precision") == ("bf16", "fp32")


def test_bf16_autocast_runs_the_model_in_bf16(tiny_digits_model, digits_eval):
    from honestbench.core.precision import AutocastForward, autocast

    x = digits_eval[0][:8]
    with torch.no_grad():
        with autocast("bf16", x.device):
            assert tiny_digits_model(x).dtype == torch.bfloat16
        with autocast("fp32", x.device):
            ref = tiny_digits_model(x)
        wrapped = AutocastForward(tiny_digits_model, "bf16")(x)
    assert ref.dtype == wrapped.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: the logits move, but by far less than their own scale
    assert 0 < (wrapped - ref).abs().max() < 0.1 * ref.abs().max()


def test_precision_check_on_the_tiny_model(tiny_digits_model, digits_eval):
    from honestbench.attacks import create_attack

    x, y = digits_eval[0][:32], digits_eval[1][:32]
    res = speed.precision_check(tiny_digits_model, x, y, batch_size=16, seed=0)
    assert set(res["robust_acc"]) == {"fp32", "bf16"} and res["n"] == 32 and res["bar_pp"] == 0.5
    for p in ("fp32", "bf16"):
        assert 0 <= res["robust_acc"][p] <= res["clean_acc"][p] <= 1
    # fp32 column: the same as our PGD-10 run directly with the same seeded generator, batch by batch
    pgd = create_attack("pgd-linf", eps=8 / 255, alpha=2 / 255, steps=10, random_start=True, early_stop=False)
    gen = torch.Generator().manual_seed(0)
    robust = []
    for s in (0, 16):
        adv = pgd(tiny_digits_model, x[s:s + 16], y[s:s + 16], generator=gen)
        with torch.no_grad():
            robust.append((tiny_digits_model(x[s:s + 16]).argmax(1) == y[s:s + 16])
                          & (tiny_digits_model(adv).argmax(1) == y[s:s + 16]))
    assert res["robust_acc"]["fp32"] == round(torch.cat(robust).float().mean().item(), 4)
    diff = 100 * (res["robust_acc"]["bf16"] - res["robust_acc"]["fp32"])
    assert res["robust_diff_pp"] == pytest.approx(diff, abs=0.01)  # the accuracies are rounded to 4 places
    assert abs(res["robust_diff_pp"]) <= 100 * res["robust_flags_differ"] / 32 + 1e-9
    assert res["within_bar"] == (abs(res["robust_diff_pp"]) <= 0.5)
    assert "pp bar" in speed.format_precision("check", {"model": "tiny", **res})


def test_precision_section_skips_models_that_do_not_fit():
    from honestbench.devtools.speed.precision import precision_section

    ctx = speed.Context(torch.device("cpu"))
    res = precision_section(speed.SpeedOptions(precision_model="slwta", precisions=("fp32", "bf16")), ctx)
    assert "stochastic" in res["skipped"]
    res = precision_section(speed.SpeedOptions(dataset="digits", precisions=("fp32", "bf16")), ctx)
    assert res["skipped"] == "pgd-at is a cifar10 model (this run: digits)"
    assert "skipped" in speed.format_precision("s", res)


def test_pgd_cost_in_bf16_says_which_library_ran_in_which_precision(tiny_digits_model, digits_eval):
    x = digits_eval[0][:8]
    with torch.no_grad():
        y = tiny_digits_model(x).argmax(1)
    res = speed.pgd_cost(tiny_digits_model, x, y, repeats=1, art=True, precision="bf16")
    lib = res["libraries_precision"]
    assert res["precision"] == "bf16" and lib["ours"] == lib["torchattacks"] == lib["limit"] == "bf16"
    assert lib["art"].startswith("bf16 (autocast inside the model's forward") and lib["step_ops"].startswith("fp32")
    assert res["seconds_median"]["art"] > 0 and "pgd_over_limit" in res
    assert "bf16 autocast: art, limit, ours" in speed.format_pgd_cost("pgd-cost tiny bf16", res)


# ----------------------------------------------------------------------------------------------- pgd-cost estimators
def test_interleaving_rotates_and_records_cpu_time():
    order: list[str] = []
    fns = {k: (lambda k=k: order.append(k)) for k in "abc"}
    cpu: dict[str, list[float]] = {}
    wall = speed.time_interleaved(fns, repeats=3, device=torch.device("cpu"), warmup=0, cpu=cpu)
    assert order == list("abc" "bca" "cab")  # each round starts at the next contender
    assert set(wall) == set(cpu) == set("abc") and all(len(v) == 3 for v in cpu.values())
    assert all(t >= 0 for v in cpu.values() for t in v)


def test_pgd_cost_gives_wall_min_and_cpu_ratios_side_by_side(tiny_digits_model, digits_eval):
    x, y = digits_eval
    res = speed.pgd_cost(tiny_digits_model, x[:32], y[:32], repeats=1, art=False)
    for key in ("pgd_over_limit", "pgd_over_limit_min", "pgd_over_limit_cpu", "pgd_over_torchattacks_cpu"):
        assert res[key] > 0, key
    assert set(res["cpu_seconds_median"]) == set(res["seconds_median"])
    head = speed.format_pgd_cost("pgd-cost tiny", res).splitlines()[1]
    assert "/ limit" in head and "min / limit" in head and "CPU / limit" in head and "CPU / ours" in head
