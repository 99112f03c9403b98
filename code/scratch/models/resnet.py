r"""Residual networks (He, Zhang, Ren & Sun, 2016) from ``torch.nn`` layers.

Two families, both built from the same blocks:

* **ImageNet ResNets** (the paper's Table 1): a 7x7 stride-2 stem and a 3x3
  max-pool take a 224x224 image to 56x56, then four stages of blocks at
  56, 28, 14 and 7 pixels with 64, 128, 256 and 512 base channels, global
  average pooling and one linear layer. ``resnet18``, ``resnet34`` (basic
  blocks) and ``resnet50`` (bottleneck blocks) have exactly torchvision's
  parameter counts: 11,689,512, 21,797,672 and 25,557,032.
* **CIFAR ResNets** (``cifar_resnet``): a 3x3 stem at full 32x32 resolution, no
  max-pool, then one stage per entry of ``widths``, the first at stride 1 and
  every other one halving the resolution. ``blocks=(n, n, n)`` and
  ``widths=(16, 32, 64)`` with parameter-free "option A" shortcuts is the
  paper's ResNet-(6n+2) of Section 4.2 (ResNet-20: 0.27M parameters);
  ``blocks=(2, 2, 2, 2)``, ``widths=(64, 128, 256, 512)`` with projection
  ("option B") shortcuts is the popular CIFAR variant of ResNet-18 (11.17M).

Every block can drop its skip connection (``residual=False``: the paper's
"plain" networks) or move batch normalisation and ReLU in front of the
convolutions (``preact=True``: He et al., *Identity Mappings in Deep Residual
Networks*, 2016).

Chapter: "Residual networks" (book/vision/resnet.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from torch import nn
from torch.nn import functional as F

from ..config import ConfigError, choice, describe, field, positive
from .layers import Normalize
from .spec import ModelSpec

# Parameter counts of torchvision.models.resnetXX(weights=None), 1000 classes.
TORCHVISION_PARAMETERS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
}
# Table 1 of the paper: multiply-adds ("FLOPs") for one 224x224 image.
PAPER_GFLOPS = {"resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8}
# Table 6 of the paper: CIFAR-10 ResNet-(6n+2), parameters in millions.
PAPER_CIFAR_PARAMETERS = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7}


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias: the batch norm after it has one."""
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    r"""The paper's option A: an identity shortcut that still works when a
    block halves the resolution and doubles the channels. It subsamples by
    taking every ``stride``-th pixel and appends zero channels, so it has no
    parameters. (B, C, H, W) -> (B, C_out, H / stride, W / stride).
    """

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.extra, self.stride = c_out - c_in, stride

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        # Zero channels at the end: F.pad pads the last dims first, (W, H, C).
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))

    def extra_repr(self):
        return f"extra_channels={self.extra}, stride={self.stride}"


def make_shortcut(
    c_in: int, c_out: int, stride: int, kind: str, preact: bool = False
) -> nn.Module:
    """The shortcut branch of a block: identity where the shapes agree (options
    A and B), else zero-padding (A) or a 1x1 projection (B); option C projects
    in every block. A pre-activation block's projection needs no BN of its own:
    its input is already normalised and the sum is normalised by the next block.
    """
    if kind not in ("A", "B", "C"):
        raise ValueError(f"shortcut must be 'A', 'B' or 'C', got {kind!r}")
    if kind == "C" or (kind == "B" and (stride != 1 or c_in != c_out)):
        if preact:
            return conv1x1(c_in, c_out, stride)
        return nn.Sequential(conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))
    if stride != 1 or c_in != c_out:
        return PadShortcut(c_in, c_out, stride)
    return nn.Identity()


