"""Backbones and defence layers: shapes, PNI noise, LWTA competition, IBP, surrogate mode."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from honestbench.core.errors import ModelCardError
from honestbench.nets import (
    DEFENCE_LAYERS,
    LWTA,
    GaussianSmoothing,
    IBPConv2d,
    IBPLinear,
    PNIConv2d,
    PNILinear,
    PreActResNet18,
    SmallCNN,
    WideResNet,
    act_factory,
    backbone_names,
    build_backbone,
    elbo_loss,
    is_stochastic,
    layer_factories,
    model_kl,
    surrogate,
)
from honestbench.nets.layers.preact_block import PreActBlock


def test_small_cnn_shapes_and_size():
    m = SmallCNN()
    assert sum(p.numel() for p in m.parameters()) <= 750_000
    assert m(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    d = SmallCNN(in_channels=1, dataset="digits", input_size=8)
    assert d(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    assert isinstance(m.normalize, torch.nn.Module)  # normalisation is the first module


@pytest.mark.parametrize("ctor", [lambda: PreActResNet18(width=8), lambda: WideResNet(depth=10, width=1)])
def test_other_backbones_forward(ctor):
    assert ctor()(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def _block_in_old_order(block, x, shortcut_first):
    """The pre-activation block written out in the order each backbone had before the two blocks were
    folded into one (PreAct-ResNet-18: 1x1 shortcut conv before conv1; WideResNet: after conv2)."""
    a = block.act1(block.bn1(x))
    sc = block.shortcut(a) if block.shortcut is not None and shortcut_first else x
    out = block.conv2(block.act2(block.bn2(block.conv1(a))))
    if block.shortcut is not None and not shortcut_first:
        sc = block.shortcut(a)
    return out + sc


@pytest.mark.parametrize("backbone", ["preact", "wrn"])
def test_shared_preact_block_keeps_each_backbones_function_and_draws(backbone):
    """PreActBlock serves both backbones; with random convs (PNI) and LWTA the same seed must give the same
    logits, bit for bit, as the block each backbone had before (the RNG draws come in the same order)."""
    kw = dict(in_channels=1, dataset="digits", act=act_factory("lwta", U=2))
    kw["conv"], kw["linear"] = layer_factories("pni")
    torch.manual_seed(0)
    model = (PreActResNet18(width=8, **kw) if backbone == "preact" else WideResNet(depth=16, width=2, **kw)).eval()
    blocks = [m for m in model.modules() if isinstance(m, PreActBlock)]
    assert blocks and any(b.shortcut is not None for b in blocks) and any(b.shortcut is None for b in blocks)
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        torch.manual_seed(5)
        y = model(x)
        for b in blocks:
            b.forward = partial(_block_in_old_order, b, shortcut_first=backbone == "preact")
        torch.manual_seed(5)
        assert torch.equal(model(x), y)
        torch.manual_seed(5)
        for b in blocks:
            b.forward = partial(_block_in_old_order, b, shortcut_first=backbone != "preact")
        assert not torch.equal(model(x), y)  # the order of the draws matters: the check can fail


def test_shared_preact_block_names():
    for model in (PreActResNet18(width=8), WideResNet(depth=10, width=1)):  # one block class serves both
        blocks = [m for m in model.modules() if "Block" in type(m).__name__]
        assert blocks and all(type(b) is PreActBlock for b in blocks)
    preact = PreActResNet18(width=8, in_channels=1).state_dict()
    wrn = WideResNet(depth=10, width=1, in_channels=1).state_dict()
    block = ["bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
             "conv1.weight", "bn2.weight", "bn2.bias", "bn2.running_mean", "bn2.running_var",
             "bn2.num_batches_tracked", "conv2.weight"]
    assert [k for k in preact if k.startswith("layers.0.")] == [f"layers.0.{k}" for k in block]
    assert [k for k in preact if k.startswith("layers.2.")] == [f"layers.2.{k}" for k in block + ["shortcut.weight"]]
    assert [k for k in wrn if k.startswith("block2.0.")] == [f"block2.0.{k}" for k in block + ["shortcut.weight"]]
    assert "block1.0.shortcut.weight" not in wrn  # 16 -> 16 channels, stride 1: identity shortcut


def test_committed_wrn_checkpoint_loads_strictly():
    from honestbench import zoo

    card = zoo.get_card("slwta-wrn34-1")
    if not card.checkpoint_path().is_file():
        pytest.skip("models/ckpt/slwta-wrn34-1.pt absent")
    model = zoo.load_card_model(card)  # strict load_state_dict: the block's parameter names did not change
    assert sum(isinstance(m, PreActBlock) for m in model.modules()) == 15


def test_wrn_34_param_counts():
    assert sum(p.numel() for p in WideResNet(34, 1).parameters()) < 500_000


def test_pni_noise_scale_and_grad_reaches_a():
    torch.manual_seed(0)
    layer = PNILinear(200, 300)
    layer.eval()  # noise is on at test time too
    w = layer.weight.detach()
    diffs = torch.stack([layer.noisy_weight().detach() - w for _ in range(20)])
    # W + a * eta, eta ~ N(0, std(W)^2): the spread is a * std(W)
    assert diffs.std().item() == pytest.approx(0.25 * w.std().item(), rel=0.05)
    assert is_stochastic(layer)
    x = torch.randn(4, 200)
    assert not torch.equal(layer(x), layer(x))
    layer.train()
    layer(x).pow(2).sum().backward()
    assert layer.a.grad is not None and layer.a.grad.abs().item() > 0
    conv = PNIConv2d(3, 8, 3, padding=1)
    conv(torch.rand(1, 3, 8, 8)).sum().backward()
    assert conv.a.grad is not None


def test_pni_surrogate_is_noise_free():
    layer = PNIConv2d(3, 4, 3)
    x = torch.rand(2, 3, 6, 6)
    with surrogate(layer):
        assert not is_stochastic(layer)
        y1, y2 = layer(x), layer(x)
        assert torch.equal(y1, y2)
        assert torch.allclose(y1, torch.nn.functional.conv2d(x, layer.weight, layer.bias))
    assert is_stochastic(layer)


def test_lwta_one_winner_per_block_linear():
    lw = LWTA(U=2).eval()
    h = torch.randn(64, 10)
    out = lw(h).view(64, 5, 2)
    nonzero = (out != 0).sum(-1)
    assert (nonzero <= 1).all()  # one winner (a winner equal to 0.0 shows as none)
    winners = (out == h.view(64, 5, 2)) & (out != 0)
    assert torch.equal(winners.sum(-1), nonzero)


def test_lwta_conv_competes_per_position():
    torch.manual_seed(0)
    lw = LWTA(channels=6, U=3).eval()
    h = torch.randn(8, 6, 5, 5) + 0.1
    out = lw(h).view(8, 2, 3, 5, 5)
    assert ((out != 0).sum(2) == 1).all()  # exactly one of the 3 channels wins at each position
    # winners differ across positions of the same block (independent competitions)
    win = (out != 0).float().argmax(2)
    assert win.flatten(2).float().std(-1).mean() > 0


def test_lwta_sampling_follows_softmax():
    torch.manual_seed(0)
    lw = LWTA(U=2).eval()
    h = torch.tensor([[1.0, 2.0]]).repeat(4000, 1)
    freq = (lw(h)[:, 1] != 0).float().mean().item()
    assert freq == pytest.approx(math.exp(2) / (math.exp(1) + math.exp(2)), abs=0.03)


def test_lwta_relaxed_sampling_is_differentiable_and_kl_nonnegative():
    lw = LWTA(U=2, temperature=0.67).train()
    h = torch.randn(16, 8, 4, 4, requires_grad=True)
    out = lw(h)
    m = out.view(16, 4, 2, 4, 4) / h.view(16, 4, 2, 4, 4)
    assert ((m > 0) & (m < 1)).float().mean() > 0.5  # soft mask, not one-hot
    assert lw.kl.item() >= 0
    (out.sum() + lw.kl).backward()
    assert h.grad is not None and torch.isfinite(h.grad).all() and h.grad.abs().sum() > 0
    uniform = LWTA(U=2).train()
    uniform(torch.zeros(4, 6))
    assert uniform.kl.item() == pytest.approx(0.0, abs=1e-6)  # q uniform -> KL 0


def test_lwta_surrogate_deterministic_and_smooth():
    lw = LWTA(U=2).eval()
    h = torch.randn(5, 8, requires_grad=True)
    with surrogate(lw, temperature=1.0):
        a, b = lw(h), lw(h)
        assert torch.equal(a, b)
        hb = h.view(5, 4, 2)
        assert torch.allclose(a, (hb * torch.softmax(hb, 2)).view(5, 8))
        a.sum().backward()
        assert h.grad.abs().min() > 0  # every unit gets gradient


def test_lwta_rejects_bad_blocks():
    with pytest.raises(ValueError):
        LWTA(channels=5, U=2)
    with pytest.raises(ValueError):
        LWTA(U=2)(torch.randn(2, 5))


def test_ibp_layers_kl_and_eval():
    torch.manual_seed(0)
    lin = IBPLinear(6, 4).train()
    y = lin(torch.randn(3, 6))
    assert torch.isfinite(lin.kl) and y.shape == (3, 4)
    (y.sum() + lin.kl).backward()
    assert lin.t_pi.grad is not None and lin.conc1.grad is not None
    conv = IBPConv2d(3, 4, 3).eval()
    assert torch.equal(conv(torch.ones(1, 3, 5, 5)), conv(torch.ones(1, 3, 5, 5)))
    assert not is_stochastic(conv)


def test_elbo_loss_adds_scaled_kl():
    torch.manual_seed(0)
    m = SmallCNN(in_channels=1, dataset="digits", input_size=8, act=act_factory("lwta")).train()
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    logits = m(x)
    kl = model_kl(m)
    assert kl.item() >= 0
    loss = elbo_loss(logits, y, m, n_train=100)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item() + kl.item() / 100,
                                        rel=1e-5)


def test_model_level_surrogate_and_is_stochastic():
    conv, lin = layer_factories("pni")
    m = SmallCNN(in_channels=1, dataset="digits", input_size=8, act=act_factory("lwta"), conv=conv,
                 linear=lin).eval()
    x = torch.rand(4, 1, 8, 8)
    assert is_stochastic(m)
    with surrogate(m, temperature=0.5):
        assert not is_stochastic(m)
        assert torch.equal(m(x), m(x))
    assert is_stochastic(m)
    plain = SmallCNN(in_channels=1, dataset="digits", input_size=8).eval()
    assert not is_stochastic(plain)


def test_gaussian_smoothing_modes():
    base = SmallCNN(in_channels=1, dataset="digits", input_size=8).eval()
    x = torch.rand(3, 1, 8, 8)
    g = GaussianSmoothing(base, sigma=0.12, predict="base").eval()
    assert not is_stochastic(g) and torch.equal(g(x), base(x))
    for mode in ("noise", "expect", "vote"):
        g = GaussianSmoothing(base, sigma=0.5, predict=mode, n=4).eval()
        assert is_stochastic(g) and g(x).shape == (3, 10)
        with surrogate(g):
            assert torch.equal(g(x), base(x))


def test_lwta_pair_fast_path_matches_general_definition():
    torch.manual_seed(0)
    h = torch.randn(8, 6, 5, 5)
    out = LWTA(U=2).eval()(h).view(8, 3, 2, 5, 5)
    assert ((out != 0).sum(2) <= 1).all() and ((out != 0).sum(2) == 1).float().mean() > 0.99
    lw = LWTA(U=2).train()
    lw(h)
    q = torch.softmax(h.view(8, 3, 2, 5, 5), dim=2)
    expected = (q * torch.log(q * 2)).sum(2).flatten(1).sum(1).mean()
    assert lw.kl.item() == pytest.approx(expected.item(), rel=1e-5)
    with surrogate(lw, temperature=0.5):
        hb = h.view(8, 3, 2, 5, 5)
        assert torch.allclose(lw(h), (hb * torch.softmax(hb / 0.5, 2)).view_as(h), atol=1e-6)


def test_backbones_and_layers_register_themselves():
    assert backbone_names() == ["cert-cnn", "cert-mlp", "preact-resnet18", "slwta-wrn34-1-published", "small-cnn",
                              "wrn-D-W"]
    assert DEFENCE_LAYERS.names() == ["ibp", "lwta", "plain", "pni", "relu"]
    wrn = build_backbone("wrn-10-2", in_channels=1)  # the wrn-D-W family: depth and width from the name
    assert type(wrn) is WideResNet and wrn.conv1.in_channels == 1 and wrn.fc.in_features == 64 * 2
    assert len(wrn.block1) == 1  # (10 - 4) / 6 blocks per stage
    assert type(build_backbone("small-cnn", widths=(4, 4, 4, 4))) is SmallCNN
    conv, linear = layer_factories("ibp", tau=0.5)
    assert isinstance(conv(3, 4, 3), IBPConv2d) and linear(3, 4).tau == 0.5
    assert layer_factories("plain") == (torch.nn.Conv2d, torch.nn.Linear)
    assert isinstance(act_factory("lwta", U=3)(6), LWTA) and act_factory("lwta", U=3)(6).U == 3


@pytest.mark.parametrize("call,match", [
    (lambda: build_backbone("small_cnn"), r"^unknown backbone 'small_cnn' \(did you mean 'small-cnn'\?\)"),
    (lambda: build_backbone("wrn-D-W"), "is a family"),
    (lambda: act_factory("lwtaa"), r"^unknown defence layer 'lwtaa' \(did you mean 'lwta'\?\)"),
    (lambda: layer_factories("pnl"), r"did you mean 'pni'"),
    (lambda: act_factory("pni"), "not an activation"),
    (lambda: layer_factories("lwta"), "no conv / linear layers"),
])
def test_unknown_names_are_one_line_errors(call, match):
    with pytest.raises(ModelCardError, match=match) as e:
        call()
    assert "\n" not in str(e.value)
