"""Cross-checks: each of our attack kernels against its torchattacks and ART equivalent, on the same model
and the same images (``bench crosscheck``).

Per attack the comparison records robust accuracy (clean-correct AND adversarial-correct, in %) of ours,
torchattacks and ART, the max absolute pixel difference between our images and each reference's where the
attack is deterministic, the tolerance applied, and a computed verdict ("ok" / "FAIL") with a note.

Tolerances (issue 3; a sample of n = 128 is 0.78 pp):
* deterministic (FGSM, PGD L-inf / L2 without random start; ours with ``early_stop=False``, the exact
  torchattacks iteration): max |ours - torchattacks| <= 1e-5 and |acc ours - acc ART| <= 1 pp;
* PGD with random start (ours with its default first-success early stop): |acc ours - acc ref| <= 1.5 pp for
  both references;
* CW-L2 at matched settings (search steps, iterations, learning rate, initial c, kappa): |acc ours - acc ART
  CarliniL2Method| <= 2 pp, both thresholded at L2 <= ``threshold`` (0.5). torchattacks' CW is reported but
  not compared: it has no binary search over c and its margin ``max((1 - onehot) * Z)`` is wrong when the
  logits of the other classes are negative (the note counts the affected samples);
* noise has no reference: its check is that it is not stronger than PGD L-inf at the same eps (same run).
Where a reference cannot express a setting (restarts in torchattacks' PGD, CW's ``lam`` in ART), the cell is
empty and the note says why.

Cost knobs (``bench crosscheck --seeds N --no-art``): randomised rows run ``N`` paired seeds (default 8) and
``--no-art`` leaves ART out (its rows are then compared with torchattacks only; a row that only ART could check,
such as CW-L2, gets the verdict ``n/a``). Each adversarial set is evaluated the same way whichever library made
it: the clean pass and, per seed ``s``, the evaluation pass run under fixed seeds (``EVAL_SEED + seed`` and
``EVAL_SEED + s``), so on a stochastic model every library's images meet the same stochastic draws.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import importlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.attacks import Attack, create_attack, frozen_eval
from bench.attacks.cw import CWL2
from bench.attacks.eot import is_stochastic
from bench.attacks.fgsm import FGSM
from bench.attacks.noise import Noise
from bench.attacks.pgd import _PGD, GRAD_NORM_EPS, PGDL2, PGDLinf
from bench.core.errors import BenchError

EXACT_PIXEL_TOL = 1e-5  # max abs pixel difference to torchattacks (float32 rounding only)
EXACT_ACC_TOL_PP = 1.0  # deterministic attacks: robust accuracy vs ART
RANDOM_ACC_TOL_PP = 1.5  # random start: robust accuracy vs both references
CW_ACC_TOL_PP = 2.0  # CW-L2 vs ART's CarliniL2Method at the L2 threshold
REFERENCES = ("torchattacks", "art")
EVAL_SEED = 1_000_003  # offset of the global-RNG seeds of the evaluation passes (stochastic models)

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

AttackFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------------------------- references
def torchattacks_equivalent(attack: Attack, model: nn.Module, n: int) -> tuple[AttackFn | None, str]:
    """The torchattacks attack configured like ``attack`` (or None and why not), and a note."""
    import torchattacks as ta

    if isinstance(attack, FGSM):
        if attack.loss != "ce":
            return None, "torchattacks FGSM has only the CE loss"
        if attack.eot > 1:  # EOTPGD with one step of size eps from x is FGSM with EOT
            return ta.EOTPGD(model, eps=attack.eps, alpha=attack.eps, steps=1, eot_iter=attack.eot,
                             random_start=False), "torchattacks EOTPGD, 1 step of size eps"
        return ta.FGSM(model, eps=attack.eps), ""
    if isinstance(attack, _PGD):
        if attack.loss != "ce" or attack.restarts > 1:
            return None, "torchattacks PGD has no restarts and only the CE loss"
        kw = dict(eps=attack.eps, alpha=attack.step_size, steps=attack.steps,
                  random_start=attack.random_start)
        if isinstance(attack, PGDLinf):
            if attack.eot > 1:
                return ta.EOTPGD(model, eot_iter=attack.eot, **kw), "torchattacks EOTPGD"
            return ta.PGD(model, **kw), ""
        if isinstance(attack, PGDL2) and attack.eot == 1:
            # their kernel fails on non-contiguous inputs (view on a permuted tensor)
            atk = ta.PGDL2(model, eps_for_division=GRAD_NORM_EPS, **kw)
            return (lambda x, y: atk(x.contiguous(), y)), ""
        return None, "torchattacks PGDL2 has no EOT"
    if isinstance(attack, CWL2):
        return ta.CW(model, c=attack.c, kappa=attack.kappa, steps=attack.steps, lr=attack.lr), ""
    return None, "no torchattacks equivalent"


def art_classifier(model: nn.Module, x: torch.Tensor, nb_classes: int):
    """ART's PyTorchClassifier around ``model`` (pixels in [0, 1], cross-entropy loss)."""
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=nb_classes,
        clip_values=(0.0, 1.0), device_type="gpu" if x.is_cuda else "cpu",
    )


