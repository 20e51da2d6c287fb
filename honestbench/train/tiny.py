"""A tiny CNN trained on the fly on scikit-learn's 8x8 digits: the model of the fast tests and of
``bench crosscheck --model tiny-digits`` (seeded, deterministic). Inputs are pixels in [0, 1].

Layout: normalise (inside the model, so attacks work in [0, 1] pixel space) -> conv 1->16 (3x3) -> ReLU ->
conv 16->32 (3x3) -> ReLU -> max-pool 2 -> linear 512->64 -> ReLU -> linear 64->10.
"""

from __future__ import annotations

import torch
from torch import nn

from honestbench.data import load_train

DIGITS_MEAN, DIGITS_STD = 0.30, 0.40  # pixel statistics of the digits training images (rounded)


class TinyDigitsNet(nn.Module):
    """Small CNN for 1x8x8 inputs in [0, 1]; normalisation is its first operation."""

    def __init__(self, width: int = 16, num_classes: int = 10):
        super().__init__()
        self.register_buffer("mean", torch.tensor(DIGITS_MEAN))
        self.register_buffer("std", torch.tensor(DIGITS_STD))
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(2 * width * 16, 64), nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - self.mean) / self.std))


def train_tiny_digits(seed: int = 0, epochs: int = 15, batch_size: int = 64, lr: float = 3e-3) -> nn.Module:
    """Train :class:`TinyDigitsNet` on the 1,400 digits training images (Adam, seeded); returned in
    ``eval()`` mode with frozen parameters (``requires_grad=False``)."""
    train = load_train("digits")
    x = torch.from_numpy(train.x).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
    y = torch.from_numpy(train.y)
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyDigitsNet()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            b = perm[i:i + batch_size]
            loss = nn.functional.cross_entropy(model(x[b]), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    model.requires_grad_(False)
    return model
