r"""Reverse-mode autodiff over NumPy arrays: the :class:`Tensor`.

The scalar engine (:mod:`scratch.engine.scalar`) generalises in one step: a node
now holds an array, and an op's backward receives $\bar Y = \partial L/\partial Y$
(same shape as its output $Y$) and returns, for each input $X$, the
vector-Jacobian product

$$\bar X = \left(\frac{\partial Y}{\partial X}\right)^{\!\top} \bar Y,$$

computed directly (for a matrix product, $\bar A = \bar Y B^\top$), never by
building the Jacobian, whose size is ``Y.size * X.size``.

Adding an op takes one call to :func:`_make`: the forward result, the inputs,
and a function from $\bar Y$ to the inputs' gradients. The engine does the
rest in one place: broadcasting (:func:`unbroadcast`), dtypes, accumulation,
:class:`no_grad`.

Besides the methods of :class:`Tensor` (arithmetic, ``exp log sqrt abs clip``,
``sum mean max min``, shape ops, indexing), three functions build a tensor
from several: :func:`concatenate` (alias :func:`cat`), :func:`stack` and
:func:`where`.

**Dtypes.** float64 is the default (Python numbers give it, as in NumPy) and what
gradient checks need; float32 stays float32 through every op. As in PyTorch, a
number, a 0-d array or an integer array combined with a floating tensor takes
the tensor's dtype (NumPy alone would turn ``x32 * np.float64(2)`` into
float64); two floating arrays of different dtypes promote as in NumPy.

Chapter: "A tiny autograd engine" (book/foundations/autograd.md).
"""

from __future__ import annotations

import functools

import numpy as np

# ---- graph recording on / off --------------------------------------------------------
_grad_enabled = True


class no_grad:
    """Context manager (or decorator): ops inside record no graph (evaluation,
    optimizer steps).

    >>> with no_grad():
    ...     y = model(x)          # y.requires_grad is False, nothing is kept alive
    """

    def __enter__(self):
        global _grad_enabled
        self._previous, _grad_enabled = _grad_enabled, False

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)

        return wrapper


def is_grad_enabled() -> bool:
    return _grad_enabled


# ---- the two helpers every op relies on ----------------------------------------------
def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    r"""Sum ``grad`` down to ``shape``: the backward of NumPy broadcasting.

    Broadcasting copies an operand along new leading axes and along its axes of
    size 1. A copy $y_k = x$ for $k = 1..K$ has $\bar x = \sum_k \bar y_k$, so
    the gradient of a broadcast is a sum over exactly those axes.
    """
    if grad.shape == shape:  # the common case: nothing was broadcast
        return grad
    # Axes broadcasting prepended: (2, 4) -> (3, 2, 4) adds axis 0.
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    # Axes of size 1 that were stretched: (3, 1, 4) -> (3, 2, 4) stretches axis 1.
    if grad.ndim == len(
        shape
    ):  # (otherwise the op's backward is wrong: Tensor.backward says so)
        stretched = tuple(
            i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1
        )
        if stretched:
            grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _make(data, parents: tuple, backward, op: str) -> "Tensor":
    r"""Wrap an op's result; if any input needs a gradient, remember how to send it
    back.

    ``backward(g)`` gets $\bar Y$ (an array of the result's shape) and returns one
    gradient per parent, in the parent's order, ``None`` where there is none
    (an integer index, a constant). Gradients may come back in the *broadcast*
    shape: :meth:`Tensor.backward` reduces them with :func:`unbroadcast`.
    """
    out = Tensor(data)
    if _grad_enabled and any(p.requires_grad for p in parents):
        out.requires_grad = True
        out._parents = parents
        out._backward = backward
        out._op = op
    return out


class Slice:
    """The gradient of ``x[index]`` for a basic index: ``g`` in that slice, zeros
    elsewhere, without building the zeros.

    An RNN reads its input one time step at a time (``x[t]`` for ``t < T``). If each
    step's backward made a zero array of ``x``'s full shape, the backward pass would
    allocate and add ``T`` of them: quadratic in the sequence length. Instead
    :meth:`Tensor.backward` adds ``g`` into ``x``'s pending gradient in place, so all
    ``T`` steps share one array.
    """

    __slots__ = ("index", "value")

    def __init__(self, index, value):
        self.index, self.value = index, value


