"""The cross-check driver: which rows to run (``--attacks``), the shared clean pass, every row's comparison and
the noise-vs-PGD check across rows. Accuracies in %, pixels in [0, 1], eps in the same units."""

from __future__ import annotations

import ast
import logging
from collections.abc import Callable, Sequence

import torch
from torch import nn

from honestbench.attacks import Attack, create_attack, frozen_eval
from honestbench.attacks.eot import is_stochastic
from honestbench.core.errors import BenchError
from honestbench.devtools.crosscheck.compare import (
    CW_ACC_TOL_PP,
    EVAL_SEED,
    EXACT_ACC_TOL_PP,
    EXACT_PIXEL_TOL,
    RANDOM_ACC_TOL_PP,
    REFERENCES,
    Setting,
    compare_row,
    pct,
    seeded,
)

#: the rows of ``--attacks all``: (label, registered name, parameter overrides)
DEFAULT_ROWS: tuple[tuple[str, str, dict], ...] = (
    ("fgsm", "fgsm", {}),
    ("pgd-linf (no random start)", "pgd-linf", {"random_start": False, "early_stop": False}),
    ("pgd-linf", "pgd-linf", {}),
    ("pgd-l2 (no random start)", "pgd-l2", {"random_start": False, "early_stop": False}),
    ("pgd-l2", "pgd-l2", {}),
    ("cw-l2", "cw-l2", {}),
    ("noise", "noise", {}),
    ("eot-fgsm", "eot-fgsm", {}),
    ("eot-pgd-linf (no random start)", "eot-pgd-linf", {"random_start": False, "early_stop": False}),
)

AttackSpec = str | Attack | tuple[str, str, dict]
#: rows only ART checks (torchattacks' CW is reported, not compared): left out of ``--attacks default`` without ART
ART_ONLY = ("cw-l2",)
#: EOT passes per gradient in the ``--attacks default`` rows (the registered 20 in ``all``): the averaging code is
#: checked as well with 2, at a tenth of the cost (on a deterministic model every pass gives the same gradient)
FAST_EOT = 2


def default_rows(references: Sequence[str]) -> list[tuple[str, str, dict]]:
    """The rows of ``--attacks default``: :data:`DEFAULT_ROWS` with EOT rows at :data:`FAST_EOT` passes, less
    those only ART checks when ART is not run."""
    rows = []
    for label, name, kw in DEFAULT_ROWS:
        if name in ART_ONLY and "art" not in references:
            continue
        if name.startswith("eot-"):
            label, kw = f"{label} eot {FAST_EOT}", {**kw, "eot": FAST_EOT}
        rows.append((label, name, kw))
    return rows


def resolve_rows(attacks: Sequence[AttackSpec] | str | None) -> list[tuple[str, Attack]]:
    """``(label, attack)`` per row: None/'all' the default rows; a name expands to its default rows;
    ``name:key=value:...`` sets parameters; ``Attack`` instances and ``(label, name, params)`` tuples as given."""
    if attacks is None or attacks == "all":
        return [(label, create_attack(name, **kw)) for label, name, kw in DEFAULT_ROWS]
    if isinstance(attacks, str):
        attacks = [a.strip() for a in attacks.split(",") if a.strip()]
    out = []
    for a in attacks:
        if isinstance(a, Attack):
            out.append((a.name, a))
        elif isinstance(a, tuple):
            out.append((a[0], create_attack(a[1], **a[2])))
        elif ":" in a:  # name:key=value:key=value
            name, *pairs = a.split(":")
            out.append((a, create_attack(name, **dict(_parse_pair(p) for p in pairs))))
        else:
            rows = [(label, create_attack(nm, **kw)) for label, nm, kw in DEFAULT_ROWS if nm == a]
            out.extend(rows or [(a, create_attack(a))])
    return out


