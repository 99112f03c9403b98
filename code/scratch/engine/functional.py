"""Functions on tensors, with PyTorch's names and arguments (``import
scratch.engine.functional as F``).

A few are compositions of :class:`~scratch.engine.tensor.Tensor` ops, whose
gradients come for free. The others are *fused*: one node of the graph (one
:func:`~scratch.engine.tensor._make` call) with a hand-written backward, for
one of two reasons, noted in each:

- numerics: the composition would overflow or lose digits (softmax,
  cross-entropy, binary cross-entropy from logits);
- speed: the composition makes several temporary arrays and graph nodes where
  one suffices (linear, the activations, the losses). An MLP's training step
  spends its time in matrix products and a handful of such functions.

Every function is checked against ``torch.nn.functional`` (forward and
gradients, float64) and against finite differences in ``tests/engine``.

Chapter: "A tiny autograd engine" (book/foundations/autograd.md).
"""

from __future__ import annotations

import math

import numpy as np

from .tensor import Tensor, _make, where


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce_array(loss: np.ndarray, reduction: str, count=None):
    """For a fused loss: the reduced value, and a map from its gradient to each
    element's share.

    ``count`` is the divisor of ``"mean"`` (default: the number of elements).
    """
    if reduction == "none":
        return loss, lambda g: g
    if reduction == "sum":
        return loss.sum(), lambda g: g
    if reduction == "mean":
        count = loss.size if count is None else count

        def share(g):
            with np.errstate(
                invalid="ignore", divide="ignore"
            ):  # nothing to average: NaN, as PyTorch
                return g / count

        return share(loss.sum()), share
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _array(x, dtype=None) -> np.ndarray:
    return np.asarray(x.data if isinstance(x, Tensor) else x, dtype=dtype)


# ---- activations ---------------------------------------------------------------------
def relu(input: Tensor) -> Tensor:
    r"""$\max(x, 0)$; gradient 0 at $x = 0$, as PyTorch."""
    return input.relu()


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    r"""$x$ for $x > 0$, else $\alpha x$ (Maas et al., 2013): a small gradient where
    ReLU has none."""
    x = input.data
    positive = x > 0
    out = np.where(positive, x, x * negative_slope)
    return _make(
        out,
        (input,),
        lambda g: (np.where(positive, g, g * negative_slope),),
        "leaky_relu",
    )


def _elu(input: Tensor, alpha: float, scale: float, op: str) -> Tensor:
    r"""$s \cdot x$ for $x > 0$, else $s \alpha (e^x - 1)$; derivative $s$, else
    $s \alpha e^x$."""
    x = input.data
    positive = x > 0
    em1 = np.expm1(
        np.minimum(x, 0)
    )  # e^x - 1, exact near 0, and no overflow where x > 0 is unused
    out = np.where(positive, x, alpha * em1)
    if scale != 1:
        out *= scale

    def backward(g):  # at x = 0 the left branch, s * alpha, as PyTorch
        grad = np.where(positive, g, g * (alpha * (em1 + 1)))
        return (grad * scale if scale != 1 else grad,)

    return _make(out, (input,), backward, op)


def elu(input: Tensor, alpha: float = 1.0) -> Tensor:
    r"""ELU (Clevert et al., 2016): $x$ for $x > 0$, else $\alpha (e^x - 1)$, smooth
    with negative outputs."""
    return _elu(input, alpha, 1.0, "elu")


