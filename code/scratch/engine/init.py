r"""Parameter initialization, as ``torch.nn.init`` (here ``scratch.engine.nn.init``).

Every function fills a :class:`~scratch.engine.tensor.Tensor` (or a NumPy array)
*in place*, keeps its dtype, and returns it. Random draws come from
``generator`` (a ``np.random.Generator``) or, by default, from NumPy's global
generator, which ``scratch.utils.seed_everything`` seeds.

**Why the scale matters.** For $y = Wx$ with $n$ inputs, independent zero-mean
weights of variance $\sigma^2$ and inputs of second moment $q$,
$\mathrm{Var}(y_j) = n \sigma^2 q$. A deep stack keeps its signal (forward) and
its gradients (backward) at a constant scale only if each layer multiplies the
variance by 1, which fixes $\sigma^2$:

- LeCun et al. (1998), linear or tanh-like units: $\sigma^2 = 1/n_{\text{in}}$;
- Glorot & Bengio (2010) ("Xavier"), the forward and the backward pass at once:
  $\sigma^2 = 2/(n_{\text{in}} + n_{\text{out}})$;
- He et al. (2015) ("Kaiming"), ReLU, which zeroes half the signal:
  $\sigma^2 = 2/n_{\text{in}}$.

In general $\sigma = \text{gain}/\sqrt{\text{fan}}$ with :func:`calculate_gain`
for the nonlinearity; a uniform $U(-b, b)$ has $\sigma = b/\sqrt3$, so
$b = \sqrt3\,\sigma$. The fans of a weight of shape (out, in, k1, k2, ...)
count the receptive field: $n_{\text{in}} = \text{in} \cdot k_1 k_2 \cdots$.

Chapter: "Initialization and normalization" (book/foundations/normalization.md).
"""

from __future__ import annotations

import math

import numpy as np

from .tensor import Tensor


def _data(tensor) -> np.ndarray:
    return tensor.data if isinstance(tensor, Tensor) else tensor


def _fill(tensor, values):
    """Write ``values`` into the tensor's own array (cast to its dtype) and return the
    tensor."""
    _data(tensor)[...] = values
    return tensor


def _rng(generator):
    return (
        np.random if generator is None else generator
    )  # both offer .uniform and .normal


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    r"""The factor that restores unit variance after ``nonlinearity``, as
    ``torch.nn.init.calculate_gain``.

    ReLU keeps half of a symmetric input's second moment, so $\sqrt2$; a leaky
    ReLU of slope $a$ keeps $(1 + a^2)/2$, so $\sqrt{2/(1 + a^2)}$; tanh's 5/3 and
    SELU's 3/4 are PyTorch's empirical values; linear maps and sigmoid get 1.
    """
    linear = {
        "linear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
        "sigmoid",
    }
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"negative_slope {slope} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight (out, in, *kernel): in and out times the kernel's
    size."""
    shape = _data(tensor).shape
    if len(shape) < 2:
        raise ValueError(
            "fan in and fan out need a tensor of at least 2 dimensions, got shape "
            f"{shape}"
        )
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _calculate_correct_fan(tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


# ---- plain fills ---------------------------------------------------------------------
def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    """Fill with $U(a, b)$."""
    return _fill(tensor, _rng(generator).uniform(a, b, _data(tensor).shape))


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    r"""Fill with $\mathcal N(\text{mean}, \text{std}^2)$."""
    return _fill(tensor, _rng(generator).normal(mean, std, _data(tensor).shape))


def trunc_normal_(
    tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator=None,
):
    r"""Fill with $\mathcal N(\text{mean}, \text{std}^2)$ restricted to
    $[a, b]$ (absolute bounds, as PyTorch).

    Inverse-CDF sampling: a uniform draw between $\Phi(\alpha)$ and $\Phi(\beta)$
    (the standardized bounds), mapped through $\Phi^{-1}$.
    """
    from scipy.special import ndtr, ndtri  # the normal CDF and its inverse

    lo, hi = ndtr((a - mean) / std), ndtr((b - mean) / std)
    u = _rng(generator).uniform(lo, hi, _data(tensor).shape)
    return _fill(
        tensor, np.clip(mean + std * ndtri(u), a, b)
    )  # clip: rounding at the ends


def constant_(tensor, val: float):
    return _fill(tensor, val)


def zeros_(tensor):
    return _fill(tensor, 0)


def ones_(tensor):
    return _fill(tensor, 1)


# ---- variance-preserving schemes -----------------------------------------------------
def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    r"""Glorot & Bengio (2010):
    $U(-b, b)$, $b = \text{gain} \sqrt{6 / (n_{\text{in}} + n_{\text{out}})}$."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    r"""Glorot & Bengio (2010): $\mathcal N(0, \sigma^2)$,
    $\sigma = \text{gain} \sqrt{2 / (n_{\text{in}} + n_{\text{out}})}$."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(
    tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator=None,
):
    r"""He et al. (2015): $U(-b, b)$, $b = \sqrt3\,\text{gain}/\sqrt{\text{fan}}$.

    ``a`` is the negative slope of the leaky ReLU that follows (``nonlinearity``
    ``"leaky_relu"``; ``a=0`` is a ReLU). ``mode="fan_in"`` preserves the forward
    signal's variance, ``"fan_out"`` the gradients'. ``torch.nn.Linear`` uses
    ``a=math.sqrt(5)``: gain $\sqrt{1/3}$, so $b = 1/\sqrt{n_{\text{in}}}$.
    """
    std = calculate_gain(nonlinearity, a) / math.sqrt(
        _calculate_correct_fan(tensor, mode)
    )
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator=None,
):
    r"""He et al. (2015):
    $\mathcal N(0, \sigma^2)$, $\sigma = \text{gain}/\sqrt{\text{fan}}$
    (arguments as :func:`kaiming_uniform_`)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(
        _calculate_correct_fan(tensor, mode)
    )
    return normal_(tensor, 0.0, std, generator)


def lecun_uniform_(tensor, generator=None):
    r"""LeCun et al. (1998): $U(-b, b)$, $b = \sqrt{3 / n_{\text{in}}}$ (variance
    $1/n_{\text{in}}$).

    Not in ``torch.nn.init``; it equals ``kaiming_uniform_(t, nonlinearity="linear")``.
    """
    return kaiming_uniform_(
        tensor, mode="fan_in", nonlinearity="linear", generator=generator
    )


def lecun_normal_(tensor, generator=None):
    r"""LeCun et al. (1998): $\mathcal N(0, 1/n_{\text{in}})$, untruncated; the init
    SELU networks assume.

    Not in ``torch.nn.init``; it equals ``kaiming_normal_(t, nonlinearity="linear")``,
    what PyTorch recommends for SELU. (JAX's ``lecun_normal`` truncates at two standard
    deviations.)
    """
    return kaiming_normal_(
        tensor, mode="fan_in", nonlinearity="linear", generator=generator
    )
