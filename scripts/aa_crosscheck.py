"""Cross-check of ``bench``'s AutoAttack against the reference implementation (Croce & Hein, PyPI
``pyautoattack``) on a zoo model and the first N CIFAR-10 test images (issue 21, item 1).

    .venv/bin/python scripts/aa_crosscheck.py --model regular --n 1017 --out results/crosscheck/aa-regular.md
    .venv/bin/python scripts/aa_crosscheck.py --model pgd-at --n 1017 \\
        --reference results/crosscheck/aa-cost-pgd-at.json --out results/crosscheck/aa-pgd-at.md

Both run the standard flavour at L-inf 8/255 (APGD-CE, APGD-T, FAB-T, Square 5,000 queries; 100 iterations) as
a cascade on the same images. Ours runs as ``bench run`` runs it: ``create_attack('autoattack')`` on the
model's evaluation copy (:func:`honestbench.zoo.evaluation_model`: BatchNorm folded, channels-last), batches of
``--batch-size``; the reference on the model as a user loads it (``honestbench.load_model``), seed 0. Each
adversarial set is judged by the model it attacked; ours is also judged by the plain model (float32 rounding
between the two copies must flip no image). Ours runs in its default precision (``auto``: bf16 on a CPU with
native bf16, every break judged by the float32 model; named in the output); the reference in float32. Both
give the robust accuracy after each component (ours from the attack's ``broken_by``, the reference's from its
log). ``--reference FILE``: take the reference's per-image flags and time from a ``benchmarks/aa_cost.py
--json`` file or an earlier ``--out`` JSON of the same model and N instead of running it again. The bar (the
issue's): robust accuracy within 0.5 pp. Pixels in [0, 1]; eps in the same units.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

BAR_PP = 0.5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pgd-at")
    ap.add_argument("--n", type=int, default=1017)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reference", default=None, help="reuse the reference run of a benchmarks/aa_cost.py JSON")
    ap.add_argument("--out", default=None, help="also write the markdown table to FILE.md (and FILE.json)")
    args = ap.parse_args(argv)

    import torch

    from honestbench.api import load_model
    from honestbench.attacks import create_attack
    from honestbench.core.budgets import EPS_LINF
    from honestbench.core.threads import configure_threads
    from honestbench.data import load_eval
    from honestbench.zoo import evaluation_model, get_card

    configure_threads()
    device = torch.device(args.device)
    data = load_eval("cifar10", args.n)
    x, y = data.x, data.y
    plain, copy = load_model(args.model, device), evaluation_model(get_card(args.model), device)

    def robust(model, x_adv) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([model(x_adv[s:s + 512].to(device)).argmax(1).cpu() for s in range(0, len(x_adv), 512)]
                             ) == y

    attack = create_attack("autoattack", eps=EPS_LINF)
    precision = attack.resolved_precision(copy, x[:args.batch_size].to(device))
    broken = dict.fromkeys(attack.component_list(), 0)
    t0 = time.perf_counter()
    parts = []
    for s in range(0, len(x), args.batch_size):
        parts.append(attack(copy, x[s:s + args.batch_size].to(device), y[s:s + args.batch_size].to(device),
                            generator=torch.Generator(device).manual_seed(s)).cpu())
        broken = {k: v + attack.broken_by.get(k, 0) for k, v in broken.items()}
    xo = torch.cat(parts)
    t_ours = time.perf_counter() - t0
    left, ours_after = len(x), {}
    for k, v in broken.items():  # robust accuracy (%) after each component, as the reference logs it
        left -= v
        ours_after[k] = round(100 * left / len(x), 2)
    ro, ro_plain = robust(copy, xo), robust(plain, xo)

    if args.reference:
        with open(args.reference) as f:
            ref = json.load(f)
        if (ref["model"], ref["n"]) != (args.model, args.n):
            sys.exit(f"aa_crosscheck: {args.reference} is for {ref['model']} n={ref['n']}, not {args.model} "
                     f"n={args.n}")
        rr = torch.tensor(ref["reference_robust_flags"], dtype=torch.bool)
        t_ref = ref.get("reference_autoattack_seconds", ref.get("seconds_reference"))
        ref_after = ref.get("reference_robust_after", {})
        ref_source = f"the reference run of `{ref.get('command', args.reference)}`"
    else:
        rr, t_ref, ref_after = _reference(plain, x, y, EPS_LINF, args.batch_size, device, robust)
        ref_source = "run here"

    pct = lambda t: 100 * t.float().mean().item()  # noqa: E731
    diff = pct(ro) - pct(rr)
    result = {"model": args.model, "n": args.n, "threads": torch.get_num_threads(), "ours_robust": round(pct(ro), 2),
              "ours_robust_judged_by_plain_model": round(pct(ro_plain), 2), "reference_robust": round(pct(rr), 2),
              "diff_pp": round(diff, 2), "robust_only_ours": int((ro & ~rr).sum()),
              "robust_only_reference": int((rr & ~ro).sum()), "flips_plain_vs_copy": int((ro != ro_plain).sum()),
              "seconds_ours": round(t_ours, 1), "seconds_reference": round(t_ref, 1), "bar_pp": BAR_PP,
              "met": abs(diff) <= BAR_PP, "reference": ref_source, "ours_precision": precision,
              "ours_robust_after": ours_after, "reference_robust_after": ref_after,
              "reference_robust_flags": rr.int().tolist(), "reference_autoattack_seconds": round(t_ref, 1)}
    command = "scripts/aa_crosscheck.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = "\n".join([
        f"AutoAttack (standard, L-inf 8/255) cross-check on `{args.model}`, first {args.n} CIFAR-10 test images, "
        f"{torch.get_num_threads()} threads. Made by `{command}`; reference: {ref_source}.", "",
        "| ours robust | reference robust | ours - ref (pp) | robust only in ours / only in ref | ours judged by the "
        f"plain model (flips) | time ours / ref | bar {BAR_PP} pp |", "|---|---|---|---|---|---|---|",
        f"| {pct(ro):.2f} % | {pct(rr):.2f} % | {diff:+.2f} | {result['robust_only_ours']} / "
        f"{result['robust_only_reference']} | {pct(ro_plain):.2f} % ({result['flips_plain_vs_copy']}) | "
        f"{t_ours:.0f} s / {t_ref:.0f} s | {'met' if result['met'] else 'NOT met'} |", "",
        f"Robust accuracy after each component (ours: components in {precision}, every break judged by the "
        "float32 model; reference: its own log):", "",
        "| component | ours | reference |", "|---|---|---|",
        *[f"| {k} | {v:.2f} % | {_pct_text(r)} |" for (k, v), r in zip(ours_after.items(),
                                                                     _carried(ref_after, list(ours_after)),
                                                                     strict=True)]])
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
        with open(args.out.removesuffix(".md") + ".json", "w") as f:
            json.dump({**result, "command": command}, f, indent=1)
    return 0


def _carried(after: dict[str, float], names: list[str]) -> list[float | None]:
    """The reference's value per component; after it has left no robust image it skips (and logs nothing for)
    the remaining components, whose value is then that 0."""
    out: list[float | None] = []
    for name in names:
        out.append(after.get(name, 0.0 if out and out[-1] == 0.0 else None))
    return out


def _pct_text(value: float | None) -> str:
    return "(not logged)" if value is None else f"{value:.2f} %"


def _reference(plain, x, y, eps, batch_size, device, robust):
    """The reference AutoAttack on ``plain``: per-image robust flags, seconds, and robust accuracy (%) after each
    component, read from its own log (``robust accuracy after APGD-CE: 35.40% ...``)."""
    import logging
    import re

    from pyautoattack import AutoAttack as Reference

    after: dict[str, float] = {}

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            m = re.match(r"robust accuracy after ([\w-]+): ([\d.]+)%", record.getMessage())
            if m:
                after[m.group(1).lower()] = float(m.group(2))

    runner = Reference(plain, norm="Linf", eps=eps, version="standard", device=device, seed=0)
    runner.verbose = True  # the per-component lines are logged only when verbose
    handler = Grab(level=logging.DEBUG)
    runner.logger.addHandler(handler)
    runner.logger.setLevel(logging.DEBUG)
    runner.logger.propagate = False
    t0 = time.perf_counter()
    xr, _ = runner.run_standard_evaluation(x, y, batch_size=batch_size)
    t_ref = time.perf_counter() - t0
    runner.logger.removeHandler(handler)
    return robust(plain, xr), t_ref, after


if __name__ == "__main__":
    sys.exit(main())
