r"""Adversarial attacks in the L-infinity ball: FGSM and PGD (iterative FGSM).

Every attack takes a classifier that maps images in [0, 1] to logits, a batch
``x`` (B, C, H, W) in [0, 1] with its labels ``y`` (B,), and a budget ``eps``,
and returns a batch ``x_adv`` with

* ``|x_adv - x| <= eps`` in every pixel (the L-infinity ball), and
* ``0 <= x_adv <= 1`` (still a valid image).

FGSM (Goodfellow, Shlens & Szegedy, 2015) takes one step of size ``eps`` along
the sign of the input gradient of the loss:

.. math:: x_{adv} = \mathrm{clip}_{[0,1]}\big(x + \epsilon\,
          \mathrm{sign}(\nabla_x \mathcal{L}(f(x), y))\big)

PGD (Madry et al., 2018) repeats smaller signed steps of size ``step_size``
and projects back onto the ball and the valid range after each one; with
``random_start`` it begins at a uniformly random point of the ball. Without
the random start it is the iterative FGSM of Kurakin, Goodfellow & Bengio
(2017). PGD with one step of size ``eps`` and no random start is FGSM.

The attacks differentiate with respect to the input only
(``torch.autograd.grad``), so they never touch the parameters' ``.grad``, and
they leave the model in the mode (train or eval) the caller put it in:
evaluate in eval mode; adversarial training (:class:`AdversarialBatches`)
crafts its examples in whatever mode ``fit`` has the model in.

Chapter: "Adversarial examples" (book/vision/adversarial.md).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn
from torch.nn import functional as F

from .train import AUTOCAST  # precision name -> autocast dtype, as fit uses it

__all__ = [
    "input_gradient",
    "fgsm",
    "pgd",
    "accuracy_under_attack",
    "AdversarialBatches",
]


def input_gradient(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable = F.cross_entropy,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of each example and its gradient with respect to the input.

    Returns ``(losses (B,), grad (B, C, H, W))``. The loss is summed over the
    batch before differentiating, so each example's gradient is its own
    (a mean would divide every gradient by B).
    """
    x = x.detach().clone().requires_grad_(True)
    losses = loss_fn(model(x), y, reduction="none")  # (B,)
    (grad,) = torch.autograd.grad(losses.sum(), x)
    return losses.detach(), grad


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Nearest point to ``x_adv`` that lies in the eps-ball around ``x`` and in [0, 1].

    Both sets are boxes, so their intersection is a box and the projection is a
    clamp per pixel: first to the ball, then to the valid range (the clean
    ``x`` lies in [0, 1], so the result stays in the ball too).
    """
    x_adv = torch.max(torch.min(x_adv, x + eps), x - eps)
    return x_adv.clamp(0.0, 1.0)


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    loss_fn: Callable = F.cross_entropy,
) -> torch.Tensor:
    """Fast gradient sign method: one step of ``eps`` along ``sign(grad_x loss)``,
    clipped to [0, 1]."""
    _, grad = input_gradient(model, x, y, loss_fn)
    return (x + eps * grad.sign()).clamp(0.0, 1.0).detach()


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 7,
    step_size: Optional[float] = None,
    random_start: bool = False,
    loss_fn: Callable = F.cross_entropy,
    generator: Optional[torch.Generator] = None,
    losses: Optional[list] = None,
) -> torch.Tensor:
    """Projected gradient ascent on the loss in the L-inf ball of radius ``eps``.

    ``step_size`` defaults to ``eps / 5``: after 5 steps a pixel can have
    crossed the whole ball, the other steps refine. ``random_start`` draws the
    starting point uniformly from the ball (``generator`` makes it repeatable).
    ``losses``, when a list is given, receives the per-example loss (B,) at the
    starting point and after every step: ``steps + 1`` tensors, the curve of
    the attack's progress (the one extra forward pass happens only then).
    """
    step_size = eps / 5 if step_size is None else step_size
    x = x.detach()
    x_adv = x
    if random_start:
        device = x.device if generator is None else generator.device
        noise = torch.rand(x.shape, generator=generator, device=device)  # U[0, 1)
        x_adv = _project(x + (2 * noise.to(x) - 1) * eps, x, eps)
    for _ in range(steps):
        loss, grad = input_gradient(model, x_adv, y, loss_fn)
        if losses is not None:
            losses.append(loss)  # the loss where this step starts
        x_adv = _project(x_adv + step_size * grad.sign(), x, eps)
    if losses is not None:
        with torch.no_grad():
            losses.append(loss_fn(model(x_adv), y, reduction="none").detach())
    return x_adv.detach()


@torch.no_grad()
def _correct(model, x, y):
    return (model(x).argmax(dim=1) == y).sum().item()


def accuracy_under_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Optional[Callable] = None,
    batch_size: int = 500,
    precision: str = "fp32",
    **kwargs,
) -> float:
    """Accuracy of ``model`` (in eval mode) on ``attack(model, x, y, **kwargs)``, batch
    by batch.

    ``attack=None`` gives the clean accuracy. ``precision`` ("fp32", "bf16",
    "fp16") is the autocast dtype the attack runs under; the predictions that
    are scored are always computed in full precision, so that a cheaper attack
    never changes what counts as correct. The model's mode is restored afterwards.
    """
    dtype = AUTOCAST[precision]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            if attack is not None:
                with torch.autocast(
                    device.type, dtype=dtype, enabled=dtype is not None
                ):
                    xb = attack(model, xb, yb, **kwargs)
            correct += _correct(model, xb, yb)
    finally:
        model.train(was_training)
    return correct / len(x)


class AdversarialBatches:
    """A ``batch_transform`` for :func:`scratch.train.fit` that replaces each
    training batch by adversarial examples against the model being trained.

    The default is "FGSM with a random start" (Wong, Rice & Kolter, 2020): one
    signed step of ``1.25 * eps`` from a uniformly random point of the ball,
    which costs one extra forward and backward pass per batch. ``steps=2,
    step_size=eps/2, random_start=False`` gives a PGD-2 attack instead.
    ``fraction`` < 1 attacks only the first part of each batch and keeps the
    rest clean, a common way to trade robustness for clean accuracy.
    ``precision="bf16"`` crafts the examples under bfloat16 autocast (``fit``
    calls the transform outside its own autocast): about twice as fast on
    recent CPUs and GPUs, and only the gradient's sign is used.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        steps: int = 1,
        step_size: Optional[float] = None,
        random_start: bool = True,
        fraction: float = 1.0,
        precision: str = "fp32",
    ):
        if precision not in AUTOCAST:
            raise ValueError(
                f"precision must be one of {', '.join(AUTOCAST)}, got {precision!r}"
            )
        self.model, self.eps, self.steps = model, eps, steps
        self.step_size = 1.25 * eps if step_size is None else step_size
        self.random_start, self.fraction = random_start, fraction
        self.dtype = AUTOCAST[precision]

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = round(len(x) * self.fraction)
        if n == 0 or self.eps == 0:
            return x, y
        with torch.autocast(
            x.device.type, dtype=self.dtype, enabled=self.dtype is not None
        ):
            x_adv = pgd(
                self.model,
                x[:n],
                y[:n],
                self.eps,
                steps=self.steps,
                step_size=self.step_size,
                random_start=self.random_start,
            )
        return torch.cat([x_adv, x[n:]]), y
