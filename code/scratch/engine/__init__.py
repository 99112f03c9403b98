"""A small NumPy deep-learning engine with reverse-mode automatic differentiation.

The names are PyTorch's, so what a reader learns here carries over::

    from scratch.engine import Tensor, nn, optim, no_grad, gradcheck
    import scratch.engine.functional as F

- :class:`Value`: a scalar engine (micrograd-sized), to see the idea whole;
- :class:`Tensor`: the same over NumPy arrays, with broadcasting, and the
  functions that combine several tensors: :func:`concatenate` (``cat``),
  :func:`stack`, :func:`where`;
- :mod:`~scratch.engine.functional`, :mod:`~scratch.engine.nn` (with
  ``nn.init``), :mod:`~scratch.engine.optim` (with ``optim.lr_scheduler``):
  losses, layers, initializations, optimizers and schedules on top;
- :mod:`~scratch.engine.rnn`: the recurrent layers ``nn.RNN``, ``nn.LSTM``,
  ``nn.GRU`` and their cells;
- :mod:`~scratch.engine.attention`: ``nn.MultiheadAttention``, on
  ``F.scaled_dot_product_attention``;
- :mod:`~scratch.engine.models`: ready-made networks,
  :func:`~scratch.engine.models.make_mlp`;
- :func:`gradcheck`: the finite-difference oracle every op is tested against,
  and :func:`compare_with_torch`, the same check against PyTorch.

The modules import each other in layers, as PyTorch's do, never in a circle
(``tests/engine/test_imports.py`` checks it): ``tensor`` at the bottom; the
functions of ``functional`` (with ``conv`` and ``normalization``) and ``init``
on it; the ``Module`` classes of ``nn`` on those, and the recurrent ones of
``rnn`` and the attention of ``attention`` on ``nn``; ``optim`` on ``tensor``,
and ``lr_scheduler`` on ``optim``.

Chapter: "A tiny autograd engine" (book/foundations/autograd.md).
"""

from . import attention, functional, init, lr_scheduler, models, nn, optim, rnn
from .gradcheck import compare_with_torch, gradcheck
from .scalar import Value
from .tensor import Tensor, cat, concatenate, is_grad_enabled, no_grad, stack, where

# torch.optim.lr_scheduler's place. Set here, by the package, because lr_scheduler
# imports optim (for Optimizer) and optim must not import it back. Any import of
# scratch.engine.optim runs this file first, so `optim.lr_scheduler` and `from
# scratch.engine.optim import lr_scheduler` always work.
optim.lr_scheduler = lr_scheduler
# torch.nn's recurrent layers, in nn's namespace for the same reason: rnn builds on
# nn.Module, so nn cannot import rnn.
for _name in ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"):
    setattr(nn, _name, getattr(rnn, _name))
nn.MultiheadAttention = attention.MultiheadAttention  # likewise
del _name

__all__ = [
    "Tensor",
    "Value",
    "no_grad",
    "is_grad_enabled",
    "gradcheck",
    "compare_with_torch",
    "concatenate",
    "cat",
    "stack",
    "where",
    "functional",
    "init",
    "nn",
    "optim",
    "lr_scheduler",
    "models",
    "rnn",
    "attention",
]
