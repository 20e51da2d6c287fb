"""The sections of ``bench speed`` as one table, and the run over them: the machine record, each section's
figures and table, and the headline keys lifted to the top of the result (seconds, ms per image, ratios)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from bench.tools.speed.inference import format_inference, inference_section
from bench.tools.speed.options import Context, SpeedOptions
from bench.tools.speed.pgd import format_pgd_cost, pgd_section, small_cnn, wrn34_1
from bench.tools.speed.suite import format_suite, suite_section
from bench.tools.speed.timing import machine_info


@dataclass(frozen=True)
class Section:
    """One measurement of ``bench speed``: ``run(opts, ctx) -> dict`` (its figures); ``heavy`` ones are
    skipped by ``--quick``; ``headline`` maps top-level result keys to keys of the section's result; ``fmt``
    draws its table."""

    name: str
    run: Callable[[SpeedOptions, Context], dict]
    heavy: bool = False
    headline: dict[str, str] | None = None
    fmt: Callable[[str, dict], str] = format_pgd_cost


def _same(*keys: str) -> dict[str, str]:
    return {k: k for k in keys}


#: the sections, in run order
SECTIONS: list[Section] = [
    Section("pgd-cost small-cnn", pgd_section(small_cnn),
            headline=_same("pgd_over_limit", "pgd_over_torchattacks", "art_over_pgd")),
    Section("pgd-cost wrn-34-1", pgd_section(wrn34_1), heavy=True),
    Section("standard suite early exit vs torchattacks", suite_section, heavy=True,
            headline=_same("early_exit_speedup", "early_exit_worst_case_acc", "torchattacks_worst_case_acc"),
            fmt=format_suite),
    Section("inference slwta small-cnn", inference_section("small"), fmt=format_inference),
    Section("inference slwta wrn-34-1", inference_section("wrn"), heavy=True,
            headline=_same("slwta_wrn34_1_ms_per_image_b1", "slwta_wrn34_1_ms_per_image_b256"),
            fmt=format_inference),
]

#: top-level keys of the result, in this order (each written when its section ran)
HEADLINE_KEYS = ("pgd_over_limit", "pgd_over_torchattacks", "art_over_pgd", "early_exit_speedup",
                 "early_exit_worst_case_acc", "torchattacks_worst_case_acc", "slwta_wrn34_1_ms_per_image_b1",
                 "slwta_wrn34_1_ms_per_image_b256")


def run_speed(opts: SpeedOptions, device: torch.device, log: Callable[[str], None] | None = None,
              show: Callable[[str], None] | None = None) -> dict:
    """Run every section of :data:`SECTIONS` (``opts.quick``: the light ones); ``log`` gets progress lines,
    ``show`` each section's table. Returns the result with the headline keys first, then ``machine``,
    ``quick`` and ``sections``."""
    say, draw = log or (lambda line: None), show or (lambda text: None)
    ctx = Context(device)
    result: dict = {"machine": machine_info(device), "quick": opts.quick, "sections": {}}
    m = result["machine"]
    say(f"bench speed on {m['device_name']} ({m['cpus_usable']} usable CPUs, torch threads "
        f"{m['torch_threads']}, load {m.get('loadavg_1min_at_start', '?')})")
    for sec in SECTIONS:
        if opts.quick and sec.heavy:
            continue
        say(f"  measuring {sec.name} ...")
        res = sec.run(opts, ctx)
        result["sections"][sec.name] = res
        for key, src in (sec.headline or {}).items():
            if src in res:
                result[key] = res[src]
        draw(sec.fmt(sec.name, res))
    heads = {k: result[k] for k in HEADLINE_KEYS if k in result}
    return {**heads, **{k: v for k, v in result.items() if k not in heads}}


def headline_text(result: dict) -> str:
    """``headline: key = value, ...`` over the headline keys present in ``result``."""
    return "headline: " + ", ".join(f"{k} = {result[k]:.3f}" for k in HEADLINE_KEYS if k in result)
