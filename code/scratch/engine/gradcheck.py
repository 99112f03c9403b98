"""The gradient oracle: backward passes checked against finite differences.

Every op of the engine, and every model built from them, is tested with this
one function. It needs nothing but the forward pass, so it cannot share a bug
with the backward pass it checks.

Chapter: "A tiny autograd engine" (book/foundations/autograd.md).
"""

from __future__ import annotations

import numpy as np

from .tensor import Tensor, no_grad


def gradcheck(
    fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0
) -> bool:
    r"""Compare ``fn``'s backward pass with central differences, for every element of
    every input.

    ``fn(*inputs)`` returns a tensor of any shape; ``inputs`` is a tensor or a
    sequence. Floating-point tensors are checked (as float64 copies); anything
    else (integer targets, numbers) is passed through unchanged.

    A non-scalar output $Y$ is reduced to $f(x) = \langle v, Y(x) \rangle$ with a
    random $v$, so that a wrong vector-Jacobian product cannot hide behind a sum
    of ones (the backward of ``transpose`` returning ``g`` unpermuted, say). Then

    $$\frac{\partial f}{\partial x_k} \approx \frac{f(x + \epsilon e_k) - f(x - \epsilon
    e_k)}{2\epsilon},$$

    with error $O(\epsilon^2)$ from truncation plus about $10^{-16}/\epsilon$ from
    rounding in float64: both near $10^{-10}$ at $\epsilon = 10^{-6}$.

    Returns True, or raises AssertionError naming the worst element, the one
    with the largest $|a - n| / (\text{atol} + \text{rtol}\,|n|)$ for analytic
    $a$ and numerical $n$.
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    checked = [
        i
        for i, x in enumerate(inputs)
        if isinstance(x, Tensor) and np.issubdtype(x.dtype, np.floating)
    ]
    if not checked:
        raise ValueError("gradcheck needs at least one floating-point Tensor input")
    xs = list(inputs)
    for i in checked:  # float64 copies, so the differences are not swamped by rounding
        xs[i] = Tensor(np.array(inputs[i].data, dtype=np.float64), requires_grad=True)

    # Analytic: one backward pass with gradient v gives every input's v^T J.
    out = fn(*xs)
    v = np.random.default_rng(seed).standard_normal(out.shape)
    if not out.requires_grad:
        raise AssertionError("fn's output does not depend on any checked input")
    out.backward(v)

    def f() -> float:  # <v, fn(x)>, with the inputs as they are now
        with no_grad():
            return float(np.sum(v * fn(*xs).data))

    # Numerical: perturb one element at a time, in place (2 forward passes per element).
    worst = (0.0, None)
    for i in checked:
        x = xs[i]
        analytic = x.grad if x.grad is not None else np.zeros_like(x.data)
        numeric = np.empty_like(x.data)
        flat = x.data.reshape(-1)  # a view of x.data: writing to it changes x
        for k in range(flat.size):
            original = flat[k]
            flat[k] = original + eps
            plus = f()
            flat[k] = original - eps
            minus = f()
            flat[k] = original
            numeric.flat[k] = (plus - minus) / (2 * eps)
        ratio = np.abs(analytic - numeric) / (atol + rtol * np.abs(numeric))
        ratio = np.where(
            np.isnan(ratio), np.inf, ratio
        )  # a NaN must fail, not compare False
        k = int(np.argmax(ratio)) if ratio.size else 0
        if ratio.size and ratio.flat[k] > worst[0]:
            worst = (
                ratio.flat[k],
                (i, np.unravel_index(k, x.shape), analytic.flat[k], numeric.flat[k]),
            )

    if worst[0] > 1:
        i, index, a, n = worst[1]
        raise AssertionError(
            f"gradcheck failed: input {i} at index {tuple(int(j) for j in index)}: "
            f"analytic {a:.8g}, "
            f"numerical {n:.8g}, |difference| {abs(a - n):.3g} > atol + "
            "rtol*|numerical| = "
            f"{atol + rtol * abs(n):.3g}"
        )
    return True


def compare_with_torch(
    fn, arrays, torch_fn=None, rtol: float = 1e-6, atol: float = 1e-10, seed: int = 0
) -> bool:
    """The second oracle: ``fn`` against PyTorch, forward and backward, in float64.

    ``fn`` runs on :class:`Tensor` inputs and ``torch_fn`` (default: ``fn`` itself,
    which works whenever the two libraries share the syntax, e.g. ``a @ b + c``) on
    ``torch.Tensor`` inputs made from the same ``arrays``. Both backward passes get
    the same random output gradient; the outputs and every input's gradient must
    agree elementwise within ``atol + rtol * |torch|``. Returns True or raises
    AssertionError. (PyTorch is imported here only: the engine does not need it.)
    """
    import torch

    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, ty = fn(*ours), (torch_fn or fn)(*theirs)

    def check(what, a, b):
        b = b.detach().numpy()
        if np.shape(a) != np.shape(b):
            raise AssertionError(
                f"{what}: shape {np.shape(a)}, PyTorch's {np.shape(b)}"
            )
        np.testing.assert_allclose(
            a, b, rtol=rtol, atol=atol, err_msg=f"{what} differs from PyTorch's"
        )

    check("output", y.data, ty)
    g = np.random.default_rng(seed).standard_normal(y.shape)
    y.backward(g)
    ty.backward(torch.from_numpy(g))
    for i, (x, tx) in enumerate(zip(ours, theirs)):
        if tx.grad is None:  # the input does not influence the output
            assert x.grad is None or not np.any(x.grad), (
                f"input {i}: gradient where PyTorch has none"
            )
            continue
        if x.grad is None:
            raise AssertionError(f"input {i}: no gradient, PyTorch has one")
        check(f"gradient of input {i}", x.grad, tx.grad)
    return True
