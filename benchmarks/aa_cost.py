"""The cost of ``bench``'s whole ``standard`` suite against the reference AutoAttack alone, side by side on one
zoo model and the same first N images (issue 21, item 2).

    .venv/bin/python benchmarks/aa_cost.py --model pgd-at --n 1017 --json results/crosscheck/aa-cost-pgd-at.json

Runs, in this order and in one process (same threads, the machine's load average printed before and after):
(1) ``bench run --models MODEL --suite SUITE`` as the command line does it (preflight, the model's evaluation
copy, its own suite, the early-exit cascade, witnesses) into ``--run-out`` (default: a temporary folder), timed
as a whole, data loading included; (2) the reference implementation (Croce & Hein, PyPI ``pyautoattack``),
``version='standard'``, L-inf 8/255, seed 0, on the model as a user loads it (``honestbench.load_model``),
timed from its first to its last image. Prints each wall time, their ratio ``suite / reference`` (the issue's
target: <= 0.75), the two robust accuracies (the suite's worst case must be <= AutoAttack's) and, per image,
how many the suite calls robust that the reference broke (and the other way). The JSON also keeps the
reference's per-image robust flags, so ``scripts/aa_crosscheck.py --reference`` reuses this run instead of
repeating it. Pixels in [0, 1]; eps in the same units.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pgd-at", help="a trained zoo model (default pgd-at)")
    ap.add_argument("--n", type=int, default=1017, help="the first N CIFAR-10 test images (default 1017)")
    ap.add_argument("--suite", default="standard")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--run-out", default=None, help="keep the suite's results folder here (default: temporary)")
    ap.add_argument("--json", dest="json_path", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from pyautoattack import AutoAttack as ReferenceAutoAttack

    from honestbench.api import load_model
    from honestbench.core.budgets import EPS_LINF
    from honestbench.core.threads import configure_threads
    from honestbench.data import load_eval
    from honestbench.engine.options import EvalOptions
    from honestbench.pipeline.models import resolve_model_specs
    from honestbench.pipeline.run import evaluate_and_diagnose
    from honestbench.results import Matrix, combine
    from honestbench.results.layout import matrix_path
    from honestbench.suites import get_suite

    if args.run_out and os.path.isdir(args.run_out) and os.listdir(args.run_out):
        # the suite would resume from the cells already there and time nothing
        print(f"error: --run-out {args.run_out} is not empty: give an empty or new folder", file=sys.stderr)
        return 2
    configure_threads()
    device = torch.device(args.device)
    load_before = _load()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.run_out or tmp
        t0 = time.perf_counter()
        data = load_eval("cifar10", args.n)
        opts = EvalOptions(batch_size=args.batch_size, device=device, progress=False)
        rows = evaluate_and_diagnose(resolve_model_specs(args.model, (), "cifar10", args.n), get_suite(args.suite),
                                     data, out, opts, command="benchmarks/aa_cost.py", log=lambda s: None)
        suite_s = time.perf_counter() - t0
        suite_robust = combine(Matrix.load(matrix_path(out, args.model)).robust) == 1
    worst = next(r for r in rows if r["attack"] == "worst-case")
    columns = {r["attack"]: (round(100 * r["accuracy"], 2), round(float(r["seconds"] or 0), 1)) for r in rows}
    load_middle = _load()

    from honestbench.attacks import create_attack
    from honestbench.zoo import evaluation_model, get_card

    precision = create_attack("autoattack").resolved_precision(evaluation_model(get_card(args.model), device),
                                                               data.x[:args.batch_size].to(device))
    model = load_model(args.model, device)
    ref = ReferenceAutoAttack(model, norm="Linf", eps=EPS_LINF, version="standard", device=device, seed=0)
    ref.verbose = False
    t0 = time.perf_counter()
    x_adv, _ = ref.run_standard_evaluation(data.x, data.y, batch_size=args.batch_size)
    ref_s = time.perf_counter() - t0
    with torch.no_grad():
        ref_robust = (model(x_adv.to(device)).argmax(1).cpu() == data.y).numpy()
    only_suite = int(np.sum(suite_robust & ~ref_robust))  # robust for the suite, broken by the reference
    only_ref = int(np.sum(~suite_robust & ref_robust))

    result = {"model": args.model, "n": args.n, "suite": args.suite, "threads": torch.get_num_threads(),
              "load_average_before_middle_after": [load_before, load_middle, _load()],
              "suite_seconds": round(suite_s, 1), "reference_autoattack_seconds": round(ref_s, 1),
              "ratio": round(suite_s / ref_s, 3), "suite_autoattack_precision": precision,
              "suite_worst_case": round(100 * worst["accuracy"], 2),
              "reference_autoattack_robust": round(100 * float(ref_robust.mean()), 2),
              "robust_for_suite_broken_by_reference": only_suite, "broken_by_suite_robust_for_reference": only_ref,
              "columns_percent_seconds": columns, "reference_robust_flags": ref_robust.astype(int).tolist(),
              "command": "benchmarks/aa_cost.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(f"{args.model}, first {args.n} images, {torch.get_num_threads()} threads, load average "
          f"{load_before} / {load_middle} / {_load()}:")
    print(f"  bench {args.suite} (whole suite): {suite_s:8.1f} s, worst case {result['suite_worst_case']:.2f} % "
          f"(AutoAttack in {precision}, every break judged in fp32)")
    print(f"  reference AutoAttack alone:   {ref_s:8.1f} s, robust     {result['reference_autoattack_robust']:.2f} %")
    print(f"  ratio suite / reference: {result['ratio']:.3f} (target <= 0.75); worst case "
          f"{'<=' if worst['accuracy'] <= ref_robust.mean() + 1e-9 else '>'} AutoAttack's; per image: "
          f"{only_suite} robust for the suite but broken by the reference, {only_ref} the other way")
    print("  columns (accuracy %, seconds): " + ", ".join(f"{k} {v[0]} / {v[1]} s" for k, v in columns.items()))
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