# SELU's constants (Klambauer et al., 2017): the fixed point of mean 0, variance 1 under
# lecun_normal_ init.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu(input: Tensor) -> Tensor:
    r"""$\lambda\,\mathrm{elu}(x, \alpha)$ with the self-normalizing constants
    $\lambda, \alpha$."""
    return _elu(input, SELU_ALPHA, SELU_SCALE, "selu")


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    r"""GELU (Hendrycks & Gimpel, 2016): $x\,\Phi(x)$, the input weighted by the normal
    CDF.

    Exact: $\Phi(x) = \tfrac12 (1 + \mathrm{erf}(x/\sqrt2))$, derivative
    $\Phi(x) + x \varphi(x)$. ``approximate="tanh"``:
    $\tfrac12 x (1 + \tanh u)$ with $u = \sqrt{2/\pi}\,(x + 0.044715 x^3)$ (GPT-2's).
    """
    x = input.data
    if approximate == "none":
        from scipy.special import (
            erf,
        )  # imported here: scipy costs time to import, and only gelu needs it

        cdf = 0.5 * (
            1 + erf(x * (1 / math.sqrt(2)))
        )  # Python floats keep float32 float32
        pdf = np.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
        return _make(x * cdf, (input,), lambda g: (g * (cdf + x * pdf),), "gelu")
    if approximate == "tanh":
        c = math.sqrt(2 / math.pi)
        t = np.tanh(c * (x + 0.044715 * x**3))
        grad = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
        return _make(0.5 * x * (1 + t), (input,), lambda g: (g * grad,), "gelu")
    raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input: Tensor) -> Tensor:
    r"""SiLU / swish: $x\,\sigma(x)$, derivative $\sigma(x)\,(1 + x(1 - \sigma(x)))$."""
    x = input.data
    s = 0.5 * (1 + np.tanh(0.5 * x))  # sigma(x) without overflow
    return _make(x * s, (input,), lambda g: (g * (s * (1 + x * (1 - s))),), "silu")


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def log_softmax(input: Tensor, dim: int = -1) -> Tensor:
    r"""$\log \mathrm{softmax}(x)_i = x_i - m - \log \sum_j e^{x_j - m}$ for any
    constant $m$.

    The log-sum-exp trick: with $m = \max_j x_j$ every exponent is $\le 0$, so
    nothing overflows (``exp(1000)`` is ``inf`` in float64) and the largest term
    is exactly 1, so the log never sees 0. Since the result does not depend on
    $m$, $m$ is a constant for the gradient. One fused node, with
    $\bar x = \bar y - \mathrm{softmax}(x) \sum_j \bar y_j$.
    """
    x = input.data
    out = x - x.max(axis=dim, keepdims=True)  # (..., C): every entry <= 0
    out -= np.log(np.exp(out).sum(axis=dim, keepdims=True))
    return _make(
        out,
        (input,),
        lambda g: (g - np.exp(out) * g.sum(axis=dim, keepdims=True),),
        "log_softmax",
    )


def softmax(input: Tensor, dim: int = -1) -> Tensor:
    r"""$p_i = e^{x_i} / \sum_j e^{x_j}$, shifted by the max like :func:`log_softmax`.

    Backward: $\bar x = p \odot (\bar p - \sum_j p_j \bar p_j)$, the Jacobian
    $\mathrm{diag}(p) - p p^\top$ applied without building it.
    """
    x = input.data
    p = np.exp(x - x.max(axis=dim, keepdims=True))
    p /= p.sum(axis=dim, keepdims=True)
    return _make(
        p,
        (input,),
        lambda g: (p * (g - (g * p).sum(axis=dim, keepdims=True)),),
        "softmax",
    )


# ---- layers --------------------------------------------------------------------------
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    r"""$y = x W^\top + b$ with ``weight`` of shape (out_features, in_features), as in
    PyTorch.

    One fused node: $\bar x = \bar y W$, $\bar W = \bar y^\top x$ (summed over
    every leading axis of $x$), $\bar b = \sum_{\text{rows}} \bar y$. An input with
    several leading axes, (B, T, in) say, is multiplied as one matrix of B·T rows:
    one large product is much faster than B small ones, the more so when the input
    is a transposed (non-contiguous) view, as a ``batch_first`` RNN makes.
    """
    # A NumPy batch is data: no gradient.
    input = input if isinstance(input, Tensor) else Tensor(input)
    x, w = input.data, weight.data
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])  # (rows, in); a copy only if x is a strided view
    out = x2 @ w.T  # (rows, in) @ (in, out); BLAS reads W transposed, no copy
    if bias is not None:
        out += bias.data  # in place: `out` is ours; bias (out,) broadcasts over rows
    out = out.reshape(*lead, w.shape[0])

    def backward(g):  # g: (..., out)
        g2 = g.reshape(-1, g.shape[-1])  # (rows, out)
        # The input batch usually needs no gradient.
        gx = (g2 @ w).reshape(x.shape) if input.requires_grad else None  # (..., in)
        gw = g2.T @ x2 if weight.requires_grad else None  # (out, in)
        gb = g2.sum(axis=0) if bias is not None and bias.requires_grad else None
        return gx, gw, gb

    parents = (input, weight) if bias is None else (input, weight, bias)
    return _make(out, parents, backward, "linear")


