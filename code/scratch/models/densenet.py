r"""Densely connected networks (Huang, Liu, van der Maaten & Weinberger, 2017)
from ``torch.nn`` layers.

A dense block feeds every layer the *concatenation* of all feature maps before
it in the block, instead of adding a shortcut to one of them (ResNet):

.. math::

   \mathbf{x}_\ell = H_\ell([\mathbf{x}_0, \mathbf{x}_1, \dots, \mathbf{x}_{\ell-1}])

Each :math:`H_\ell` adds ``growth`` (the paper's :math:`k`) new channels, so a
block with ``n`` layers turns :math:`c_0` channels into :math:`c_0 + n k`. In
DenseNet-B each :math:`H_\ell` is BN-ReLU-conv1x1 (to :math:`4k` channels,
the bottleneck) then BN-ReLU-conv3x3 (to :math:`k`); DenseNet-C compresses the
channels by :math:`\theta` in every transition (BN-ReLU-conv1x1-avgpool2x2)
between blocks; DenseNet-BC does both. The CIFAR DenseNet-BC of depth
:math:`L` has three blocks of :math:`(L - 4) / 6` bottleneck layers and a stem
of :math:`2k` channels; ``densenet_bc(100, 12)`` is the paper's 0.8M network
(4.51% error on augmented CIFAR-10, Table 2).

Chapter: "DenseNet" (book/vision/densenet.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..config import ConfigError, describe, field, in_range, positive
from .layers import Normalize
from .spec import ModelSpec

# Table 2 of the paper: DenseNet-BC on CIFAR-10 with augmentation ("C10+").
PAPER_CIFAR10_ERROR = {(100, 12): 0.0451, (250, 24): 0.0339, (190, 40): 0.0346}
PAPER_PARAMETERS_M = {(100, 12): 0.8, (250, 24): 15.3, (190, 40): 25.6}


class DenseLayer(nn.Module):
    r"""One :math:`H_\ell`: (BN-ReLU-conv1x1 to ``bn_size * growth``) then
    BN-ReLU-conv3x3 to ``growth`` channels, and the result appended to the input.
    (B, C, H, W) -> (B, C + growth, H, W). ``bn_size=0``: no bottleneck (the
    plain DenseNet's BN-ReLU-conv3x3).
    """

    def __init__(self, c_in: int, growth: int, bn_size: int = 4):
        super().__init__()
        layers = []
        c = c_in
        if bn_size:
            # The bottleneck: a layer deep in a block sees hundreds of channels;
            # 1x1 first brings them to 4k, so the 3x3 costs 9 * 4k * k weights.
            layers += [
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.Conv2d(c, bn_size * growth, 1, bias=False),
            ]
            c = bn_size * growth
        # Not inplace on the first ReLU of a plain layer: its input is the
        # concatenated tensor that later layers read again.
        layers += [
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=bool(bn_size)),
            nn.Conv2d(c, growth, 3, padding=1, bias=False),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        new = self.body(x)  # (B, growth, H, W)
        return torch.cat([x, new], dim=1)  # (B, C + growth, H, W)


class DenseBlock(nn.Sequential):
    """``n_layers`` dense layers: (B, C, H, W) -> (B, C + n_layers * growth, H, W).
    Each layer's ``torch.cat`` makes the block's output hold every feature map
    computed in it, the input included."""

    def __init__(self, n_layers: int, c_in: int, growth: int, bn_size: int = 4):
        super().__init__(
            *(DenseLayer(c_in + i * growth, growth, bn_size) for i in range(n_layers))
        )
        self.c_out = c_in + n_layers * growth


class Transition(nn.Sequential):
    r"""BN-ReLU-conv1x1 to :math:`\lfloor\theta C\rfloor` channels, then 2x2
    average pooling: (B, C, H, W) -> (B, floor(theta C), H / 2, W / 2)."""

    def __init__(self, c_in: int, compression: float = 0.5):
        c_out = int(compression * c_in)
        super().__init__(
            nn.BatchNorm2d(c_in),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.AvgPool2d(2),
        )
        self.c_out = c_out


class DenseNet(nn.Module):
    r"""A CIFAR DenseNet: 3x3 stem, dense blocks separated by transitions,
    BN-ReLU, global average pooling and a linear layer. With ``mean``/``std``
    the first layer is :class:`Normalize`, so the model takes images in [0, 1].
    """

    def __init__(
        self,
        block_layers: Sequence[int] = (16, 16, 16),
        growth: int = 12,
        bn_size: int = 4,
        compression: float = 0.5,
        stem: int | None = None,
        num_classes: int = 10,
        mean=None,
        std=None,
    ):
        super().__init__()
        self.normalize = Normalize(mean, std) if mean is not None else nn.Identity()
        # The paper: 2k stem channels for DenseNet-BC, 16 for the plain DenseNet.
        c = stem if stem is not None else (2 * growth if bn_size else 16)
        self.stem = nn.Conv2d(3, c, 3, padding=1, bias=False)
        stages = []
        for i, n in enumerate(block_layers):
            block = DenseBlock(n, c, growth, bn_size)
            stages.append(block)
            c = block.c_out
            if i < len(block_layers) - 1:
                transition = Transition(c, compression)
                stages.append(transition)
                c = transition.c_out
        self.stages = nn.Sequential(*stages)
        self.final = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        self.features_dim = c
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        """(B, 3, 32, 32) -> (B, C, 8, 8) after the final BN-ReLU."""
        return self.final(self.stages(self.stem(self.normalize(x))))

    def forward(self, x):
        x = self.pool(self.forward_features(x)).flatten(1)  # (B, C)
        return self.fc(x)  # (B, classes)


def bc_layers(depth: int) -> int:
    """Layers per block of the CIFAR DenseNet-BC of depth L: (L - 4) / 6 (each
    bottleneck layer holds two convolutions; stem, two transitions and the
    linear layer make the 4)."""
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"DenseNet-BC depth must be 6n + 4 >= 10, got {depth}")
    return (depth - 4) // 6


def densenet_bc(depth: int = 100, growth: int = 12, **kwargs) -> DenseNet:
    """The paper's CIFAR DenseNet-BC (L, k): three blocks, theta = 0.5."""
    n = bc_layers(depth)
    return DenseNet((n, n, n), growth, bn_size=4, compression=0.5, **kwargs)


@dataclass
class DenseNetSpec(ModelSpec):
    """A CIFAR DenseNet's architecture: ``DenseNetSpec(...).build(mean, std)``.
    The defaults are the paper's DenseNet-BC (L=100, k=12)."""

    block_layers: tuple[int, ...] = field(
        default=(16, 16, 16),
        metadata=positive(
            "dense layers per block: (L - 4) / 6 each for DenseNet-BC of depth L"
        ),
    )
    growth: int = field(
        default=12, metadata=positive("growth rate k: channels each layer adds")
    )
    bn_size: int = field(
        default=4,
        metadata=in_range(
            0, 16, "bottleneck width in units of k (4: DenseNet-B; 0: none)"
        ),
    )
    compression: float = field(
        default=0.5,
        metadata=in_range(
            0, 1, "theta: channels kept by each transition (1: DenseNet)", low_open=True
        ),
    )
    num_classes: int = field(default=10, metadata=positive("output classes"))
    normalize: bool = field(
        default=True,
        metadata=describe(
            "standardise images inside the model (it then takes [0, 1] pixels)"
        ),
    )

    def validate(self):
        if not self.block_layers:
            raise ConfigError("block_layers is empty: give at least one block")

    def build(self, mean=None, std=None) -> DenseNet:
        if self.normalize:
            mean = [0.5] * 3 if mean is None else [float(v) for v in mean]
            std = [0.25] * 3 if std is None else [float(v) for v in std]
        else:
            mean = std = None
        return DenseNet(
            tuple(self.block_layers),
            self.growth,
            self.bn_size,
            self.compression,
            num_classes=self.num_classes,
            mean=mean,
            std=std,
        )
