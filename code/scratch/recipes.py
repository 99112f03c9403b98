"""Optimizer, schedule and loss helpers of the vision training recipes.

Thin, explicit wrappers over ``torch.optim``: the chapters explain the ideas, these
keep the recipe identical wherever it is used.

Chapter: "AlexNet: deep CNNs on GPUs" (book/vision/alexnet.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)

__all__ = [
    "param_groups",
    "sgd",
    "one_cycle",
    "step_lr",
    "cross_entropy",
    "tensor_loader",
    "as_unit_tensor",
]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups: weights with weight decay, everything else without.

    Weight decay is meant to keep the *weights* small. Biases and the scale and
    shift of normalisation layers (1-D tensors) are not what overfits, and decaying
    a BatchNorm scale only changes the effective learning rate of the layer before
    it, so they get none. The split is by shape: tensors with more than one
    dimension (conv kernels, linear weights) are decayed.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def sgd(
    model: nn.Module,
    lr: float,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 5e-4,
) -> torch.optim.SGD:
    """SGD with (Nesterov) momentum and weight decay on the weights only."""
    return torch.optim.SGD(
        param_groups(model, weight_decay),
        lr=lr,
        momentum=momentum,
        nesterov=nesterov and momentum > 0,
    )


def one_cycle(
    optimizer: torch.optim.Optimizer,
    max_lr: float,
    total_steps: int,
    pct_start: float = 0.25,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> torch.optim.lr_scheduler.OneCycleLR:
    """The one-cycle schedule (Smith & Topin, 2019), stepped after every batch.

    The rate rises from ``max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start`` of the steps and anneals (cosine) to nearly zero; momentum moves
    the opposite way. Pass ``total_steps = epochs * len(train_loader)`` (divided by
    ``grad_accum``) and ``fit(..., scheduler_interval="step")``.
    """
    # PyTorch divides by (pct_start * total_steps - 1) and by the steps of the
    # second phase: both must be at least one step, which very short (test) runs
    # are not. Those get a longer schedule than they will use.
    shortest = math.ceil(2 / min(pct_start, 1 - pct_start)) + 1
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=max(total_steps, shortest),
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )


def step_lr(
    optimizer: torch.optim.Optimizer, milestones, gamma: float = 0.1
) -> torch.optim.lr_scheduler.MultiStepLR:
    """Divide the rate by ``1/gamma`` at each milestone (the ResNet paper's recipe:
    /10 at 32k and 48k iterations). Milestones count ``scheduler.step()`` calls:
    epochs with ``scheduler_interval="epoch"``, batches with ``"step"``."""
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(milestones), gamma=gamma
    )


def cross_entropy(label_smoothing: float = 0.0):
    """A cross-entropy loss ``(logits, targets) -> loss`` with label smoothing.

    ``targets`` are class indices ``(B,)`` or class probabilities ``(B, K)`` (from
    mixup). Label smoothing (Szegedy et al., 2016) trains towards
    ``(1 - s) * onehot + s / K`` instead of the one-hot target, so the network
    stops pushing its logits apart once it is confidently right.
    """
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), not {label_smoothing}")

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)

    loss.label_smoothing = label_smoothing
    return loss


def tensor_loader(x, y, batch_size: int, shuffle: bool) -> DataLoader:
    """Batches of (x[idx], y[idx]) indexed at once from two tensors.

    Indexing a whole batch of a tensor is much faster than collating images one by
    one; training batches are shuffled and drop the last partial batch, evaluation
    batches keep every example in order.
    """
    dataset = TensorDataset(x, y)
    order = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=BatchSampler(order, batch_size, drop_last=shuffle),
    )


def as_unit_tensor(images, channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1], optionally NHWC in memory."""
    x = torch.from_numpy(images).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
