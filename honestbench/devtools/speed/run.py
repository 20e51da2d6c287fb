"""The sections of ``bench speed`` as one table, and the run over them: the machine record, each section's
figures and table, and the headline keys lifted to the top of the result (seconds, ms per image, ratios)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from honestbench.devtools.speed.inference import format_inference, inference_section
from honestbench.devtools.speed.options import Context, SpeedOptions
from honestbench.devtools.speed.pgd import format_pgd_cost, pgd_section
from honestbench.devtools.speed.precision import format_precision, precision_section
from honestbench.devtools.speed.suite import format_suite, suite_section
from honestbench.devtools.speed.timing import machine_info


@dataclass(frozen=True)
class Section:
    """One measurement of ``bench speed``: ``run(opts, ctx) -> dict`` (its figures); ``heavy`` ones are
    skipped by ``--quick``; ``headline`` maps top-level result keys to keys of the section's result; ``fmt``
    draws its table. ``arch``: a ``pgd-cost`` section, chosen by ``--archs`` and run once per precision (the
    fp32 result under ``name``, bf16 under ``name + " bf16"``); ``needs_bf16``: runs only when ``--precision``
    asks for bf16."""

    name: str
    run: Callable[[SpeedOptions, Context], dict]
    heavy: bool = False
    headline: dict[str, str] | None = None
    fmt: Callable[[str, dict], str] = format_pgd_cost
    arch: str | None = None
    needs_bf16: bool = False


def _same(*keys: str) -> dict[str, str]:
    return {k: k for k in keys}


#: the sections, in run order
SECTIONS: list[Section] = [
    Section("pgd-cost small-cnn", pgd_section("small"), arch="small",
            headline=_same("pgd_over_limit", "pgd_over_torchattacks", "pgd_over_limit_cpu",
                           "pgd_over_torchattacks_cpu", "art_over_pgd")),
    Section("pgd-cost wrn-34-1", pgd_section("wrn-34-1"), heavy=True, arch="wrn-34-1"),
    Section("pgd-cost wrn-34-10", pgd_section("wrn-34-10"), heavy=True, arch="wrn-34-10"),
    Section("pgd-10 precision fp32 vs bf16", precision_section, needs_bf16=True,
            headline=_same("robust_diff_pp"), fmt=format_precision),
    Section("standard suite early exit vs torchattacks", suite_section, heavy=True,
            headline=_same("early_exit_speedup", "early_exit_worst_case_acc", "torchattacks_worst_case_acc"),
            fmt=format_suite),
    Section("inference slwta small-cnn", inference_section("small"), fmt=format_inference),
    Section("inference slwta wrn-34-1", inference_section("wrn"), heavy=True,
            headline=_same("slwta_wrn34_1_ms_per_image_b1", "slwta_wrn34_1_ms_per_image_b256"),
            fmt=format_inference),
]

#: top-level keys of the result, in this order (each written when its section ran)
HEADLINE_KEYS = ("pgd_over_limit", "pgd_over_torchattacks", "pgd_over_limit_cpu", "pgd_over_torchattacks_cpu",
                 "art_over_pgd", "early_exit_speedup",
                 "early_exit_worst_case_acc", "torchattacks_worst_case_acc", "slwta_wrn34_1_ms_per_image_b1",
                 "slwta_wrn34_1_ms_per_image_b256", "robust_diff_pp")
#: the ``pgd-cost`` sections run when ``--archs`` is not given (``--quick``: the light ones of these)
DEFAULT_ARCHS = ("small", "wrn-34-1")


def selected(sec: Section, opts: SpeedOptions) -> bool:
    """Whether ``sec`` runs under ``opts``: ``pgd-cost`` sections by ``opts.archs`` (None: :data:`DEFAULT_ARCHS`
    less the heavy ones under ``quick``), the precision check when bf16 is asked for, the others unless
    ``quick`` skips them as heavy."""
    if sec.needs_bf16 and "bf16" not in opts.precisions:
        return False
    if sec.arch is not None and opts.archs is not None:
        return sec.arch in opts.archs
    if sec.arch is not None and sec.arch not in DEFAULT_ARCHS:
        return False
    return not (opts.quick and sec.heavy)


def _runs(sec: Section, opts: SpeedOptions) -> list[tuple[str, SpeedOptions]]:
    """(result name, options) of each run of ``sec``: once, or once per precision for a ``pgd-cost`` one."""
    if sec.arch is None:
        return [(sec.name, opts)]
    return [(sec.name if p == "fp32" else f"{sec.name} {p}", replace(opts, precisions=(p,))) for p in opts.precisions]


def run_speed(opts: SpeedOptions, device: torch.device, log: Callable[[str], None] | None = None,
              show: Callable[[str], None] | None = None) -> dict:
    """Run the sections of :data:`SECTIONS` that :func:`selected` picks; ``log`` gets progress lines, ``show``
    each section's table. Returns the result with the headline keys first, then ``machine``, ``quick``,
    ``archs``, ``precisions`` and ``sections``."""
    say, draw = log or (lambda line: None), show or (lambda text: None)
    ctx = Context(device)
    archs = [s.arch for s in SECTIONS if s.arch is not None and selected(s, opts)]
    result: dict = {"machine": machine_info(device), "quick": opts.quick, "archs": archs,
                    "precisions": list(opts.precisions), "sections": {}}
    m = result["machine"]
    say(f"bench speed on {m['device_name']} ({m['cpus_usable']} usable CPUs, torch threads "
        f"{m['torch_threads']}, load {m.get('loadavg_1min_at_start', '?')})")
    for sec in (s for s in SECTIONS if selected(s, opts)):
        for name, run_opts in _runs(sec, opts):
            say(f"  measuring {name} ...")
            res = sec.run(run_opts, ctx)
            result["sections"][name] = res
            if name == sec.name:  # headline figures come from the fp32 run
                result.update({key: res[src] for key, src in (sec.headline or {}).items() if src in res})
            draw(sec.fmt(name, res))
    heads = {k: result[k] for k in HEADLINE_KEYS if k in result}
    return {**heads, **{k: v for k, v in result.items() if k not in heads}}


def headline_text(result: dict) -> str:
    """``headline: key = value, ...`` over the headline keys present in ``result``."""
    return "headline: " + ", ".join(f"{k} = {result[k]:.3f}" for k in HEADLINE_KEYS if k in result)