def art_equivalent(attack: Attack, classifier, n: int) -> tuple[AttackFn | None, str]:
    """The ART attack configured like ``attack`` (or None and why not), and a note."""
    from art.attacks.evasion import CarliniL2Method, FastGradientMethod, ProjectedGradientDescent

    note = ""
    if getattr(attack, "eot", 1) > 1:
        note = "ART without EOT (EOT of a deterministic model is the plain gradient)"
    if getattr(attack, "loss", "ce") != "ce":
        return None, "ART's attacks use the classifier's CE loss"
    if isinstance(attack, FGSM):
        art = FastGradientMethod(classifier, norm=np.inf, eps=attack.eps, batch_size=n)
    elif isinstance(attack, _PGD):
        art = ProjectedGradientDescent(
            classifier, norm=np.inf if attack.norm == "linf" else 2, eps=attack.eps,
            eps_step=attack.step_size, max_iter=attack.steps,
            num_random_init=attack.restarts if attack.random_start else 0, batch_size=n, verbose=False,
        )
    elif isinstance(attack, CWL2):
        if attack.lam:
            return None, "ART's CarliniL2Method has no lambda * ||w||^2 term"
        art = CarliniL2Method(
            classifier, confidence=attack.kappa, learning_rate=attack.lr, max_iter=attack.steps,
            binary_search_steps=attack.search_steps if attack.mode == "search" else 1,
            initial_const=attack.c, batch_size=n, verbose=False,
        )
        note = "ART CarliniL2Method (line-search gradient descent, not Adam)"
    else:
        return None, "no ART equivalent"

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = art.generate(x.detach().cpu().numpy(), y=y.cpu().numpy())
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)

    return run, note


# ----------------------------------------------------------------------------------------------- measuring
@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's and numpy's global RNGs for a reference library; restore the caller's state after."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def _robust(model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor, clean_ok: torch.Tensor,
            l2_threshold: float | None) -> torch.Tensor:
    """Per-sample robust flag; with ``l2_threshold`` an adversarial image farther than it does not count."""
    fooled = _predict(model, x_adv) != y
    if l2_threshold is not None:
        fooled &= (x_adv - x).flatten(1).norm(dim=1) <= l2_threshold + 1e-6
    return clean_ok & ~fooled


def _pct(flags: torch.Tensor) -> float:
    return round(100.0 * flags.float().mean().item(), 4)


AttackSpec = str | Attack | tuple[str, str, dict]


def _resolve(attacks: Sequence[AttackSpec] | str | None) -> list[tuple[str, Attack]]:
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