class BasicBlock(nn.Module):
    r"""Two 3x3 convolutions and a shortcut (the paper's Fig. 2, left).

    post-activation (``preact=False``, the 2015 paper): :math:`y =
    \mathrm{ReLU}(\mathrm{BN}(W_2\, \mathrm{ReLU}(\mathrm{BN}(W_1 x))) + s(x))`

    pre-activation (``preact=True``, the identity-mappings paper): :math:`y = x + W_2\,
    \mathrm{ReLU}(\mathrm{BN}(W_1\, \mathrm{ReLU}(\mathrm{BN}(x))))`

    ``residual=False`` drops :math:`s(x)`: a block of the "plain" network.
    (B, C_in, H, W) -> (B, C_out, H / stride, W / stride).
    """

    expansion = 1

    def __init__(
        self,
        c_in: int,
        planes: int,
        stride: int = 1,
        shortcut: str = "B",
        residual: bool = True,
        preact: bool = False,
    ):
        super().__init__()
        c_out = planes * self.expansion
        self.residual, self.preact = residual, preact
        # Pre-activation normalises the block's input; post-activation the
        # output of the second convolution.
        self.bn1 = nn.BatchNorm2d(c_in if preact else planes)
        self.conv1 = conv3x3(c_in, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes if preact else c_out)
        self.conv2 = conv3x3(planes, c_out)
        self.shortcut = (
            make_shortcut(c_in, c_out, stride, shortcut, preact) if residual else None
        )

    def forward(self, x):
        if self.preact:
            a = F.relu(self.bn1(x))
            # A projection sees the normalised input; the identity sees x itself.
            skip = x if isinstance(self.shortcut, nn.Identity) else a
            out = self.conv2(F.relu(self.bn2(self.conv1(a))))
            return out + self.shortcut(skip) if self.residual else out
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + self.shortcut(x)
        return F.relu(out)

    @property
    def last_bn(self):
        """The BN that scales the residual branch (zero it to start at identity)."""
        return None if self.preact else self.bn2


