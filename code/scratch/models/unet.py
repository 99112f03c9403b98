r"""U-Net (Ronneberger, Fischer & Brox, 2015) from ``torch.nn`` layers, and the
losses and metrics of binary segmentation.

Two networks:

- :class:`UNet2015`, the paper's network: unpadded ("valid") 3x3 convolutions,
  so every convolution shrinks a map by 2 pixels; 64 to 1024 channels over five
  levels; 2x2 max-pooling on the way down, 2x2 "up-convolutions" (transposed
  convolutions of stride 2) on the way up, and skip connections that crop the
  encoder's larger maps to the decoder's size before concatenating them. A
  572x572 tile gives a 388x388 map of class scores; 31,030,658 parameters for
  one input channel and two classes.
- :class:`UNet`, the version people train today and the one this book trains:
  padded ("same") convolutions, so the output has the input's size and no
  cropping is needed, optional BatchNorm, a configurable base width and depth,
  and a choice of learned (``"transpose"``) or fixed (``"bilinear"``)
  upsampling. ``skips=False`` removes the skip connections, to show what they
  are for.

Losses and metrics take logits ``(B, 1, H, W)`` and float masks of the same
shape with 1 = foreground: soft Dice and soft IoU (Jaccard) losses, binary
cross-entropy, their sum, and the hard Dice and IoU of thresholded predictions.

Chapter: "U-Net and segmentation" (book/vision/unet.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..config import choice, describe, field, positive
from .layers import Normalize, center_crop
from .spec import ModelSpec

# The paper's widths, level by level (Fig. 1 of the paper).
PAPER_WIDTHS = (64, 128, 256, 512, 1024)
# Its parameter count for one input channel and two classes, layer by layer in
# the chapter and the tests (the paper itself does not print a total).
PAPER_PARAMETERS = 31_030_658


def conv_block(c_in: int, c_out: int, padding: int, batch_norm: bool) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by (BatchNorm and) ReLU.

    ``padding=0`` is the paper's valid convolution (the map shrinks by 2 pixels
    each time); ``padding=1`` keeps the size. A convolution followed by
    BatchNorm gets no bias: BatchNorm's shift would cancel it.
    """
    layers = []
    for c in (c_in, c_out):
        layers.append(nn.Conv2d(c, c_out, 3, padding=padding, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet2015(nn.Module):
    r"""The paper's U-Net: tiles (B, C, H, W) -> class scores (B, K, H', W').

    With valid convolutions each level's two convolutions remove 4 pixels, so
    the output is smaller than the input: 572 -> 388 for the paper's tile (see
    :meth:`output_size`). The decoder's maps are smaller than the encoder's maps
    at the same level, so each skip connection crops the encoder map to the
    decoder's size before the two are concatenated along the channels.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, widths=PAPER_WIDTHS):
        super().__init__()
        widths = tuple(widths)
        self.widths = widths
        ins = (in_channels,) + widths[:-2]
        self.down = nn.ModuleList(
            conv_block(c, w, 0, False) for c, w in zip(ins, widths[:-1])
        )
        self.pool = nn.MaxPool2d(2)
        self.bottom = conv_block(widths[-2], widths[-1], 0, False)
        # Going up: a 2x2 up-convolution halves the channels and doubles the size,
        # then the cropped skip (as many channels again) is concatenated.
        pairs = list(zip(widths[:0:-1], widths[-2::-1]))  # (1024, 512), ..., (128, 64)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(big, small, 2, stride=2) for big, small in pairs
        )
        self.dec = nn.ModuleList(
            conv_block(2 * small, small, 0, False) for _, small in pairs
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)  # 1x1: a classifier per pixel

    @staticmethod
    def output_size(input_size: int, depth: int = 4) -> int:
        """Output height (or width) for an input of ``input_size`` pixels.

        Raises ValueError when some 2x2 max-pooling would see an odd size: the
        paper picks its tile sizes so that this never happens.
        """
        size = input_size
        for level in range(depth):
            size -= 4  # two valid 3x3 convolutions
            if size <= 0 or size % 2:
                raise ValueError(
                    f"input size {input_size}: level {level + 1} gives a {size}-pixel "
                    "map; "
                    "2x2 max-pooling needs an even size > 0"
                )
            size //= 2
        size -= 4  # the bottom level
        if size <= 0:
            raise ValueError(f"input size {input_size} is too small for depth {depth}")
        for _ in range(depth):
            size = 2 * size - 4  # up-convolution, then two convolutions
            if size <= 0:
                raise ValueError(
                    f"input size {input_size} is too small: the decoder runs out of "
                    "pixels"
                )
        return size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)  # (B, w, H - 4, W - 4)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, block, skip in zip(self.up, self.dec, reversed(skips)):
            x = up(x)  # (B, w, 2h, 2w): fewer channels, twice the size
            skip = center_crop(skip, x.shape[-2], x.shape[-1])
            x = block(torch.cat([skip, x], dim=1))
        return self.head(x)


class Upsample(nn.Module):
    """Double the size of maps and map ``c_in`` channels to ``c_out``.

    ``"transpose"``: a learned 2x2 transposed convolution of stride 2 (the
    paper's up-convolution): every input pixel paints its own 2x2 block of the
    output with a learned kernel. ``"bilinear"``: fixed bilinear interpolation,
    then a 1x1 convolution to change the number of channels (Odena et al.'s
    "resize-convolution", with the 3x3 convolutions that follow doing the
    spatial mixing).
    """

    def __init__(self, c_in: int, c_out: int, mode: str = "transpose"):
        super().__init__()
        if mode == "transpose":
            self.layers = nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
        elif mode == "bilinear":
            self.layers = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(c_in, c_out, 1),
            )
        else:
            raise ValueError(f"up={mode!r}: choose 'transpose' or 'bilinear'")
        self.mode = mode

    def forward(self, x):
        return self.layers(x)


class UNet(nn.Module):
    r"""A U-Net with padded convolutions: images (B, C, H, W) in [0, 1] ->
    logits (B, K, H, W), the input's size.

    ``width`` channels at the top level, doubled at each of ``depth`` levels
    down (``width=64, depth=4`` are the paper's 64..1024); H and W must be
    divisible by ``2**depth``. ``mean``/``std`` standardise the input inside the
    model (per channel). ``skips=False`` drops the skip connections: the decoder
    then sees only what came up through the bottleneck.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        width: int = 32,
        depth: int = 4,
        batch_norm: bool = True,
        up: str = "transpose",
        skips: bool = True,
        mean=None,
        std=None,
    ):
        super().__init__()
        self.depth, self.skips = depth, skips
        widths = [width * 2**i for i in range(depth + 1)]
        self.normalize = Normalize(
            [0.5] * in_channels if mean is None else mean,
            [0.25] * in_channels if std is None else std,
        )
        ins = [in_channels] + widths[:-2]
        self.down = nn.ModuleList(
            conv_block(c, w, 1, batch_norm) for c, w in zip(ins, widths[:-1])
        )
        self.pool = nn.MaxPool2d(2)
        self.bottom = conv_block(widths[-2], widths[-1], 1, batch_norm)
        pairs = list(zip(widths[:0:-1], widths[-2::-1]))
        self.up = nn.ModuleList(Upsample(big, small, up) for big, small in pairs)
        self.dec = nn.ModuleList(
            conv_block((2 if skips else 1) * small, small, 1, batch_norm)
            for _, small in pairs
        )
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % 2**self.depth or x.shape[-1] % 2**self.depth:
            raise ValueError(
                f"UNet of depth {self.depth}: height and width must be divisible by "
                f"{2**self.depth}, got {tuple(x.shape[-2:])}"
            )
        x = self.normalize(x)
        skips = []
        for block in self.down:
            x = block(x)  # (B, w, H, W): same padding keeps the size
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, block, skip in zip(self.up, self.dec, reversed(skips)):
            x = up(x)
            x = block(torch.cat([skip, x], dim=1) if self.skips else x)
        return self.head(x)


def unet_parameters(
    in_channels: int = 3,
    num_classes: int = 1,
    width: int = 32,
    depth: int = 4,
    batch_norm: bool = True,
    up: str = "transpose",
    skips: bool = True,
    valid: bool = False,
) -> int:
    """The parameter count of a U-Net from the formulas, layer by layer (no model
    built).

    A k x k convolution from c to c' channels has ``c' (c k^2 + 1)`` parameters
    (no bias before BatchNorm, which adds 2 c'); a 2x2 transposed convolution has
    ``c' (4 c + 1)``; bilinear upsampling with a 1x1 convolution ``c' (c + 1)``.
    ``valid=True`` counts :class:`UNet2015` (no BatchNorm, transposed convolutions).
    """

    def conv(c, c2, k=3):
        return c2 * (c * k * k + (0 if batch_norm else 1)) + (
            2 * c2 if batch_norm else 0
        )

    if valid:
        batch_norm, up, skips = False, "transpose", True
    widths = [width * 2**i for i in range(depth + 1)]
    total, c = 0, in_channels
    for w in widths:  # encoder and bottom
        total += conv(c, w) + conv(w, w)
        c = w
    for big, small in zip(widths[:0:-1], widths[-2::-1]):  # decoder
        total += small * (4 * big + 1) if up == "transpose" else small * (big + 1)
        total += conv((2 if skips else 1) * small, small) + conv(small, small)
    return total + num_classes * (widths[0] + 1)  # the 1x1 head


# ---- losses and metrics --------------------------------------------------------------
def _sums(probs: torch.Tensor, target: torch.Tensor):
    """Per image: sum of p*t, sum of p, sum of t (over channels and pixels)."""
    dims = tuple(range(1, probs.dim()))
    return (probs * target).sum(dims), probs.sum(dims), target.sum(dims)


def soft_dice(
    probs: torch.Tensor, target: torch.Tensor, eps: float = 1.0
) -> torch.Tensor:
    r"""Soft Dice of each image, (B,): :math:`(2\sum p t + \epsilon) / (\sum p + \sum t
    + \epsilon)`.

    ``eps`` keeps it defined (and equal to 1) when prediction and mask are both empty.
    """
    inter, p, t = _sums(probs, target)
    return (2 * inter + eps) / (p + t + eps)


def soft_iou(
    probs: torch.Tensor, target: torch.Tensor, eps: float = 1.0
) -> torch.Tensor:
    r"""Soft IoU (Jaccard) of each image, (B,): :math:`(\sum p t + \epsilon) / (\sum p
    + \sum t - \sum p t + \epsilon)`."""
    inter, p, t = _sums(probs, target)
    return (inter + eps) / (p + t - inter + eps)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice of the predicted probabilities, averaged over the images."""
    return 1 - soft_dice(torch.sigmoid(logits.float()), target).mean()


def iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft IoU (the soft Jaccard loss), averaged over the images."""
    return 1 - soft_iou(torch.sigmoid(logits.float()), target).mean()


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of every pixel, averaged (computed from logits: stable)."""
    return F.binary_cross_entropy_with_logits(logits.float(), target)


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + Dice loss: per-pixel gradients from BCE, overlap from Dice."""
    return bce_loss(logits, target) + dice_loss(logits, target)


LOSSES = {
    "bce": bce_loss,
    "dice": dice_loss,
    "bce+dice": bce_dice_loss,
    "iou": iou_loss,
}


def scores(logits: torch.Tensor, target: torch.Tensor):
    """Hard Dice and IoU of each image, ``(dice (B,), iou (B,))``, for the mask
    ``logits > 0`` (probability > 0.5). An image whose prediction and mask are
    both empty scores 1: there was nothing to find and nothing was found."""
    pred = (logits > 0).float()
    inter, p, t = _sums(pred, target.float())
    union = p + t - inter
    empty = union == 0
    dice = torch.where(empty, 1.0, 2 * inter / (p + t).clamp_min(1))
    iou = torch.where(empty, 1.0, inter / union.clamp_min(1))
    return dice, iou


def dice_score(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Mean hard Dice over a batch (a metric for ``fit``/``evaluate``)."""
    return scores(logits, target)[0].mean().item()


def iou_score(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Mean hard IoU over a batch (a metric for ``fit``/``evaluate``)."""
    return scores(logits, target)[1].mean().item()


# ---- a segmentation task built from MNIST and CIFAR-10 -------------------------------
def paste_digits(
    backgrounds,
    digits,
    seed: int = 0,
    max_digits: int = 2,
    scale=(0.5, 0.9),
    max_angle: float = 25.0,
    threshold: float = 0.5,
):
    """Paste 1 to ``max_digits`` coloured MNIST digits onto each background image.

    ``backgrounds``: uint8 (N, 3, S, S); ``digits``: uint8 (M, 28, 28), drawn at
    random. Each digit's 28x28 box is scaled to a fraction ``scale`` of the
    image's side, rotated by up to ``max_angle`` degrees, placed at a random
    position inside the image, and painted in a random colour: dark on bright
    backgrounds, bright on dark ones (a digit of the background's colour would
    be invisible but still in the mask). All images are made at once: one
    ``affine_grid``/``grid_sample`` per digit slot, no Python loop over images.

    Returns uint8 images (N, 3, S, S) and uint8 masks (N, S, S), 1 where a
    digit's ink (its grey level, resampled) exceeds ``threshold``.
    """
    g = torch.Generator().manual_seed(seed)
    bg = torch.as_tensor(backgrounds).float() / 255  # (N, 3, S, S)
    ink = torch.as_tensor(digits).float()[:, None] / 255  # (M, 1, 28, 28)
    n, size = len(bg), bg.shape[-1]
    images, alpha = bg.clone(), torch.zeros(n, 1, size, size)
    luminance = (
        (bg * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1).mean((1, 2))
    )  # (N,)
    for k in range(max_digits):
        present = (
            torch.ones(n, dtype=torch.bool)
            if k == 0
            else torch.rand(n, generator=g) < 0.5
        )
        s = scale[0] + (scale[1] - scale[0]) * torch.rand(
            n, generator=g
        )  # box side / image side
        angle = (2 * torch.rand(n, generator=g) - 1) * max_angle * torch.pi / 180
        centre = (2 * torch.rand(n, 2, generator=g) - 1) * (1 - s)[
            :, None
        ]  # box stays inside
        # affine_grid maps output (image) coordinates u in [-1, 1] to input (digit)
        # coordinates v = A (u - t), with A = R(-angle) / s: the inverse of placing the
        # digit scaled by s, rotated by angle and moved to t.
        cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
        a = torch.stack(
            [torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1
        )  # (N, 2, 2)
        theta = torch.cat([a, -(a @ centre[:, :, None])], dim=2)  # (N, 2, 3)
        grid = F.affine_grid(theta, (n, 1, size, size), align_corners=False)
        pick = torch.randint(len(ink), (n,), generator=g)
        a_k = (
            F.grid_sample(ink[pick], grid, align_corners=False)
            * present[:, None, None, None]
        )
        colour = torch.rand(n, 3, generator=g)
        colour = torch.where(
            luminance[:, None] > 0.5, 0.45 * colour, 0.55 + 0.45 * colour
        )
        images = images * (1 - a_k) + colour[:, :, None, None] * a_k  # paint over
        alpha = torch.maximum(alpha, a_k)
    images = (images * 255).round().clamp(0, 255).to(torch.uint8)
    masks = (alpha[:, 0] > threshold).to(torch.uint8)
    return images.numpy(), masks.numpy()


@dataclass
class UNetSpec(ModelSpec):
    """The padded U-Net's choices: ``UNetSpec(width=16, depth=3).build(mean, std)``."""

    in_channels: int = field(default=3, metadata=positive("image channels"))
    num_classes: int = field(
        default=1, metadata=positive("output maps: 1 for a binary mask")
    )
    width: int = field(
        default=64,
        metadata=positive(
            "channels of the top level, doubled at each level down: 64 is the "
            "paper's (64 ... 1024)"
        ),
    )
    depth: int = field(
        default=4,
        metadata=positive(
            "number of 2x2 poolings: the paper's 4. Each one doubles the "
            "receptive field's reach and divides the map's side by 2"
        ),
    )
    batch_norm: bool = field(
        default=True,
        metadata=describe(
            "BatchNorm after every convolution: not in the 2015 paper, but it "
            "makes a U-Net train fast at a high learning rate"
        ),
    )
    up: str = field(
        default="transpose",
        metadata=choice(
            "transpose",
            "bilinear",
            help="upsampling: the paper's learned 2x2 "
            "up-convolution, or bilinear + 1x1 convolution",
        ),
    )
    skips: bool = field(
        default=True,
        metadata=describe(
            "skip connections; false: the decoder sees only the bottleneck"
        ),
    )

    def build(self, mean=None, std=None) -> UNet:
        return UNet(
            self.in_channels,
            self.num_classes,
            self.width,
            self.depth,
            batch_norm=self.batch_norm,
            up=self.up,
            skips=self.skips,
            mean=mean,
            std=std,
        )