def dropout(
    input: Tensor, p: float = 0.5, training: bool = True, generator=None
) -> Tensor:
    """Inverted dropout (Srivastava et al., 2014): zero each entry with probability
    $p$, scale the rest by $1/(1-p)$.

    The scaling keeps every entry's expectation unchanged, so evaluation
    (``training=False``) is the identity. The mask is drawn from ``generator``
    (a ``np.random.Generator``), by default NumPy's global one, which
    ``scratch.utils.seed_everything`` seeds.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0.0
    rng = np.random if generator is None else generator
    # keep with probability 1 - p, and scale in the input's dtype (a float64 mask would
    # upcast float32)
    mask = np.multiply(rng.random(input.shape) >= p, 1 / (1 - p), dtype=input.dtype)
    return _make(input.data * mask, (input,), lambda g: (g * mask,), "dropout")


def embedding(input, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) picked by the integer ``input``: result
    (*input.shape, dim).

    A lookup is a product with a one-hot matrix, done without the matrix; its
    backward adds each output row's gradient to the row it came from, repeated
    indices accumulating (``np.add.at``). The ``padding_idx`` row gets no gradient.
    """
    index = _array(input)
    if not np.issubdtype(index.dtype, np.integer):
        raise TypeError(f"embedding indices must be integers, got {index.dtype}")
    n = weight.shape[0]
    if index.size and (
        index.min() < 0 or index.max() >= n
    ):  # NumPy would wrap negatives silently
        raise IndexError(
            f"embedding index out of range [0, {n}): min {index.min()}, max "
            f"{index.max()}"
        )
    if padding_idx is not None and padding_idx < 0:
        padding_idx += n

    def backward(g):  # g: (*input.shape, dim)
        grad = np.zeros_like(weight.data)
        np.add.at(grad, index.reshape(-1), g.reshape(-1, grad.shape[-1]))
        if padding_idx is not None:
            grad[padding_idx] = 0
        return (grad,)

    return _make(weight.data[index], (weight,), backward, "embedding")