def _add_slice(grads: dict, owned: set, parent: "Tensor", piece: Slice) -> None:
    key = id(parent)
    if key not in owned:  # allocate (or copy a shared array) once, then add in place
        start = grads.get(key)
        grads[key] = (
            np.zeros(parent.shape, dtype=parent.dtype)
            if start is None
            else np.array(np.broadcast_to(start, parent.shape), dtype=parent.dtype)
        )
        owned.add(key)
    grads[key][piece.index] += piece.value


def _topological_order(root: "Tensor") -> list:
    """Every tensor ``root`` depends on, each listed after all of its parents.

    Iterative depth-first search: a recursive one (as in the scalar engine)
    would hit Python's recursion limit on a long graph, e.g. an RNN unrolled
    over a thousand steps.
    """
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))  # revisited once all its parents are in `order`
            stack.extend((p, False) for p in node._parents if id(p) not in seen)
    return order


def _reduced_axes(axis, ndim: int) -> tuple:
    """``axis`` (None, an int or a tuple, negatives allowed) as a sorted tuple of axes
    >= 0."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise np.exceptions.AxisError(a, ndim)
    return tuple(sorted(a % max(ndim, 1) for a in axes))


def _axis_keepdims(axis, keepdims, dim, keepdim):
    """PyTorch spells ``axis, keepdims`` as ``dim, keepdim``: accept both."""
    return (axis if dim is None else dim), (keepdims if keepdim is None else keepdim)


def _is_basic_index(index) -> bool:
    """True for an index that cannot select an element twice (ints, slices, None,
    ``...``, masks)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(
        i is None
        or i is Ellipsis
        or isinstance(i, (int, np.integer, slice))
        or (isinstance(i, np.ndarray) and i.dtype == bool)
        for i in items
    )


