"""Small layers shared by the vision models.

Chapter: "U-Net and segmentation" (book/vision/unet.md).
"""

from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    """Standardise images per channel inside the model: ``(x - mean) / std``.

    Putting the statistics in the model (as buffers, saved in its ``state_dict``)
    lets it take images in [0, 1]: the range that augmentation, attacks that
    clip to valid images, and new photographs all live in.
    """

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer(
            "mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer(
            "std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"channels={self.mean.numel()}"


def center_crop(x: torch.Tensor, height: int, width: int | None = None) -> torch.Tensor:
    """The central ``height x width`` window (``width`` defaults to ``height``) of
    images or maps (..., H, W): AlexNet's test-time crop of a photo, and the U-Net
    paper's crop of an encoder map to the size of the (smaller) decoder map."""
    width = height if width is None else width
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]
