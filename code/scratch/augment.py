"""Batched data augmentation that runs wherever the batch is (CPU or GPU).

Per-image transforms in a ``Dataset`` run in Python, one image at a time, on the
CPU; on a GPU that trains a small network in seconds per epoch they become the
bottleneck. These functions take a whole batch ``(B, C, H, W)`` and draw an
independent random transform for every image with a few tensor operations, on the
batch's device. ``fit(..., batch_transform=Augment(...))`` applies them to each
training batch after it has been moved to the device.

Random numbers come from torch's global generator (seeded by
``scratch.utils.seed_everything`` and saved in ``fit``'s checkpoints), so
augmented runs are reproducible and resume exactly.

``torchvision.transforms.v2`` is used where it fits a batch: its ``MixUp`` mixes
whole batches. Its crop, flip, erasing and colour-jitter transforms draw *one*
random choice per call, which would give every image of a batch the same crop (or
the same brightness), so those four are written here.

Chapter: "AlexNet: deep CNNs on GPUs" (book/vision/alexnet.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

__all__ = [
    "random_crop",
    "random_flip",
    "cutout",
    "brightness_contrast",
    "color_jitter",
    "MixUp",
    "Augment",
]

# ITU-R 601 luma weights of R, G, B: torchvision's rgb_to_grayscale, which its
# adjust_contrast uses for the mean grey level.
LUMA = (0.2989, 0.587, 0.114)


def random_crop(
    x: torch.Tensor,
    padding: int = 4,
    mode: str = "reflect",
    size: int | tuple[int, int] | None = None,
) -> torch.Tensor:
    """Pad every image by ``padding`` pixels and cut out a random window of each.

    ``size`` is the output size (default: the input's, so the images move by up to
    ``padding`` pixels). ``mode`` is ``F.pad``'s: ``"reflect"`` mirrors the border,
    which adds no artificial black edges; ``"constant"`` pads with zeros.
    """
    b, _, h, w = x.shape
    if padding:
        x = F.pad(x, (padding,) * 4, mode=mode)
    oh, ow = (
        (h, w) if size is None else ((size, size) if isinstance(size, int) else size)
    )
    ph, pw = x.shape[-2:]
    if oh > ph or ow > pw:
        raise ValueError(
            f"crop size {(oh, ow)} is larger than the padded image {(ph, pw)}"
        )
    top = torch.randint(0, ph - oh + 1, (b,), device=x.device)
    left = torch.randint(0, pw - ow + 1, (b,), device=x.device)
    rows = (top[:, None] + torch.arange(oh, device=x.device))[:, :, None]  # (B, oh, 1)
    cols = (left[:, None] + torch.arange(ow, device=x.device))[:, None, :]  # (B, 1, ow)
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indexing on dims 0, 2, 3 gathers every image's own window at once;
    # the result is (B, oh, ow, C), channels moved back to dim 1.
    return x.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    flip = torch.rand(x.shape[0], device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, size: int = 8, fill: float | None = None) -> torch.Tensor:
    """Blank one ``size`` x ``size`` square per image (DeVries & Taylor, 2017).

    The square's centre is uniform over the image, so near the border only part of
    it lands inside. ``fill`` defaults to the batch's per-channel mean: neutral
    for raw [0, 1] images and for standardised ones alike.
    """
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b, 1, 1), device=x.device)
    cx = torch.randint(0, w, (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    lo_y, lo_x = cy - size // 2, cx - size // 2  # the square's top-left corner
    inside = (ys >= lo_y) & (ys < lo_y + size) & (xs >= lo_x) & (xs < lo_x + size)
    value = (
        x.mean(dim=(0, 2, 3), keepdim=True)
        if fill is None
        else torch.full_like(x[:1, :, :1, :1], fill)
    )
    return torch.where(inside[:, None], value.to(x.dtype), x)


def brightness_contrast(
    x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor
) -> torch.Tensor:
    """Scale each image's brightness, then its contrast, by its own factor.

    ``x`` (B, 3, H, W) in [0, 1]; ``brightness`` and ``contrast`` (B,) factors, 1 =
    unchanged. Brightness multiplies every value, ``b * x``; contrast moves every
    value away from (factor > 1) or towards (< 1) the image's mean grey level m,
    ``m + c * (x - m)``. Each step clips to [0, 1], as torchvision's
    ``adjust_brightness`` and ``adjust_contrast`` do, so an image stays valid.
    """
    x = (x * brightness.view(-1, 1, 1, 1).to(x)).clamp(0.0, 1.0)
    luma = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    grey = (x * luma).sum(dim=1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    c = contrast.view(-1, 1, 1, 1).to(x)
    return (c * x + (1 - c) * grey).clamp(0.0, 1.0)  # (B, 3, H, W)


def color_jitter(
    x: torch.Tensor, brightness: float = 0.2, contrast: float = 0.2
) -> torch.Tensor:
    """Random brightness and contrast per image, like torchvision's
    ``ColorJitter(brightness, contrast)`` but with a factor drawn for every image.

    The factors are uniform in ``[1 - brightness, 1 + brightness]`` and
    ``[1 - contrast, 1 + contrast]``; 0 switches one off. torchvision applies the
    two in a random order per call; here brightness always comes first (the
    difference is the clipping at 1 only).
    """
    b = x.shape[0]
    ones = torch.ones(b, device=x.device)
    lo_b, lo_c = 1 - brightness, 1 - contrast
    bf = lo_b + 2 * brightness * torch.rand(b, device=x.device) if brightness else ones
    cf = lo_c + 2 * contrast * torch.rand(b, device=x.device) if contrast else ones
    return brightness_contrast(x, bf, cf)


class MixUp:
    """mixup (Zhang et al., 2018): train on convex combinations of pairs of images.

    ``x' = lam x_i + (1 - lam) x_j`` with the targets mixed the same way,
    ``lam ~ Beta(alpha, alpha)`` once per batch. Returns soft targets
    ``(B, num_classes)``, which ``scratch.recipes.cross_entropy`` accepts.
    Uses ``torchvision.transforms.v2.MixUp``.
    """

    def __init__(self, alpha: float = 0.2, num_classes: int = 10):
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, not {alpha}")
        self.mix = v2.MixUp(alpha=alpha, num_classes=num_classes)

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        return self.mix(x, y)


class Augment:
    """Crop, flip, colour jitter, cutout and mixup in one callable
    ``(x, y) -> (x, y)``, in that order.

    The recipe of the vision chapters: ``Augment(crop=4, flip=True, cutout=8)``.
    Zero / False switches a transform off; ``brightness`` and ``contrast`` are
    :func:`color_jitter`'s ranges (images in [0, 1]); ``mixup > 0`` is mixup's
    alpha.
    """

    def __init__(
        self,
        crop: int = 4,
        flip: bool = True,
        cutout: int = 0,
        mixup: float = 0.0,
        num_classes: int = 10,
        mode: str = "reflect",
        brightness: float = 0.0,
        contrast: float = 0.0,
    ):
        self.crop, self.flip, self.cutout, self.mode = crop, flip, cutout, mode
        self.brightness, self.contrast = brightness, contrast
        self.mixup = MixUp(mixup, num_classes) if mixup > 0 else None

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        if self.crop:
            x = random_crop(x, self.crop, self.mode)
        if self.flip:
            x = random_flip(x)
        if self.brightness or self.contrast:
            x = color_jitter(x, self.brightness, self.contrast)
        if self.cutout:
            x = cutout(x, self.cutout)
        if self.mixup is not None:
            x, y = self.mixup(x, y)
        return x, y

    def __repr__(self) -> str:
        mix = f", mixup={self.mixup.mix.alpha}" if self.mixup else ""
        jitter = (
            f", brightness={self.brightness}, contrast={self.contrast}"
            if self.brightness or self.contrast
            else ""
        )
        return (
            f"Augment(crop={self.crop}, flip={self.flip}{jitter}, "
            f"cutout={self.cutout}{mix})"
        )
