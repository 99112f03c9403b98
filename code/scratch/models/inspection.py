"""Model inspection: how big a network is and how much arithmetic one forward pass does.

One place for what papers report about a model (parameters per layer, multiply-adds,
which the ResNet paper calls FLOPs), so that every chapter counts the same way:
LeNet-5 and AlexNet compare their layers with the papers' tables, ResNet its
Table 1, U-Net and the later Transformer chapters their totals. Introduced in the
chapter "LeNet-5" (book/vision/lenet.md); `multiply_adds` in "AlexNet".
In practice `torchinfo.summary` and `fvcore`'s FLOP counter do the same.

Chapter: "LeNet-5: convolutional networks" (book/vision/lenet.md).
"""

from __future__ import annotations

import torch
from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters: what papers report as a model's size."""
    return sum(
        p.numel() for p in model.parameters() if p.requires_grad or not trainable_only
    )


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable parameters of each top-level layer (those with any)."""
    counts = {name: count_parameters(child) for name, child in model.named_children()}
    return {name: n for name, n in counts.items() if n}


def multiply_adds(
    model: nn.Module, input_size: int | tuple[int, ...] | None = None
) -> dict[str, int]:
    """Multiply-adds of one forward pass of one image, per convolution and linear layer.

    ``input_size``: the shape of the one-image batch, ``(1, C, H, W)``; an int ``s``
    means ``(1, 3, s, s)``; None takes the model's own ``input_size`` attribute.
    Keys are the layers' names in ``model.named_modules()`` (``"conv1"``,
    ``"layer1.0.conv2"``).

    Counted from each layer's definition and output size, captured by forward hooks:
    a convolution does ``C_in / groups * k_h * k_w`` multiply-adds per output value,
    a linear layer ``in_features`` per output. Normalization, pooling, activations and
    additions are left out, as in the papers (a few percent at most). The pass runs on
    the model's device, so a model built on the ``"meta"`` device (shapes, no data)
    is counted in milliseconds.
    """
    size = model.input_size if input_size is None else input_size
    shape = (1, 3, size, size) if isinstance(size, int) else tuple(size)
    counts: dict[str, int] = {}

    def hook(name):
        def record(module, inputs, output):
            per_output = (
                module.weight[0].numel()
                if isinstance(module, nn.Conv2d)
                else module.in_features
            )
            counts[name] = (
                counts.get(name, 0) + per_output * output[0].numel()
            )  # output[0]: one image

        return record

    handles = [
        m.register_forward_hook(hook(name))
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(shape, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return counts
