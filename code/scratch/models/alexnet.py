"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012), built from layers.

One class, :class:`AlexNet`, in two layouts:

- ``"imagenet"``: the paper's network for 224x224 photographs (227x227 here, the
  size that makes the paper's own layer sizes come out: see the chapter): conv
  96@11x11/4, LRN, overlapping max-pool 3/2, conv 256@5x5, LRN, pool, conv
  384@3x3, 384@3x3, 256@3x3, pool, then fully connected 4096-4096-classes with
  dropout. ``two_towers=True`` splits conv2, conv4 and conv5 into two groups,
  as the paper's two GPUs did: 60,965,224 parameters for 1,000 classes.
- ``"cifar"``: the same ideas (ReLU, LRN, overlapping pooling, dropout, two
  towers) scaled to 32x32 CIFAR-10 images and to a CPU's budget.

:class:`LocalResponseNorm` is the paper's normalisation written out. The model
standardises its input itself (:class:`~scratch.models.layers.Normalize` first),
so it takes images in [0, 1].

Chapter: "AlexNet: deep CNNs on GPUs" (book/vision/alexnet.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import choice, describe, field, in_range, positive
from .layers import Normalize
from .spec import ModelSpec

# The paper's constants for LRN (Section 3.3), chosen there on a validation set.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0

# Layer sizes of the two layouts. ``pool_padding`` keeps the CIFAR maps at
# 16 -> 8 -> 4 with overlapping (3/2) and non-overlapping (2/2) pooling alike, so
# the two variants have the same shapes and parameters and can be compared.
LAYOUTS = {
    "imagenet": dict(
        input_size=227,
        conv1=(11, 4, 0),
        conv2_kernel=5,
        widths=(96, 256, 384, 384, 256),
        hidden=4096,
        pool_padding=0,
    ),
    "cifar": dict(
        input_size=32,
        conv1=(5, 1, 2),
        conv2_kernel=5,
        widths=(32, 64, 96, 96, 64),
        hidden=512,
        pool_padding=1,
    ),
}

# The paper's parameter count, derived layer by layer for 1,000 classes
# (kernel height * width * input channels seen by one kernel + 1 bias, times kernels).
# conv2, conv4 and conv5 see only the maps on their own GPU (half the channels);
# conv3 and the fully connected layers see both GPUs' maps.
PAPER_PARAMETERS = {
    "conv1": 96 * (11 * 11 * 3 + 1),  # 34,944
    "conv2": 256 * (5 * 5 * 48 + 1),  # 307,456
    "conv3": 384 * (3 * 3 * 256 + 1),  # 885,120
    "conv4": 384 * (3 * 3 * 192 + 1),  # 663,936
    "conv5": 256 * (3 * 3 * 192 + 1),  # 442,624
    "fc6": 4096 * (256 * 6 * 6 + 1),  # 37,752,832
    "fc7": 4096 * (4096 + 1),  # 16,781,312
    "fc8": 1000 * (4096 + 1),  # 4,097,000
}


class LocalResponseNorm(nn.Module):
    """The paper's local response normalisation across channels (Section 3.3).

    ``b[i] = a[i] / (k + alpha * sum_{j = i - n//2}^{i + n//2} a[j]^2) ** beta``,
    the sum running over the ``n`` neighbouring channels at the same position
    (clipped at the first and last channel). PyTorch's ``nn.LocalResponseNorm``
    divides its ``alpha`` by ``n``: ours with ``alpha`` equals torch's with
    ``alpha * n``.
    """

    def __init__(
        self,
        size: int = LRN_SIZE,
        alpha: float = LRN_ALPHA,
        beta: float = LRN_BETA,
        k: float = LRN_K,
    ):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, a: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        # In float32 even under bf16 autocast: bf16 keeps 8 significant bits, so
        # k + alpha * sum = 2 + 0.0005 would round to 2 and the layer would do nothing.
        x = a if a.dtype in (torch.float32, torch.float64) else a.float()
        c = x.shape[1]
        # Zero channels before the first and after the last one: the sum is then
        # the paper's clipped sum. F.pad's last pair of numbers pads dimension 1.
        sq = F.pad(x.square(), (0, 0, 0, 0, self.size // 2, (self.size - 1) // 2))
        window = sum(sq[:, j : j + c] for j in range(self.size))  # (B, C, H, W)
        return (x / (self.k + self.alpha * window).pow(self.beta)).to(a.dtype)

    def extra_repr(self) -> str:
        return f"n={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class AlexNet(nn.Module):
    """AlexNet; see the module docstring for the layouts.

    ``two_towers``: conv2, conv4 and conv5 in two groups (the paper's two GPUs).
    ``lrn``, ``overlap`` (3/2 instead of 2/2 max-pooling), ``dropout`` (0 = none)
    and ``act`` ("relu" or "tanh") switch the paper's ideas on and off for the
    experiments. ``init``: "he" (N(0, 2/fan_in), biases 0; the output layer
    N(0, 0.01^2)) or "paper" (N(0, 0.01^2) everywhere, biases 1 in conv2, conv4,
    conv5, fc6 and fc7).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        layout: str = "imagenet",
        *,
        two_towers: bool = True,
        lrn: bool = True,
        overlap: bool = True,
        dropout: float = 0.5,
        act: str = "relu",
        init: str = "he",
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    ):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, not {layout!r}")
        if act not in ("relu", "tanh"):
            raise ValueError(f"act must be 'relu' or 'tanh', not {act!r}")
        spec = LAYOUTS[layout]
        self.layout, self.input_size = layout, spec["input_size"]
        c1, c2, c3, c4, c5 = spec["widths"]
        g = 2 if two_towers else 1
        k1, s1, p1 = spec["conv1"]
        k2 = spec["conv2_kernel"]
        self.norm = Normalize(mean, std)  # [0, 1] images in, standardised inside
        self.conv1 = nn.Conv2d(3, c1, k1, stride=s1, padding=p1)
        self.lrn1 = LocalResponseNorm() if lrn else nn.Identity()
        self.conv2 = nn.Conv2d(c1, c2, k2, padding=k2 // 2, groups=g)
        self.lrn2 = LocalResponseNorm() if lrn else nn.Identity()
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)  # sees both towers
        self.conv4 = nn.Conv2d(c3, c4, 3, padding=1, groups=g)
        self.conv5 = nn.Conv2d(c4, c5, 3, padding=1, groups=g)
        window, stride = (3, 2) if overlap else (2, 2)
        pad = spec["pool_padding"] if overlap else 0
        self.pool = nn.MaxPool2d(
            window, stride, padding=pad
        )  # no parameters: one is enough
        side = self._side(self.input_size)
        self.fc6 = nn.Linear(c5 * side * side, spec["hidden"])
        self.fc7 = nn.Linear(spec["hidden"], spec["hidden"])
        self.fc8 = nn.Linear(spec["hidden"], num_classes)
        self.drop = nn.Dropout(dropout)
        self.act = nn.ReLU() if act == "relu" else nn.Tanh()
        self.reset_parameters(init)

    def _side(self, size: int) -> int:
        """Height of conv5's pooled maps for a square input of ``size`` pixels."""

        def out(n, k, s, p):
            return (n + 2 * p - k) // s + 1

        n = out(
            size, self.conv1.kernel_size[0], self.conv1.stride[0], self.conv1.padding[0]
        )
        k, s, p = self.pool.kernel_size, self.pool.stride, self.pool.padding
        for _ in range(
            3
        ):  # after conv1, conv2 and conv5 (the convs in between keep the size)
            n = out(n, k, s, p)
        return n

    def reset_parameters(self, init: str = "he") -> None:
        if init not in ("he", "paper"):
            raise ValueError(f"init must be 'he' or 'paper', not {init!r}")
        ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}  # the paper's bias-1 layers
        with torch.no_grad():
            for name, m in self.named_children():
                if not isinstance(m, (nn.Conv2d, nn.Linear)):
                    continue
                if init == "paper":
                    # Positive biases give ReLUs positive inputs early on (Section 5).
                    m.weight.normal_(0.0, 0.01)
                    m.bias.fill_(1.0 if name in ones else 0.0)
                elif name == "fc8":
                    # Small logits: the first predictions are near uniform (loss log K),
                    # whatever the scale of the features below, so the first steps are
                    # tame.
                    m.weight.normal_(0.0, 0.01)
                    m.bias.zero_()
                else:
                    # He et al. (2015): keeps the activations' scale through ReLU layers
                    # of any width; the paper's fixed 0.01 suited its 0-255 pixels.
                    m.weight.normal_(0.0, math.sqrt(2.0 / m.weight[0].numel()))
                    m.bias.zero_()

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every stage's output, for shapes and pictures (eval mode: no dropout
        noise)."""
        out = {}
        x = self.norm(x)
        out["conv1"] = x = self.act(self.conv1(x))  # imagenet: (B, 96, 55, 55)
        out["pool1"] = x = self.pool(self.lrn1(x))  # (B, 96, 27, 27)
        out["conv2"] = x = self.act(self.conv2(x))  # (B, 256, 27, 27)
        out["pool2"] = x = self.pool(self.lrn2(x))  # (B, 256, 13, 13)
        out["conv3"] = x = self.act(self.conv3(x))  # (B, 384, 13, 13)
        out["conv4"] = x = self.act(self.conv4(x))  # (B, 384, 13, 13)
        out["conv5"] = x = self.act(self.conv5(x))  # (B, 256, 13, 13)
        out["pool5"] = x = self.pool(x)  # (B, 256, 6, 6)
        out["fc6"] = x = self.act(self.fc6(x.flatten(1)))  # (B, 4096)
        out["fc7"] = x = self.act(self.fc7(self.drop(x)))  # (B, 4096)
        out["fc8"] = self.fc8(self.drop(x))  # (B, classes) logits
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ValueError(
                f"this {self.layout} AlexNet takes {self.input_size}x"
                f"{self.input_size} images, got {tuple(x.shape[-2:])}"
                + (
                    " (crop 227, not 224: see the chapter)"
                    if x.shape[-1] == 224
                    else ""
                )
            )
        return self.features(x)["fc8"]


# ---- data helpers for the 224-pixel layout ------------------------------------------
def rgb_pca(images: torch.Tensor, max_pixels: int = 1_000_000, seed: int = 0):
    """Eigenvalues (3,) and eigenvectors (3, 3, columns) of the RGB covariance of
    ``images`` (N, 3, H, W) in [0, 1], estimated on at most ``max_pixels`` pixels."""
    pixels = images.permute(0, 2, 3, 1).reshape(-1, 3).double()
    if len(pixels) > max_pixels:
        g = torch.Generator().manual_seed(seed)
        pixels = pixels[torch.randint(len(pixels), (max_pixels,), generator=g)]
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(pixels.T))
    return eigenvalues.float(), eigenvectors.float()


def pca_lighting(
    x: torch.Tensor,
    eigenvalues: torch.Tensor,
    eigenvectors: torch.Tensor,
    sigma: float = 0.1,
) -> torch.Tensor:
    """The paper's colour augmentation (Section 4.1): add to every pixel of an image
    ``sum_i alpha_i * sqrt(lambda_i) * p_i`` with ``alpha_i ~ N(0, sigma^2)`` drawn once
    per image, ``lambda_i``, ``p_i`` the RGB covariance's eigenvalues and eigenvectors.

    The paper writes ``lambda_i``; its square root, the standard deviation along
    ``p_i``, has the pixels' units, so the shift does not depend on whether pixels
    run to 1 or to 255 (re-implementations use it the same way)."""
    scale = eigenvalues.clamp_min(0).sqrt().to(x.device)  # (3,)
    alpha = torch.randn(x.shape[0], 3, device=x.device) * sigma  # (B, 3)
    shift = (alpha * scale) @ eigenvectors.to(x.device).T  # (B, 3) RGB
    return (x + shift[:, :, None, None]).clamp(0, 1)


@dataclass
class AlexNetSpec(ModelSpec):
    """AlexNet's choices, each one of the paper's ideas that a chapter switches
    on and off: ``AlexNetSpec(layout="cifar").build(mean, std)``."""

    layout: str = field(
        default="imagenet",
        metadata=choice(
            *LAYOUTS,
            help="imagenet: the paper's 224-pixel network; cifar: the "
            "same design scaled to 32x32 images",
        ),
    )
    num_classes: int = field(default=1000, metadata=positive("output classes"))
    two_towers: bool = field(
        default=True,
        metadata=describe(
            "conv2, conv4, conv5 in two groups, as on the paper's two GPUs"
        ),
    )
    lrn: bool = field(
        default=True,
        metadata=describe("local response normalisation after conv1 and conv2"),
    )
    overlap: bool = field(
        default=True,
        metadata=describe(
            "overlapping 3x3 max-pooling with stride 2 (false: 2x2, stride 2)"
        ),
    )
    dropout: float = field(
        default=0.5,
        metadata=in_range(
            0, 1, "dropout probability in fc6 and fc7: the paper's 0.5", high_open=True
        ),
    )
    act: str = field(
        default="relu",
        metadata=choice(
            "relu", "tanh", help="the non-linearity (the paper's Figure 1 compares)"
        ),
    )
    init: str = field(
        default="he",
        metadata=choice(
            "he", "paper", help="he: N(0, 2/fan_in); paper: N(0, 0.01^2), some biases 1"
        ),
    )

    def build(self, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)) -> AlexNet:
        return AlexNet(
            self.num_classes,
            self.layout,
            two_towers=self.two_towers,
            lrn=self.lrn,
            overlap=self.overlap,
            dropout=self.dropout,
            act=self.act,
            init=self.init,
            mean=mean,
            std=std,
        )
