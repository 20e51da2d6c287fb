"""Training-time augmentation on a batch already on the training device (no host round trip): random crop with
zero padding and horizontal flip, per sample. Pixels in [0, 1] (any float dtype; uint8 works too)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """Random crop (zero padding ``pad``) and horizontal flip of an NCHW batch, per sample, on its device
    (global torch RNG of that device)."""
    n, c, h, w = x.shape
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
        dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (n, h, 1)
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (n, 1, w)
        x = xp.permute(0, 2, 3, 1)[torch.arange(n, device=x.device)[:, None, None], rows, cols]  # (n,h,w,c)
        x = x.permute(0, 3, 1, 2)
    if flip:
        f = torch.rand(n, device=x.device) < 0.5
        x = torch.where(f[:, None, None, None], x.flip(3), x)
    return x.contiguous()
