"""AutoAttack's own cascade and its precision (``honestbench.attacks.autoattack``): in fp32 the cascade is
torchattacks' MultiAttack image for image; in bf16 the components run under autocast while the float32 model
judges every break; ``auto`` falls back to fp32 where bf16 is not native or the model cannot run under it."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from torch import nn

from honestbench.attacks import create_attack
from honestbench.attacks.autoattack import AutoAttack
from honestbench.core.errors import AttackConfigError
from honestbench.core.precision import native_bf16
from honestbench.core.rng import seeded_rng

EPS = 0.1  # digits pixels in [0, 1]: a budget at which the tiny CNN keeps some but not all images
CHEAP = "apgd-ce,apgd-t,square"  # FAB-T left out: the same cascade, seconds instead of a minute


pytestmark = pytest.mark.usefixtures("one_thread")


def fooled(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


def test_fp32_cascade_is_multiattack(tiny_digits_model, digits_eval):
    x, y = digits_eval[0][:48], digits_eval[1][:48]
    a = AutoAttack(eps=EPS, components=CHEAP, steps=10, n_queries=50, precision="fp32")
    ours = a(tiny_digits_model, x, y, generator=torch.Generator().manual_seed(3))
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=torch.Generator().manual_seed(3)).item())
    with seeded_rng(seed, x.device):
        ref = torchattacks.MultiAttack(list(a.build(tiny_digits_model, 10, seed).values()))(x, y)
    assert torch.equal(fooled(tiny_digits_model, ours, y), fooled(tiny_digits_model, ref, y))
    assert 0 < fooled(tiny_digits_model, ours, y).sum() < len(y)  # the budget leaves both kinds of image


def test_bf16_breaks_are_fp32_breaks_and_as_many(tiny_digits_model, digits_eval):
    x, y = digits_eval[0][:64], digits_eval[1][:64]
    runs = {p: AutoAttack(eps=EPS, components=CHEAP, steps=10, n_queries=50, precision=p)(
        tiny_digits_model, x, y, generator=torch.Generator().manual_seed(0)) for p in ("fp32", "bf16")}
    broken = {p: fooled(tiny_digits_model, adv, y) for p, adv in runs.items()}
    assert (runs["bf16"] - x).abs().max() <= EPS + 1e-6
    # bf16 rounding moves the search a little, not its strength: within 3 of 64 images (a few near the boundary)
    assert abs(int(broken["bf16"].sum()) - int(broken["fp32"].sum())) <= 3


class NoAutocast(nn.Module):
    """A model that refuses bf16 inputs (as a custom layer without a bf16 kernel would)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(x.device.type):
            raise RuntimeError("no bf16 kernel")
        return self.inner(x)


def test_auto_precision(tiny_digits_model, digits_eval, monkeypatch):
    x = digits_eval[0][:32]
    a = create_attack("autoattack")
    assert a.precision == "auto" and create_attack("autoattack-rand").precision == "fp32"
    assert create_attack("square").precision == "fp32"
    assert a.resolved_precision(tiny_digits_model, x) == ("bf16" if native_bf16(x.device) else "fp32")
    assert a.resolved_precision(NoAutocast(tiny_digits_model), x) == "fp32"
    monkeypatch.setattr("honestbench.attacks.autoattack.native_bf16", lambda device: False)
    assert a.resolved_precision(tiny_digits_model, x) == "fp32"
    with pytest.raises(AttackConfigError, match="precision"):
        create_attack("autoattack", precision="fp16")


class WrongUnderAutocast(nn.Module):
    """Right in float32, wrong under autocast (logits rolled by one class): the extreme of an image near the
    boundary that bf16 rounding misclassifies, so every bf16 component takes it as already broken."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        return out.roll(1, dims=1) if torch.is_autocast_enabled(x.device.type) else out


def test_images_bf16_misclassifies_run_again_in_fp32(tiny_digits_model, digits_eval):
    x, y = digits_eval[0][:32], digits_eval[1][:32]
    kw = {"eps": EPS, "components": CHEAP, "steps": 10, "n_queries": 50}
    fp32 = AutoAttack(precision="fp32", **kw)(tiny_digits_model, x, y, generator=torch.Generator().manual_seed(0))
    odd = WrongUnderAutocast(tiny_digits_model)
    a = AutoAttack(precision="bf16", **kw)
    bf16 = a(odd, x, y, generator=torch.Generator().manual_seed(0))
    assert int(fooled(odd, bf16, y).sum()) == int(fooled(tiny_digits_model, fp32, y).sum()) > 0
    assert sum(a.broken_by.values()) == int(fooled(odd, bf16, y).sum())
