"""Ready-made networks for the NumPy engine, built from :mod:`scratch.engine.nn` layers.

:func:`make_mlp` is the multilayer perceptron of the Part I chapters. Introduced in
the chapter "A tiny autograd engine" (book/foundations/autograd.md); the chapters
on optimizers, schedules, regularization, activations and normalization build their
networks with it too.

Chapter: "A tiny autograd engine" (book/foundations/autograd.md).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from . import functional as F
from . import init, nn, optim, rnn
from .loop import fit_arrays
from .tensor import no_grad


def make_mlp(
    widths: Sequence[int],
    activation: Callable[[], nn.Module] | None = nn.ReLU,
    *,
    norm_layer: Callable[[int], nn.Module] | None = None,
    dropout: float = 0.0,
    init_weight: Callable | None = None,
    init_last: Callable | None = None,
    seed: int | None = None,
    dtype=np.float64,
) -> nn.Sequential:
    r"""A multilayer perceptron, ``Linear`` layers ``widths[0] -> widths[1] -> ... ->
    widths[-1]``.

    Every hidden layer is, in ``torchvision.ops.MLP``'s order,
    ``Linear -> norm_layer(width) -> activation() -> Dropout(dropout)``; the norm
    is left out when ``norm_layer`` is None, the dropout when ``dropout`` is 0. The
    last ``Linear`` gives the outputs (the logits) alone. So ``make_mlp([784, 64, 10])``
    is ``Sequential(Linear(784, 64), ReLU(), Linear(64, 10))``, with PyTorch's
    parameter names (``"0.weight"``, ...).

    - ``activation``: a module class or any function of no arguments that returns
      a module (``lambda: nn.LeakyReLU(0.1)``); None for a linear network.
    - ``norm_layer``: a function of the width that returns a module
      (``nn.BatchNorm1d``, ``lambda w: nn.GroupNorm(4, w)``). A ``Linear`` followed
      by one has no bias: the norm subtracts the mean, and its $\beta$ is the shift.
    - ``dtype``: of every ``Linear``'s parameters (the norm layers get their own).

    **Initialization.** Every ``Linear`` is first initialised as ``nn.Linear`` does,
    PyTorch's default, from NumPy's global generator (seed it with
    ``scratch.utils.seed_everything`` for repeatable weights). With ``init_weight``,
    each weight is then redrawn by ``init_weight(weight, generator)`` (the last
    layer's by ``init_last``, if given) and each bias set to 0, for instance
    ``lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g)``.
    The draws come from ``generator = np.random.default_rng(seed)``, layer after
    layer, so ``seed`` fixes the initial weights whatever the global generator did.
    With a ``seed`` and no ``init_weight``, PyTorch's default scheme is redrawn
    from that generator instead.
    """
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"make_mlp needs two or more widths, all >= 1, got {widths}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {dropout}")
    if init_last is not None and init_weight is None:
        raise ValueError(
            "init_last without init_weight: give init_weight for the hidden layers too"
        )
    layers, linears = [], []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        last = i == len(widths) - 2
        linear = nn.Linear(n_in, n_out, bias=last or norm_layer is None, dtype=dtype)
        linears.append(linear)
        layers.append(linear)
        if last:
            break
        if norm_layer is not None:
            layers.append(norm_layer(n_out))
        if activation is not None:
            layers.append(activation())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))

    if init_weight is not None or seed is not None:
        generator = np.random.default_rng(seed)
        for i, linear in enumerate(linears):
            if init_weight is None:  # nn.Linear's own scheme, from the generator
                init.kaiming_uniform_(
                    linear.weight, a=math.sqrt(5), generator=generator
                )
                if linear.bias is not None:
                    bound = 1 / math.sqrt(linear.in_features)
                    init.uniform_(linear.bias, -bound, bound, generator=generator)
                continue
            is_last = i == len(linears) - 1
            (init_last if is_last and init_last is not None else init_weight)(
                linear.weight, generator
            )
            if linear.bias is not None:
                init.zeros_(linear.bias)
    return nn.Sequential(*layers)


class CharLM(nn.Module):
    """A recurrent character-level language model: embedding, ``num_layers`` of
    ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU``, and a linear read-out to next-token logits.

    ``forward(x, state=None)`` takes token ids (B, T) and returns logits (B, T, V)
    and the final state, so generation and evaluation can carry the state from one
    chunk of text to the next. The recurrent-network chapters compare the three
    cells with everything else equal.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
        cell: str = "RNN",
        num_layers: int = 1,
        dtype=np.float64,
    ):
        if cell not in ("RNN", "LSTM", "GRU"):
            raise ValueError(f"cell must be RNN, LSTM or GRU, got {cell!r}")
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embedding_dim, dtype=dtype)
        self.rnn = getattr(rnn, cell)(
            embedding_dim, hidden_size, num_layers, batch_first=True, dtype=dtype
        )
        self.head = nn.Linear(hidden_size, vocab_size, dtype=dtype)

    def forward(self, x, state=None):
        h, state = self.rnn(self.embedding(x), state)  # (B, T, H)
        return self.head(h), state  # (B, T, V)

    @staticmethod
    def loss(out, y):
        """Mean cross-entropy of every position: ``out`` is ``forward``'s (logits,
        state), ``y`` the next tokens (B, T). The ``loss_fn`` of ``fit_arrays``."""
        logits = out[0]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    @staticmethod
    def last_loss(out, y):
        """Cross-entropy of the last position only, ``y`` (B,): for tasks whose
        answer comes at the end of the sequence."""
        return F.cross_entropy(out[0][:, -1], y)


def delayed_key_accuracy(
    model: CharLM, train_seq, test_seq, *, epochs: int, seed: int = 0
) -> float:
    """Train ``model`` on the final token of ``train_seq`` (sequences of
    :func:`scratch.text.delayed_key`) and return its accuracy on ``test_seq``'s.

    The recipe of every recurrent chapter's key task, so that the RNN, the GRU
    and the LSTM get the same budget: Adam at 0.01, batches of 64, gradients
    clipped to norm 1, the loss on the last step only.
    """
    fit_arrays(
        model,
        optim.Adam(model.parameters(), lr=0.01),
        train_seq[:, :-1],
        train_seq[:, -1],
        epochs=epochs,
        batch_size=64,
        loss_fn=CharLM.last_loss,
        clip_grad_norm=1.0,
        seed=seed,
        verbose=False,
    )
    model.eval()
    with no_grad():
        logits, _ = model(test_seq[:, :-1])
    return float((logits.data[:, -1].argmax(axis=1) == test_seq[:, -1]).mean())