def _parse_pair(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep:
        raise BenchError(f"attack parameter {text!r} is not key=value (e.g. pgd-linf:eps=0.1:steps=20)")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip(), value


def _check_arguments(references: tuple[str, ...], random_seeds: int) -> None:
    unknown = sorted(set(references) - set(REFERENCES))
    if unknown:
        raise BenchError(f"crosscheck: unknown reference {unknown[0]!r} (choose from {', '.join(REFERENCES)})")
    if random_seeds < 1:
        raise BenchError(f"crosscheck: random_seeds must be >= 1, got {random_seeds}")


def crosscheck(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: Sequence[AttackSpec] | str | None = None,
    seed: int = 0,
    random_seeds: int = 8,
    progress: Callable[[str], None] | None = None,
    references: Sequence[str] = REFERENCES,
    bars: bool = False,
) -> dict:
    """Run every attack (ours, torchattacks, ART) on ``model`` and ``(x, y)``; return the comparison.

    ``attacks``: see :func:`resolve_rows` (default: each PGD with and without random start).
    Randomised attacks (random start, noise; every attack on a stochastic model) run with ``random_seeds``
    seeds ``seed, seed+1, ...`` in every library (paired: ours gets a generator seeded ``s``, torchattacks
    ``torch.manual_seed(s)``, ART ``np.random.seed(s)``) and compare mean robust accuracies. Every library's
    images are evaluated alike: the clean pass under the global seed ``EVAL_SEED + seed``, each seed's pass
    under ``EVAL_SEED + s``, so on a stochastic model they all meet the same stochastic draws.
    ``references``: the libraries to run, a subset of ``('torchattacks', 'art')`` (leaving ART out saves its
    runs; its comparisons are then skipped, not failed). ``progress`` gets each row's label as it starts;
    ``bars``: a tqdm bar on stderr per (attack, library), one tick per seed.
    Returns ``{'n', 'clean_accuracy', 'stochastic_model', 'rows': [...], 'all_ok'}``; accuracies in %.
    """
    references = tuple(references)
    _check_arguments(references, random_seeds)
    logging.getLogger("art").setLevel(logging.WARNING)
    rows: list[dict] = []
    with frozen_eval(model):
        with seeded(EVAL_SEED + seed):
            clean_logits = torch.cat([model(x[i:i + 512]) for i in range(0, len(x), 512)]).detach()
        clean_ok = clean_logits.argmax(1) == y
        stochastic = is_stochastic(model, x[:16])
        others = clean_logits.scatter(1, y[:, None], float("-inf")).amax(1)
        classifier = None
        if "art" in references:  # ART is optional: imported only when asked for
            from honestbench.devtools.crosscheck.references import art_classifier

            classifier = art_classifier(model, x, clean_logits.shape[1])
        setting = Setting(model, classifier, x, y, clean_ok, seed, random_seeds, stochastic,
                          negative_others=int((others < 0).sum()), references=references, bars=bars)
        for label, attack in resolve_rows(attacks):
            if progress:
                progress(label)
            rows.append(compare_row(label, attack, setting))
    check_noise(rows)
    return {
        "n": len(y),
        "clean_accuracy": pct(clean_ok),
        "stochastic_model": stochastic,
        "seed": seed,
        "random_seeds": random_seeds,
        "references": list(references),
        "tolerances": {"exact_pixel": EXACT_PIXEL_TOL, "exact_acc_pp": EXACT_ACC_TOL_PP,
                       "random_acc_pp": RANDOM_ACC_TOL_PP, "cw_acc_pp": CW_ACC_TOL_PP},
        "rows": rows,
        "all_ok": all(r["verdict"] in ("ok", "n/a") for r in rows) and any(r["verdict"] == "ok" for r in rows),
    }


def check_noise(rows: list[dict]) -> None:
    """Noise must not beat a PGD L-inf row of the same run and budget (else PGD is broken or gradients are
    masked)."""
    for r in rows:
        if r["name"] != "noise":
            continue
        eps = r["params"]["eps"]
        pgd = [p for p in rows if p["name"] in ("pgd-linf", "eot-pgd-linf") and p["params"]["eps"] == eps]
        if not pgd:
            r["note"] += f"; no PGD L-inf row at eps {eps:.4g} in this run to compare with"
            continue
        worst = max(pgd, key=lambda p: p["robust_accuracy"]["ours"])
        if r["robust_accuracy"]["ours"] + 1e-9 < worst["robust_accuracy"]["ours"]:
            r["verdict"] = "FAIL"
            r["note"] = (f"noise ({r['robust_accuracy']['ours']} %) beats {worst['attack']} "
                         f"({worst['robust_accuracy']['ours']} %): PGD broken or gradients masked; "
                         + r["note"])
