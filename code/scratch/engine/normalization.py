r"""Batch, layer and group normalization for the NumPy engine: the functions
(``F.batch_norm``, ...).

Their layers (:class:`~scratch.engine.nn.BatchNorm1d`, ``BatchNorm2d``, ``LayerNorm``,
``GroupNorm``) are in :mod:`scratch.engine.nn`, one layer up: this module imports no
``Module``.

All three standardize $x$ over some set of $m$ numbers that share statistics,
then apply a learned per-feature scale $\gamma$ and shift $\beta$:

$$\mu = \frac1m \sum_{j} x_j, \qquad \sigma^2 = \frac1m \sum_{j} (x_j - \mu)^2, \qquad
\hat x_i = \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y_i = \gamma\, \hat x_i
+ \beta.$$

They differ only in which numbers share a $\mu$ and $\sigma$: batch norm, one
channel across the batch and the positions (``axes (0, 2, 3)`` of an image
batch); layer norm, one sample's last dimensions; group norm, one sample's
group of channels.

**The backward pass, fused.** Written out as ops (a mean, a subtraction, a
square, another mean, a square root, a division) the graph would hold six
temporaries the size of $x$; the derivative fits in one line instead. With
$s = \sqrt{\sigma^2 + \epsilon}$, $\partial\mu/\partial x_i = 1/m$ and
$\partial\sigma^2/\partial x_i = 2(x_i - \mu)/m$ give

$$\frac{\partial \hat x_j}{\partial x_i}
= \frac1s \left( \delta_{ij} - \frac1m - \frac{\hat x_i \hat x_j}{m} \right),$$

so, writing $\bar{\hat x}_j = \gamma \bar y_j$ for the gradient reaching $\hat x$,

$$\bar x_i = \sum_j \bar{\hat x}_j \frac{\partial \hat x_j}{\partial x_i}
= \frac1s \left( \bar{\hat x}_i - \frac1m \sum_j \bar{\hat x}_j
- \hat x_i \frac1m \sum_j \bar{\hat x}_j \hat x_j \right),
\qquad \bar\gamma = \sum \bar y\, \hat x, \qquad \bar\beta = \sum \bar y$$

(the sums for $\bar\gamma, \bar\beta$ run over everything that shares one
$\gamma$). The gradient is $\bar{\hat x}$ with its mean and its component
along $\hat x$ removed: shifting or scaling a group of inputs does not change
$\hat x$, so the gradient has no such component. When the statistics are
constants (batch norm in evaluation, which uses running averages) only the
first term is left: $\bar x = \bar{\hat x} / s$.

Chapter: "Initialization and normalization" (book/foundations/normalization.md).
"""

from __future__ import annotations

import numpy as np

from .tensor import Tensor, _make


# ---- the shared core -----------------------------------------------------------------
def _standardize(x: np.ndarray, axes: tuple, eps: float):
    r"""$\hat x = (x - \mu) / \sqrt{\sigma^2 + \epsilon}$ with statistics over
    ``axes``; also
    $1/s$ and the (biased) variance, both with ``axes`` kept as size 1."""
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = np.mean(
        centered * centered, axis=axes, keepdims=True
    )  # two passes: no cancellation
    inv_std = 1 / np.sqrt(var + eps)
    return centered * inv_std, inv_std, mean, var


def _standardize_backward(
    gxhat: np.ndarray, xhat: np.ndarray, inv_std: np.ndarray, axes: tuple
):
    r"""$\bar x = \frac1s \big(\bar{\hat x} - \mathrm{mean}(\bar{\hat x})
    - \hat x\,\mathrm{mean}(\bar{\hat x} \hat x)\big)$, means over ``axes``
    (derived in the module's docstring)."""
    return inv_std * (
        gxhat
        - gxhat.mean(axis=axes, keepdims=True)
        - xhat * np.mean(gxhat * xhat, axis=axes, keepdims=True)
    )


def _array(value):
    return value.data if isinstance(value, Tensor) else value


def _affine(
    x: Tensor, xhat, backward_xhat, weight, bias, shape: tuple, sum_axes: tuple, op: str
) -> Tensor:
    r"""$y = \gamma \hat x + \beta$ as one node: ``weight``/``bias`` (either may be
    None) are
    reshaped to ``shape`` to broadcast; their gradients sum over ``sum_axes``;
    ``backward_xhat`` maps $\bar{\hat x}$ to $\bar x$."""
    weight, bias = (
        t if t is None or isinstance(t, Tensor) else Tensor(t) for t in (weight, bias)
    )
    w = None if weight is None else weight.data.reshape(shape)
    y = xhat if w is None else xhat * w
    if bias is not None:
        y = y + bias.data.reshape(shape)

    def backward(g):
        gx = backward_xhat(g if w is None else g * w) if x.requires_grad else None
        grads = [gx]
        if weight is not None:
            grads.append(
                (g * xhat).sum(axis=sum_axes).reshape(weight.shape)
                if weight.requires_grad
                else None
            )
        if bias is not None:
            grads.append(
                g.sum(axis=sum_axes).reshape(bias.shape) if bias.requires_grad else None
            )
        return tuple(grads)

    parents = tuple(t for t in (x, weight, bias) if t is not None)
    return _make(y, parents, backward, op)


