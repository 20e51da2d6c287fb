"""Inference fast paths: the LWTA layer's eval path against its reference definition, and
:func:`honestbench.nets.fast.optimize_for_inference` (BN folding, channels-last) against the original model:
same function up to float rounding for deterministic models, same distributions for stochastic ones."""

from __future__ import annotations

import copy
import os
import shutil

import pytest
import torch
from torch import nn

from honestbench.nets import LWTA, SLWTAWideResNet, SmallCNN, WideResNet, act_factory
from honestbench.nets.fast import fold_batchnorm, optimize_for_inference, trace_for_inference


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters (a fresh BN is the identity: too easy to fold)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)
    return model.eval().requires_grad_(False)


@pytest.mark.parametrize("test", ["hard", "soft"])
def test_lwta_eval_path_matches_reference(test):
    """Same seed, same draws: the hard winners are identical, the soft mask equal to float rounding (T = 0.01
    amplifies it 100x); input gradients agree too."""
    lw = LWTA(U=2, test=test, test_temperature=0.01).eval()
    h = torch.randn(16, 8, 12, 12, requires_grad=True)
    torch.manual_seed(0)
    fast = lw(h)
    lw.fast_eval = False
    torch.manual_seed(0)
    ref = lw(h)
    (g_fast,) = torch.autograd.grad(fast.square().sum(), h)
    (g_ref,) = torch.autograd.grad(ref.square().sum(), h)
    if test == "hard":
        assert torch.equal(fast, ref) and torch.equal(g_fast, g_ref)
    else:
        assert torch.allclose(fast, ref, atol=1e-4)
        assert ((g_fast - g_ref).abs() > 1e-2 * (1 + g_ref.abs())).float().mean() < 1e-3


def test_lwta_eval_path_follows_softmax():
    """Hard eval path: the second unit of a pair wins with probability sigmoid(h_1 - h_0)."""
    torch.manual_seed(0)
    d = torch.linspace(-3, 3, 7)
    h = torch.stack((torch.full((7,), 5.0), 5 + d), 0).T.reshape(1, 14).expand(20000, 14).contiguous()
    out = LWTA(U=2).eval()(h).view(20000, 7, 2)
    assert ((out != 0).sum(2) == 1).all()  # one winner per pair
    wins = (out[:, :, 1] != 0).float().mean(0)
    assert torch.allclose(wins, torch.sigmoid(d), atol=0.015)


def test_training_and_surrogate_keep_their_paths():
    lw = LWTA(U=2).train()
    h = torch.randn(4, 6, 5, 5)
    torch.manual_seed(0)
    out = lw(h)
    assert lw.kl.requires_grad is False and (out != 0).float().mean() > 0.9  # relaxed mask: no exact zeros


@pytest.mark.parametrize("builder", [
    lambda: SmallCNN(),
    lambda: WideResNet(depth=10, width=1),
    lambda: SLWTAWideResNet(depth=10, width=1),
], ids=["small-cnn", "wrn-10-1", "published-10-1"])
def test_fold_and_channels_last_keep_the_function(builder):
    torch.manual_seed(0)
    model = _randomise_bn(builder())
    x = torch.rand(8, 3, 32, 32)
    stochastic = isinstance(model, SLWTAWideResNet)
    before = copy.deepcopy(model.state_dict())
    fast = optimize_for_inference(model, channels_last=True)
    if stochastic:  # the published net: compare its deterministic surrogate (same weights, no noise)
        from honestbench.nets import surrogate

        ctx_a, ctx_b = surrogate(model), surrogate(fast)
    else:
        from contextlib import nullcontext

        ctx_a, ctx_b = nullcontext(), nullcontext()
    with ctx_a, ctx_b:
        xa = x.clone().requires_grad_(True)
        xb = x.clone().requires_grad_(True)
        a, b = model(xa), fast(xb)
        (ga,) = torch.autograd.grad(a.sum(), xa)
        (gb,) = torch.autograd.grad(b.sum(), xb)
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    assert torch.allclose(ga, gb, atol=1e-5, rtol=1e-3)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules()) or not isinstance(model, SmallCNN)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # original untouched
    assert not fast.training and not any(p.requires_grad for p in fast.parameters())
    fast.train()
    with pytest.raises(RuntimeError, match="cannot be trained"):
        fast(x)


def test_fold_counts_wrn_pairs():
    model = _randomise_bn(WideResNet(depth=10, width=1))
    # one conv1 -> bn2 pair per block (depth 10: 1 block per stage); the pre-activation BNs stay
    assert fold_batchnorm(model) == 3
    with pytest.raises(ValueError, match="eval"):
        fold_batchnorm(WideResNet(depth=10, width=1).train())


