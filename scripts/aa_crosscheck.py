"""Cross-check of ``bench``'s AutoAttack against the reference implementation (Croce & Hein, PyPI
``pyautoattack``) on a zoo model and the first N CIFAR-10 test images (issue 21, item 1).

    .venv/bin/python scripts/aa_crosscheck.py --model pgd-at --n 1017 [--individual] [--out FILE.md]

Both run the standard flavour at L-inf 8/255 (APGD-CE, APGD-T, FAB-T, Square 5,000 queries; 100 iterations) as
a cascade on the same images; the table gives each one's robust accuracy, the images on which they disagree
(robust for one, broken by the other) and the wall times. With ``--individual`` every component also runs
alone on every clean-correct image, in both implementations, so a difference is traced to its component. The
bar (the issue's): robust accuracy within 0.5 pp. Pixels in [0, 1]; eps in the same units.
"""

from __future__ import annotations

import argparse
import sys
import time

#: our component name -> the reference's
COMPONENTS = {"apgd-ce": "apgd-ce", "apgd-t": "apgd-t", "fab-t": "fab-t", "square": "square"}
BAR_PP = 0.5


def _robust(model, x_adv, y, device):
    import torch

    with torch.no_grad():
        return (model(x_adv.to(device)).argmax(1).cpu() == y)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pgd-at")
    ap.add_argument("--n", type=int, default=1017)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--individual", action="store_true", help="also each component alone, in both")
    ap.add_argument("--out", default=None, help="also write the markdown table to this file")
    args = ap.parse_args(argv)

    import torch
    from pyautoattack import AutoAttack as Reference

    from honestbench.attacks import create_attack
    from honestbench.core.budgets import EPS_LINF
    from honestbench.core.threads import configure_threads
    from honestbench.data import load_eval
    from honestbench.zoo import load_model

    configure_threads()
    device = torch.device(args.device)
    data = load_eval("cifar10", args.n)
    model = load_model(args.model, device)
    x, y = data.x, data.y
    rows = []

    def ours(components: str) -> tuple[torch.Tensor, float]:
        attack = create_attack("autoattack", eps=EPS_LINF, components=components)
        t0 = time.perf_counter()
        parts = [attack(model, x[s:s + args.batch_size].to(device), y[s:s + args.batch_size].to(device),
                        generator=torch.Generator(device).manual_seed(s)).cpu()
                 for s in range(0, len(x), args.batch_size)]
        return torch.cat(parts), time.perf_counter() - t0

    def reference(components: list[str] | None) -> tuple[torch.Tensor, float]:
        ref = Reference(model, norm="Linf", eps=EPS_LINF, version="standard" if components is None else "custom",
                        attacks_to_run=components, device=device, seed=0)
        if components is not None:  # the standard flavour's settings, fewer components
            ref._set_version("standard")
            ref.attacks_to_run = components
        ref.verbose = False
        t0 = time.perf_counter()
        x_adv, _ = ref.run_standard_evaluation(x, y, batch_size=args.batch_size)
        return x_adv, time.perf_counter() - t0

    plan = [("standard (cascade)", ",".join(COMPONENTS), None)]
    if args.individual:
        plan += [(c, c, [r]) for c, r in COMPONENTS.items()]
    for label, mine, theirs in plan:
        xo, to = ours(mine)
        xr, tr = reference(theirs)
        ro, rr = _robust(model, xo, y, device), _robust(model, xr, y, device)
        diff = 100 * (ro.float().mean() - rr.float().mean()).item()
        rows.append(f"| {label} | {100 * ro.float().mean():.2f} % | {100 * rr.float().mean():.2f} % | {diff:+.2f} | "
                    f"{int((ro & ~rr).sum())} / {int((rr & ~ro).sum())} | {to:.0f} s / {tr:.0f} s | "
                    f"{'ok' if abs(diff) <= BAR_PP else 'FAIL'} |")
    table = "\n".join([
        f"AutoAttack cross-check, {args.model}, first {args.n} CIFAR-10 test images, L-inf 8/255, "
        f"{torch.get_num_threads()} threads (`scripts/aa_crosscheck.py --model {args.model} --n {args.n}"
        f"{' --individual' if args.individual else ''}`)", "",
        "| run | ours robust | reference robust | ours - ref (pp) | robust only in ours / only in ref | time ours / "
        f"ref | bar {BAR_PP} pp |", "|---|---|---|---|---|---|---|", *rows])
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
