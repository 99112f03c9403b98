"""A small NumPy deep-learning engine with reverse-mode automatic differentiation.

The names are PyTorch's, so what a reader learns here carries over::

    from scratch.engine import Tensor, nn, optim, no_grad, gradcheck
    import scratch.engine.functional as F

- :class:`Value`: a scalar engine (micrograd-sized), to see the idea whole;
- :class:`Tensor`: the same over NumPy arrays, with broadcasting, and the
  functions that combine several tensors: :func:`concatenate` (``cat``),
  :func:`stack`, :func:`where`;
- :mod:`~scratch.engine.functional`, :mod:`~scratch.engine.nn` (with
  ``nn.init``), :mod:`~scratch.engine.optim`: losses, layers, initializations,
  optimizers on top;
- :func:`gradcheck`: the finite-difference oracle every op is tested against,
  and :func:`compare_with_torch`, the same check against PyTorch.

Built in the chapter "A tiny autograd engine" (book/foundations/autograd.md).
"""
from . import functional, init, nn, optim
from .gradcheck import compare_with_torch, gradcheck
from .scalar import Value
from .tensor import Tensor, cat, concatenate, is_grad_enabled, no_grad, stack, where

__all__ = ["Tensor", "Value", "no_grad", "is_grad_enabled", "gradcheck", "compare_with_torch",
           "concatenate", "cat", "stack", "where", "functional", "init", "nn", "optim"]
