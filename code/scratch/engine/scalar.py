r"""A scalar reverse-mode autodiff engine, in the spirit of micrograd.

Every :class:`Value` remembers the values it was computed from (its *parents*)
and a closure that, given $\bar y = \partial L / \partial y$ of the result,
adds each parent's share $\bar y \, \partial y / \partial x$ to ``x.grad``.
:meth:`Value.backward` visits the graph once, outputs before inputs, so each
node's gradient is complete before it is passed on. That is all of reverse-mode
automatic differentiation; :mod:`scratch.engine.tensor` does the same over
NumPy arrays.

Chapter: "A tiny autograd engine" (book/foundations/autograd.md).
"""

from __future__ import annotations

import math


class Value:
    r"""A scalar in a computational graph: ``data``, ``grad`` and how it was made.

    ``grad`` holds $\partial L / \partial \text{self}$ after ``L.backward()``.
    Gradients *accumulate* (``+=``): a value used twice receives the sum of the
    two contributions, which is the multivariate chain rule
    $\bar x = \sum_j \bar y_j \, \partial y_j / \partial x$.
    """

    def __init__(self, data, _parents=(), _op="", label=""):
        self.data = float(data)
        self.grad = 0.0
        self._parents = tuple(_parents)  # the inputs of the op that made this value
        self._op = _op  # the op's name, for printing and drawing
        self._backward = lambda: (
            None
        )  # pushes self.grad to the parents; leaves have nothing to push
        self.label = label

    # ---- binary ops: y = a (op) b --------------------------------------------------
    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():  # dy/da = dy/db = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __sub__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data - other.data, (self, other), "-")

        def _backward():  # dy/da = 1, dy/db = -1
            self.grad += out.grad
            other.grad -= out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():  # dy/da = b, dy/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __truediv__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data / other.data, (self, other), "/")

        def _backward():  # dy/da = 1/b, dy/db = -a/b^2
            self.grad += out.grad / other.data
            other.grad -= self.data / other.data**2 * out.grad

        out._backward = _backward
        return out

    def __pow__(self, k):
        assert isinstance(k, (int, float)), "only constant exponents: x ** k"
        out = Value(self.data**k, (self,), f"**{k:g}")

        def _backward():  # d(x^k)/dx = k x^(k-1)
            self.grad += k * self.data ** (k - 1) * out.grad

        out._backward = _backward
        return out

    # ---- unary ops: y = f(x), x.grad += f'(x) * y.grad -------------------------------
    def exp(self):
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():  # (e^x)' = e^x: reuse the output instead of recomputing it
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self):
        out = Value(math.log(self.data), (self,), "log")

        def _backward():  # (log x)' = 1/x
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self):
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():  # tanh' = 1 - tanh^2
            self.grad += (1.0 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def relu(self):
        out = Value(max(self.data, 0.0), (self,), "relu")

        def _backward():  # 1 where x > 0; at the kink x = 0 we pick 0, as PyTorch does
            self.grad += (self.data > 0) * out.grad

        out._backward = _backward
        return out

    def sigmoid(self):
        # 0.5 (1 + tanh(x/2)) equals 1 / (1 + e^-x) but never overflows for large |x|.
        out = Value(0.5 * (1.0 + math.tanh(0.5 * self.data)), (self,), "sigmoid")

        def _backward():  # sigma' = sigma (1 - sigma)
            self.grad += out.data * (1.0 - out.data) * out.grad

        out._backward = _backward
        return out

    # ---- the backward pass ----------------------------------------------------------
    def backward(self):
        r"""Fill ``grad`` of every value this one depends on with
        $\partial\,\text{self}/\partial v$."""
        # Topological order: every value after all the values it was computed from.
        # (Recursive, for clarity: a chain deeper than Python's recursion limit, about
        # 1000 ops, fails here; the Tensor engine walks its graph with a loop instead.)
        order, seen = [], set()

        def visit(v):
            if v not in seen:
                seen.add(v)
                for parent in v._parents:
                    visit(parent)
                order.append(v)

        visit(self)

        # Leaves accumulate over backward calls (until zeroed, as in PyTorch); the
        # intermediate values start from 0, or a second call would pass on the
        # first call's gradients once more.
        for v in order:
            if v._parents:
                v.grad = 0.0
        # Walk it backwards: when we reach a value, every value that used it has
        # already added its share, so its grad is final and can be passed on.
        self.grad = 1.0  # dL/dL
        for v in reversed(order):
            v._backward()

    # ---- the rest is sugar, expressed through the ops above --------------------------
    def __neg__(self):  # -x
        return self * -1

    def __radd__(self, other):  # 2 + x
        return Value(other) + self

    def __rsub__(self, other):  # 2 - x
        return Value(other) - self

    def __rmul__(self, other):  # 2 * x
        return Value(other) * self

    def __rtruediv__(self, other):  # 2 / x
        return Value(other) / self

    def __repr__(self):
        name = f"{self.label}=" if self.label else ""
        return f"Value({name}{self.data:.4g}, grad={self.grad:.4g})"