class Bottleneck(nn.Module):
    r"""1x1 (reduce to ``planes``), 3x3, 1x1 (expand to ``4 * planes``) and a
    shortcut (the paper's Fig. 5, right): as deep as three layers, about as
    cheap as one 3x3 convolution at the wide width.

    ``stride_in_1x1=True`` puts the stride in the first 1x1 convolution, as
    the paper did (3.8 GFLOPs for ResNet-50); torchvision's "v1.5" puts it in
    the 3x3 one (same parameters, 4.1 GFLOPs, slightly more accurate).
    """

    expansion = 4

    def __init__(
        self,
        c_in: int,
        planes: int,
        stride: int = 1,
        shortcut: str = "B",
        residual: bool = True,
        preact: bool = False,
        stride_in_1x1: bool = True,
    ):
        super().__init__()
        c_out = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.residual, self.preact = residual, preact
        self.bn1 = nn.BatchNorm2d(c_in if preact else planes)
        self.conv1 = conv1x1(c_in, planes, s1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, s3)
        self.bn3 = nn.BatchNorm2d(planes if preact else c_out)
        self.conv3 = conv1x1(planes, c_out)
        self.shortcut = (
            make_shortcut(c_in, c_out, stride, shortcut, preact) if residual else None
        )

    def forward(self, x):
        if self.preact:
            a = F.relu(self.bn1(x))
            skip = x if isinstance(self.shortcut, nn.Identity) else a
            out = self.conv1(a)
            out = self.conv2(F.relu(self.bn2(out)))
            out = self.conv3(F.relu(self.bn3(out)))
            return out + self.shortcut(skip) if self.residual else out
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            out = out + self.shortcut(x)
        return F.relu(out)

    @property
    def last_bn(self):
        return None if self.preact else self.bn3


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    r"""A stem, stages of blocks, global average pooling and a linear layer.

    ``stem="imagenet"``: 7x7/2 convolution, BN, ReLU, 3x3/2 max-pool (224 ->
    56 pixels). ``stem="cifar"``: one 3x3/1 convolution (32 -> 32 pixels).
    Stage ``i`` has ``blocks[i]`` blocks of width ``widths[i]``; every stage
    but the first starts with a stride-2 block. With ``mean``/``std`` the first
    layer is :class:`Normalize`, so the model takes images in [0, 1].
    """

    def __init__(
        self,
        blocks: Sequence[int],
        widths: Sequence[int],
        block: str = "basic",
        stem: str = "imagenet",
        num_classes: int = 1000,
        shortcut: str = "B",
        residual: bool = True,
        preact: bool = False,
        mean=None,
        std=None,
        zero_init_residual: bool = False,
        **block_kwargs,
    ):
        super().__init__()
        if len(blocks) != len(widths):
            raise ValueError(
                f"blocks {tuple(blocks)} and widths "
                f"{tuple(widths)} need one entry per stage"
            )
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {sorted(BLOCKS)}, got {block!r}")
        Block = BLOCKS[block]
        self.normalize = Normalize(mean, std) if mean is not None else nn.Identity()
        stem_width = widths[0]
        # A pre-activation network's stem ends at the convolution: the first
        # block starts with BN-ReLU. A post-activation stem normalises itself.
        post = [] if preact else [nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True)]
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(3, stem_width, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(stem_width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        elif stem == "cifar":
            self.stem = nn.Sequential(conv3x3(3, stem_width), *post)
        else:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        stages, c_in = [], stem_width
        for i, (n, width) in enumerate(zip(blocks, widths)):
            layers = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(
                    Block(
                        c_in,
                        width,
                        stride,
                        shortcut=shortcut,
                        residual=residual,
                        preact=preact,
                        **block_kwargs,
                    )
                )
                c_in = width * Block.expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        # Pre-activation: the last block's sum is not normalised yet.
        self.final = (
            nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(inplace=True))
            if preact
            else nn.Identity()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)  # global average pooling
        self.fc = nn.Linear(c_in, num_classes)
        self.features_dim = c_in
        self.reset_parameters(zero_init_residual and residual)

    def reset_parameters(self, zero_init_residual: bool = False):
        """He initialisation, N(0, 2 / fan_out), for convolutions (as the paper
        and torchvision); BN starts as the identity (gamma 1, beta 0)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            # Goyal et al. (2017): gamma = 0 in each block's last BN, so every
            # residual block starts as the identity (or its shortcut).
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)) and m.last_bn is not None:
                    nn.init.zeros_(m.last_bn.weight)

    def forward_features(self, x):
        """(B, 3, H, W) in [0, 1] (or already normalised) -> (B, C, h, w)."""
        return self.final(self.stages(self.stem(self.normalize(x))))

    def forward(self, x):
        x = self.pool(self.forward_features(x)).flatten(1)  # (B, C)
        return self.fc(x)  # (B, classes)


# ---- the paper's ImageNet models ------------------------------------------------
def resnet18(num_classes: int = 1000, **kwargs) -> ResNet:
    return ResNet(
        [2, 2, 2, 2], [64, 128, 256, 512], "basic", "imagenet", num_classes, **kwargs
    )


def resnet34(num_classes: int = 1000, **kwargs) -> ResNet:
    return ResNet(
        [3, 4, 6, 3], [64, 128, 256, 512], "basic", "imagenet", num_classes, **kwargs
    )


def resnet50(num_classes: int = 1000, **kwargs) -> ResNet:
    return ResNet(
        [3, 4, 6, 3],
        [64, 128, 256, 512],
        "bottleneck",
        "imagenet",
        num_classes,
        **kwargs,
    )


# ---- CIFAR models -------------------------------------------------------------------
def cifar_resnet(
    blocks: Sequence[int] = (3, 3, 3),
    widths: Sequence[int] = (16, 32, 64),
    block: str = "basic",
    shortcut: str = "A",
    residual: bool = True,
    preact: bool = False,
    num_classes: int = 10,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    zero_init_residual: bool = False,
) -> ResNet:
    """A ResNet for 32x32 images: 3x3 stem, no max-pool, ``len(widths)``
    stages. The defaults are the paper's ResNet-20 (Section 4.2). Give
    ``mean``/``std`` (per channel, [0, 1] units) to put :class:`Normalize`
    first, so that the model takes images in [0, 1].

    Every argument is a plain Python value, so ``{"model": state_dict,
    "kwargs": kwargs}`` saved with ``torch.save`` loads back with
    ``weights_only=True`` and ``cifar_resnet(**kwargs)`` rebuilds the network.
    """
    mean = None if mean is None else [float(v) for v in mean]
    std = None if std is None else [float(v) for v in std]
    return ResNet(
        list(blocks),
        list(widths),
        block,
        "cifar",
        num_classes,
        shortcut=shortcut,
        residual=residual,
        preact=preact,
        mean=mean,
        std=std,
        zero_init_residual=zero_init_residual,
    )


def cifar_depth_kwargs(depth: int) -> dict:
    """``cifar_resnet`` arguments of the paper's ResNet-(6n+2): n basic blocks
    in each of 3 stages of 16, 32, 64 channels, option A shortcuts."""
    if (depth - 2) % 6:
        raise ValueError(
            f"CIFAR ResNet depth must be 6n + 2 (20, 32, 44, ...), got {depth}"
        )
    n = (depth - 2) // 6
    return dict(blocks=(n, n, n), widths=(16, 32, 64), shortcut="A")


CIFAR_RESNET18 = dict(blocks=(2, 2, 2, 2), widths=(64, 128, 256, 512), shortcut="B")


@dataclass
class ResNetSpec(ModelSpec):
    """A CIFAR ResNet's architecture: ``ResNetSpec(...).build(mean, std)``.

    The defaults are the paper's ResNet-20 (Section 4.2); ``normalize`` puts
    :class:`Normalize` first, so the model takes images in [0, 1] (its mean and
    std come from the training data, through ``build``, and live in the
    ``state_dict``).
    """

    blocks: tuple[int, ...] = field(
        default=(3, 3, 3),
        metadata=positive(
            "blocks per stage: (3, 3, 3) is ResNet-20, (2, 2, 2, 2) ResNet-18"
        ),
    )
    widths: tuple[int, ...] = field(
        default=(16, 32, 64),
        metadata=positive("channels per stage; the first is also the stem's width"),
    )
    block: str = field(
        default="basic",
        metadata=choice(
            "basic", "bottleneck", help="two 3x3 convolutions, or 1x1-3x3-1x1"
        ),
    )
    shortcut: str = field(
        default="A",
        metadata=choice(
            "A",
            "B",
            "C",
            help="A: zero-padding identity, B: projection where "
            "shapes change, C: projection everywhere (the paper's options)",
        ),
    )
    residual: bool = field(
        default=True,
        metadata=describe(
            "add the shortcut; false: the same network without it (a plain net)"
        ),
    )
    preact: bool = field(
        default=False,
        metadata=describe(
            "pre-activation blocks (BN-ReLU-conv) instead of the original ones"
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
        if len(self.blocks) != len(self.widths):
            raise ConfigError(
                f"blocks={_csv(self.blocks)} and "
                f"widths={_csv(self.widths)} need one entry per stage"
            )

    @classmethod
    def depth(cls, depth: int, **fields) -> "ResNetSpec":
        """The paper's CIFAR ResNet-(6n+2): n basic blocks in each of 3 stages of
        16, 32, 64 channels, option A shortcuts (``fields`` override)."""
        return cls(**{**cifar_depth_kwargs(depth), **fields})

    def build(self, mean=None, std=None) -> ResNet:
        if self.normalize:  # placeholders until the data's (or a state_dict's)
            mean = [0.5] * 3 if mean is None else [float(v) for v in mean]
            std = [0.25] * 3 if std is None else [float(v) for v in std]
        else:
            mean = std = None
        return ResNet(
            list(self.blocks),
            list(self.widths),
            self.block,
            "cifar",
            self.num_classes,
            shortcut=self.shortcut,
            residual=self.residual,
            preact=self.preact,
            mean=mean,
            std=std,
        )


def _csv(values) -> str:
    return ",".join(map(str, values))


# ---- counting ------------------------------------------------------------------------
def weighted_layers(model: nn.Module) -> int:
    """Convolutions and linear layers on the longest path: the "depth" in a
    network's name (ResNet-20 has 19 convolutions and one linear layer).
    Projection shortcuts run beside a block, so they are not counted."""
    n = 0
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and ".shortcut" not in name:
            n += 1
    return n
