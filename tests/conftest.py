"""Shared fixtures: the tiny digits CNN (trained once per session, about 2 s) and its evaluation images.

Tests run single-threaded: the models are tiny (intra-op threads buy nothing) and on a shared 2-core box
OpenMP threads that spin-wait under oversubscription made one attack step 40x slower (measured: 455 ms vs
10 ms per forward+gradient pass of the tiny CNN at batch 128). ``BENCH_TEST_THREADS`` overrides.
"""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("BENCH_TEST_THREADS", "1")))
# commands run in-process (honestbench.cli.main.main) set threads from BENCH_THREADS
# (honestbench.core.threads.default_threads)
os.environ.setdefault("BENCH_THREADS", str(torch.get_num_threads()))
# tests never reach the network: a missing data file or checkpoint is an error, not a download
# (honestbench.data.files.offline); tests of the downloader use file:// URLs
os.environ.setdefault("BENCH_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_digits_model() -> torch.nn.Module:
    """:class:`honestbench.train.tiny.TinyDigitsNet` trained with seed 0 (eval mode, frozen). Shared: do not modify it
    (copy it with ``copy.deepcopy`` first)."""
    from honestbench.train.tiny import train_tiny_digits

    return train_tiny_digits(seed=0)


@pytest.fixture(scope="session")
def digits_eval() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 128 digits evaluation images (float32 (128, 1, 8, 8) in [0, 1]) and labels (int64)."""
    from honestbench.data import load_eval

    data = load_eval("digits", n=128)
    return data.x, data.y


class NoisyNet(torch.nn.Module):
    """A stochastic model for tests: Gaussian noise of std ``sigma`` on ``inner``'s logits at every forward pass
    (also in eval mode). Import it with ``from conftest import NoisyNet``."""

    def __init__(self, inner: torch.nn.Module, sigma: float = 2.0):
        super().__init__()
        self.inner, self.sigma = inner, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.inner(x)
        return z + self.sigma * torch.randn_like(z)


@pytest.fixture(scope="module")
def one_thread():
    """The CPU is shared: one intra-op thread is faster here than oversubscribed threads (restored after)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
