"""RobustBench's external-evaluation format: one tensor of adversarial images for the first N test images.

RobustBench asks for "a ``.pt`` tensor of the same size of the corresponding test set" (its issue template
for new external evaluations); AutoAttack's reference code saves the same tensor as ``{'adv_complete': x}``
(``.pth``). Both are float32 (N, C, H, W) with pixels in [0, 1], row i the adversarial image of test image i
(the clean image where no attack succeeded). :func:`export_adv` writes the bare tensor from a results
directory's witnesses (``bench export-adv``); :func:`check_adv_file` reads either form and checks it against
a model (``bench verify --adv``): budget, box, robust accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from honestbench.core.errors import BenchError
from honestbench.core.io import atomic_path
from honestbench.data import load_eval
from honestbench.pipeline.proof import Budget, check_images
from honestbench.results import Matrix, matrix_path, read_records, safe_name
from honestbench.results.matrix import wilson_interval
from honestbench.results.witnesses import read_witnesses

KEY = "adv_complete"


def export_adv(out: str | Path, model: str, path: str | Path, norm: str = "linf") -> tuple[int, int, float]:
    """Write the RobustBench tensor of ``model`` in results directory ``out`` to ``path`` for threat model
    ``norm``: the witness of every image broken by a column of that norm, the clean image elsewhere. Returns
    (images, adversarial images written, the largest budget of those columns)."""
    out = Path(out)
    if not (out / "records.json").is_file():
        raise BenchError(f"{out} holds no records.json: give a folder written by `bench run`")
    run, _ = read_records(out)
    if not matrix_path(out, model).is_file():
        raise BenchError(f"{out} has no results for {model!r} (it has: {', '.join(run.get('models', []))})")
    data = load_eval(run["dataset"], run["n"], run.get("data_source", "npz"))
    index = data.index.numpy()
    if not np.array_equal(index, index[0] + np.arange(len(index))):
        raise BenchError(f"{out} does not hold consecutive test images: the format needs the first N")
    matrix = Matrix.load(matrix_path(out, model))
    x = data.x.numpy().copy()
    pos = {int(i): p for p, i in enumerate(index.tolist())}
    specs = matrix.meta.get("specs", {})
    labels = [lb for lb in matrix.labels if specs.get(lb, {}).get("norm") == norm]
    if not labels:
        raise BenchError(f"{model} in {out} has no {norm} column to export (columns: {', '.join(matrix.labels)})")
    written = 0
    for wit in read_witnesses(out, model, labels).values():
        for i, _, xw in wit.images({i: x[pos[i]] for i in wit.index}):
            x[pos[i]] = xw
            written += 1
    eps = max(float(specs[lb].get("eps") or 0) for lb in labels)
    with atomic_path(path, "wb") as f:
        torch.save(torch.from_numpy(x), f)
    return len(x), written, eps


def load_adv(path: str | Path) -> torch.Tensor:
    """The adversarial tensor of ``path``: a bare tensor (RobustBench) or ``{'adv_complete': tensor}``."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BenchError(f"--adv {path}: no such file") from None
    except Exception as e:
        raise BenchError(f"--adv {path}: not a torch file ({type(e).__name__}): save it with torch.save") from None
    if isinstance(obj, dict):
        obj = obj.get(KEY)
    if not isinstance(obj, torch.Tensor) or obj.dim() != 4:
        raise BenchError(f"--adv {path}: expected a 4-d tensor (N, C, H, W) or {{'{KEY}': tensor}}")
    return obj


@dataclass
class AdvFileResult:
    """``bench verify --adv``: images checked, how many are valid, robust (model still right) and clean right."""

    n: int
    clean_correct: int
    robust: int
    invalid: list[tuple[int, str]]
    budget: Budget

    def text(self, path: str | Path, model: str) -> str:
        lo, hi = wilson_interval(self.robust, self.n)
        head = (f"{path}: {self.n} adversarial images for the first {self.n} test images, model {model}, "
                f"{self.budget.text()} (float64), box [0, 1]: clean {self.clean_correct}/{self.n}, robust accuracy "
                f"{100 * self.robust / self.n:.2f} % [{100 * lo:.1f}, {100 * hi:.1f}] ({self.robust}/{self.n}; "
                "an image outside the budget counts as robust)")
        if not self.invalid:
            return head + "\nbench verify: OK: every image lies within the budget"
        return head + f"\nbench verify: {len(self.invalid)} images outside the threat model:\n" + "\n".join(
            f"  image {i}: {r}" for i, r in self.invalid)


def check_adv_file(path: str | Path, model: torch.nn.Module, budget: Budget, dataset: str = "cifar10",
                   data_source: str = "npz", device: torch.device | str = "cpu") -> AdvFileResult:
    """Check the tensor of ``path`` against the first N images of ``dataset`` and ``model`` (eval mode)."""
    adv = load_adv(path)
    if adv.dtype != torch.float32:
        raise BenchError(f"--adv {path}: {adv.dtype} images, expected float32 pixels in [0, 1]")
    data = load_eval(dataset, len(adv), data_source)
    if len(data) != len(adv) or tuple(adv.shape[1:]) != tuple(data.x.shape[1:]):
        raise BenchError(f"--adv {path}: shape {tuple(adv.shape)}, expected ({len(data)}, "
                         f"{', '.join(map(str, data.x.shape[1:]))}) for {dataset}")
    device = torch.device(device)
    model = model.to(device)
    x, y = data.x.numpy(), data.y.numpy()
    got = check_images(model, adv.numpy(), x, y, budget, device)
    clean = check_images(model, x, x, y, Budget("none", None), device)
    clean_ok = clean.fooled == 0
    outside = [(i, r) for i, r in enumerate(got.reason) if r and not r.startswith("not misclassified")]
    robust = clean_ok & ((got.fooled == 0) | np.isin(np.arange(len(x)), [i for i, _ in outside]))
    return AdvFileResult(len(x), int(clean_ok.sum()), int(robust.sum()), outside, budget)


def default_adv_path(out: str | Path, model: str) -> Path:
    """``DIR/adv/<model>.pt``: where ``bench export-adv`` writes without ``--out``."""
    return Path(out) / "adv" / f"{safe_name(model)}.pt"