# ---- batch norm ----------------------------------------------------------------------
def batch_norm(
    x: Tensor,
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    r"""Batch normalization, as ``torch.nn.functional.batch_norm``: statistics per
    channel (axis 1).

    ``x`` is (N, C) or (N, C, *) (e.g. (N, C, H, W)); ``weight`` $\gamma$, ``bias``
    $\beta$ and the running statistics have shape (C,).

    - ``training=True``: normalize with the batch's own $\mu$ and (biased)
      $\sigma^2$ over the $m = N \cdot H \cdot W$ numbers of each channel, and update
      the running statistics *in place*, if given (``None`` skips it):
      $\hat\mu \leftarrow (1 - \text{momentum})\,\hat\mu + \text{momentum}\,\mu$,
      and the same for $\hat\sigma^2$ with the *unbiased* $\sigma^2 m / (m - 1)$, as
      PyTorch does.
    - ``training=False``: normalize with the running statistics, constants
      for the backward pass.
    """
    if x.ndim < 2:
        raise ValueError(
            f"batch_norm expects an input of shape (N, C) or (N, C, *), got {x.shape}"
        )
    c = x.shape[1]
    axes = (0, *range(2, x.ndim))  # everything but the channel axis
    shape = (1, c) + (1,) * (x.ndim - 2)  # (C,) -> broadcasts along axis 1
    if training:
        m = x.size // c
        if m <= 1:
            raise ValueError(
                "batch_norm needs more than 1 value per channel when training, got "
                f"input {x.shape}"
            )
        xhat, inv_std, mean, var = _standardize(x.data, axes, eps)
        for buffer, batch_value in (
            (running_mean, mean),
            (running_var, var * (m / (m - 1))),
        ):
            if buffer is not None:
                buffer = _array(buffer)
                buffer[...] = (
                    momentum * batch_value.reshape(c) + (1 - momentum) * buffer
                )  # in place

        def backward_xhat(gxhat):
            return _standardize_backward(gxhat, xhat, inv_std, axes)
    else:
        if running_mean is None or running_var is None:
            raise ValueError(
                "batch_norm in evaluation (training=False) needs running_mean and "
                "running_var"
            )
        mean = _array(running_mean).reshape(shape).astype(x.dtype, copy=False)
        inv_std = 1 / np.sqrt(
            _array(running_var).reshape(shape).astype(x.dtype, copy=False) + eps
        )
        xhat = (x.data - mean) * inv_std

        def backward_xhat(gxhat):
            return gxhat * inv_std

    return _affine(x, xhat, backward_xhat, weight, bias, shape, axes, "batch_norm")


# ---- layer norm and group norm -------------------------------------------------------
def layer_norm(
    x: Tensor, normalized_shape, weight=None, bias=None, eps: float = 1e-5
) -> Tensor:
    r"""Layer normalization, as ``torch.nn.functional.layer_norm``: statistics per
    sample over the
    last ``len(normalized_shape)`` axes, which must equal ``normalized_shape``;
    ``weight`` and ``bias`` have that shape (one $\gamma$ and $\beta$ per element).
    The same in training and in evaluation: no running statistics.
    """
    normalized_shape = (
        (normalized_shape,)
        if np.ndim(normalized_shape) == 0
        else tuple(normalized_shape)
    )
    d = len(normalized_shape)
    if d == 0 or x.shape[x.ndim - d :] != normalized_shape:
        raise ValueError(
            f"layer_norm: the input's last axes {x.shape} must be normalized_shape "
            f"{normalized_shape}"
        )
    axes = tuple(range(x.ndim - d, x.ndim))
    xhat, inv_std, _, _ = _standardize(x.data, axes, eps)
    return _affine(
        x,
        xhat,
        lambda gxhat: _standardize_backward(gxhat, xhat, inv_std, axes),
        weight,
        bias,
        normalized_shape,
        tuple(range(x.ndim - d)),
        "layer_norm",
    )


def group_norm(
    x: Tensor, num_groups: int, weight=None, bias=None, eps: float = 1e-5
) -> Tensor:
    """Group normalization, as ``torch.nn.functional.group_norm``: the C channels of
    (N, C, *)
    are split into ``num_groups`` groups of consecutive channels, and each sample's
    group is standardized on its own (over its channels and all positions); ``weight``
    and ``bias`` are per channel, (C,). One group is layer norm over (C, *); C groups is
    instance norm. Independent of the batch, so the same in training and evaluation.
    """
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise ValueError(
            f"group_norm: {num_groups} groups must divide the channels of input "
            f"{x.shape}"
        )
    n, c = x.shape[:2]
    grouped = x.data.reshape(n, num_groups, -1)  # (N, G, C/G * positions)
    xhat, inv_std, _, _ = _standardize(grouped, (2,), eps)

    def backward_xhat(gxhat):
        return _standardize_backward(
            gxhat.reshape(grouped.shape), xhat, inv_std, (2,)
        ).reshape(x.shape)

    return _affine(
        x,
        xhat.reshape(x.shape),
        backward_xhat,
        weight,
        bias,
        (1, c) + (1,) * (x.ndim - 2),
        (0, *range(2, x.ndim)),
        "group_norm",
    )