def crosscheck(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: Sequence[AttackSpec] | str | None = None,
    seed: int = 0,
    random_seeds: int = 8,
    progress: Callable[[str], None] | None = None,
    references: Sequence[str] = REFERENCES,
) -> dict:
    """Run every attack (ours, torchattacks, ART) on ``model`` and ``(x, y)``; return the comparison.

    ``attacks``: None/'all' (the default rows: each PGD with and without random start), registered names
    (a name expands to its default rows; ``name:key=value:...`` sets parameters), ``Attack`` instances, or
    ``(label, name, params)`` tuples.
    Randomised attacks (random start, noise; every attack on a stochastic model) run with ``random_seeds``
    seeds ``seed, seed+1, ...`` in every library (paired: ours gets a generator seeded ``s``, torchattacks
    ``torch.manual_seed(s)``, ART ``np.random.seed(s)``) and compare mean robust accuracies: one draw of a
    random start moves a 128-image accuracy by about 1-2 pp, as much as the tolerance.
    ``references``: the libraries to run, a subset of ``('torchattacks', 'art')`` (leaving ART out saves its
    runs; its comparisons are then skipped, not failed).
    Returns ``{'n', 'clean_accuracy', 'stochastic_model', 'rows': [...], 'all_ok'}``; accuracies in %.
    """
    references = tuple(references)
    unknown = sorted(set(references) - set(REFERENCES))
    if unknown or random_seeds < 1:
        raise BenchError(f"crosscheck: unknown reference {unknown[0]!r} (choose from {', '.join(REFERENCES)})"
                         if unknown else f"crosscheck: random_seeds must be >= 1, got {random_seeds}")
    logging.getLogger("art").setLevel(logging.WARNING)
    rows: list[dict] = []
    cache: dict = {}  # reference runs shared by rows that differ only in our early_stop
    with frozen_eval(model):
        with _seeded(EVAL_SEED + seed):
            clean_logits = torch.cat([model(x[i:i + 512]) for i in range(0, len(x), 512)]).detach()
        clean_ok = clean_logits.argmax(1) == y
        stochastic = is_stochastic(model, x[:16])
        others = clean_logits.scatter(1, y[:, None], float("-inf")).amax(1)
        negative_others = int((others < 0).sum())
        classifier = art_classifier(model, x, clean_logits.shape[1]) if "art" in references else None
        for label, attack in _resolve(attacks):
            if progress:
                progress(label)
            rows.append(_compare(label, attack, model, classifier, x, y, clean_ok, seed, random_seeds,
                                 stochastic, negative_others, references, cache))
    _check_noise(rows)
    return {
        "n": len(y),
        "clean_accuracy": _pct(clean_ok),
        "stochastic_model": stochastic,
        "seed": seed,
        "random_seeds": random_seeds,
        "references": list(references),
        "tolerances": {"exact_pixel": EXACT_PIXEL_TOL, "exact_acc_pp": EXACT_ACC_TOL_PP,
                       "random_acc_pp": RANDOM_ACC_TOL_PP, "cw_acc_pp": CW_ACC_TOL_PP},
        "rows": rows,
        "all_ok": all(r["verdict"] in ("ok", "n/a") for r in rows) and any(r["verdict"] == "ok" for r in rows),
    }


