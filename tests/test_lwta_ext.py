"""The fused LWTA inference kernel (honestbench/nets/fast/lwta_ext.py, honestbench/nets/fast/csrc/lwta_pair.cpp): same
outputs as
LWTA.eval_pair from the same uniforms, in every layout it handles; the autograd path is left alone; a
missing compiler gives a clear reason, never a crash. Whole traced networks with the kernel:
tests/test_fast.py (test_traced_copy_computes_what_the_fast_copy_computes, ``fused``).

The kernel needs a C++ compiler (the project's machines have g++); without one these tests skip, saying so.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from honestbench.nets.fast import lwta_ext, use_fused_kernel
from honestbench.nets.layers.lwta import LWTA, _blocks

pytestmark = pytest.mark.skipif(shutil.which(lwta_ext.os.environ.get("CXX", "c++")) is None,
                                reason="no C++ compiler: the fused LWTA kernel cannot be built here")


@pytest.fixture(scope="module")
def kernel() -> None:
    assert lwta_ext.load(), lwta_ext.status()["why"]  # a compiler is present: failing to build is a bug


def _layouts() -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    nchw = torch.randn(3, 16, 7, 5, generator=g) * 3
    return [("channels-last", nchw.contiguous(memory_format=torch.channels_last)), ("nchw", nchw),
            ("2d", torch.randn(6, 20, generator=g) * 3), ("1x1", torch.randn(2, 8, 1, 1, generator=g)),
            ("strided", nchw.transpose(2, 3))]


def _both(layer: LWTA, h: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """eval_pair's output, the fused output (same seed) and the uniforms both used."""
    torch.manual_seed(seed)
    u = layer.pair_uniforms(_blocks(h, 2))
    torch.manual_seed(seed)
    ref = layer.eval_pair(_blocks(h, 2)).reshape(h.shape)
    fused = lwta_ext.lwta_pair(h, u, layer.test == "soft", layer.test_temperature)
    return ref, fused, u


@pytest.mark.parametrize("name,h", _layouts(), ids=[n for n, _ in _layouts()])
def test_hard_winners_match_eval_pair(kernel, name, h):
    """Hard mode: exactly eval_pair's output, except where a uniform is within 1e-5 of its threshold
    sigmoid(h0 - h1) (the kernel's exp is a polynomial accurate to ~1e-7, ATen's another)."""
    layer = LWTA(U=2).eval()
    for seed in range(5):
        ref, fused, u = _both(layer, h, seed)
        assert fused.shape == h.shape
        if h.is_contiguous() or h.is_contiguous(memory_format=torch.channels_last):
            assert fused.stride() == h.stride()  # the layout is kept
        hb = _blocks(h, 2)
        near = ((u.double() - torch.sigmoid(hb[:, :, 0].double() - hb[:, :, 1].double())).abs() < 1e-5)
        differ = (_blocks(ref, 2) != _blocks(fused, 2)).any(2)
        assert not (differ & ~near).any(), f"{name}: {int((differ & ~near).sum())} winners differ"
        fb = _blocks(fused, 2)  # in every pair exactly one unit passes, unchanged, and the other is 0
        first = (fb[:, :, 0] == hb[:, :, 0]) & (fb[:, :, 1] == 0)
        second = (fb[:, :, 0] == 0) & (fb[:, :, 1] == hb[:, :, 1])
        assert bool((first ^ second).all())


@pytest.mark.parametrize("name,h", _layouts()[:3], ids=[n for n, _ in _layouts()[:3]])
def test_soft_gates_match_eval_pair(kernel, name, h):
    """Soft mode (the published model's, temperature 0.01): float rounding apart. The logit is divided by
    0.01, so 1e-7 relative errors of exp/log grow to ~1e-5 of the gate; outputs here are below ~12."""
    layer = LWTA(U=2, test="soft", test_temperature=0.01).eval()
    ref, fused, _ = _both(layer, h, 0)
    torch.testing.assert_close(fused, ref, atol=2e-4, rtol=1e-4)


def test_layer_uses_the_kernel_only_without_autograd(kernel):
    torch.manual_seed(0)
    layer = LWTA(U=2).eval()
    assert use_fused_kernel(layer) == 1 and layer.fused
    h = torch.randn(2, 8, 4, 4).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.manual_seed(3)
        fused = layer(h)
    layer.fused = False
    with torch.no_grad():
        torch.manual_seed(3)
        plain = layer(h)
    assert torch.equal(fused, plain)
    layer.fused = True
    x = h.clone().requires_grad_(True)  # an attack's input: the differentiable ATen path runs
    torch.manual_seed(3)
    out = layer(x)
    out.sum().backward()
    assert out.grad_fn is not None and torch.equal(x.grad, (out != 0).float())
    assert use_fused_kernel(layer, on=False) == 1 and not layer.fused


def test_bad_input_is_a_clear_error(kernel):
    with pytest.raises(RuntimeError, match="channel count must be even"):
        lwta_ext.lwta_pair(torch.zeros(1, 3, 2, 2), torch.zeros(1, 1, 2, 2), False, 1.0)
    with pytest.raises(RuntimeError, match="half the channels"):
        lwta_ext.lwta_pair(torch.zeros(1, 4, 2, 2), torch.zeros(1, 4, 2, 2), False, 1.0)


def test_it_compiles_from_scratch(tmp_path):
    """A fresh build (not loaded: one process can register the operator once)."""
    out = tmp_path / "k.so"
    lwta_ext._build(out, lwta_ext.os.environ.get("CXX", "c++"))
    assert out.stat().st_size > 10_000 and not list(tmp_path.glob("*.so.tmp*"))


def test_no_compiler_is_a_reason_not_a_crash(monkeypatch, tmp_path):
    monkeypatch.setattr(lwta_ext, "_state", {})
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    assert lwta_ext.load() is False
    assert "no-such-compiler-xyz" in lwta_ext.status()["why"]
    with pytest.raises(RuntimeError, match="fused LWTA kernel unavailable"):
        use_fused_kernel(LWTA(U=2))
    monkeypatch.setattr(lwta_ext, "_state", {})
    monkeypatch.setenv("BENCH_NO_EXT", "1")
    assert lwta_ext.load() is False and "BENCH_NO_EXT" in lwta_ext.status()["why"]
