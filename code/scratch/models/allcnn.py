r"""All-CNN-T: Springenberg et al.'s All-CNN-C (2015) with batch normalisation.

The "all convolutional net" replaces max-pooling by 3x3 convolutions of stride
2 and the fully connected classifier by a 1x1 convolution to one map per class
followed by global average pooling, so the network is nothing but convolutions.
The variant trained here ("T") keeps All-CNN-C's layer list and adds what makes
it easy to train with a large learning rate: every convolution is followed by
batch normalisation and ReLU (conv -> BN -> ReLU). Dropout is the paper's: 20%
on the input pixels and 50% after each of the two strided convolutions.

Layer list for widths ``c1, c2`` (the paper's ``c1 = 96``, ``c2 = 192``), on a
32x32 CIFAR image:

========  ==========================  ============
block     layers                      output
========  ==========================  ============
1         3x3 c1, 3x3 c1, 3x3 c1 /2   c1 x 16 x 16
2         3x3 c2, 3x3 c2, 3x3 c2 /2   c2 x 8 x 8
head      3x3 c2 (valid), 1x1 c2,     10 x 6 x 6
          1x1 classes (BN, no ReLU)
pool      global average              10
========  ==========================  ============

Parameter count, exactly (:func:`allcnn_parameter_count`): the convolutions
have no bias (the batch norm after each has a shift), every batch norm has a
scale and a shift per channel. For ``c1, c2 = 96, 192`` that is 1,368,480
convolution weights + 2 * (3 * 96 + 5 * 192 + 10) = 2,516 batch-norm
parameters = 1,370,996, "1.37M". Keeping a bias in every convolution as well
(``conv_bias=True``: redundant before a batch norm) adds 1,258: 1,372,254,
still 1.37M. All-CNN-C as published (biases, no batch norm) has 1,369,738;
the paper gives "1.3 M". A widely copied course version of
"allcnn_t" differs in its head: two padded 3x3 convolutions at 8x8 (instead of
a valid 3x3 and a 1x1) and an 8x8 average pool; its second 3x3 adds
``9 * 192 * 192 - 192 * 192 = 294,912`` weights, 1,667,166 in all (1.67M), and
it orders conv -> ReLU -> BN. The chapter's tests pin all four counts.

Chapter: "All-CNN: the all-convolutional network" (book/vision/allcnn.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..config import describe, field, positive, unit_interval
from .layers import Normalize
from .spec import ModelSpec

# Springenberg et al. (2015): All-CNN-C's parameters in millions, as printed.
PAPER_PARAMETERS_M = 1.3


def layer_list(c1: int = 96, c2: int = 192, num_classes: int = 10):
    """The convolutions as ``(c_in, c_out, kernel, stride, padding)``, in order:
    the one description both the model and the independent count read."""
    return [
        (3, c1, 3, 1, 1),
        (c1, c1, 3, 1, 1),
        (c1, c1, 3, 2, 1),  # replaces the first max-pool: 32 -> 16
        (c1, c2, 3, 1, 1),
        (c2, c2, 3, 1, 1),
        (c2, c2, 3, 2, 1),  # replaces the second max-pool: 16 -> 8
        (c2, c2, 3, 1, 0),  # "valid": 8 -> 6
        (c2, c2, 1, 1, 0),
        (c2, num_classes, 1, 1, 0),  # one map per class, then global average
    ]


def allcnn_parameter_count(
    c1: int = 96,
    c2: int = 192,
    num_classes: int = 10,
    batch_norm: bool = True,
    conv_bias: bool = False,
) -> int:
    """Parameters counted by hand from :func:`layer_list`: ``k*k*c_in*c_out``
    weights per convolution, plus 2 per channel for a batch norm (scale, shift)
    and 1 per channel for a bias (the original All-CNN-C has biases and no
    batch norm)."""
    per_channel = 2 * batch_norm + conv_bias
    total = 0
    for c_in, c_out, k, _, _ in layer_list(c1, c2, num_classes):
        total += k * k * c_in * c_out + per_channel * c_out
    return total


def conv_bn(
    c_in, c_out, kernel, stride, padding, relu=True, bias=False
) -> nn.Sequential:
    """conv -> BN (-> ReLU). No bias by default: the batch norm's shift does its
    job (a bias before a batch norm is subtracted again with the mean)."""
    layers = [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=bias),
        nn.BatchNorm2d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class AllCNN(nn.Module):
    """All-CNN-T: (B, 3, H, W) images in [0, 1] -> (B, num_classes) logits."""

    def __init__(
        self,
        c1: int = 96,
        c2: int = 192,
        num_classes: int = 10,
        dropout: float = 0.5,
        input_dropout: float = 0.2,
        mean=None,
        std=None,
        conv_bias: bool = False,
    ):
        super().__init__()
        layers = layer_list(c1, c2, num_classes)
        # The last 1x1 convolution gives the class scores: BN but no ReLU, so
        # the logits can be negative.
        convs = [
            conv_bn(*spec, relu=i < len(layers) - 1, bias=conv_bias)
            for i, spec in enumerate(layers)
        ]
        self.normalize = Normalize(mean, std) if mean is not None else nn.Identity()
        self.input_dropout = nn.Dropout(input_dropout)
        self.block1 = nn.Sequential(*convs[0:3])  # (B, c1, H/2, W/2)
        self.drop1 = nn.Dropout(dropout)
        self.block2 = nn.Sequential(*convs[3:6])  # (B, c2, H/4, W/4)
        self.drop2 = nn.Dropout(dropout)
        self.head = nn.Sequential(*convs[6:])  # (B, classes, H/4-2, W/4-2)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward_features(self, x):
        """The class maps before pooling: (B, classes, h, w)."""
        x = self.input_dropout(self.normalize(x))
        x = self.drop1(self.block1(x))
        x = self.drop2(self.block2(x))
        return self.head(x)

    def forward(self, x):
        return self.pool(self.forward_features(x)).flatten(1)  # (B, classes)


@dataclass
class AllCNNSpec(ModelSpec):
    """All-CNN-T's architecture: ``AllCNNSpec(...).build(mean, std)``. The
    defaults are the seed's ``c1 = 96``, ``c2 = 192``."""

    c1: int = field(default=96, metadata=positive("channels of the first block"))
    c2: int = field(
        default=192, metadata=positive("channels of the second block and head")
    )
    dropout: float = field(
        default=0.5,
        metadata=unit_interval("dropout after each of the two blocks (the paper's)"),
    )
    input_dropout: float = field(
        default=0.2,
        metadata=unit_interval("dropout on the input pixels (the paper's)"),
    )
    num_classes: int = field(default=10, metadata=positive("output classes"))
    normalize: bool = field(
        default=True,
        metadata=describe(
            "standardise images inside the model (it then takes [0, 1] pixels)"
        ),
    )

    conv_bias: bool = field(
        default=False,
        metadata=describe(
            "a bias in every convolution too (redundant before batch norm; +1,258)"
        ),
    )

    def build(self, mean=None, std=None) -> AllCNN:
        if self.normalize:  # placeholders until the data's (or a state_dict's)
            mean = [0.5] * 3 if mean is None else [float(v) for v in mean]
            std = [0.25] * 3 if std is None else [float(v) for v in std]
        else:
            mean = std = None
        return AllCNN(
            self.c1,
            self.c2,
            self.num_classes,
            self.dropout,
            self.input_dropout,
            mean=mean,
            std=std,
            conv_bias=self.conv_bias,
        )
