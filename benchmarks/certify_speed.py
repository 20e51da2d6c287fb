"""Speed and outcome of the certify layer on the 1,017 CIFAR-10 evaluation images: IBP and CROWN certified
accuracy (with clean accuracy) and their time, and exact verification by MILP (HiGHS) with a per-image
time limit: how many images it settles (robust or counterexample) and in how long. ``--data digits``: the
scikit-learn 8x8 digits test images instead (the MILP-sized MLP).

    BENCH_THREADS=2 .venv/bin/python benchmarks/certify_speed.py --bounds ibp-cnn-2:2/255,ibp-cnn-8:8/255 \\
        --milp ibp-mlp-2:2/255:10,ibp-cnn-2:2/255:10 [--n 1017] [--data digits]

``--bounds`` and ``--milp`` take ``MODEL:EPS`` and ``MODEL:EPS:SECONDS`` items. Wall time (s) and the process
CPU time (s, all threads) are printed: on a shared machine the wall time overstates the cost.
"""

from __future__ import annotations

import argparse
import collections
import time

import torch

from honestbench.certify import certify
from honestbench.certify.milp import verify
from honestbench.core.numbers import parse_number
from honestbench.core.threads import configure_threads
from honestbench.data import load_eval
from honestbench.zoo import load_card_model


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bounds", default="ibp-cnn-2:2/255")
    ap.add_argument("--milp", default="")
    ap.add_argument("--n", type=int, default=None, help="first N images (default: all; CIFAR-10: 1,017)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--data", default="cifar10", choices=["cifar10", "digits"], help="evaluation images")
    a = ap.parse_args(argv)
    configure_threads()
    ev = load_eval(a.data, n=a.n)
    x, y = ev.x.float(), ev.y.long()
    print(f"{len(y)} {a.data} images, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| model | eps | method | clean | certified | wall s | cpu s |\n|---|---|---|---|---|---|---|")
    for item in filter(None, a.bounds.split(",")):
        name, eps = item.split(":")
        model = load_card_model(name)
        for method in ("ibp", "crown"):
            c, wall, cpu = _timed(lambda m=method, net=model, e=eps: certify(net, x, y, parse_number(e), m, a.batch))
            print(f"| {name} | {eps} | {method} | {c.correct.mean():.4f} | {c.certified.mean():.4f} | {wall:.1f} "
                  f"| {cpu:.1f} |", flush=True)
    if a.milp:
        print("\n| model | eps | limit s/image | robust | counterexample | timeout | unknown | settled | wall s "
              "| cpu s | max s/image |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for item in filter(None, a.milp.split(",")):
        name, eps, limit = item.split(":")
        vs, wall, cpu = _timed(lambda n=name, e=eps, t=limit: verify(load_card_model(n), x, y, parse_number(e),
                                                                     float(t)))
        k = collections.Counter(v.status for v in vs)
        settled = (k["robust"] + k["counterexample"]) / len(vs)
        print(f"| {name} | {eps} | {limit} | {k['robust']} | {k['counterexample']} | {k['timeout']} | {k['unknown']} "
              f"| {settled:.4f} | {wall:.1f} | {cpu:.1f} | {max(v.seconds for v in vs):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