def _compare(label: str, attack: Attack, model: nn.Module, classifier, x: torch.Tensor, y: torch.Tensor,
             clean_ok: torch.Tensor, seed: int, random_seeds: int, stochastic: bool,
             negative_others: int, references: Sequence[str] = REFERENCES, cache: dict | None = None) -> dict:
    n = len(y)
    exact = isinstance(attack, (FGSM, _PGD)) and not attack.randomized and not stochastic
    repeated = (attack.randomized or stochastic) and not isinstance(attack, CWL2)
    seeds = [seed + k for k in range(random_seeds)] if repeated else [seed]
    thr = attack.threshold if isinstance(attack, CWL2) else None
    row: dict = {"attack": label, "name": attack.name, "params": attack.params(), "deterministic": exact,
                 "seeds": seeds, "robust_accuracy": {}, "robust_accuracy_per_seed": {}, "max_abs_diff": {},
                 "seconds": {}, "extra": {}}
    notes: list[str] = []
    if repeated and len(seeds) > 1:
        notes.append(f"random: robust accuracy is the mean over {len(seeds)} seeds (paired across libraries)")

    def measure(key: str, fn: AttackFn | None, ours: bool) -> torch.Tensor | None:
        """Run ``fn`` once per seed; record mean robust accuracy and time; return the first seed's images.

        A reference's run is deterministic given its seed and ignores ``early_stop`` (ours only), so two rows
        that differ only there reuse the first row's reference runs (``cache``) instead of repeating them."""
        first, accs, secs, reused = None, [], 0.0, 0
        params = repr(sorted((k, v) for k, v in attack.params().items() if k != "early_stop"))
        for s in seeds:
            ck = (key, type(attack).__name__, params, thr, s)
            if not ours and cache is not None and ck in cache:
                adv, acc, dt = cache[ck]
                reused += 1
            else:
                t = time.perf_counter()
                with _seeded(s):  # global RNGs too: a stochastic model draws its noise from them
                    if ours:
                        adv = attack(model, x, y, generator=torch.Generator(device=x.device).manual_seed(s))
                    else:
                        adv = fn(x, y).detach()
                with _seeded(EVAL_SEED + s):  # the same evaluation draws for every library's images
                    acc = _pct(_robust(model, adv, x, y, clean_ok, thr))
                dt = time.perf_counter() - t
                if not ours and cache is not None:
                    cache[ck] = (adv if s == seeds[0] else None, acc, dt)
            first = adv if first is None else first
            accs.append(acc)
            secs += dt
        if reused:
            notes.append(f"{key}: reused {reused} identical runs of an earlier row (early_stop changes ours only)")
        row["seconds"][key] = round(secs / len(seeds), 3)
        row["robust_accuracy"][key] = round(sum(accs) / len(accs), 4)
        if len(accs) > 1:
            row["robust_accuracy_per_seed"][key] = accs
        return first

    ours = measure("ours", None, True)
    if isinstance(attack, CWL2) and attack.last_norms is not None:
        ok_norms = attack.last_norms[attack.last_success & clean_ok]
        row["extra"]["ours_success_rate"] = _pct(attack.last_success[clean_ok])
        row["extra"]["ours_median_l2"] = round(ok_norms.median().item(), 4) if ok_norms.numel() else None
    if isinstance(attack, _PGD) and not attack.early_stop:  # the first-success variant must be as strong
        es = dataclasses.replace(attack, early_stop=True)
        es.name = attack.name
        with _seeded(seed):
            es_adv = es(model, x, y, generator=torch.Generator(device=x.device).manual_seed(seed))
        with _seeded(EVAL_SEED + seed):
            row["extra"]["ours_early_stop_robust_accuracy"] = _pct(_robust(model, es_adv, x, y, clean_ok, None))

    refs = () if isinstance(attack, Noise) else tuple((ref, build) for ref, build in (
        ("torchattacks", lambda: torchattacks_equivalent(attack, model, n)),
        ("art", lambda: art_equivalent(attack, classifier, n)),
    ) if ref in references)
    skipped = [ref for ref in REFERENCES if ref not in references]
    if skipped and not isinstance(attack, Noise):
        notes.append(f"not run: {', '.join(skipped)}")
    for ref, build in refs:
        fn, note = build()
        if note:
            notes.append(note)
        if fn is None:
            continue
        adv = measure(ref, fn, False)
        if exact:
            row["max_abs_diff"][ref] = float((adv - ours).abs().max()) if n else 0.0

    acc = row["robust_accuracy"]
    verdict_ok, why, compared = True, [], []

    def need(ref: str, tol: float, what: str) -> None:
        nonlocal verdict_ok
        if ref not in references:  # left out on purpose (e.g. --no-art): skipped, not failed
            return
        compared.append(ref)
        if ref not in acc:
            verdict_ok = False
            why.append(f"no {ref} result to compare ({what})")
            return
        d = abs(acc["ours"] - acc[ref])
        if d > tol + 1e-9:
            verdict_ok = False
            why.append(f"robust accuracy differs from {ref} by {d:.2f} pp > {tol} pp")

    if isinstance(attack, CWL2):
        row["tolerance"] = {"robust_acc_pp_vs_art": CW_ACC_TOL_PP, "l2_threshold": thr}
        need("art", CW_ACC_TOL_PP, "CW")
        if "torchattacks" in acc:
            notes.append(f"torchattacks CW reported, not compared: fixed c (no binary search over c), "
                         f"and its margin max((1-onehot)*Z) is wrong where every other class has a "
                         f"negative logit ({negative_others}/{n} clean samples here)")
    elif isinstance(attack, Noise):
        row["tolerance"] = {"not_stronger_than_pgd": True}
        notes.append("no reference library has uniform L-inf noise; checked against PGD L-inf at its eps")
    elif exact:
        row["tolerance"] = {"max_abs_diff_vs_torchattacks": EXACT_PIXEL_TOL,
                            "robust_acc_pp_vs_art": EXACT_ACC_TOL_PP}
        diff = row["max_abs_diff"].get("torchattacks")
        if "torchattacks" not in references:
            pass  # left out on purpose: skipped, not failed
        elif diff is None:
            verdict_ok = False
            why.append("no torchattacks images to compare")
        elif diff > EXACT_PIXEL_TOL:
            verdict_ok = False
            why.append(f"images differ from torchattacks by {diff:.3g} > {EXACT_PIXEL_TOL}")
        if "torchattacks" in references:
            compared.append("torchattacks")
        need("art", EXACT_ACC_TOL_PP, "deterministic")
        es = row["extra"].get("ours_early_stop_robust_accuracy")
        if es is not None and es > acc["ours"] + 1e-9:
            verdict_ok = False
            why.append(f"first-success early stop is weaker ({es} % > {acc['ours']} %)")
    else:
        row["tolerance"] = {"robust_acc_pp_vs_both": RANDOM_ACC_TOL_PP}
        for ref in ("torchattacks", "art"):
            need(ref, RANDOM_ACC_TOL_PP, "random start")
    if not compared and not isinstance(attack, Noise):
        row["verdict"] = "n/a"
        notes.insert(0, "no reference that checks this row was run")
    else:
        row["verdict"] = "ok" if verdict_ok else "FAIL"
    row["note"] = "; ".join(why + notes)
    return row