# ---- losses --------------------------------------------------------------------------
def _classes_last(x: np.ndarray) -> np.ndarray:
    """(N, C, d1, ..., dk) -> (N d1 ... dk, C), and (C,) -> (1, C): one row per
    prediction.

    PyTorch puts the classes on axis 1 (images: (N, C, H, W)); a view for the common (N,
    C).
    """
    if x.ndim <= 2:
        return x[None] if x.ndim == 1 else x
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _classes_back(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """The inverse of :func:`_classes_last`: (rows, C) -> ``shape``."""
    if len(shape) <= 2:
        return grad[0] if len(shape) == 1 else grad
    moved = shape[:1] + shape[2:] + shape[1:2]  # (N, d1, ..., dk, C)
    return np.moveaxis(grad.reshape(moved), -1, 1)


def _class_targets(target, input_shape: tuple, weight, ignore_index: int, dtype):
    """Integer targets -> flat (safe indices, valid (1.0, or 0.0 where ignored),
    per-row weight $w_{y_i}$).

    All floats in the input's ``dtype``: a bool or float64 mask would turn float32
    gradients float64.
    """
    y = _array(target)
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(
            f"class targets must be integers, got {y.dtype} (probabilities must match "
            "the input's shape)"
        )
    expected = (
        input_shape[:1] + input_shape[2:] if len(input_shape) > 1 else ()
    )  # the input without classes
    if y.shape != expected:
        raise ValueError(
            f"target shape {y.shape} does not match the input's {input_shape}: "
            f"expected {expected}"
        )
    n_classes = input_shape[0] if len(input_shape) == 1 else input_shape[1]
    y = y.reshape(-1)
    valid = y != ignore_index
    out_of_range = valid & (
        (y < 0) | (y >= n_classes)
    )  # a negative index would wrap silently in NumPy
    if out_of_range.any():
        raise IndexError(
            f"target {y[out_of_range][0]} is out of range for {n_classes} classes"
        )
    y = np.where(valid, y, 0)  # ignored rows point at class 0; their weight is 0
    v = valid.astype(dtype)
    return y, v, (v if weight is None else v * weight[y])


def _log_softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of a (rows, C) array, with the log-sum-exp trick of
    :func:`log_softmax`."""
    logp = logits - logits.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    return logp


def cross_entropy(
    input: Tensor,
    target,
    weight=None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""$-\log p_y$ with
    $p = \mathrm{softmax}(\text{input})$: ``torch.nn.functional.cross_entropy``.

    ``input``: (N, C) logits, or (N, C, d1, ...) (a prediction per position), or
    (C,). ``target``: class indices, (N,) or (N, d1, ...), or class
    probabilities of the input's shape. ``weight`` (C,) weighs each class,
    ``ignore_index`` marks targets that count for nothing. With label smoothing
    $\varepsilon$ the target is $(1-\varepsilon)$ one-hot plus $\varepsilon/C$
    uniform (Szegedy et al., 2016). Each row's loss is then
    $\ell_i = -\sum_c a_{ic} \log p_{ic}$, with
    $a_{ic} = (1-\varepsilon) w_{y_i} [c = y_i] + \tfrac{\varepsilon}{C} w_c$,
    and ``"mean"`` divides the sum by $\sum_i w_{y_i}$ (the number of
    non-ignored rows without weights), as PyTorch.

    One fused node. The log-softmax uses the log-sum-exp trick (see
    :func:`log_softmax`), so the loss stays finite when a probability underflows
    to 0; and since $\partial \log p_{ic}/\partial x_{ik} = [c = k] - p_{ik}$,
    the gradient is $\bar x_i = \bar\ell_i\,(p_i \sum_c a_{ic} - a_i)$: for a
    plain target, softmax minus one-hot, with no exp or log of its own to go wrong.
    """
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if np.issubdtype(_array(target).dtype, np.floating):
        return _cross_entropy_with_probabilities(
            input, target, weight, reduction, label_smoothing
        )
    x, eps = input.data, label_smoothing
    n_classes = x.shape[0] if x.ndim == 1 else x.shape[1]
    logp = _log_softmax_rows(_classes_last(x))  # (rows, C)
    w = None if weight is None else _array(weight, x.dtype)  # (C,)
    y, v, w_y = _class_targets(
        target, x.shape, w, ignore_index, x.dtype
    )  # (rows,) each
    rows = np.arange(len(logp))

    loss = (
        -w_y * logp[rows, y]
    )  # (rows,): the negative log-likelihood of the true class
    if eps:
        smooth = (
            -(logp.sum(axis=1) if w is None else logp @ w) * v
        )  # -sum_c w_c log p_ic
        loss = (1 - eps) * loss + (eps / n_classes) * smooth
    loss, share = _reduce_array(loss, reduction, count=w_y.sum())
    out_shape = np.shape(_array(target))

    def backward(g):
        s = np.broadcast_to(share(g), out_shape).reshape(-1)  # (rows,): dL/dl_i
        total = w_y  # sum_c a_ic: the row's total target mass
        if eps:
            total = (1 - eps) * w_y + (
                eps * (n_classes if w is None else w.sum()) / n_classes
            ) * v
        grad = np.exp(logp)
        grad *= (s * total)[:, None]  # p_i sum_c a_ic
        grad[rows, y] -= s * (1 - eps) * w_y  # minus the one-hot part of a_i
        if eps:
            grad -= (s * (eps / n_classes) * v)[:, None] * (
                1 if w is None else w
            )  # minus the uniform part
        return (_classes_back(grad, x.shape),)

    return _make(
        loss.reshape(out_shape) if reduction == "none" else loss,
        (input,),
        backward,
        "cross_entropy",
    )


def _cross_entropy_with_probabilities(
    input: Tensor, target, weight, reduction: str, eps: float
) -> Tensor:
    r""":func:`cross_entropy` for class probabilities:
    $a_{ic} = w_c ((1-\varepsilon) t_{ic} + \varepsilon/C)$.

    ``"mean"`` divides by the number of rows, as PyTorch; ``target`` may be a
    tensor that requires grad (distillation), with $\partial \ell_i/\partial t_{ic}
    = -(1-\varepsilon) w_c \log p_{ic}$.
    """
    x, t = input.data, _array(target)
    if t.shape != x.shape:
        raise ValueError(
            f"probability targets need the input's shape {x.shape}, got {t.shape}"
        )
    n_classes = x.shape[0] if x.ndim == 1 else x.shape[1]
    w = 1 if weight is None else _array(weight, x.dtype)
    logp = _log_softmax_rows(_classes_last(x))  # (rows, C)
    a = _classes_last(t.astype(x.dtype, copy=False))
    a = (a * (1 - eps) + eps / n_classes if eps else a) * w  # (rows, C)
    loss, share = _reduce_array(-(a * logp).sum(axis=1), reduction, count=len(logp))
    out_shape = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()

    def backward(g):
        s = np.broadcast_to(share(g), out_shape).reshape(-1, 1)  # (rows, 1): dL/dl_i
        gx = _classes_back(
            s * (np.exp(logp) * a.sum(axis=1, keepdims=True) - a), x.shape
        )
        gt = None
        if isinstance(target, Tensor) and target.requires_grad:
            gt = _classes_back(-s * logp * ((1 - eps) * w), x.shape)
        return gx, gt

    parents = (input, target) if isinstance(target, Tensor) else (input,)
    return _make(
        loss.reshape(out_shape) if reduction == "none" else loss,
        parents,
        backward,
        "cross_entropy",
    )


def nll_loss(
    input: Tensor,
    target,
    weight=None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""$-w_{y_i}\,x_{i, y_i}$ for log-probabilities ``input`` (e.g. from
    :func:`log_softmax`).

    Shapes, ``weight``, ``ignore_index`` and ``"mean"`` (divided by $\sum_i w_{y_i}$) as
    in :func:`cross_entropy`, which is ``nll_loss(log_softmax(x, 1), y)`` in one node.
    """
    x = input.data
    logp = _classes_last(x)
    w = None if weight is None else _array(weight, x.dtype)
    y, _, w_y = _class_targets(target, x.shape, w, ignore_index, x.dtype)
    rows = np.arange(len(logp))
    loss, share = _reduce_array(-w_y * logp[rows, y], reduction, count=w_y.sum())
    out_shape = np.shape(_array(target))

    def backward(g):
        grad = np.zeros_like(logp)
        grad[rows, y] = -np.broadcast_to(share(g), out_shape).reshape(-1) * w_y
        return (_classes_back(grad, x.shape),)

    return _make(
        loss.reshape(out_shape) if reduction == "none" else loss,
        (input,),
        backward,
        "nll_loss",
    )


def binary_cross_entropy_with_logits(
    input: Tensor, target, weight=None, reduction: str = "mean", pos_weight=None
) -> Tensor:
    r"""$-w\,[\,q\, y \log \sigma(x) + (1-y) \log(1-\sigma(x))\,]$, with $q$ =
    ``pos_weight`` (default 1).

    Equal to $(1-y)\,x + (1 + (q-1)y)\,\mathrm{softplus}(-x)$, computed as $\max(x, 0) -
    xy + (1 + (q-1)y) \log(1 + e^{-|x|}) + (q-1)\,y \max(-x, 0)$: it never exponentiates
    a positive number, so it neither overflows nor takes ``log(0)`` for large $|x|$, no
    two large terms cancel, and ``log1p`` keeps the digits of a tiny $e^{-|x|}$ that
    ``log(1 + e)`` would round away. One fused node, with $\bar x = w\,[(1-y) - (1 +
    (q-1)y)\,\sigma(-x)]$ ($= \sigma(x) - y$ for $q = w = 1$); ``target`` may be a
    tensor that requires grad (soft targets).
    """
    x = input.data
    y = _array(target, x.dtype)
    q = None if pos_weight is None else _array(pos_weight, x.dtype)
    w = None if weight is None else _array(weight, x.dtype)
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    log1p_e = np.log1p(e)
    coef = 1 if q is None else 1 + (q - 1) * y  # the weight of the positive term
    # (1-y) x + coef softplus(-x), rearranged so that no large terms cancel (x = -30, y
    # = 0 would)
    loss = np.maximum(x, 0) - x * y + coef * log1p_e
    if q is not None:
        loss += (q - 1) * y * np.maximum(-x, 0)
    if w is not None:
        loss = loss * w
    loss, share = _reduce_array(loss, reduction)
    target_is_input = isinstance(target, Tensor) and target.requires_grad

    def backward(g):
        s = share(g) if w is None else share(g) * w
        # sigma(x) and sigma(-x) from e = e^-|x|, each without cancellation (1 -
        # sigma(-x) loses digits where sigma(x) is tiny); then (1-y) - coef sigma(-x) =
        # (1-y) sigma(x) - q y sigma(-x).
        positive = x >= 0
        sig, sig_neg = (
            np.where(positive, 1, e) / (1 + e),
            np.where(positive, e, 1) / (1 + e),
        )
        gx = s * ((1 - y) * sig - (y if q is None else q * y) * sig_neg)
        gy = (
            s * (-x + (0 if q is None else (q - 1) * (log1p_e + np.maximum(-x, 0))))
            if target_is_input
            else None
        )
        return gx, gy

    parents = (input, target) if isinstance(target, Tensor) else (input,)
    return _make(loss, parents, backward, "binary_cross_entropy_with_logits")


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    r"""$\frac1N \sum_i (x_i - y_i)^2$."""
    return _reduce((input - target) ** 2, reduction)


# ---- attention -----------------------------------------------------------------------
def attention_weights(
    query: Tensor, key: Tensor, attn_mask=None, is_causal: bool = False, scale=None
) -> Tensor:
    r"""$A = \mathrm{softmax}(Q K^\top \cdot s + M)$, (..., L, S): how much each of
    the L queries reads each of the S keys, every row summing to 1.

    ``scale`` $s$ defaults to $1/\sqrt{E}$: for $q, k$ with independent unit-variance
    entries, $q \cdot k$ has variance $E$, so without it the scores grow with the
    width and the softmax saturates (one weight near 1, gradients near 0).
    ``attn_mask`` is PyTorch's: a *boolean* mask marks the keys a query MAY attend
    to (True = allowed); a *float* mask is added to the scores ($-\infty$ forbids).
    ``is_causal`` allows query $i$ the keys $j \le i$ (``tril``). A query allowed
    no key at all gets zero weights, hence a zero output, as in
    ``torch.nn.functional.scaled_dot_product_attention`` (not NaN).
    """
    E = query.shape[-1]
    L, S = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(E) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale  # (..., L, S)
    if is_causal:
        if attn_mask is not None:
            raise ValueError("give either attn_mask or is_causal=True, not both")
        attn_mask = np.tril(np.ones((L, S), dtype=bool))
    if attn_mask is None:
        return softmax(scores, dim=-1)
    mask = attn_mask.data if isinstance(attn_mask, Tensor) else np.asarray(attn_mask)
    if mask.dtype == bool:
        scores = where(mask, scores, -np.inf)
    elif np.issubdtype(mask.dtype, np.floating):
        scores = scores + attn_mask  # a Tensor mask keeps its gradient
    else:
        raise TypeError(f"attn_mask must be boolean or floating, got {mask.dtype}")
    empty = np.isneginf(scores.data).all(axis=-1, keepdims=True)  # (..., L, 1)
    if not empty.any():
        return softmax(scores, dim=-1)
    # A row of -inf only would be 0/0: give it finite scores, then zero its weights.
    weights = softmax(where(empty, 0.0, scores), dim=-1)
    return weights * (~empty).astype(weights.dtype)


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask=None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale=None,
    generator=None,
) -> Tensor:
    r"""$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}(Q K^\top / \sqrt{E} + M)\, V$
    (Vaswani et al., 2017), with PyTorch's arguments.

    ``query`` (..., L, E), ``key`` (..., S, E), ``value`` (..., S, Ev) ->
    (..., L, Ev); the leading axes (batch, heads) broadcast. Masks as in
    :func:`attention_weights`; ``dropout_p`` drops attention weights, always (as
    PyTorch's function does: pass 0 in evaluation). Composed of tensor ops, so its
    gradient is the chain rule through them: two batched products and a softmax.
    In practice PyTorch picks a fused kernel (FlashAttention, memory-efficient)
    that never stores the (L, S) weights; the result is the same.
    """
    weights = attention_weights(query, key, attn_mask, is_causal, scale)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, training=True, generator=generator)
    return weights @ value  # (..., L, S) @ (..., S, Ev)


# Convolution, pooling and normalization live in their own modules (they are longer).
from .conv import avg_pool2d, conv2d, max_pool2d  # noqa: E402,F401
from .normalization import batch_norm, group_norm, layer_norm  # noqa: E402,F401