class Tensor:
    """An array that records the ops applied to it, for :meth:`backward`.

    ``Tensor(data, requires_grad=False, dtype=None)`` wraps ``np.asarray(data)``
    (no copy, like ``torch.as_tensor``). Python numbers give float64, NumPy's
    default (PyTorch's is float32): float64 is what gradient checks need;
    float32 works too and stays float32 through every op.
    """

    # Make NumPy hand `ndarray * Tensor` to Tensor.__rmul__ instead of
    # broadcasting over the Tensor as if it were a Python object.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        data = np.asarray(data.data if isinstance(data, Tensor) else data, dtype=dtype)
        if requires_grad and not np.issubdtype(data.dtype, np.floating):
            raise TypeError(
                f"only floating-point tensors can require gradients, got {data.dtype}"
            )
        self.data = data
        self.requires_grad = requires_grad
        self.grad = None  # dL/dself, same shape as data, after backward()
        self._parents = ()  # the inputs of the op that made this tensor
        self._backward = None  # g -> gradients of the parents (None for leaves)
        self._op = ""
        self._retains_grad = False

    # ---- small things ---------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(
        lambda self: self.data.size
    )  # NumPy's meaning: the number of elements
    is_leaf = property(lambda self: self._backward is None)

    def numel(self) -> int:
        """The number of elements (PyTorch's name; ``size`` here is NumPy's
        attribute)."""
        return self.data.size

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        extra = "" if self.dtype == np.float64 else f", dtype={self.dtype}"
        extra += ", requires_grad=True" if self.requires_grad else ""
        return (
            f"Tensor({np.array2string(self.data, precision=4, separator=', ')}{extra})"
        )

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph: gradients stop here."""
        return Tensor(self.data)

    def retain_grad(self) -> "Tensor":
        """Keep ``grad`` on this non-leaf tensor too (by default only leaves keep
        it)."""
        self._retains_grad = True
        return self

    def _lift(self, other) -> "Tensor":
        """Numbers and arrays become constant tensors. A number, a 0-d array or an
        integer array takes our floating dtype, so ``x32 * 2.0`` stays float32."""
        if isinstance(other, Tensor):
            return other
        other = np.asarray(other)
        if (
            other.dtype != self.dtype
            and np.issubdtype(self.dtype, np.floating)
            and (other.ndim == 0 or not np.issubdtype(other.dtype, np.floating))
        ):
            other = other.astype(self.dtype)
        return Tensor(other)

    # ---- arithmetic: elementwise, with NumPy broadcasting ----------------------------
    def __add__(self, other):
        other = self._lift(other)
        return _make(self.data + other.data, (self, other), lambda g: (g, g), "+")

    def __sub__(self, other):
        other = self._lift(other)
        return _make(self.data - other.data, (self, other), lambda g: (g, -g), "-")

    def __mul__(self, other):
        other = self._lift(other)
        a, b = self.data, other.data

        def backward(
            g,
        ):  # (a constant factor, e.g. a dropout mask, needs no gradient: skip it)
            return (
                g * b if self.requires_grad else None,
                g * a if other.requires_grad else None,
            )

        return _make(a * b, (self, other), backward, "*")

    def __truediv__(self, other):
        other = self._lift(other)
        a, b = self.data, other.data

        def backward(g):
            return (
                g / b if self.requires_grad else None,
                -g * a / (b * b) if other.requires_grad else None,
            )

        return _make(a / b, (self, other), backward, "/")

    def __pow__(self, other):
        other = self._lift(other)
        a, b = self.data, other.data
        out = a**b

        def backward(g):
            # d(a^b)/da = b a^(b-1);  d(a^b)/db = a^b log a, needed only for a tensor
            # exponent (and only defined for a > 0, so we do not compute it for
            # constant exponents).
            if other.requires_grad:
                return g * b * a ** (b - 1), g * out * np.log(a)
            if (
                b.ndim == 0 and b == 0
            ):  # x ** 0 is constant: 0, not 0 * 0^(-1) = nan at x = 0
                return np.zeros_like(a), None
            return g * b * a ** (b - 1), None

        return _make(out, (self, other), backward, "**")

    def __neg__(self):
        return _make(-self.data, (self,), lambda g: (-g,), "neg")

    def __radd__(self, other):
        return self._lift(other) + self

    def __rsub__(self, other):
        return self._lift(other) - self

    def __rmul__(self, other):
        return self._lift(other) * self

    def __rtruediv__(self, other):
        return self._lift(other) / self

    def __rpow__(self, other):
        return self._lift(other) ** self

    def __matmul__(self, other):
        r"""$Y = AB$ has $\bar A = \bar Y B^\top$ and $\bar B = A^\top \bar Y$ (batched
        over leading axes)."""
        other = self._lift(other)
        a, b = self.data, other.data

        def backward(g):
            # 1-D operands are vectors: make them (1, n) and (n, 1) matrices, as
            # np.matmul does, so one formula covers every case; the leading batch axes
            # are summed by unbroadcast.
            a2 = a[None, :] if a.ndim == 1 else a
            b2 = b[:, None] if b.ndim == 1 else b
            g2 = g[..., None] if b.ndim == 1 else g  # (..., n) -> (..., n, 1)
            g2 = g2[..., None, :] if a.ndim == 1 else g2  # (..., m) -> (..., 1, m)
            ga = gb = None  # the costliest op: skip the input that needs no gradient
            if self.requires_grad:
                ga = g2 @ np.swapaxes(b2, -1, -2)
                ga = ga[..., 0, :] if a.ndim == 1 else ga
            if other.requires_grad:
                gb = np.swapaxes(a2, -1, -2) @ g2
                gb = gb[..., :, 0] if b.ndim == 1 else gb
            return ga, gb

        return _make(a @ b, (self, other), backward, "@")

    def __rmatmul__(self, other):
        return self._lift(other) @ self

    # Comparisons give boolean tensors, which carry no gradient (masks for `where`).
    # `==` and `!=` are left to Python's identity, so tensors stay usable as dict keys.
    def __lt__(self, other):
        return Tensor(self.data < self._lift(other).data)

    def __le__(self, other):
        return Tensor(self.data <= self._lift(other).data)

    def __gt__(self, other):
        return Tensor(self.data > self._lift(other).data)

    def __ge__(self, other):
        return Tensor(self.data >= self._lift(other).data)

    # ---- elementwise functions: x.grad = g * f'(x) -----------------------------------
    def exp(self):
        out = np.exp(self.data)
        return _make(
            out, (self,), lambda g: (g * out,), "exp"
        )  # (e^x)' = e^x: reuse it

    def log(self):
        x = self.data
        return _make(np.log(x), (self,), lambda g: (g / x,), "log")

    def log1p(self):
        # log(1 + x), exact for tiny x where 1 + x would round away x's digits
        x = self.data
        return _make(np.log1p(x), (self,), lambda g: (g / (1 + x),), "log1p")

    def sqrt(self):
        out = np.sqrt(self.data)
        return _make(
            out, (self,), lambda g: (g / (2 * out),), "sqrt"
        )  # (sqrt x)' = 1 / (2 sqrt x)

    def tanh(self):
        out = np.tanh(self.data)
        return _make(out, (self,), lambda g: (g * (1 - out * out),), "tanh")

    def sigmoid(self):
        # 0.5 (1 + tanh(x/2)) = 1 / (1 + e^-x) without overflow for large negative x.
        out = 0.5 * (1 + np.tanh(0.5 * self.data))
        return _make(out, (self,), lambda g: (g * out * (1 - out),), "sigmoid")

    def relu(self):
        x = self.data
        # the derivative at the kink x = 0 is taken as 0, as PyTorch does
        return _make(np.maximum(x, 0), (self,), lambda g: (g * (x > 0),), "relu")

    def abs(self):
        x = self.data
        return _make(
            np.abs(x), (self,), lambda g: (g * np.sign(x),), "abs"
        )  # sign(0) = 0, as PyTorch

    def clip(self, min=None, max=None):
        r"""Values limited to [min, max] (either may be None), PyTorch's ``clamp``.

        The gradient passes where $\min < x < \max$ and is 0 elsewhere, at the
        two boundaries included, as in PyTorch 2.x.
        """
        if min is None and max is None:
            raise ValueError("clip needs min or max (or both)")
        x = self.data
        lo = (
            None if min is None else np.asarray(min, dtype=x.dtype)
        )  # bounds take our dtype
        hi = None if max is None else np.asarray(max, dtype=x.dtype)

        def backward(g):
            inside = np.ones(x.shape, dtype=bool)
            if lo is not None:
                inside &= x > lo
            if hi is not None:
                inside &= x < hi
            return (g * inside,)

        return _make(np.clip(x, lo, hi), (self,), backward, "clip")

    clamp = clip

    # ---- reductions ------------------------------------------------------------------
    # `axis, keepdims` (NumPy) or `dim, keepdim` (PyTorch), the same thing.
    def sum(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        r"""$y = \sum_i x_i$ has $\bar x_i = \bar y$: the gradient is copied back
        (broadcast)."""
        axis, keepdims = _axis_keepdims(axis, keepdims, dim, keepdim)
        axes = _reduced_axes(axis, self.ndim)
        shape = self.shape
        kept = tuple(
            1 if i in axes else n for i, n in enumerate(shape)
        )  # the reduced axes as size 1

        def backward(g):
            return (np.broadcast_to(g.reshape(kept), shape),)

        return _make(
            self.data.sum(axis=axes, keepdims=keepdims), (self,), backward, "sum"
        )

    def mean(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        r"""$\frac1n \sum_i x_i$ over the reduced axes: the gradient is
        $\bar y / n$, copied back."""
        axis, keepdims = _axis_keepdims(axis, keepdims, dim, keepdim)
        axes = _reduced_axes(axis, self.ndim)
        shape = self.shape
        kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
        n = int(
            np.prod([shape[i] for i in axes])
        )  # elements per output entry (a Python int keeps float32)

        def backward(g):
            return (np.broadcast_to(g.reshape(kept) / n, shape),)

        return _make(
            self.data.mean(axis=axes, keepdims=keepdims), (self,), backward, "mean"
        )

    def max(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        r"""The largest entry over ``axis``: values only, with ``torch.amax``'s
        gradient.

        The gradient goes to the entry that is the maximum; when several tie, it is
        shared equally among them (each gets $\bar y / k$ for $k$ ties), as
        ``torch.amax`` and the full reduction ``torch.max(x)`` do. (``torch.max(x,
        dim)`` returns ``(values, indices)`` and sends the gradient to one index.)
        """
        return self._extremum(np.max, axis, keepdims, dim, keepdim, "max")

    def min(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        """The smallest entry over ``axis``, with ``torch.amin``'s gradient (see
        :meth:`max`)."""
        return self._extremum(np.min, axis, keepdims, dim, keepdim, "min")

    def _extremum(self, reduce, axis, keepdims, dim, keepdim, op):
        axis, keepdims = _axis_keepdims(axis, keepdims, dim, keepdim)
        axes = _reduced_axes(axis, self.ndim)
        x = self.data
        best = reduce(
            x, axis=axes, keepdims=True
        )  # reduced axes kept as size 1, to compare with x

        def backward(g):
            hit = (
                x == best
            )  # every entry equal to the extremum: ties share the gradient
            count = hit.sum(axis=axes, keepdims=True).astype(x.dtype)
            return (hit * (g.reshape(best.shape) / count),)

        out = (
            best
            if keepdims
            else best.reshape([n for i, n in enumerate(x.shape) if i not in axes])
        )
        return _make(out, (self,), backward, op)

    # ---- shape ops: move gradients back where the values came from -------------------
    def reshape(self, *shape):
        shape = (
            shape[0]
            if len(shape) == 1 and isinstance(shape[0], (tuple, list))
            else shape
        )
        old = self.shape
        return _make(
            self.data.reshape(shape), (self,), lambda g: (g.reshape(old),), "reshape"
        )

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        """Merge axes ``start_dim..end_dim`` (inclusive) into one, as
        ``torch.flatten``."""
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        return self.reshape(self.shape[:start] + (-1,) + self.shape[end + 1 :])

    def unsqueeze(self, dim: int):
        """A new axis of size 1 at ``dim`` (negative counts from the end of the
        result)."""
        return self.reshape(np.expand_dims(self.data, dim).shape)

    def permute(self, *dims):
        """Reorder the axes; the gradient goes through the inverse permutation."""
        dims = (
            dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        )
        inverse = np.argsort(dims)
        return _make(
            self.data.transpose(dims),
            (self,),
            lambda g: (g.transpose(inverse),),
            "permute",
        )

    def transpose(self, dim0: int = -2, dim1: int = -1):
        """Swap two axes (PyTorch's ``transpose(dim0, dim1)``; default: the last
        two)."""
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(dims)

    @property
    def T(self):
        """All axes reversed (a matrix's transpose)."""
        return self.permute(tuple(reversed(range(self.ndim))))

    def __getitem__(self, index):
        r"""Any NumPy index: slices, masks, integer arrays (negative entries count from
        the end).

        Backward scatters $\bar Y$ into zeros. An integer array can pick one
        element several times (``x[[0, 0]]`` uses ``x[0]`` twice, so it gets two
        gradients): ``np.add.at`` adds up such repeats, where ``zeros[index] = g``
        would keep only one; slices and masks never repeat, and take the fast
        assignment.
        """
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        elif isinstance(index, list):
            index = np.asarray(index)
        shape, dtype = self.shape, self.dtype
        basic = _is_basic_index(index)

        def backward(g):
            if basic:  # added into the input's pending gradient in place: see Slice
                return (Slice(index, g),)
            grad = np.zeros(shape, dtype=dtype)
            np.add.at(grad, index, g)
            return (grad,)

        return _make(self.data[index], (self,), backward, "getitem")

    # ---- the backward pass ----------------------------------------------------------
    def backward(self, gradient=None):
        r"""Accumulate $\partial L/\partial x$ into ``x.grad`` for every leaf ``x``
        that requires it.

        ``L`` is this tensor if it holds one number; otherwise pass ``gradient``
        ($\bar Y$, this tensor's shape) and get the vector-Jacobian products
        $\bar x = (\partial Y/\partial x)^\top \bar Y$. Gradients *add up* over
        calls, as in PyTorch, until ``zero_grad()`` (or ``x.grad = None``).
        """
        if not self.requires_grad:
            raise RuntimeError(
                "this tensor does not require grad and has no graph to go back through"
            )
        if gradient is None:
            if self.size != 1:
                raise RuntimeError(
                    "backward() without a gradient needs one number, got shape "
                    f"{self.shape}"
                )
            gradient = np.ones_like(self.data)
        gradient = np.asarray(
            gradient.data if isinstance(gradient, Tensor) else gradient,
            dtype=self.dtype,
        )
        if gradient.shape != self.shape:
            raise ValueError(
                f"gradient has shape {gradient.shape}, the tensor has {self.shape}"
            )

        # Outputs before inputs: a node's gradient is complete (every use of it has
        # added its share) before we pass it on. `grads` holds the pending sums;
        # `owned` the ids of those this loop allocated, which it may add into in
        # place (an op's gradient may be a view shared with another input).
        grads = {id(self): gradient}
        owned = set()
        for node in reversed(_topological_order(self)):
            g = grads.pop(id(node), None)  # pop: free each gradient once it is used
            if g is None:  # no path from this node to the output carries a gradient
                continue
            if node.is_leaf or node._retains_grad:
                # Copy: g may be a read-only broadcast view or shared with another node.
                node.grad = (
                    np.array(g, dtype=node.dtype)
                    if node.grad is None
                    else node.grad + g
                )
            if node.is_leaf:
                continue
            for parent, pg in zip(node._parents, node._backward(g)):
                if pg is None or not parent.requires_grad:
                    continue
                if isinstance(pg, Slice):
                    _add_slice(grads, owned, parent, pg)
                    continue
                pg = unbroadcast(np.asarray(pg), parent.shape).astype(
                    parent.dtype, copy=False
                )
                if pg.shape != parent.shape:  # a bug in the op's backward: say which op
                    raise RuntimeError(
                        f"backward of {node._op!r} gave a gradient of shape {pg.shape} "
                        f"for an input of shape {parent.shape}"
                    )
                if id(parent) in grads:
                    grads[id(parent)] = grads[id(parent)] + pg
                    owned.add(id(parent))
                else:
                    grads[id(parent)] = pg


# ---- ops on several tensors ----------------------------------------------------------
def _lift_all(tensors) -> list:
    """Tensors as they are; arrays and numbers as constants, in the first tensor's
    floating dtype."""
    first = next((t for t in tensors if isinstance(t, Tensor)), None)
    return [
        t
        if isinstance(t, Tensor)
        else first._lift(t)
        if first is not None
        else Tensor(t)
        for t in tensors
    ]


def concatenate(tensors, axis: int = 0) -> Tensor:
    r"""Join tensors along an existing axis (``np.concatenate``, ``torch.cat``).

    Each input was copied into one slab of the result, so its gradient is that
    slab of $\bar Y$: ``np.split`` at the same boundaries.
    """
    tensors = _lift_all(tensors)
    out = np.concatenate([t.data for t in tensors], axis=axis)
    bounds = np.cumsum([t.shape[axis] for t in tensors])[
        :-1
    ]  # where each input's slab ends
    return _make(
        out, tuple(tensors), lambda g: tuple(np.split(g, bounds, axis=axis)), "cat"
    )


def cat(tensors, dim: int = 0) -> Tensor:
    """PyTorch's name for :func:`concatenate`."""
    return concatenate(tensors, axis=dim)


def stack(tensors, axis: int = 0) -> Tensor:
    r"""Join same-shape tensors along a new axis; input $k$ gets the slice $k$ of
    $\bar Y$."""
    tensors = _lift_all(tensors)
    out = np.stack([t.data for t in tensors], axis=axis)
    lead = (slice(None),) * (axis % out.ndim)  # index the new axis: g[:, ..., k]

    def backward(g):
        return tuple(g[lead + (k,)] for k in range(len(tensors)))

    return _make(out, tuple(tensors), backward, "stack")


def where(condition, input, other) -> Tensor:
    r"""``input`` where ``condition`` holds, else ``other``; all three broadcast
    together.

    Each entry of the result is a copy of one input's entry, so each input gets
    $\bar Y$ where it was chosen and 0 elsewhere (summed over its broadcast axes).
    """
    cond = np.asarray(
        condition.data if isinstance(condition, Tensor) else condition, dtype=bool
    )
    a, b = _lift_all([input, other])

    def backward(g):
        return (
            np.where(cond, g, 0) if a.requires_grad else None,
            np.where(cond, 0, g) if b.requires_grad else None,
        )

    return _make(np.where(cond, a.data, b.data), (a, b), backward, "where")
