"""Small layers shared by the vision models."""
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
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"channels={self.mean.numel()}"


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters: what papers report as a model's size."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
