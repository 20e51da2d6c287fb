"""The cost of ``bench``'s whole ``standard`` suite against the reference AutoAttack alone, side by side on one
zoo model and the same first N images (issue 21, item 2).

    .venv/bin/python benchmarks/aa_cost.py --model pgd-at --n 1017 [--suite standard] [--json F]

Runs, in this order and in one process (same threads): (1) ``bench run --models MODEL --suite SUITE`` as the
command line does it (preflight, the model's own suite, early-exit cascade, witnesses) into a temporary folder,
timed as a whole; (2) the reference implementation (Croce & Hein, PyPI ``pyautoattack``), ``version='standard'``,
L-inf 8/255, seed 0, timed from its first to its last image. Prints each wall time, their ratio
``suite / reference`` (the issue's target: <= 0.75), and the two robust accuracies (the suite's worst case
must be <= AutoAttack's). Pixels in [0, 1]; eps in the same units.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pgd-at", help="a trained zoo model (default pgd-at)")
    ap.add_argument("--n", type=int, default=1017, help="the first N CIFAR-10 test images (default 1017)")
    ap.add_argument("--suite", default="standard")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", dest="json_path", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)

    import torch
    from pyautoattack import AutoAttack as ReferenceAutoAttack

    from honestbench.core.budgets import EPS_LINF
    from honestbench.core.threads import configure_threads
    from honestbench.data import load_eval
    from honestbench.engine.options import EvalOptions
    from honestbench.pipeline.models import resolve_model_specs
    from honestbench.pipeline.run import evaluate_and_diagnose
    from honestbench.suites import get_suite
    from honestbench.zoo import load_model

    configure_threads()
    device = torch.device(args.device)
    data = load_eval("cifar10", args.n)
    opts = EvalOptions(batch_size=args.batch_size, device=device, progress=False)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        rows = evaluate_and_diagnose(resolve_model_specs(args.model, (), "cifar10", device), get_suite(args.suite),
                                     data, out, opts, command="benchmarks/aa_cost.py", log=lambda s: None)
        suite_s = time.perf_counter() - t0
    worst = next(r for r in rows if r["attack"] == "worst-case")
    columns = {r["attack"]: (round(100 * r["accuracy"], 2), round(float(r["seconds"] or 0), 1)) for r in rows}

    model = load_model(args.model, device)
    ref = ReferenceAutoAttack(model, norm="Linf", eps=EPS_LINF, version="standard", device=device, seed=0)
    ref.verbose = False
    t0 = time.perf_counter()
    x_adv, _ = ref.run_standard_evaluation(data.x, data.y, batch_size=args.batch_size)
    ref_s = time.perf_counter() - t0
    with torch.no_grad():
        ref_robust = float((model(x_adv.to(device)).argmax(1).cpu() == data.y).float().mean())

    result = {"model": args.model, "n": args.n, "suite": args.suite, "threads": torch.get_num_threads(),
              "suite_seconds": round(suite_s, 1), "reference_autoattack_seconds": round(ref_s, 1),
              "ratio": round(suite_s / ref_s, 3), "suite_worst_case": round(100 * worst["accuracy"], 2),
              "reference_autoattack_robust": round(100 * ref_robust, 2), "columns_percent_seconds": columns}
    print(f"{args.model}, first {args.n} images, {torch.get_num_threads()} threads:")
    print(f"  bench {args.suite} (whole suite): {suite_s:8.1f} s, worst case {result['suite_worst_case']:.2f} %")
    print(f"  reference AutoAttack alone:   {ref_s:8.1f} s, robust     {result['reference_autoattack_robust']:.2f} %")
    print(f"  ratio suite / reference: {result['ratio']:.3f} (target <= 0.75); worst case "
          f"{'<=' if worst['accuracy'] <= ref_robust + 1e-9 else '>'} AutoAttack's")
    print("  columns (accuracy %, seconds): " + ", ".join(f"{k} {v[0]} / {v[1]} s" for k, v in columns.items()))
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
