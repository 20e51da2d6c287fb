"""A torchvision ResNet-18 adapted to small images (conv1 3x3 stride 1, no max-pool): the kind of model a user
brings. It takes float32 NCHW images with pixels in [0, 1] and returns logits; normalisation, if the weights
expect it, is added by the card (``normalize = {mean, std}``) or ``bench run --normalize``."""

from torch import nn
from torchvision.models import resnet18


def build(in_channels: int = 3, num_classes: int = 10) -> nn.Module:
    """ResNet-18 for 32x32 (CIFAR-10) or 8x8 (digits) images with ``in_channels`` channels."""
    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model
