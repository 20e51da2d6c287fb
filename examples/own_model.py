"""Evaluate your own model from Python in one call: `python examples/own_model.py [--data digits] [--n 32]`.

The model is a torchvision ResNet-18 adapted to small images (examples/resnet18_32.py); any nn.Module that
takes float32 NCHW images with pixels in [0, 1] and returns logits works the same way."""

import argparse
import sys
from pathlib import Path

import torch

import honestbench

sys.path.insert(0, str(Path(__file__).parent))
from resnet18_32 import build  # noqa: E402  (the example's own model file)

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="cifar10", choices=["cifar10", "digits"])
ap.add_argument("--n", type=int, default=32)
ap.add_argument("--out", default=None, help="also write records, leaderboard and figures here")
args = ap.parse_args()

torch.manual_seed(0)
model = build(in_channels=1 if args.data == "digits" else 3)  # train it first; a random one is fine here
records = honestbench.evaluate_model(model, suite="ci", data=args.data, n=args.n, out=args.out, device="cpu",
                               name="resnet18")
print(records[["model", "attack", "accuracy", "count", "n"]].to_string(index=False))
