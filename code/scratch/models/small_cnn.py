r"""A small convolutional network for 14x14 greyscale digits (chapter "Learned
versus engineered features").

Two convolution-ReLU-max-pooling stages and a linear read-out (``B`` is the
batch size)::

    input  (B, 1, 14, 14)   MNIST downsampled 2x, pixels in [0, 1]
    norm   (B, 1, 14, 14)   (x - mean) / std, statistics stored in the model
    conv1  (B, 16, 14, 14)  16 maps, 5x5, padding 2          16 (25 + 1) =   416
    pool1  (B, 16, 7, 7)    2x2 max-pooling
    conv2  (B, 32, 7, 7)    32 maps, 3x3, padding 1     32 (16 * 9 + 1) = 4,640
    pool2  (B, 32, 3, 3)    2x2 max-pooling (the last row and column drop)
    fc     (B, 10)          linear read-out              10 (288 + 1) = 2,890
                                                                  total 7,946

conv1 has as many 5x5 kernels (16) as the chapter's Gabor filter bank has
filters, so the learned and the engineered first layers can be compared side
by side.

Chapter: "Learned versus engineered features" (book/vision/features.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import field, positive
from .layers import Normalize
from .spec import ModelSpec

# Parameters per layer for the default widths, from the table above.
TABLE_PARAMETERS = {
    "conv1": 16 * (25 + 1),
    "conv2": 32 * (16 * 9 + 1),
    "fc": 10 * (32 * 3 * 3 + 1),
}


class SmallCNN(nn.Module):
    """conv(5x5) -> ReLU -> maxpool -> conv(3x3) -> ReLU -> maxpool -> linear.

    Takes images in [0, 1] of shape (B, 1, size, size) and standardises them
    inside (``mean``, ``std``: the training pixels' statistics), so the same
    model reads raw digits at training and at test time.
    """

    def __init__(
        self,
        mean: float = 0.0,
        std: float = 1.0,
        channels=(16, 32),
        size: int = 14,
        num_classes: int = 10,
    ):
        super().__init__()
        c1, c2 = channels
        self.norm = Normalize([mean], [std])
        # 5x5 with padding 2 keeps the 14x14 grid: every pixel, borders
        # included, is the centre of one receptive field, as for a filter bank.
        self.conv1 = nn.Conv2d(1, c1, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.act = nn.ReLU()
        side = size // 2 // 2  # two 2x2 poolings (floor): 14 -> 7 -> 3
        self.fc = nn.Linear(c2 * side * side, num_classes)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every stage's output, by name: what the network computes inside."""
        out = {}
        x = out["conv1"] = self.conv1(self.norm(x))
        x = out["pool1"] = self.pool(self.act(x))
        x = out["conv2"] = self.conv2(x)
        x = out["pool2"] = self.pool(self.act(x))
        out["fc"] = self.fc(x.flatten(1))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.conv1(self.norm(x))))
        x = self.pool(self.act(self.conv2(x)))
        return self.fc(x.flatten(1))


@dataclass
class SmallCNNSpec(ModelSpec):
    """The small CNN's sizes: ``SmallCNNSpec().build(mean, std)``."""

    channels: tuple[int, int] = field(
        default=(16, 32),
        metadata=positive("maps of conv1 and conv2: 16 = the Gabor bank's filters"),
    )
    size: int = field(default=14, metadata=positive("input side in pixels"))
    num_classes: int = field(default=10, metadata=positive("output classes"))

    def build(self, mean: float = 0.0, std: float = 1.0) -> SmallCNN:
        return SmallCNN(mean, std, self.channels, self.size, self.num_classes)
