"""CPU milliseconds per call of what our PGD adds around its gradient passes (256 CIFAR-10 images, one thread):
the input range check, the end-of-attack budget/box assertion (each also in its form before issue 20, which
took two and three host syncs), the result copy and the 10 step updates.

    python benchmarks/pgd_hot_path.py [--calls 200]

Compare with one PGD-10 call (``bench speed``'s ``limit`` row): the sum is what the layers cost per call.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from honestbench.attacks import create_attack
from honestbench.attacks.base import check_inputs, perturbation_norm
from honestbench.data import load_eval


def cpu_ms(fn, calls: int) -> float:
    """CPU milliseconds of this process per call of ``fn`` (after 5 warm-up calls)."""
    for _ in range(5):
        fn()
    c = time.process_time()
    for _ in range(calls):
        fn()
    return 1000 * (time.process_time() - c) / calls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    x = load_eval("cifar10", n=256, source="npz").x
    y = torch.zeros(len(x), dtype=torch.long)
    pgd = create_attack("pgd-linf", random_start=True, early_stop=False)
    x_adv = pgd._start(x, torch.Generator().manual_seed(0))
    grad = torch.randn_like(x)
    out = torch.empty_like(x)

    def range_check_before() -> None:  # two reductions, two host syncs
        assert not (x.min() < 0 or x.max() > 1)

    def output_check_before() -> None:  # three reductions, three host syncs
        assert not (x_adv.min() < 0 or x_adv.max() > 1)
        assert perturbation_norm(x_adv, x, "linf").max().item() <= pgd.eps + 1e-5

    def steps() -> None:
        xa = x_adv.clone()
        for _ in range(10):
            xa = pgd._step_(xa, grad.clone(), x)

    figures = {
        "input range check": cpu_ms(lambda: check_inputs(x, y), args.calls),
        "input range check (before)": cpu_ms(range_check_before, args.calls),
        "budget/box assertion": cpu_ms(lambda: pgd.check_output(x_adv, x), args.calls),
        "budget/box assertion (before)": cpu_ms(output_check_before, args.calls),
        "result copy (now skipped without early stop)": cpu_ms(lambda: out.copy_(x_adv), args.calls),
        "10 step updates (+ 11 clones of the benchmark)": cpu_ms(steps, max(1, args.calls // 10)),
    }
    for name, ms in figures.items():
        print(f"{name:48s} {ms:8.2f} CPU ms/call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