def test_stochastic_model_same_distribution():
    """An LWTA small CNN: the optimised copy's mean class probabilities over many stochastic passes match
    the original's (the same random variables; channels-last only reorders which draw goes where)."""
    torch.manual_seed(0)
    model = _randomise_bn(SmallCNN(act=act_factory("lwta", U=2), widths=(8, 16, 16, 32)))
    fast = optimize_for_inference(model)
    x = torch.rand(4, 3, 32, 32).repeat(400, 1, 1, 1)
    with torch.inference_mode():
        torch.manual_seed(1)
        pa = torch.softmax(model(x) / model.logit_scale, 1).view(400, 4, -1).mean(0)
        torch.manual_seed(2)
        pb = torch.softmax(fast(x) / model.logit_scale, 1).view(400, 4, -1).mean(0)
    assert (pa - pb).abs().max() < 0.05
    # without channels-last the same seed gives the same draws (folding moves d by ~1e-6 only)
    plain = optimize_for_inference(model, channels_last=False)
    with torch.inference_mode():
        torch.manual_seed(3)
        a = model(x[:64])
        torch.manual_seed(3)
        b = plain(x[:64])
    assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.95


def test_load_model_fast(tmp_path):
    from honestbench import zoo

    card = zoo.get_card("regular")
    if not card.trained or not card.checkpoint_path().is_file():
        pytest.skip("regular checkpoint absent")
    slow, fast = zoo.load_card_model(card), zoo.load_card_model(card, fast=True)
    x = torch.rand(4, 3, 32, 32)
    assert torch.allclose(slow(x), fast(x), atol=1e-4)
    assert getattr(fast, "inference_optimized", False) and not hasattr(slow, "inference_optimized")


def test_evaluation_model_is_the_folded_copy_of_deterministic_zoo_models_only():
    """bench run attacks a deterministic zoo model with BatchNorm as its inference copy (same logits and input
    gradients up to float32 rounding: 1e-4 on logits of order 10); stochastic and certifiable models as built."""
    from honestbench import zoo

    x = torch.rand(4, 3, 32, 32)
    for name, folded in (("regular", True), ("pni", False), ("ibp-cnn-2", False)):
        card = zoo.get_card(name)
        model = zoo.evaluation_model(card)
        assert getattr(model, "inference_optimized", False) == folded, name
    plain, copy_ = zoo.load_card_model("pgd-at"), zoo.evaluation_model(zoo.get_card("pgd-at"))
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    grads = [torch.autograd.grad(m(v).logsumexp(1).sum(), v)[0] for m, v in zip((plain, copy_), xs, strict=True)]
    assert torch.allclose(plain(x), copy_(x), atol=1e-4) and torch.allclose(*grads, atol=1e-5)


@pytest.mark.parametrize("builder", [
    lambda: SmallCNN(),
    lambda: WideResNet(depth=10, width=1, act=act_factory("lwta", U=2)),
    lambda: SLWTAWideResNet(depth=10, width=1),
], ids=["small-cnn", "wrn-10-1-lwta", "published-10-1"])
@pytest.mark.parametrize("fused", [False, pytest.param(True, marks=pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None, reason="no C++ compiler for the fused LWTA kernel"))],
    ids=["aten", "fused"])
def test_traced_copy_computes_what_the_fast_copy_computes(builder, fused):
    """Traced at batch 1, run at batch 5: same seed, same draws as the channels-last copy (the trace records
    the same operations; with ``fused`` the LWTA layers are one kernel each, on the same uniforms), so outputs
    agree to float rounding (a hard winner flipped at its threshold would fail this); stochastic models stay
    stochastic."""
    torch.manual_seed(0)
    model = _randomise_bn(builder())
    fast = optimize_for_inference(model)
    traced = trace_for_inference(model, torch.rand(1, 3, 32, 32), fused=fused)
    has_lwta = any(isinstance(m, LWTA) for m in model.modules())
    assert ("bench::lwta_pair" in str(traced.graph)) == (fused and has_lwta)
    assert not any(getattr(m, "fused", False) for m in model.modules())  # the caller's model is untouched
    x = torch.rand(5, 3, 32, 32)
    with torch.inference_mode():
        torch.manual_seed(4)
        a = fast(x)
        torch.manual_seed(4)
        b = traced(x)
        c = traced(x)
    assert b.shape == (5, 10) and torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    stochastic = not isinstance(model, SmallCNN)
    assert (not torch.equal(b, c)) == stochastic


def test_trace_refuses_surrogate_mode():
    from honestbench.nets import surrogate

    model = _randomise_bn(SLWTAWideResNet(depth=10, width=1))
    with surrogate(model), pytest.raises(ValueError, match="surrogate"):
        trace_for_inference(model, torch.rand(1, 3, 32, 32))