def _check_noise(rows: list[dict]) -> None:
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


# ----------------------------------------------------------------------------------------------- models
def load_reference_model(spec: str, device: torch.device, seed: int = 0) -> tuple[nn.Module, str | None]:
    """``tiny-digits`` (trained on the fly), ``PATH.pt[:module.builder]`` or a zoo name -> (model, dataset).

    The dataset is None when the model does not imply one (then ``--dataset`` decides)."""
    if spec == "tiny-digits":
        from bench.train.tiny import train_tiny_digits

        return train_tiny_digits(seed=seed).to(device), "digits"
    path, _, builder = spec.partition(":") if ".pt" in spec or ".pth" in spec else (spec, "", "")
    if path.endswith((".pt", ".pth")):
        if not Path(path).is_file():
            raise BenchError(f"model file {path} not found")
        if not builder:
            try:
                return torch.jit.load(path, map_location=device).eval(), None
            except RuntimeError as e:
                raise BenchError(f"{path} is not a TorchScript file ({e.__class__.__name__}); "
                                 f"name its builder: --model {path}:package.module.builder") from None
        mod_name, _, attr = builder.rpartition(".")
        try:
            model = getattr(importlib.import_module(mod_name), attr)()
        except (ImportError, AttributeError, ValueError) as e:
            raise BenchError(
                f"cannot import builder {builder!r} ({e}); use PATH.pt:package.module.builder"
            ) from None
        state = torch.load(path, map_location=device, weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise BenchError(f"{path} does not fit {builder}: {str(e).splitlines()[0]}") from None
        return model.to(device).eval(), None
    try:
        from bench.zoo import get_card, load_model
    except ImportError as e:
        raise BenchError(
            f"model zoo not available ({e}); use --model tiny-digits or PATH.pt:module.builder"
        ) from None
    return load_model(spec, device=device), getattr(get_card(spec), "data", None)


# ----------------------------------------------------------------------------------------------- CLI
def format_table(result: dict) -> str:
    """The comparison as a text table (tabulate)."""
    from tabulate import tabulate

    def cell(d: dict, k: str, fmt: str) -> str:
        v = d.get(k)
        return "-" if v is None else format(v, fmt)

    table = [
        [r["attack"], *(cell(r["robust_accuracy"], k, ".2f") for k in ("ours", "torchattacks", "art")),
         *(cell(r["max_abs_diff"], k, ".1e") for k in ("torchattacks", "art")),
         _tol_text(r["tolerance"]), r["verdict"]]
        for r in result["rows"]
    ]
    head = ["attack", "ours %", "torchattacks %", "ART %", "max|d| TA", "max|d| ART", "tolerance", "verdict"]
    notes = [f"  {r['attack']}: {r['note']}" for r in result["rows"] if r["note"]]
    text = tabulate(table, headers=head, tablefmt="github")
    return text + ("\nnotes:\n" + "\n".join(notes) if notes else "")


def _tol_text(tol: dict) -> str:
    if "max_abs_diff_vs_torchattacks" in tol:
        return f"px<={tol['max_abs_diff_vs_torchattacks']:g} TA, {tol['robust_acc_pp_vs_art']:g}pp ART"
    if "robust_acc_pp_vs_both" in tol:
        return f"{tol['robust_acc_pp_vs_both']:g}pp both"
    if "robust_acc_pp_vs_art" in tol:
        return f"{tol['robust_acc_pp_vs_art']:g}pp ART @L2<={tol.get('l2_threshold')}"
    return "noise >= PGD"


def crosscheck_command(args: argparse.Namespace) -> int:
    """``bench crosscheck``: print the comparison table, write JSON if asked; exit 1 if a verdict fails."""
    import torchattacks

    from bench.core.io import write_json_atomic
    from bench.core.threads import resolve_device
    from bench.data import load_eval

    device = resolve_device(getattr(args, "device", "auto"))
    seed = getattr(args, "seed", 0)
    model, dataset = load_reference_model(args.model, device, seed=seed)
    if dataset is None:
        dataset = getattr(args, "dataset", None) or "cifar10"
    data = load_eval(dataset, n=getattr(args, "n", 128), source=getattr(args, "data", "npz"))
    x, y = data.x.to(device), data.y.to(device)
    attacks = getattr(args, "attacks", "all")
    print(f"crosscheck: model {args.model}, dataset {dataset}, n={len(y)}, device {device}, seed {seed}",
          file=sys.stderr)
    t = time.perf_counter()
    references = tuple(r for r in REFERENCES if not (r == "art" and getattr(args, "no_art", False)))
    result = crosscheck(model, x, y, attacks=attacks, seed=seed, random_seeds=getattr(args, "seeds", 8),
                        references=references,
                        progress=lambda a: print(f"  running {a} ...", file=sys.stderr))
    versions = {"torch": torch.__version__, "torchattacks": torchattacks.__version__}
    if "art" in references:
        import art

        versions["art"] = art.__version__
    result = {"model": args.model, "dataset": dataset, "device": str(device), "versions": versions,
              "seconds": round(time.perf_counter() - t, 2), **result}
    print(f"clean accuracy {result['clean_accuracy']:.2f} % on {result['n']} images; robust accuracy in %")
    print(format_table(result))
    if getattr(args, "json_path", None):
        write_json_atomic(args.json_path, result)
        print(f"wrote {args.json_path}")
    return 0 if result["all_ok"] else 1
